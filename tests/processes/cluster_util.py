"""Helpers for tests that run real node processes on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

from deltasync.cli import cluster as cluster_cli
from deltasync.node.gateway import GatewayClient


def free_base_port() -> int:
    """A base port whose +1..+3, +101..+103 and +201..+203 neighbours are free right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + 300 > 65000:
            continue
        ok = True
        for offset in (1, 2, 3, 4, 5, 101, 102, 103, 104, 105, 201, 202, 203, 204, 205):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


class LocalCluster:
    def __init__(self, data_dir: Path, nodes: int = 3) -> None:
        self.data_dir = data_dir
        self.nodes = nodes
        self.base_port = free_base_port()
        self.info: dict[str, Any] = {}

    def up(self, timeout_s: float = 30.0) -> None:
        self.info = cluster_cli.write_configs(self.data_dir, self.nodes, self.base_port, demo_mode=True)
        for node_id in self.info["nodes"]:
            cluster_cli.start_node(self.data_dir, node_id)
        assert cluster_cli.wait_for_leader(self.data_dir, timeout_s), self.logs()

    @property
    def secret(self) -> bytes:
        return bytes.fromhex(self.info["cluster_secret_hex"])

    def gateway(self, node_id: int) -> tuple[str, int]:
        host, port = self.info["gateway"][str(node_id)].rsplit(":", 1)
        return host, int(port)

    async def client(self, node_id: int) -> GatewayClient:
        host, port = self.gateway(node_id)
        deadline = time.monotonic() + 10
        while True:
            client = GatewayClient(host, port, self.secret)
            try:
                await client.connect()
                return client
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    def status(self) -> list[dict[str, Any]]:
        return cluster_cli.collect_status(self.data_dir)

    def leader(self) -> int | None:
        for row in self.status():
            if row["role"] == "leader":
                return int(row["id"])
        return None

    def wait_leader(self, timeout_s: float = 20.0, exclude: int | None = None) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != exclude:
                return leader
            time.sleep(0.05)
        raise AssertionError(f"no leader in {timeout_s}s\n{self.logs()}")

    def kill(self, node_id: int) -> None:
        cluster_cli._signal(self.data_dir, node_id, cluster_cli.signal.SIGKILL)

    def restart(self, node_id: int) -> None:
        deadline = time.monotonic() + 5
        from deltasync.node.status import pid_alive, read_pid

        pid = read_pid(cluster_cli.node_dir(self.data_dir, node_id))
        while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        cluster_cli.start_node(self.data_dir, node_id)

    def down(self) -> None:
        if (self.data_dir / "cluster.json").exists():
            cluster_cli.down(self.data_dir)

    def logs(self) -> str:
        parts = []
        for node_id in range(1, self.nodes + 1):
            path = cluster_cli.node_dir(self.data_dir, node_id) / "node.log"
            if path.exists():
                parts.append(f"--- node {node_id}\n" + path.read_text()[-3000:])
        return "\n".join(parts)

    def halt_reports(self) -> list[dict[str, Any]]:
        reports = []
        for path in self.data_dir.glob("node*/reports/*.json"):
            reports.append(json.loads(path.read_text()))
        return reports
