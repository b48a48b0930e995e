"""`deltasync cluster up|status|kill|restart|down`: a local cluster of node processes.

Layout of ``--data-dir``::

    DIR/cluster.json          nodes, ports, secret (written by `up`)
    DIR/node1/config.json     the node's config
    DIR/node1/node.pid        its process id
    DIR/node1/node.log        its stdout and stderr
    DIR/node1/status.json     what the node reports about itself
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HELP = "run a local multi-node cluster: up, status, kill, restart, down"

STALE_STATUS_NS = 3_000_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start N node processes and wait for a leader")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--data-dir", type=Path, required=True)
    up.add_argument("--base-port", type=int, default=7100)
    up.add_argument(
        "--demo-mode", action="store_true",
        help="allow account creation with deposits, and publish demo oracle prices",
    )
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a leader")
    up.add_argument("--json", action="store_true")
    status = sub.add_parser("status", help="role, term, commit index, height, root per node")
    status.add_argument("--data-dir", type=Path, required=True)
    status.add_argument("--json", action="store_true")
    kill = sub.add_parser("kill", help="SIGKILL one node")
    kill.add_argument("--data-dir", type=Path, required=True)
    kill.add_argument("node", type=int)
    stop = sub.add_parser("stop", help="SIGSTOP (pause) one node; `cont` resumes it")
    stop.add_argument("--data-dir", type=Path, required=True)
    stop.add_argument("node", type=int)
    cont = sub.add_parser("cont", help="SIGCONT a paused node")
    cont.add_argument("--data-dir", type=Path, required=True)
    cont.add_argument("node", type=int)
    restart = sub.add_parser("restart", help="start a stopped or killed node again")
    restart.add_argument("--data-dir", type=Path, required=True)
    restart.add_argument("node", type=int)
    down = sub.add_parser("down", help="stop every node")
    down.add_argument("--data-dir", type=Path, required=True)


def free_base_port(nodes: int, rng: random.Random | None = None) -> int:
    """A base port whose raft (+i), API (+100+i) and gateway (+200+i) ports are free now.

    Chosen below the kernel's ephemeral range (32768+): while a node is down its peers
    keep dialing it, and a dial to an unused ephemeral port can connect the socket to
    itself (TCP simultaneous open) and hold the very port the restarted node needs."""
    import socket

    offsets = [k + i for k in (0, 100, 200) for i in range(1, nodes + 1)]
    rng = rng or random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(10_000, 32_000 - 300)
        ok = True
        for offset in offsets:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", base + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range on 127.0.0.1")


def node_dir(data_dir: Path, node_id: int) -> Path:
    return data_dir / f"node{node_id}"


def load_cluster(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "cluster.json"
    if not path.exists():
        raise SystemExit(f"no cluster at {data_dir} (cluster.json missing): run `cluster up` first")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def write_configs(
    data_dir: Path, nodes: int, base_port: int, demo_mode: bool, extra: dict[str, Any] | None = None,
    demo_oracle: bool = False,
) -> dict[str, Any]:
    """Write cluster.json and one config.json per node; returns the cluster description.

    Without a ``genesis`` in ``extra`` every node gets the same live genesis, computed
    once here from the wall clock (``live_genesis_dict``): the default venue with the
    next Friday expiries, so a cluster started on any date has options to trade."""
    from deltasync.exchange.genesis import live_genesis_dict

    data_dir.mkdir(parents=True, exist_ok=True)
    genesis = live_genesis_dict(time.time_ns())
    secret = secrets.token_hex(32)
    peers = {str(i): f"127.0.0.1:{base_port + i}" for i in range(1, nodes + 1)}
    api_ports = {i: base_port + 100 + i for i in range(1, nodes + 1)}
    api_peers = {str(i): f"http://127.0.0.1:{port}" for i, port in api_ports.items()}
    for i in range(1, nodes + 1):
        directory = node_dir(data_dir, i)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "node_id": i,
            "data_dir": str(directory.resolve()),
            "raft_address": peers[str(i)],
            "api_address": f"127.0.0.1:{api_ports[i]}",
            "gateway_address": f"127.0.0.1:{base_port + 200 + i}",
            "peers": peers,
            "api_peers": api_peers,
            "cluster_secret_hex": secret,
            "demo_mode": demo_mode,
            "demo_oracle": demo_oracle,
            "seed": i,
            "genesis": genesis,
            **(extra or {}),
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2))
    gateways = {str(i): f"127.0.0.1:{base_port + 200 + i}" for i in range(1, nodes + 1)}
    cluster = {
        "nodes": list(range(1, nodes + 1)),
        "api": api_peers,
        "gateway": gateways,
        "base_port": base_port,
        "cluster_secret_hex": secret,
    }
    (data_dir / "cluster.json").write_text(json.dumps(cluster, indent=2))
    return cluster


def start_node(data_dir: Path, node_id: int, file_bytes_max: int | None = None) -> int:
    """Start one node process; ``file_bytes_max`` caps the size of any file it writes
    (RLIMIT_FSIZE), which fault tests use to make its disk "fill up"."""
    directory = node_dir(data_dir, node_id)
    config = directory / "config.json"
    if not config.exists():
        raise SystemExit(f"node {node_id} has no config at {config}")
    from deltasync.node.status import pid_alive, read_pid

    old = read_pid(directory)
    if old is not None and pid_alive(old):
        raise SystemExit(f"node {node_id} is already running (pid {old})")
    log = open(directory / "node.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "deltasync.cli.main", "node", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=None if file_bytes_max is None else _limit_file_size(file_bytes_max),
    )
    log.close()
    (directory / "node.pid").write_text(str(process.pid))
    return process.pid


def _limit_file_size(file_bytes_max: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes_max, file_bytes_max))

    return apply


def collect_status(data_dir: Path) -> list[dict[str, Any]]:
    from deltasync.node.status import pid_alive, read_pid, read_status

    cluster = load_cluster(data_dir)
    now = time.time_ns()
    rows: list[dict[str, Any]] = []
    for node_id in cluster["nodes"]:
        directory = node_dir(data_dir, node_id)
        pid = read_pid(directory)
        alive = pid is not None and pid_alive(pid)
        status = read_status(directory) or {}
        fresh = alive and now - int(status.get("updated_ns", 0)) < STALE_STATUS_NS
        rows.append(
            {
                "id": node_id,
                "alive": alive,
                "role": status.get("role", "unknown") if fresh else ("down" if not alive else "stale"),
                "term": status.get("term"),
                "leader": status.get("leader"),
                "commit_index": status.get("commit_index"),
                "applied_index": status.get("applied_index"),
                "height": status.get("height"),
                "state_root": status.get("state_root"),
                "api": cluster["api"].get(str(node_id)),
                "pid": pid if alive else None,
                "halted": status.get("halted"),
            }
        )
    heights = [row["height"] for row in rows if isinstance(row["height"], int)]
    top = max(heights, default=0)
    for row in rows:
        row["lag"] = top - row["height"] if isinstance(row["height"], int) else None
    return rows


def wait_for_leader(data_dir: Path, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for row in collect_status(data_dir):
            if row["role"] == "leader":
                return row
        time.sleep(0.1)
    return None


def _signal(data_dir: Path, node_id: int, sig: signal.Signals) -> int:
    from deltasync.node.status import pid_alive, read_pid

    pid = read_pid(node_dir(data_dir, node_id))
    if pid is None or not pid_alive(pid):
        print(f"node {node_id} is not running", file=sys.stderr)
        return 1
    os.kill(pid, sig)
    return 0


def _print_status(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"nodes": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="deltasync cluster")
    for column in ("id", "role", "term", "commit_index", "height", "lag", "state_root", "api"):
        table.add_column(column)
    for row in rows:
        root = row["state_root"] or ""
        table.add_row(
            *(
                str(row[c]) if c != "state_root" else root[:16]
                for c in ("id", "role", "term", "commit_index", "height", "lag", "state_root", "api")
            )
        )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    match args.action:
        case "up":
            if (data_dir / "cluster.json").exists():
                cluster = load_cluster(data_dir)
            else:
                cluster = write_configs(
                    data_dir, args.nodes, args.base_port, args.demo_mode, demo_oracle=args.demo_mode
                )
            for node_id in cluster["nodes"]:
                start_node(data_dir, node_id)
            leader = wait_for_leader(data_dir, args.timeout)
            if leader is None:
                print(f"no leader within {args.timeout}s; see {data_dir}/node*/node.log", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps({"leader": leader["id"], "api": cluster["api"]}))
            else:
                print(f"cluster up: {len(cluster['nodes'])} nodes, leader {leader['id']}")
            return 0
        case "status":
            _print_status(collect_status(data_dir), args.json)
            return 0
        case "kill":
            return _signal(data_dir, args.node, signal.SIGKILL)
        case "stop":
            return _signal(data_dir, args.node, signal.SIGSTOP)
        case "cont":
            return _signal(data_dir, args.node, signal.SIGCONT)
        case "restart":
            start_node(data_dir, args.node)
            return 0
        case "down":
            return down(data_dir)
    raise AssertionError(args.action)


def down(data_dir: Path, timeout_s: float = 10.0) -> int:
    from deltasync.node.status import pid_alive, read_pid

    cluster = load_cluster(data_dir)
    pids = []
    for node_id in cluster["nodes"]:
        pid = read_pid(node_dir(data_dir, node_id))
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if pid_alive(pid)]
        time.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return 0
