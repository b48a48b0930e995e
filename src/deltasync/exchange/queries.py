"""Queries: every read-only question other layers ask the exchange, answered as summaries.

A summary is a frozen copy of the engine's records at the time of the query,
in fixed-point types; holding one never aliases the mutable records. The API
(the venue) turns them into its own views; nothing here is an API shape.

Queries read the tables only. The order query also finds recently closed
orders that had rested (a bounded cache, ``limits.closed_orders_cached_max``,
not replicated).
"""

from __future__ import annotations

from dataclasses import dataclass

from deltasync.core import limits
from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Price, Quantity
from deltasync.exchange.book import BUY, SELL, SIDE_OF, Order, OrderStatus
from deltasync.exchange.commands import OrderType, Side, TimeInForce
from deltasync.exchange.events import Trade
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.orders import account_orders
from deltasync.exchange.tables import Tables

_TIME_IN_FORCE = {tif.value: tif for tif in TimeInForce}
_ORDER_TYPE = {kind.value: kind for kind in OrderType}


@dataclass(frozen=True, slots=True)
class OrderSummary:
    order_id: int
    account: int
    instrument: str
    side: Side
    order_type: OrderType
    price: Price
    amount: Quantity
    remaining: Quantity
    filled: Quantity
    time_in_force: TimeInForce
    expire_at_ns: int
    post_only: bool
    reduce_only: bool
    label: str
    status: OrderStatus


@dataclass(frozen=True, slots=True)
class PositionSummary:
    instrument: str
    size: Quantity  # signed, positive long
    average_price: Price  # of the open size (0 when flat)
    open_cost: Amount  # premium paid for the open size (negative: received)
    realized_pnl: Amount
    open_buy: Quantity
    open_sell: Quantity
    requirement: Amount  # collateral locked for this instrument


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account: int
    cash: Amount
    locked: Amount
    available: Amount
    deposited: Amount
    withdrawn: Amount
    fees_paid: Amount
    realized_pnl: Amount
    open_orders: int
    positions: int


@dataclass(frozen=True, slots=True)
class DepthLevel:
    price: Price
    amount: Quantity
    orders: int


@dataclass(frozen=True, slots=True)
class BookDepth:
    instrument: str
    bids: tuple[DepthLevel, ...]  # best first
    asks: tuple[DepthLevel, ...]  # best first


def instrument(state: Tables, name: str) -> Instrument | None:
    return state.instrument_by_name.get(name)


def list_instruments(
    state: Tables, underlying: str | None = None, active_only: bool = True
) -> list[Instrument]:
    """Instruments in id order, optionally of one underlying; active ones only by default."""
    return [
        listed
        for iid, listed in sorted(state.instruments.items())
        if (underlying is None or listed.underlying == underlying)
        and (listed.active or not active_only)
    ]


def book_depth(state: Tables, name: str, depth: int = 10) -> BookDepth | None:
    """The best ``depth`` levels of each side (at most ``limits.book_depth_levels_max``)."""
    found = state.instrument_by_name.get(name)
    if found is None:
        return None
    book = state.books[found.instrument_id]
    depth = max(0, min(depth, limits.book_depth_levels_max))

    def levels(side: int) -> tuple[DepthLevel, ...]:
        return tuple(
            DepthLevel(Price(price), Quantity(quantity), count)
            for price, quantity, count in book.depth(side, depth)
        )

    return BookDepth(name, levels(BUY), levels(SELL))


def _order_summary(state: Tables, order: Order, status: OrderStatus) -> OrderSummary:
    return OrderSummary(
        order_id=order.order_id,
        account=order.account,
        instrument=state.instruments[order.instrument_id].name,
        side=SIDE_OF[order.side],
        order_type=_ORDER_TYPE[order.order_type],
        price=Price(order.price),
        amount=Quantity(order.amount),
        remaining=Quantity(order.remaining if status is OrderStatus.OPEN else 0),
        filled=Quantity(order.amount - order.remaining),
        time_in_force=_TIME_IN_FORCE[order.time_in_force],
        expire_at_ns=order.expire_at_ns,
        post_only=order.post_only,
        reduce_only=order.reduce_only,
        label=order.label,
        status=status,
    )


def order(state: Tables, order_id: int) -> OrderSummary | None:
    """An open order, or a recently closed one that had rested (query cache)."""
    found = state.orders.get(order_id)
    if found is not None:
        return _order_summary(state, found, OrderStatus.OPEN)
    closed = state.closed_orders.get(order_id)
    if closed is None:
        return None
    return _order_summary(state, *closed)


def open_orders(
    state: Tables, account_id: int, instrument_name: str | None = None
) -> list[OrderSummary]:
    """The account's open orders in id order, optionally on one instrument."""
    orders = account_orders(state, account_id, instrument_name) or []
    return [_order_summary(state, found, OrderStatus.OPEN) for found in orders]


def positions(state: Tables, account_id: int) -> list[PositionSummary]:
    """The account's positions with size, cost or open orders, in instrument id order."""
    account = state.accounts.get(account_id)
    if account is None:
        return []
    out = []
    for iid in sorted(account.positions):
        position = account.positions[iid]
        if position.is_empty():
            continue
        average = (
            abs(position.open_cost) * NOTIONAL_DIVISOR // abs(position.size)
            if position.size
            else 0
        )
        out.append(
            PositionSummary(
                instrument=state.instruments[iid].name,
                size=Quantity(position.size),
                average_price=Price(average),
                open_cost=Amount(position.open_cost),
                realized_pnl=Amount(position.realized_pnl),
                open_buy=Quantity(position.open_buy_quantity),
                open_sell=Quantity(position.open_sell_quantity),
                requirement=Amount(position.requirement),
            )
        )
    return out


def account_summary(state: Tables, account_id: int) -> AccountSummary | None:
    account = state.accounts.get(account_id)
    if account is None:
        return None
    return AccountSummary(
        account=account_id,
        cash=Amount(account.cash),
        locked=Amount(account.locked),
        available=Amount(account.cash - account.locked),
        deposited=Amount(account.deposited),
        withdrawn=Amount(account.withdrawn),
        fees_paid=Amount(account.fees_paid),
        realized_pnl=Amount(account.realized_pnl),
        open_orders=len(account.orders),
        positions=sum(1 for p in account.positions.values() if not p.is_empty()),
    )


def recent_trades(state: Tables, name: str, count: int = 20) -> list[Trade]:
    """The last ``count`` trades of an instrument, newest last."""
    found = state.instrument_by_name.get(name)
    if found is None:
        return []
    trades = state.recent_trades[found.instrument_id]
    count = max(0, min(count, len(trades)))
    return list(trades)[len(trades) - count:]
