"""Real processes: a torn WAL tail is repaired on restart; a corrupt middle record refuses."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from deltasync.cli import cluster as cluster_cli
from deltasync.core.fixed import Amount
from deltasync.exchange.commands import COMMANDS, Deposit
from deltasync.node.status import pid_alive, read_pid

from .cluster_util import LocalCluster


async def _deposits(cluster: LocalCluster, node: int, accounts: range) -> None:
    client = await cluster.client(node)
    try:
        await asyncio.gather(
            *(client.submit(COMMANDS.to_wire(Deposit(a, Amount(a))), 99, a) for a in accounts)
        )
    finally:
        await client.close()


def _segments(cluster: LocalCluster, node: int) -> list[Path]:
    return sorted((cluster_cli.node_dir(cluster.data_dir, node) / "raft" / "wal").glob("*.wal"))


def _wait_exit(cluster: LocalCluster, node: int, timeout_s: float = 10) -> None:
    pid = read_pid(cluster_cli.node_dir(cluster.data_dir, node))
    deadline = time.monotonic() + timeout_s
    while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_torn_tail_recovers_and_corrupt_middle_refuses(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", nodes=3)
    cluster.up()
    try:
        leader = cluster.wait_leader()
        victim = next(n for n in (1, 2, 3) if n != leader)
        asyncio.run(_deposits(cluster, leader, range(1, 201)))
        cluster.kill(victim)
        _wait_exit(cluster, victim)

        # 1. torn tail: a crash in the middle of appending a record (never fsynced,
        # never acknowledged) leaves a partial record after the last good one
        segment = _segments(cluster, victim)[-1]
        data = segment.read_bytes()
        segment.write_bytes(data + data[-40:-9])
        cluster.restart(victim)
        asyncio.run(_deposits(cluster, leader, range(201, 221)))

        async def caught_up() -> None:
            client = await cluster.client(victim)
            try:
                deadline = time.monotonic() + 20
                while (await client.balance(220)) is None:
                    assert time.monotonic() < deadline, cluster.logs()
                    await asyncio.sleep(0.1)
            finally:
                await client.close()

        asyncio.run(caught_up())
        log = (cluster_cli.node_dir(cluster.data_dir, victim) / "node.log").read_text()
        assert "storage recovery" in log

        # 2. corrupt middle record: flip a byte well inside the first segment
        cluster.kill(victim)
        _wait_exit(cluster, victim)
        segment = _segments(cluster, victim)[0]
        data = bytearray(segment.read_bytes())
        assert len(data) > 1000
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
        cluster.restart(victim)
        _wait_exit(cluster, victim, timeout_s=20)
        pid = read_pid(cluster_cli.node_dir(cluster.data_dir, victim))
        assert pid is not None and not pid_alive(pid), "a node with a corrupt WAL must not run"
        log = (cluster_cli.node_dir(cluster.data_dir, victim) / "node.log").read_text()
        assert "refusing to start" in log and "offset" in log, log[-2000:]
    finally:
        cluster.down()
