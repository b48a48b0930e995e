"""What the agents did, as the clients saw it."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

ORDER_KINDS = ("buy", "sell", "edit", "cancel", "combo")


@dataclass
class Metrics:
    """Client-side counters and latencies, shared by every agent of the demo."""

    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    order_times: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    requests: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    trades: int = 0
    combo_fills: int = 0
    failovers: int = 0
    call_failures: int = 0
    oracle_reports: int = 0
    oracle_rejected: int = 0
    levered_contracts: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, str]] = field(default_factory=list)

    def orders(self) -> int:
        return sum(self.accepted[kind] + self.rejected_of(kind) for kind in ORDER_KINDS)

    def rejected_of(self, kind: str) -> int:
        return sum(n for key, n in self.rejected.items() if key.startswith(kind + ":"))

    def orders_per_s(self, window_s: float = 2.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.order_times if now - t <= window_s) / window_s

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def note(self, text: str) -> None:
        """A milestone, shown in the live view and printed as a line."""
        self.events.append((time.monotonic(), text))
