"""The demo's clocks: block time as the nodes compute it, and time since trading started."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class BlockClock:
    """Block time as every node computes it: anchor + (wall - wall anchor) x rate."""

    rate: int
    block_anchor_ns: int
    wall_anchor_ns: int

    def now_ns(self) -> int:
        return self.block_anchor_ns + (time.time_ns() - self.wall_anchor_ns) * self.rate

    def at_wall_ns(self, wall_ns: int) -> int:
        """Block time at wall time ``wall_ns``."""
        return self.block_anchor_ns + (wall_ns - self.wall_anchor_ns) * self.rate

    def wall_of(self, block_ns: int) -> float:
        """Wall time (seconds since the epoch) at which block time reaches ``block_ns``."""
        return (self.wall_anchor_ns + (block_ns - self.block_anchor_ns) / self.rate) / NS_PER_S


class TradingClock:
    """Seconds since the trading phase started (0 before); the schedule counts from it."""

    def __init__(self) -> None:
        self.started: float | None = None  # time.monotonic() at the start

    def start(self) -> None:
        self.started = time.monotonic()

    def elapsed_s(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    except TimeoutError:
        pass
