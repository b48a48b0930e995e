"""`deltasync bench consensus --json`: a 3-node loopback cluster of real processes.

Figures (one JSON object):

- ``noop_commands_per_s``: 100-byte ``Noop`` commands committed (fsync on a
  quorum, applied by the leader) per second, many in flight from one client
  on the leader's native gateway (the shape of PySyncObj's benchmark).
- ``orders_per_s``: limit orders (half of them crossing) committed with fsync
  and applied by *all three* nodes: the clock stops when every node has applied
  the height of the last acknowledged order.
- ``latency_p50_ms`` / ``latency_p99_ms``: submit -> committed answer for orders
  sent open-loop at half of ``orders_per_s``.

The client runs on the same 2-core machine as the three nodes, so it competes
with them for CPU; figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "consensus benchmark on a 3-node loopback cluster"

WINDOW = 2000  # requests in flight in the closed-loop phases
PROBE_TRIES = 20  # probe orders (0.5 s apart) before the measured phases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default)")


async def _closed_loop(client: Any, commands: list[list[Any]], session: int, seconds: float,
                       first_request: int) -> tuple[int, float, int]:
    """Keep WINDOW requests in flight until ``seconds`` pass; returns (acked, elapsed, last height)."""
    acked = 0
    last_height = 0
    start = time.perf_counter()
    deadline = start + seconds
    next_index = 0
    inflight: set[asyncio.Future[Any]] = set()

    def launch() -> None:
        nonlocal next_index
        command = commands[next_index % len(commands)]
        future = asyncio.ensure_future(client.submit(command, session, first_request + next_index))
        next_index += 1
        inflight.add(future)

    for _ in range(WINDOW):
        launch()
    while inflight:
        done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            inflight.discard(future)
            height, error, _ = future.result()
            if error is None:
                acked += 1
                last_height = max(last_height, height)
            if time.perf_counter() < deadline:
                launch()
    return acked, time.perf_counter() - start, last_height


async def _open_loop(client: Any, commands: list[list[Any]], session: int, rate_per_s: float,
                     seconds: float, first_request: int) -> list[float]:
    latencies: list[float] = []
    tasks = []

    async def one(index: int) -> None:
        sent = time.perf_counter()
        _, error, _ = await client.submit(commands[index % len(commands)], session, first_request + index)
        if error is None:
            latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    sent_count = 0
    while time.perf_counter() - start < seconds:
        due = int((time.perf_counter() - start) * rate_per_s)
        while sent_count < due:
            tasks.append(asyncio.ensure_future(one(sent_count)))
            sent_count += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    return latencies


async def _feed_oracle(client: Any) -> None:
    """Signed reports from the demo sources every 0.5 s (orders need a fresh index)."""
    from deltasync.core.fixed import Price
    from deltasync.exchange.assembly import demo_reports
    from deltasync.exchange.oracle import ORACLE_REGISTRY

    request = 0
    while True:
        reports = demo_reports(
            {"BTC": Price.whole(100_000), "ETH": Price.whole(3_500)}, time.time_ns()
        )
        for report in reports:
            request += 1
            asyncio.ensure_future(client.submit(ORACLE_REGISTRY.to_wire(report), 16, request))
        await asyncio.sleep(0.5)


def _probe_outcome(events: list[Any]) -> str:
    """``accepted``, or the reason the venue gave for rejecting the probe order."""
    from deltasync.exchange.events import EVENTS, OrderAccepted, OrderRejected

    decoded = [EVENTS.from_wire(e) for e in events if e and e[0] in EVENTS._by_tag]
    if any(isinstance(event, OrderAccepted) for event in decoded):
        return "accepted"
    reasons = [event.reason.name for event in decoded if isinstance(event, OrderRejected)]
    return reasons[0] if reasons else "no order event"


async def _first_accepted(client: Any, order: list[Any]) -> str:
    """Probe with one order every 0.5 s until the venue accepts it (trading opens once the
    oracle has formed an index); returns the last outcome."""
    outcome = "not sent"
    for request in range(1, PROBE_TRIES + 1):
        await asyncio.sleep(0.5)
        outcome = _probe_outcome((await client.submit(order, 15, request))[2])
        if outcome == "accepted":
            break
    return outcome


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _measure(data_dir: Path, cluster: dict[str, Any], genesis_raw: dict[str, Any],
                   seconds: float) -> dict[str, Any]:
    from deltasync.cli import cluster as cluster_cli
    from deltasync.core.fixed import Amount, Price, Quantity
    from deltasync.exchange.commands import COMMANDS, Deposit, PlaceOrder, Side
    from deltasync.exchange.genesis import GenesisConfig
    from deltasync.node.block import NODE_COMMANDS, Noop
    from deltasync.node.gateway import GatewayClient

    secret = bytes.fromhex(cluster["cluster_secret_hex"])
    leader_row = cluster_cli.wait_for_leader(data_dir, 30)
    assert leader_row is not None, "no leader"
    leader = int(leader_row["id"])

    async def connect(node_id: int) -> GatewayClient:
        host, port = cluster["gateway"][str(node_id)].rsplit(":", 1)
        for _ in range(100):
            client = GatewayClient(host, int(port), secret)
            try:
                await client.connect()
                return client
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway of node {node_id} unreachable")

    client = await connect(leader)
    noops = [NODE_COMMANDS.to_wire(Noop(bytes([i % 251]) * 100)) for i in range(1000)]
    noop_acked, noop_s, _ = await _closed_loop(client, noops, 11, seconds, 1)

    accounts = 2000
    deposits = [COMMANDS.to_wire(Deposit(a, Amount.whole(10_000_000))) for a in range(1, accounts + 1)]
    await asyncio.gather(*(client.submit(d, 12, i + 1) for i, d in enumerate(deposits)))
    genesis = GenesisConfig.from_dict(genesis_raw)
    # The live genesis' first BTC option: its expiry is at least a day after the start.
    instrument = next(i for i in genesis.build_instruments() if i.name.startswith("BTC"))
    assert instrument.expiry_ns > time.time_ns(), instrument.name
    tick = max([instrument.tick_raw] + [tier.tick_raw for tier in instrument.tick_tiers])
    base = 200 * tick
    orders = []
    for i in range(20_000):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        # bids at or below base, asks at or above: every fourth pair crosses
        offset = (i // 2 % 8) * tick
        price = base - offset if side is Side.BUY else base + offset - (tick if i % 4 == 1 else 0)
        orders.append(
            COMMANDS.to_wire(
                PlaceOrder(
                    account=1 + i % accounts,
                    instrument=instrument.name,
                    side=side,
                    amount=Quantity(instrument.min_amount_raw),
                    price=Price(max(tick, price)),
                )
            )
        )
    feeding = asyncio.ensure_future(_feed_oracle(client))
    probes = [await _first_accepted(client, orders[0])]
    start = time.perf_counter()
    orders_acked, _, last_height = await _closed_loop(client, orders, 13, seconds, 1)
    followers = [await connect(n) for n in cluster["nodes"] if n != leader]
    for follower in followers:
        while await follower.root_at(last_height) is None:
            await asyncio.sleep(0.005)
    orders_s = time.perf_counter() - start
    orders_per_s = orders_acked / orders_s
    roots = {(await c.root_at(last_height) or (0, b"", 0))[1] for c in [client, *followers]}
    latencies = await _open_loop(client, orders, 14, orders_per_s / 2, seconds, 1)
    probes.append(_probe_outcome((await client.submit(orders[2], 15, PROBE_TRIES + 1))[2]))
    feeding.cancel()
    await asyncio.gather(feeding, return_exceptions=True)
    for c in [client, *followers]:
        await c.close()
    return {
        "nodes": len(cluster["nodes"]),
        "noop_commands_per_s": round(noop_acked / noop_s),
        "noop_payload_bytes": 100,
        "orders_per_s": round(orders_per_s),
        "orders_committed": orders_acked,
        "latency_rate_per_s": round(orders_per_s / 2),
        "latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "latency_samples": len(latencies),
        "roots_agree": len(roots) == 1,
        "orders_accepted_by_the_venue": probes == ["accepted", "accepted"],
        "probe_orders": probes,  # one order before the measured phases, one after
        "instrument": instrument.name,
        "fsync": True,
        "phase_seconds": seconds,
    }


def run(args: argparse.Namespace) -> int:
    from deltasync.cli import cluster as cluster_cli
    from deltasync.exchange.genesis import live_genesis_dict

    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="deltasync-bench-")) if own_dir else args.data_dir
    base_port = 21000 + (int(time.time()) % 400) * 10
    genesis = live_genesis_dict(time.time_ns())  # live expiries on any date
    cluster = cluster_cli.write_configs(
        data_dir, args.nodes, base_port, demo_mode=False,
        extra={"snapshot_every_blocks": 1_000_000, "block_commands_max": 4096, "genesis": genesis},
    )
    try:
        for node_id in cluster["nodes"]:
            cluster_cli.start_node(data_dir, node_id)
        result = asyncio.run(_measure(data_dir, cluster, genesis, args.seconds))
    finally:
        cluster_cli.down(data_dir)
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result))
    if not result["orders_accepted_by_the_venue"]:
        print("bench consensus: the venue rejected the benchmark's orders; "
              "orders_per_s measured rejections", file=sys.stderr)
        return 1
    return 0
