"""A local order book kept from ``book.{instrument}.raw|100ms`` notifications.

The first notification is a snapshot; each later one carries ``change_id`` and
``prev_change_id``. ``BookTracker.apply`` raises ``BookGap`` when a
notification's ``prev_change_id`` is not the last ``change_id`` applied: a
message was lost and the caller must resubscribe for a fresh snapshot.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class BookGap(Exception):
    """The change_id chain broke: ``expected`` was the last change id held."""

    def __init__(self, expected: int | None, prev_change_id: int) -> None:
        self.expected = expected
        self.prev_change_id = prev_change_id
        super().__init__(f"book gap: holding change {expected}, got prev_change_id {prev_change_id}")


class BookTracker:
    def __init__(self) -> None:
        self.change_id: int | None = None
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, data: dict[str, Any]) -> None:
        if data.get("type") == "snapshot":
            self.bids, self.asks = {}, {}
        elif self.change_id is None or data.get("prev_change_id") != self.change_id:
            raise BookGap(self.change_id, int(data.get("prev_change_id", -1)))
        for side, levels in ((self.bids, data.get("bids", ())), (self.asks, data.get("asks", ()))):
            for action, price, amount in levels:
                price, amount = Decimal(str(price)), Decimal(str(amount))
                if action == "delete" or amount == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
        self.change_id = int(data["change_id"])

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids best first, asks best first)."""
        return (sorted(self.bids.items(), reverse=True), sorted(self.asks.items()))
