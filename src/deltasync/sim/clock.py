"""Per-node clocks with a fixed offset and a drift rate, in integer arithmetic.

A node reads ``local(true_ns)``; its ticks fire every ``tick_ns`` of its own
clock, i.e. every ``true_period(tick_ns)`` of true time. The leader stamps block
times from its own clock, so skew shows up in block time (and in expiry).
"""

from __future__ import annotations

from dataclasses import dataclass

from deltasync.sim.config import PPM


@dataclass(frozen=True, slots=True)
class NodeClock:
    origin_ns: int  # true time at which drift starts to accumulate
    offset_ns: int
    drift_ppm: int  # positive: runs fast

    def local(self, true_ns: int) -> int:
        elapsed = true_ns - self.origin_ns
        return true_ns + self.offset_ns + elapsed * self.drift_ppm // PPM

    def true_period(self, local_period_ns: int) -> int:
        return max(1, local_period_ns * PPM // (PPM + self.drift_ppm))
