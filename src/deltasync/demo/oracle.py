"""The demo scenario's oracle: the one demo oracle (``node.demo_oracle.DemoOracle``) with
the scenario's features, relayed through the API by one publisher per source and
underlying, the way outside price sources would.

- Four sources ``demo-a..d`` observe the true BTC and ETH prices, each with its own
  noise; ``demo-d`` sometimes sends a bad tick (±4 %), which the clamp band absorbs.
- The true prices walk (0.06 % per square-root wall second, a 0.5–1.5 % jump every
  15 wall seconds on average) from ``scenario.SPOTS``.
- Once trading starts, ``schedule`` places the crash (``scenario.CRASH_DROP`` over
  ``Plan.crash_len_s``) and the outage of ``demo-c`` (``Plan.outage``) in block time.
- Each report carries an SVI smile per listed expiry (the ATM vol rises in the crash).
- Each publisher reports about every 0.5 s, waits out its source's latency, and relays
  the signed report through ``public/deltasync_oracle_report`` on its own node.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from deltasync.client import ApiError
from deltasync.core.fixed import Price
from deltasync.demo.api import Api, NodesDown
from deltasync.demo.clock import NS_PER_S, BlockClock, sleep_or_stop
from deltasync.demo.metrics import Metrics
from deltasync.demo.scenario import (
    CRASH_DROP,
    SOURCE_IDS,
    SPOTS,
    UNDERLYINGS,
    Plan,
    listed_expiries_ns,
)
from deltasync.exchange.oracle import OracleReport
from deltasync.node.demo_oracle import DemoOracle, DemoOracleOptions, Drop, SourceBehaviour

WALK_VOL_PER_SQRT_WALL_S = 0.0006
JUMP_EVERY_WALL_S = 15.0
ATM_VOL = {"BTC": 0.55, "ETH": 0.70}
OUTAGE_SOURCE = "demo-c"
BAD_TICK_SOURCE = "demo-d"


def scenario_oracle(seed: int, rate: int) -> DemoOracle:
    """The demo oracle as the scenario configures it (block time runs ``rate`` x faster)."""
    behaviour = {
        source: SourceBehaviour(
            noise=0.0005 * (1 + k % 2),
            bad_tick_probability=0.02 if source == BAD_TICK_SOURCE else 0.0,
        )
        for k, source in enumerate(SOURCE_IDS)
    }
    options = DemoOracleOptions(
        sources=SOURCE_IDS,
        behaviour=behaviour,
        vol_per_sqrt_s=WALK_VOL_PER_SQRT_WALL_S / rate**0.5,
        jump_every_s=JUMP_EVERY_WALL_S * rate,
        smile_expiries_ns=tuple(listed_expiries_ns()),
        atm_vol=ATM_VOL,
    )
    spots_raw = {underlying: Price.whole(SPOTS[underlying]).raw for underlying in UNDERLYINGS}
    return DemoOracle(random.Random(seed), spots_raw, options)


def schedule(oracle: DemoOracle, plan: Plan, clock: BlockClock, trading_started_wall_ns: int) -> None:
    """Place the crash and the outage in block time, counted from the trading start."""
    start_ns = clock.at_wall_ns(trading_started_wall_ns)

    def block_ns(seconds: float) -> int:
        return start_ns + int(seconds * clock.rate * NS_PER_S)

    behaviour = dict(oracle.options.behaviour)
    silent = (block_ns(plan.outage[0]), block_ns(plan.outage[1]))
    behaviour[OUTAGE_SOURCE] = replace(behaviour[OUTAGE_SOURCE], silent_ns=silent)
    drop = Drop(block_ns(plan.crash_s), int(plan.crash_len_s * clock.rate * NS_PER_S), CRASH_DROP)
    oracle.options = replace(oracle.options, behaviour=behaviour, drop=drop)


@dataclass(frozen=True)
class Publisher:
    """One source's stream of one underlying's reports."""

    source_id: str
    underlying: str
    latency_s: tuple[float, float]
    interval_s: float = 0.5


def publishers() -> list[Publisher]:
    """Every (source, underlying) stream; later sources lag more."""
    return [Publisher(source, underlying, latency_s=(0.02, 0.05 + 0.1 * k))
            for k, source in enumerate(SOURCE_IDS) for underlying in UNDERLYINGS]


async def run_publisher(publisher: Publisher, oracle: DemoOracle, clock: BlockClock, relay: Api,
                        metrics: Metrics, rng: random.Random, stop: asyncio.Event) -> None:
    """Observe, wait out the latency, relay; until ``stop``."""
    while not stop.is_set():
        await sleep_or_stop(stop, publisher.interval_s * rng.uniform(0.8, 1.2))
        reports = oracle.reports(clock.now_ns(), (publisher.underlying,), (publisher.source_id,))
        if not reports:
            continue  # the source is in its outage
        await sleep_or_stop(stop, rng.uniform(*publisher.latency_s))
        for report in reports:
            await _relay(report, relay, metrics)


async def _relay(report: OracleReport, relay: Api, metrics: Metrics) -> None:
    params: dict[str, Any] = {
        "source_id": report.source_id, "underlying": report.underlying,
        "price": Decimal(str(report.price)), "ts_ns": report.ts_ns,
        "signature": report.signature.hex(),
    }
    if report.vol_surface is not None:
        params["vol_surface"] = [s.to_wire() for s in report.vol_surface]
    try:
        await relay.call("public/deltasync_oracle_report", params, post=True)
        metrics.oracle_reports += 1
    except ApiError:
        metrics.oracle_rejected += 1
    except NodesDown:
        return  # every node is down for now: this report is lost, the next one follows


def start_publishers(oracle: DemoOracle, clock: BlockClock, urls: list[str], metrics: Metrics,
                     seed: int, stop: asyncio.Event) -> tuple[list[asyncio.Task[None]], list[Api]]:
    """A task per publisher, each relaying through its own node; returns the tasks and
    the relays' clients (to close)."""
    tasks: list[asyncio.Task[None]] = []
    relays: list[Api] = []
    for n, publisher in enumerate(publishers()):
        k, j = divmod(n, len(UNDERLYINGS))
        relay = Api(urls, k + j, metrics, timeout_s=3.0)
        relays.append(relay)
        rng = random.Random(seed * 1000 + 10 * k + j)
        tasks.append(asyncio.create_task(
            run_publisher(publisher, oracle, clock, relay, metrics, rng, stop)))
    return tasks, relays
