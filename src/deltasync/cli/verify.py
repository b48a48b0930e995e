"""`deltasync verify DATA_DIR [--json]`: check a node's data directory offline.

Exit status: 0 healthy (warnings, such as a torn WAL tail the node will cut on
start, are printed but do not fail unless ``--strict``), 1 damaged (the node
would refuse to start or data is missing), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

HELP = "check a node's data directory offline (WAL, hard state, snapshots)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_DIR", help="the node's data directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings too, e.g. a torn WAL tail"
    )
    parser.add_argument(
        "--state-root-fn",
        metavar="MODULE:FUNCTION",
        help="a function state_bytes -> root used to recompute each snapshot's state root",
    )


def _load_root_function(spec: str) -> Any:
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"--state-root-fn must look like MODULE:FUNCTION, got {spec!r}")
    function = getattr(importlib.import_module(module_name), function_name)
    if not callable(function):
        raise ValueError(f"{spec} is not callable")
    return function


def run(args: argparse.Namespace) -> int:
    from deltasync.storage.inspect import verify_data_dir

    verify_root = None
    if args.state_root_fn:
        try:
            verify_root = _load_root_function(args.state_root_fn)
        except (ImportError, AttributeError, ValueError) as exc:
            print(f"deltasync verify: {exc}", file=sys.stderr)
            return 2
    report = verify_data_dir(args.data_dir, verify_root=verify_root)
    failed = not report["ok"] or (args.strict and bool(report["warnings"]))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_text(report)
    return 1 if failed else 0


def _print_text(report: dict[str, Any]) -> None:
    lines = [f"data dir   {report['data_dir']}"]
    node = report.get("node")
    if node:
        lines.append(f"node       id {node['node_id']}, cluster {node['cluster']!r}")
    wal = report.get("wal")
    if wal and wal.get("corrupt") is None and "segments" in wal:
        lines.append(
            f"wal        {len(wal['segments'])} segments, {wal['records']} records"
            f" (seq {wal['first_seq']}..{wal['last_seq']})"
            + (", torn tail" if wal["torn_tail"] else "")
        )
    raft = report.get("raft")
    if raft:
        hard = raft["hard_state"]
        lines.append(
            f"raft       term {hard['term']}, vote {hard['vote']}, commit {hard['commit']};"
            f" log {raft['first_index']}..{raft['last_index']} ({raft['entries']} entries),"
            f" compacted to {raft['snapshot_index']}/{raft['snapshot_term']}"
        )
    for snapshot in report.get("snapshots", []):
        status = "ok" if snapshot.get("ok") else "DAMAGED"
        root = snapshot.get("state_root", "")
        checked = " (root recomputed)" if snapshot.get("root_verified") else ""
        lines.append(
            f"snapshot   {snapshot['index']}/{snapshot['term']} {snapshot['bytes']} bytes"
            f" {status} {root[:16]}{checked}"
        )
    for warning in report["warnings"]:
        lines.append(f"warning    {warning}")
    for error in report["errors"]:
        lines.append(f"ERROR      {error}")
    lines.append("healthy" if report["ok"] else "DAMAGED")
    print("\n".join(lines))
