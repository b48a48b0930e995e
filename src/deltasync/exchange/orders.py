"""Open orders: resting, releasing, cancelling, expiring, and the reduce-only rule.

A resting order sits in its book, in ``Tables.orders`` and in its account's
``orders``; its exposure (open quantity, and for buys the reserve of premium
plus fee cap) is counted on the account's position for that instrument, and
the risk engine's requirement for the position is refreshed. Releasing an
order undoes all of it. Every change marks the order, book and account dirty.

Cancels: ``CancelOrder`` (one order of the account), ``CancelAll`` and
``CancelByLabel`` (the account's orders, optionally on one instrument, in id
order). Good-til-time orders expire at the start of the first block whose
time reaches their ``expire_at_ns``.

Reduce-only: an order, with the account's other open reduce-only orders on the
instrument, must fit in the position and close it, never flip or grow it. It
is checked when an order is placed or edited (``reduces``); after every fill
or other change of the position, resting reduce-only orders that no longer fit
are cancelled, oldest kept first (``enforce_reduce_only``).
"""

from __future__ import annotations

import heapq
from typing import Any

from deltasync.core import limits
from deltasync.exchange.accounts import Account, Position
from deltasync.exchange.book import BUY, SELL, Order, OrderStatus
from deltasync.exchange.commands import CancelAll, CancelByLabel, CancelOrder
from deltasync.exchange.events import (
    CancelReason,
    CancelRejected,
    OrderCancelled,
    OrderExpired,
    RejectReason,
)
from deltasync.exchange.hot_events import order_cancelled
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.ledger import position_of, refresh_requirement, trade_position
from deltasync.exchange.sequencing import Context
from deltasync.exchange.tables import Tables

_GOOD_TIL_TIME = 2  # Order.time_in_force of TimeInForce.GOOD_TIL_TIME


def add_exposure(position: Position, order: Order, instrument: Instrument, quantity: int) -> None:
    """Count ``quantity`` of ``order`` as open on the position (buys: with their reserve)."""
    if order.side == BUY:
        position.open_buy_quantity += quantity
        position.open_buy_reserve += (
            quantity // instrument.contract_size_raw
        ) * instrument.reserve_per_contract(order.price)
    else:
        position.open_sell_quantity += quantity


def remove_exposure(
    order: Order, account: Account, instrument: Instrument, quantity: int
) -> Position:
    """Stop counting ``quantity`` of ``order`` as open; returns the position."""
    position = account.positions[instrument.instrument_id]
    if order.side == BUY:
        position.open_buy_quantity -= quantity
        position.open_buy_reserve -= (
            quantity // instrument.contract_size_raw
        ) * instrument.reserve_per_contract(order.price)
    else:
        position.open_sell_quantity -= quantity
    return position


def rest(state: Tables, order: Order, account: Account, instrument: Instrument) -> None:
    """Put ``order`` on its book and count its exposure."""
    iid = instrument.instrument_id
    state.books[iid].rest(order)
    state.orders[order.order_id] = order
    account.orders[order.order_id] = None
    if order.reduce_only:
        account.reduce_only[iid] = account.reduce_only.get(iid, 0) + 1
    position = account.positions.get(iid)
    if position is None:
        position = account.positions[iid] = Position(iid)
    add_exposure(position, order, instrument, order.remaining)
    requirement = state.risk.position_requirement(instrument, position)
    if requirement != position.requirement:
        account.locked += requirement - position.requirement
        position.requirement = requirement
    if order.time_in_force == _GOOD_TIL_TIME:
        heap = state.good_til_time_heap
        if len(heap) > 2 * len(state.orders) + 1024:
            # Entries of cancelled orders wait for their time; drop them all at once so
            # place-and-cancel far in the future cannot grow the heap without bound.
            heap[:] = [(o.expire_at_ns, o.order_id) for o in state.orders.values()
                       if o.time_in_force == _GOOD_TIL_TIME]
            heapq.heapify(heap)
        heapq.heappush(heap, (order.expire_at_ns, order.order_id))
    state.dirty_orders[order.order_id] = None
    state.dirty_books[iid] = None
    state.dirty_accounts[account.account_id] = None  # open orders changed (see records)


