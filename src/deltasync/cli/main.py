"""`deltasync` entry point.

Each sub-command lives in its own module ``deltasync.cli.<name>`` exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules keep heavy imports inside ``run`` so that ``deltasync price`` does
not pay for importing the node.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

COMMANDS = ("demo", "node", "cluster", "sim", "bench", "price", "verify", "account")


def _available() -> list[str]:
    return [name for name in COMMANDS if importlib.util.find_spec(f"deltasync.cli.{name}")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltasync", description="A replicated exchange core for crypto options."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _available():
        module = importlib.import_module(f"deltasync.cli.{name}")
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
