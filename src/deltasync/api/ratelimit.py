"""Credit buckets, in the manner of Deribit's rate limits.

Each caller (an API key, or an unauthenticated connection / remote address)
owns a bucket of credits that refills continuously up to a maximum; every
request costs credits and is refused with 10028 ``too_many_requests`` when
the bucket cannot pay. The table of buckets is bounded: the least recently
used bucket is forgotten first (it would be full again by then anyway).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from deltasync.core import limits


@dataclass(frozen=True, slots=True)
class RateLimit:
    credits_max: int = limits.api_credits_max
    refill_per_s: int = limits.api_credits_refill_per_s
    request_credits: int = limits.api_request_credits

    def __post_init__(self) -> None:
        assert 0 < self.request_credits <= self.credits_max
        assert self.refill_per_s > 0


class CreditBuckets:
    def __init__(
        self,
        rate: RateLimit,
        *,
        buckets_max: int = 100_000,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._buckets_max = buckets_max
        self._monotonic_s = monotonic_s

    def try_spend(self, caller: str, credits: int | None = None) -> bool:
        cost = self.rate.request_credits if credits is None else credits
        now = self._monotonic_s()
        level, last = self._buckets.pop(caller, (float(self.rate.credits_max), now))
        level = min(float(self.rate.credits_max), level + (now - last) * self.rate.refill_per_s)
        allowed = level >= cost
        if allowed:
            level -= cost
        self._buckets[caller] = (level, now)
        while len(self._buckets) > self._buckets_max:
            self._buckets.popitem(last=False)
        return allowed