def release(state: Tables, order: Order, final: OrderStatus) -> None:
    """Forget an order already out of its book (cancelled, expired, self-traded)."""
    account = state.accounts[order.account]
    instrument = state.instruments[order.instrument_id]
    position = remove_exposure(order, account, instrument, order.remaining)
    refresh_requirement(state, account, position, instrument)
    forget_open(state, account, order)
    remember_closed(state, order, final)
    if position.is_empty():
        del account.positions[order.instrument_id]
    state.dirty_orders[order.order_id] = None
    state.dirty_books[order.instrument_id] = None
    state.dirty_accounts[order.account] = None


def forget_open(state: Tables, account: Account, order: Order) -> None:
    """Drop an order from the open-order indexes (not from its book)."""
    del account.orders[order.order_id]
    del state.orders[order.order_id]
    if order.reduce_only:
        count = account.reduce_only[order.instrument_id] - 1
        if count:
            account.reduce_only[order.instrument_id] = count
        else:
            del account.reduce_only[order.instrument_id]


def remember_closed(state: Tables, order: Order, final: OrderStatus) -> None:
    """Keep a closed order for queries (bounded, oldest dropped first; not replicated)."""
    closed = state.closed_orders
    closed[order.order_id] = (order, final)
    if len(closed) > limits.closed_orders_cached_max:
        closed.popitem(last=False)


def remove_resting(state: Tables, order: Order, final: OrderStatus) -> None:
    removed = state.books[order.instrument_id].remove(order.order_id)
    assert removed is order
    release(state, order, final)


# --- cancels ---------------------------------------------------------------------------


def cancel_order(state: Tables, order_id: int, reason: CancelReason) -> OrderCancelled:
    """Cancel an open order (for users, expiry, the reduce-only rule and extensions)."""
    order = state.orders[order_id]
    remove_resting(state, order, OrderStatus.CANCELLED)
    return order_cancelled(order_id, order.account, state.instruments[order.instrument_id].name,
                           state.event_values.quantity(order.remaining), reason)


def cancel_instrument_orders(state: Tables, instrument_id: int, reason: CancelReason) -> list[Any]:
    """Cancel every open order on an instrument, in id order (expiry, settlement)."""
    return [
        cancel_order(state, order_id, reason)
        for order_id in sorted(state.books[instrument_id].orders)
    ]


def cancel_account_orders(state: Tables, account_id: int, reason: CancelReason) -> list[Any]:
    """Cancel every open order of an account, in id order (liquidation)."""
    return [
        cancel_order(state, order_id, reason)
        for order_id in sorted(state.accounts[account_id].orders)
    ]


def cancel(state: Tables, command: CancelOrder) -> list[Any]:
    order = state.orders.get(command.order_id)
    if order is None:
        return [CancelRejected(command.account, command.order_id, RejectReason.UNKNOWN_ORDER)]
    if order.account != command.account:
        return [CancelRejected(command.account, command.order_id, RejectReason.NOT_ORDER_OWNER)]
    return [cancel_order(state, command.order_id, CancelReason.USER)]


def account_orders(state: Tables, account_id: int, instrument: str | None) -> list[Order] | None:
    """Open orders of an account in id order, optionally on one instrument (None: unknown)."""
    account = state.accounts.get(account_id)
    if account is None:
        return []
    orders = [state.orders[order_id] for order_id in sorted(account.orders)]
    if instrument is None:
        return orders
    target = state.instrument_by_name.get(instrument)
    if target is None:
        return None
    return [order for order in orders if order.instrument_id == target.instrument_id]


def cancel_all(state: Tables, command: CancelAll) -> list[Any]:
    orders = account_orders(state, command.account, command.instrument)
    if orders is None:
        return [CancelRejected(command.account, 0, RejectReason.UNKNOWN_INSTRUMENT)]
    return [cancel_order(state, order.order_id, CancelReason.USER) for order in orders]


