"""Real processes: a 3-node cluster takes commands, loses its leader to SIGKILL mid-stream,
elects a new one, loses no acknowledged command, and the killed node catches up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from deltasync.core.fixed import Amount
from deltasync.exchange.commands import COMMANDS, Deposit
from deltasync.node.gateway import GatewayError

from .cluster_util import LocalCluster

SESSION = 4242


async def _deposit_stream(cluster: LocalCluster, gateway_node: int, accounts: range,
                          acked: dict[int, int], kill_after: int, victim: int) -> None:
    client = await cluster.client(gateway_node)
    try:
        for account in accounts:
            command = COMMANDS.to_wire(Deposit(account, Amount(account * 1000)))
            deadline = time.monotonic() + 30
            while True:  # a client retry reuses (session, request): applied at most once
                try:
                    height, error, _ = await asyncio.wait_for(
                        client.submit(command, SESSION, account), 15
                    )
                except (GatewayError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
                    continue
                if error is None:
                    acked[account] = height
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"account {account}: {error}")
                await asyncio.sleep(0.05)
            if account == kill_after:
                cluster.kill(victim)
    finally:
        await client.close()


async def _roots_agree(cluster: LocalCluster, height: int) -> set[bytes]:
    roots = set()
    for node_id in range(1, cluster.nodes + 1):
        client = await cluster.client(node_id)
        try:
            deadline = time.monotonic() + 30
            while True:
                found = await client.root_at(height)
                if found is not None:
                    roots.add(found[1])
                    break
                assert time.monotonic() < deadline, f"node {node_id} never reached {height}"
                await asyncio.sleep(0.1)
        finally:
            await client.close()
    return roots


def test_sigkill_leader_mid_stream(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", nodes=3)
    cluster.up()
    try:
        leader = cluster.wait_leader()
        gateway = next(n for n in (1, 2, 3) if n != leader)
        acked: dict[int, int] = {}
        asyncio.run(_deposit_stream(cluster, gateway, range(1, 121), acked, kill_after=40, victim=leader))
        assert len(acked) == 120
        new_leader = cluster.wait_leader(exclude=leader)
        assert new_leader != leader

        async def check_balances() -> None:
            client = await cluster.client(gateway)
            try:
                await client.read_barrier()
                for account in range(1, 121):
                    balance = await client.balance(account)
                    assert balance is not None, f"acknowledged deposit to {account} lost"
                    assert balance[1] == account * 1000, f"account {account} applied {balance}"
            finally:
                await client.close()

        asyncio.run(check_balances())
        cluster.restart(leader)

        async def converge() -> None:
            client = await cluster.client(gateway)
            try:
                status = await client.status()
            finally:
                await client.close()
            roots = await _roots_agree(cluster, status["height"])
            assert len(roots) == 1, roots

        asyncio.run(converge())
        assert cluster.halt_reports() == []
    finally:
        cluster.down()
