"""Helpers for tests that run real node processes on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from deltasync.cli import cluster as cluster_cli
from deltasync.node.gateway import GatewayClient, GatewayError


class LocalCluster:
    def __init__(self, data_dir: Path, nodes: int = 3) -> None:
        self.data_dir = data_dir
        self.nodes = nodes
        self.base_port = cluster_cli.free_base_port(5)
        self.info: dict[str, Any] = {}

    def up(self, timeout_s: float = 30.0, proxy: bool = False) -> None:
        self.info = cluster_cli.write_configs(self.data_dir, self.nodes, self.base_port, demo_mode=True)
        if proxy:
            self._route_through_proxy()
        for node_id in self.info["nodes"]:
            cluster_cli.start_node(self.data_dir, node_id)
        assert cluster_cli.wait_for_leader(self.data_dir, timeout_s), self.logs()

    def _route_through_proxy(self) -> None:
        from .proxy import LinkProxy

        ids = list(self.info["nodes"])
        targets = {i: self.base_port + i for i in ids}
        self.proxy = LinkProxy(targets, [(i, j) for i in ids for j in ids if i != j])
        for i in ids:
            path = cluster_cli.node_dir(self.data_dir, i) / "config.json"
            config = json.loads(path.read_text())
            config["peers"] = {
                str(j): (f"127.0.0.1:{targets[j]}" if j == i else f"127.0.0.1:{self.proxy.ports[(i, j)]}")
                for j in ids
            }
            path.write_text(json.dumps(config))

    proxy: Any = None

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
        if self.proxy is not None:
            self.proxy.close()

    def signal(self, node_id: int, sig: Any) -> None:
        cluster_cli._signal(self.data_dir, node_id, sig)

    # --- workload and checks --------------------------------------------------------

    async def deposit_all(self, node_id: int, accounts: range, session: int,
                          timeout_s: float = 40.0) -> dict[int, int]:
        """Deposit ``account * 1000`` into each account through one node's gateway, retrying
        (same session and request id) until acknowledged; returns account -> height."""
        from deltasync.core.fixed import Amount
        from deltasync.exchange.commands import COMMANDS, Deposit
        acked: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s

        async def one(client: GatewayClient, account: int) -> None:
            command = COMMANDS.to_wire(Deposit(account, Amount(account * 1000)))
            while time.monotonic() < deadline:
                try:
                    height, error, _ = await asyncio.wait_for(client.submit(command, session, account), 10)
                except (GatewayError, TimeoutError):
                    return
                if error is None:
                    acked[account] = height
                    return
                await asyncio.sleep(0.05)

        while time.monotonic() < deadline:
            missing = [a for a in accounts if a not in acked]
            if not missing:
                break
            try:
                client = await self.client(node_id)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            try:
                await asyncio.gather(*(one(client, a) for a in missing))
            finally:
                await client.close()
        return acked

    async def check_converged(self, accounts: list[int], nodes: list[int] | None = None,
                              timeout_s: float = 30.0) -> None:
        """Every acknowledged deposit applied exactly once, and all nodes agree on the root."""
        nodes = nodes or list(self.info["nodes"])
        deadline = time.monotonic() + timeout_s
        heights = []
        for node_id in nodes:
            client = await self.client(node_id)
            try:
                while True:
                    problem = None
                    try:
                        await client.read_barrier()
                        for a in accounts:
                            balance = await client.balance(a)
                            if balance is None or balance[1] != a * 1000:
                                problem = f"account {a}: {balance}"
                                break
                    except (GatewayError, TimeoutError, OSError) as exc:
                        problem = repr(exc)
                    ok = problem is None
                    if ok:
                        break
                    assert time.monotonic() < deadline, (
                        f"node {node_id} never converged: {problem}\n{self.logs()}"
                    )
                    await asyncio.sleep(0.2)
                heights.append((await client.status())["height"])
            finally:
                await client.close()
        common = min(heights)
        roots = set()
        for node_id in nodes:
            client = await self.client(node_id)
            try:
                found = await client.root_at(common)
                assert found is not None, f"node {node_id} forgot the root at {common}"
                roots.add(found[1])
            finally:
                await client.close()
        assert len(roots) == 1, f"roots differ at height {common}"
        assert self.halt_reports() == [], self.halt_reports()

    def logs(self) -> str:
        parts = []
        for node_id in range(1, self.nodes + 1):
            path = cluster_cli.node_dir(self.data_dir, node_id) / "node.log"
            if path.exists():
                parts.append(f"--- node {node_id}\n" + path.read_text()[-3000:])
        return "\n".join(parts)

    def halt_reports(self) -> list[dict[str, Any]]:
        reports = []
        for path in self.data_dir.glob("node*/reports/halt-*.json"):
            reports.append(json.loads(path.read_text()))
        return reports