def cancel_by_label(state: Tables, command: CancelByLabel) -> list[Any]:
    orders = account_orders(state, command.account, command.instrument)
    if orders is None:
        return [CancelRejected(command.account, 0, RejectReason.UNKNOWN_INSTRUMENT)]
    return [
        cancel_order(state, order.order_id, CancelReason.USER)
        for order in orders
        if order.label == command.label
    ]


def expire_good_til_time(state: Tables, ctx: Context) -> list[Any]:
    """Expire the good-til-time orders whose time has come (block start)."""
    events: list[Any] = []
    heap = state.good_til_time_heap
    while heap and heap[0][0] <= ctx.time_ns:
        expire_at_ns, order_id = heapq.heappop(heap)
        order = state.orders.get(order_id)
        if order is None or order.expire_at_ns != expire_at_ns:
            continue  # cancelled, filled or re-queued meanwhile
        remove_resting(state, order, OrderStatus.EXPIRED)
        events.append(
            OrderExpired(
                order_id, order.account, state.instruments[order.instrument_id].name,
                state.event_values.quantity(order.remaining),
            )
        )
    return events


# --- reduce-only ---------------------------------------------------------------------


def reduce_only_orders(state: Tables, account: Account, instrument_id: int) -> list[Order]:
    """The account's open reduce-only orders on one instrument, oldest first."""
    if instrument_id not in account.reduce_only:
        return []
    orders = [state.orders[order_id] for order_id in account.orders]
    found = [o for o in orders if o.reduce_only and o.instrument_id == instrument_id]
    return sorted(found, key=lambda o: o.priority)


def reduces(
    state: Tables, account: Account, instrument: Instrument, side: int, amount: int,
    exclude: int = 0,
) -> bool:
    """Whether a reduce-only order of ``amount`` (besides order ``exclude``) fits the position."""
    position = account.positions.get(instrument.instrument_id)
    size = position.size if position is not None else 0
    if (side == BUY and size >= 0) or (side == SELL and size <= 0):
        return False
    pending = sum(
        order.remaining
        for order in reduce_only_orders(state, account, instrument.instrument_id)
        if order.side == side and order.order_id != exclude
    )
    return amount + pending <= abs(size)


def enforce_reduce_only(state: Tables, account: Account, instrument: Instrument) -> list[Any]:
    """After the position changed: cancel resting reduce-only orders that could grow it.

    Oldest first, an order is kept while it is on the closing side and still
    fits in what is left of the position; every other one is cancelled
    (``CancelReason.REDUCE_ONLY``).
    """
    position = account.positions.get(instrument.instrument_id)
    size = position.size if position is not None else 0
    closing_side = SELL if size > 0 else BUY if size < 0 else 0
    room = abs(size)
    events: list[Any] = []
    for order in reduce_only_orders(state, account, instrument.instrument_id):
        if order.side == closing_side and order.remaining <= room:
            room -= order.remaining
        else:
            events.append(cancel_order(state, order.order_id, CancelReason.REDUCE_ONLY))
    return events


def book_position(
    state: Tables, account_id: int, instrument: Instrument, quantity: int, cost: int
) -> list[Any]:
    """Book a signed ``quantity`` bought (+) or sold (-) for ``cost`` paid (+) or received (-)
    outside the book (settlement, a backstop transfer).

    The cash has moved already (``ledger.transfer``); this updates size, open
    cost and realized PnL like a trade, re-runs the risk engine on the position
    and returns the events of resting reduce-only orders that no longer fit.
    """
    account = state.accounts[account_id]
    iid = instrument.instrument_id
    position = position_of(account, iid)
    trade_position(position, account, quantity, cost)
    instrument = state.instruments[iid]  # as listed now (an expired one is inactive)
    refresh_requirement(state, account, position, instrument)
    state.dirty_accounts[account_id] = None
    state.dirty_positions[(account_id, iid)] = None
    return enforce_reduce_only(state, account, instrument)
