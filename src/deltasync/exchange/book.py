"""A price-time priority limit order book on raw integers.

Layout, chosen for CPython speed:

- one ``Level`` per price: a FIFO ``deque`` of orders plus the live quantity
  and live count; cancelled orders are marked dead (``live = False``) and
  skipped lazily, so a cancel is O(1) apart from removing an emptied level;
- best prices come from sorted key lists kept with ``bisect``: bid keys are the
  prices ascending, ask keys the negated prices ascending, so the best of
  either side is the last element and consuming it is ``list.pop()``;
- ``orders`` maps order id -> order for O(1) lookup.

Matching returns its decisions as data: a list of ``(maker, quantity)`` fills
(each at ``maker.price``), the makers cancelled by self-trade prevention and
the quantity left. The caller settles money and positions.

Self-trade prevention: **cancel the resting maker**. When a taker meets a
resting order of its own account, that maker is removed (reported in
``self_cancelled``) and matching continues behind it; the taker is never
rejected for it. Combos never cancel: their dry-run walks skip the account's
own orders instead, so a combo that does not fill leaves the books untouched.

The book never holds a crossed state: callers match before they rest, and
``rest`` asserts it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from enum import Enum

from deltasync.exchange.commands import Side

# The book's spelling of a ``Side``: its value, a small int (ints compare and hash
# faster than enum members on the hot path, and records store them as they are).
BUY: int = Side.BUY.value
SELL: int = Side.SELL.value
SIDE_OF: dict[int, Side] = {BUY: Side.BUY, SELL: Side.SELL}


def book_side(side: Side) -> int:
    """``BUY`` or ``SELL`` for a ``Side`` (hot paths inline ``BUY if side is Side.BUY else SELL``)."""
    return BUY if side is Side.BUY else SELL


class OrderStatus(Enum):
    """Where an order's life stands: a book holds only ``OPEN`` ones."""

    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Order:
    """A live order (mutable engine record; never leaves the state machine as is)."""

    __slots__ = (
        "order_id", "account", "instrument_id", "side", "price", "amount", "remaining",
        "priority", "time_in_force", "expire_at_ns", "post_only", "reduce_only", "label",
        "order_type", "live",
    )

    def __init__(
        self,
        order_id: int,
        account: int,
        instrument_id: int,
        side: int,
        price: int,
        amount: int,
        remaining: int,
        priority: int,
        time_in_force: int = 1,
        expire_at_ns: int = 0,
        post_only: bool = False,
        reduce_only: bool = False,
        label: str = "",
        order_type: int = 1,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument_id = instrument_id
        self.side = side
        self.price = price
        self.amount = amount  # total ordered (filled + remaining)
        self.remaining = remaining
        self.priority = priority  # log id when it joined its queue
        self.time_in_force = time_in_force
        self.expire_at_ns = expire_at_ns
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.label = label
        self.order_type = order_type
        self.live = True

    def to_wire(self) -> list[object]:
        return [
            self.order_id, self.account, self.instrument_id, self.side, self.price,
            self.amount, self.remaining, self.priority, self.time_in_force,
            self.expire_at_ns, self.post_only, self.reduce_only, self.label, self.order_type,
        ]

    @classmethod
    def from_wire(cls, wire: list[object]) -> Order:
        return cls(*wire)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        side = "buy" if self.side == BUY else "sell"
        return f"Order({self.order_id} {side} {self.remaining}@{self.price} acct={self.account})"


class Level:
    __slots__ = ("quantity", "count", "queue")

    def __init__(self) -> None:
        self.quantity = 0
        self.count = 0
        self.queue: deque[Order] = deque()


Fill = tuple[Order, int]


class Book:
    """One instrument's book."""

    __slots__ = ("bids", "asks", "bid_keys", "ask_keys", "orders")

    def __init__(self) -> None:
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_keys: list[int] = []  # prices ascending: best bid last
        self.ask_keys: list[int] = []  # negated prices ascending: best ask last
        self.orders: dict[int, Order] = {}

    # --- queries ---------------------------------------------------------------

    def best_bid(self) -> int | None:
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> int | None:
        return -self.ask_keys[-1] if self.ask_keys else None

    def would_cross(self, side: int, price: int) -> bool:
        if side == BUY:
            return bool(self.ask_keys) and -self.ask_keys[-1] <= price
        return bool(self.bid_keys) and self.bid_keys[-1] >= price

    def level(self, side: int, price: int) -> Level | None:
        return (self.bids if side == BUY else self.asks).get(price)

    def depth(self, side: int, levels_max: int) -> list[tuple[int, int, int]]:
        """(price, quantity, order count) from the best price outward."""
        out = []
        if side == BUY:
            for price in reversed(self.bid_keys[-levels_max:] if levels_max else []):
                level = self.bids[price]
                out.append((price, level.quantity, level.count))
        else:
            for key in reversed(self.ask_keys[-levels_max:] if levels_max else []):
                level = self.asks[-key]
                out.append((-key, level.quantity, level.count))
        return out

    def summary(self) -> list[int]:
        """[best bid, its quantity, best ask, its quantity, bid levels, ask levels, orders] (0: none)."""
        bid = self.bid_keys[-1] if self.bid_keys else 0
        ask = -self.ask_keys[-1] if self.ask_keys else 0
        return [
            bid, self.bids[bid].quantity if bid else 0, ask, self.asks[ask].quantity if ask else 0,
            len(self.bid_keys), len(self.ask_keys), len(self.orders),
        ]

    def iter_side(self, side: int) -> Iterator[Order]:
        """Live orders of one side in priority order (best price first, then time)."""
        if side == BUY:
            for price in reversed(self.bid_keys):
                yield from (o for o in self.bids[price].queue if o.live)
        else:
            for key in reversed(self.ask_keys):
                yield from (o for o in self.asks[-key].queue if o.live)

    def __len__(self) -> int:
        return len(self.orders)

    # --- mutation ----------------------------------------------------------------

    def rest(self, order: Order) -> None:
        """Append a live order at the back of its price level's queue."""
        price = order.price
        if order.side == BUY:
            assert not self.ask_keys or -self.ask_keys[-1] > price, "resting would cross"
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level()
                keys = self.bid_keys
                if not keys or price > keys[-1]:
                    keys.append(price)
                else:
                    insort(keys, price)
        else:
            assert not self.bid_keys or self.bid_keys[-1] < price, "resting would cross"
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level()
                keys = self.ask_keys
                if not keys or -price > keys[-1]:
                    keys.append(-price)
                else:
                    insort(keys, -price)
        level.queue.append(order)
        level.quantity += order.remaining
        level.count += 1
        self.orders[order.order_id] = order

    def remove(self, order_id: int) -> Order | None:
        """Take an order out of the book (cancel); its ``remaining`` is left as it was."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        order.live = False
        if order.side == BUY:
            levels, keys, key = self.bids, self.bid_keys, order.price
        else:
            levels, keys, key = self.asks, self.ask_keys, -order.price
        level = levels[order.price]
        level.quantity -= order.remaining
        level.count -= 1
        if level.count == 0:
            del levels[order.price]
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
        elif len(level.queue) > 2 * level.count + 16:
            level.queue = deque(o for o in level.queue if o.live)
        return order

    def reduce(self, order: Order, remaining: int) -> None:
        """Lower a resting order's remaining quantity in place (keeps queue priority)."""
        assert 0 < remaining <= order.remaining and order.live
        level = (self.bids if order.side == BUY else self.asks)[order.price]
        level.quantity -= order.remaining - remaining
        order.remaining = remaining

    def match(
        self,
        side: int,
        limit: int,
        quantity: int,
        account: int,
        fills_max: int,
        levels_max: int,
    ) -> tuple[list[Fill], list[Order] | None, int]:
        """Take up to ``quantity`` at prices no worse than ``limit``.

        Returns ``(fills, self_cancelled, left)``. Stops early after
        ``fills_max`` fills or ``levels_max`` price levels.
        """
        fills: list[Fill] = []
        cancelled: list[Order] | None = None
        orders = self.orders
        if side == BUY:
            keys, levels, sign = self.ask_keys, self.asks, -1
        else:
            keys, levels, sign = self.bid_keys, self.bids, 1
        levels_left = levels_max
        while quantity and keys and levels_left:
            price = sign * keys[-1]
            if (price > limit) if side == BUY else (price < limit):
                break
            levels_left -= 1
            level = levels[price]
            queue = level.queue
            while quantity and queue:
                maker = queue[0]
                if not maker.live:
                    queue.popleft()
                    continue
                if maker.account == account:
                    queue.popleft()
                    maker.live = False
                    del orders[maker.order_id]
                    level.quantity -= maker.remaining
                    level.count -= 1
                    if cancelled is None:
                        cancelled = [maker]
                    else:
                        cancelled.append(maker)
                    continue
                if len(fills) == fills_max:
                    levels_left = 0
                    break
                available = maker.remaining
                if available > quantity:
                    maker.remaining = available - quantity
                    level.quantity -= quantity
                    fills.append((maker, quantity))
                    quantity = 0
                    break
                quantity -= available
                level.quantity -= available
                level.count -= 1
                maker.remaining = 0
                maker.live = False
                del orders[maker.order_id]
                queue.popleft()
                fills.append((maker, available))
            if level.count == 0:
                del levels[price]
                keys.pop()
        return fills, cancelled, quantity

    # --- dry runs (no mutation) -----------------------------------------------------

    def fillable(
        self, side: int, limit: int, quantity: int, account: int, levels_max: int, fills_max: int
    ) -> int:
        """How much of ``quantity`` a taker could fill now, as ``match`` would fill it.

        Own orders would be cancelled (self-trade prevention), not filled; the
        walk stops at the same ``levels_max`` and ``fills_max`` bounds.
        """
        got = fills = 0
        if side == BUY:
            levels = [self.asks[-key] for key in reversed(self.ask_keys[-levels_max:]) if -key <= limit]
        else:
            levels = [self.bids[price] for price in reversed(self.bid_keys[-levels_max:]) if price >= limit]
        for level in levels:
            for maker in level.queue:
                if maker.live and maker.account != account:
                    if fills == fills_max:
                        return got
                    fills += 1
                    got += maker.remaining
                    if got >= quantity:
                        return quantity
        return got

    def plan_take(
        self, side: int, quantity: int, account: int, levels_max: int
    ) -> tuple[list[Fill], int]:
        """Fills a taker would get for ``quantity`` at any price, skipping ``account``'s orders.

        Returns ``(fills, left)``; nothing is changed. Used by combos, which
        bound the price on the whole package rather than on each leg.
        """
        plan: list[Fill] = []
        if side == BUY:
            sources = (self.asks[-key] for key in reversed(self.ask_keys[-levels_max:]))
        else:
            sources = (self.bids[price] for price in reversed(self.bid_keys[-levels_max:]))
        for level in sources:
            for maker in level.queue:
                if maker.live and maker.account != account:
                    take = maker.remaining if maker.remaining < quantity else quantity
                    plan.append((maker, take))
                    quantity -= take
                    if not quantity:
                        return plan, 0
        return plan, quantity

    def take_planned(self, fills: list[Fill]) -> None:
        """Apply fills computed by ``plan_take`` (the book must not have changed since)."""
        for maker, take in fills:
            assert maker.live and take <= maker.remaining
            if take == maker.remaining:
                self.remove(maker.order_id)
                maker.remaining = 0
            else:
                level = (self.bids if maker.side == BUY else self.asks)[maker.price]
                level.quantity -= take
                maker.remaining -= take

    # --- checks ----------------------------------------------------------------------

    def check(self) -> list[str]:
        """Internal consistency: sorted keys, level totals, no crossed book."""
        problems = []
        if self.bid_keys != sorted(self.bids) or len(set(self.bid_keys)) != len(self.bid_keys):
            problems.append("bid keys out of order")
        if self.ask_keys != sorted(-p for p in self.asks):
            problems.append("ask keys out of order")
        best_bid, best_ask = self.best_bid(), self.best_ask()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            problems.append(f"crossed book: bid {best_bid} >= ask {best_ask}")
        seen = 0
        for side, levels in ((BUY, self.bids), (SELL, self.asks)):
            for price, level in levels.items():
                live = [o for o in level.queue if o.live]
                seen += len(live)
                if level.count != len(live) or level.count == 0:
                    problems.append(f"level {price}: count {level.count} != {len(live)}")
                if level.quantity != sum(o.remaining for o in live):
                    problems.append(f"level {price}: quantity mismatch")
                if any(o.price != price or o.side != side or o.remaining <= 0 for o in live):
                    problems.append(f"level {price}: foreign or empty order")
                priorities = [o.priority for o in live]
                if priorities != sorted(priorities):
                    problems.append(f"level {price}: queue not in priority order")
        if seen != len(self.orders):
            problems.append(f"order index holds {len(self.orders)} orders, levels {seen}")
        return problems
