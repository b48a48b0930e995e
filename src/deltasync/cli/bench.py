"""`deltasync bench TARGET`: benchmarks that print figures (never timed tests).

Each target lives in its own module ``deltasync.cli.bench_<target>`` with the
same shape as a CLI command: ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Adding a target is one line in ``TARGETS``; a target
whose module is not installed yet is simply not offered.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

HELP = "Run benchmarks and print their figures (deltasync bench exchange --json)"

TARGETS = {
    "exchange": "deltasync.cli.bench_exchange",
    "consensus": "deltasync.cli.bench_consensus",
}


def available() -> dict[str, str]:
    return {name: module for name, module in TARGETS.items() if importlib.util.find_spec(module)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, module_name in available().items():
        module = importlib.import_module(module_name)
        target_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(target_parser)
        target_parser.set_defaults(_bench=module)


def run(args: argparse.Namespace) -> int:
    return int(args._bench.run(args) or 0)
