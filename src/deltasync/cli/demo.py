"""`deltasync demo`: a market scenario against a local 3-node cluster (``deltasync.demo``).

With ``--in-process`` the scenario runs through one state machine in this process
instead. See docs/demo.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Run a market scenario against a local 3-node cluster (--in-process: one state machine)"

CLUSTER_DURATION_DEFAULT_S = 60.0
IN_PROCESS_DURATION_DEFAULT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="trading time (default 60; --in-process: at most this long, default 10)")
    parser.add_argument("--seed", type=int, default=1, help="scenario seed (default 1)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the cluster's files here (default: a temporary dir, removed)")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--rate", type=int, default=60,
                        help="block time runs this many times faster than the wall clock")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--in-process", action="store_true",
                        help="run the scenario in this process through one state machine, no cluster")
    parser.add_argument("--blocks", type=int, default=300,
                        help="--in-process: at most this many blocks")


def run(args: argparse.Namespace) -> int:
    if args.in_process:
        from deltasync.demo import run_in_process

        duration_s = IN_PROCESS_DURATION_DEFAULT_S if args.duration is None else args.duration
        return run_in_process(args.seed, duration_s, args.blocks)
    from deltasync.cli import cluster
    from deltasync.demo import ClusterDemoOptions, run_cluster_demo

    options = ClusterDemoOptions(
        duration_s=CLUSTER_DURATION_DEFAULT_S if args.duration is None else args.duration,
        seed=args.seed, nodes=args.nodes, rate=args.rate, data_dir=args.data_dir, json=args.json,
    )
    return run_cluster_demo(options, processes=cluster)
