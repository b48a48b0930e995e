"""Matching: new orders and edits against the books, and the trades they make.

Order rules in short: limit orders rest (GTC, GTT until ``expire_at_ns`` of
block time) or not (IOC, FOK: FOK fills whole or is cancelled untouched);
market orders are IOC/FOK bounded by a band around the best opposite price
(``limits.market_band_ppm`` or ``market_band_ticks_min`` ticks, whichever is
wider); post-only orders that would cross are rejected; reduce-only orders
must fit the position (``orders.reduces``); self-trade prevention cancels the
resting maker (``book.py``); an edit that only lowers the amount keeps queue
priority, any other edit re-queues (and may trade).

Every pre-trade check runs before anything changes, so a rejected order is one
``OrderRejected`` event and nothing else. The book decides the fills and
returns them as data (``Book.match``); ``settle_fills`` then moves the money
and positions of each fill: the taker pays (or receives) the premium at the
maker's price, both pay their fee to the fee account, and per-contract amounts
are computed once per price level. A taker that reaches
``limits.fills_per_command_max`` fills (trade ids are sub-indexes of its log
id) or ``limits.levels_walked_per_order_max`` levels has its remainder
cancelled with ``CancelReason.FILL_LIMIT`` rather than rest crossed.
"""

from __future__ import annotations

from typing import Any

from deltasync.core import limits
from deltasync.core.fixed import NOTIONAL_DIVISOR, Quantity
from deltasync.core.ids import log_id
from deltasync.exchange.accounts import Account
from deltasync.exchange.book import BUY, SELL, SIDE_OF, Book, Fill, Order, OrderStatus
from deltasync.exchange.commands import EditOrder, PlaceOrder, Side, TimeInForce
from deltasync.exchange.events import (
    CancelReason,
    OrderCancelled,
    OrderEdited,
    OrderRejected,
    RejectReason,
)
from deltasync.exchange.hot_events import order_accepted, order_cancelled, trade
from deltasync.exchange.instruments import PPM, Instrument
from deltasync.exchange.ledger import position_of, refresh_requirement, trade_position
from deltasync.exchange.orders import (
    add_exposure,
    enforce_reduce_only,
    forget_open,
    reduces,
    release,
    remember_closed,
    remove_exposure,
    rest,
)
from deltasync.exchange.sequencing import Context
from deltasync.exchange.tables import Tables

_BUY = Side.BUY
_GTC = TimeInForce.GOOD_TIL_CANCELLED
_GTT = TimeInForce.GOOD_TIL_TIME
_FOK = TimeInForce.FILL_OR_KILL
assert _GTC.value == 1 and _GTT.value == 2  # Order.time_in_force holds the value


def gate(state: Tables, instrument: Instrument, account_id: int, time_ns: int) -> RejectReason | None:
    """May the account trade the instrument now (active, not expired, every order gate)?"""
    if not instrument.active or time_ns >= instrument.expiry_ns:
        return RejectReason.INSTRUMENT_INACTIVE
    for order_gate in state.order_gates:
        reason = order_gate(state.access, instrument, account_id)
        if reason is not None:
            return reason
    return None


# --- new orders ------------------------------------------------------------------------


def place(state: Tables, command: PlaceOrder, ctx: Context) -> list[Any]:
    instrument = state.instrument_by_name.get(command.instrument)
    if instrument is None:
        return [OrderRejected(command.account, command.instrument,
                              RejectReason.UNKNOWN_INSTRUMENT, command.label)]
    reason = _order_checks(state, command, instrument, ctx)
    if type(reason) is RejectReason:
        return [OrderRejected(command.account, command.instrument, reason, command.label)]
    limit: int = reason  # type: ignore[assignment]
    account = state.accounts[command.account]
    side = BUY if command.side is _BUY else SELL  # identity: Enum hashing is slow
    amount = command.amount.raw
    tif = command.time_in_force
    book = state.books[instrument.instrument_id]
    order_id = log_id(ctx.height, ctx.position)
    price = command.price if command.price is not None else state.event_values.price(limit)
    events: list[Any] = [
        order_accepted(order_id, command.account, command.instrument, command.side,
                       command.order_type, price, command.amount, tif, command.label)
    ]
    if tif is _FOK and book.fillable(
        side, limit, amount, command.account, limits.levels_walked_per_order_max,
        limits.fills_per_command_max,
    ) < amount:
        events.append(OrderCancelled(order_id, command.account, command.instrument,
                                     command.amount, CancelReason.UNFILLED))
        return events
    if book.would_cross(side, limit):
        left = take(state, instrument, book, order_id, account, side, limit, amount, ctx, events)
        if not left:
            return events
        rests = (tif is _GTC or tif is _GTT) and not book.would_cross(side, limit)
    else:
        left, rests = amount, tif is _GTC or tif is _GTT
    if rests:
        order = Order(
            order_id, command.account, instrument.instrument_id, side, limit, amount, left,
            order_id, (1 if tif is _GTC else 2), command.expire_at_ns, command.post_only,
            command.reduce_only, command.label, 1,
        )
        rest(state, order, account, instrument)
    else:
        reason_left = (
            CancelReason.UNFILLED if tif is not _GTC and tif is not _GTT
            else CancelReason.FILL_LIMIT
        )
        events.append(order_cancelled(order_id, command.account, command.instrument,
                                      state.event_values.quantity(left), reason_left))
    return events


def _order_checks(
    state: Tables, command: PlaceOrder, instrument: Instrument, ctx: Context
) -> RejectReason | int:
    """Every pre-trade check of a new order; returns the limit price or a reason."""
    account = state.accounts.get(command.account)
    if account is None:
        return RejectReason.UNKNOWN_ACCOUNT
    if not instrument.active or ctx.time_ns >= instrument.expiry_ns or state.order_gates:
        reason = gate(state, instrument, command.account, ctx.time_ns)
        if reason is not None:
            return reason
    amount = command.amount.raw
    if amount % instrument.contract_size_raw:
        return RejectReason.INVALID_AMOUNT_STEP
    if amount < instrument.min_amount_raw:
        return RejectReason.AMOUNT_BELOW_MINIMUM
    side = BUY if command.side is _BUY else SELL  # identity: Enum hashing is slow
    book = state.books[instrument.instrument_id]
    if command.price is None:
        best = book.best_ask() if side == BUY else book.best_bid()
        if best is None:
            return RejectReason.NO_LIQUIDITY
        limit = _band_limit(state, instrument, side, best)
    else:
        limit = command.price.raw
        if limit <= 0:
            return RejectReason.INVALID_PRICE
        if not instrument.is_valid_price(limit):
            return RejectReason.INVALID_PRICE_TICK
        if command.post_only and book.would_cross(side, limit):
            return RejectReason.POST_ONLY_WOULD_CROSS
    tif = command.time_in_force
    if tif is _GTT and command.expire_at_ns <= ctx.time_ns:
        return RejectReason.INVALID_EXPIRY
    if (tif is _GTC or tif is _GTT) and len(account.orders) >= state.open_orders_per_account_max:
        return RejectReason.TOO_MANY_OPEN_ORDERS
    if command.reduce_only and not reduces(state, account, instrument, side, amount):
        return RejectReason.REDUCE_ONLY_WOULD_INCREASE
    reason = state.risk.check_order(state.access, account, instrument, side, limit, amount)
    if reason is not None:
        return reason
    return limit


def _band_limit(state: Tables, instrument: Instrument, side: int, best: int) -> int:
    """A market order's limit: the best opposite price plus the band, on the tick grid."""
    band = best * state.config.limits.market_band_ppm // PPM
    band_min = instrument.tick_for(best) * state.config.limits.market_band_ticks_min
    if band < band_min:
        band = band_min
    if side == BUY:
        return instrument.round_price_down(best + band)
    return instrument.round_price_up(max(best - band, instrument.tick_raw))


# --- taking liquidity ------------------------------------------------------------------


def take(
    state: Tables,
    instrument: Instrument,
    book: Book,
    order_id: int,
    account: Account,
    side: int,
    limit: int,
    amount: int,
    ctx: Context,
    events: list[Any],
) -> int:
    """Match a taker against ``book``; settle fills; return the quantity left."""
    fills, self_cancelled, left = book.match(
        side, limit, amount, account.account_id, limits.fills_per_command_max,
        limits.levels_walked_per_order_max,
    )
    if self_cancelled is not None:
        name = instrument.name
        for maker in self_cancelled:
            release(state, maker, OrderStatus.CANCELLED)
            events.append(order_cancelled(
                maker.order_id, maker.account, name, state.event_values.quantity(maker.remaining),
                CancelReason.SELF_TRADE,
            ))
    if fills:
        settle_fills(state, instrument, order_id, account, side, fills, ctx, 1, events)
    return left


def settle_fills(
    state: Tables,
    instrument: Instrument,
    taker_order_id: int,
    taker: Account,
    side: int,
    fills: list[Fill],
    ctx: Context,
    sub: int,
    events: list[Any],
) -> tuple[int, int]:
    """Move money and positions for ``fills`` (one ``Trade`` each, trade ids from ``sub``);
    returns (premium paid by the taker, the taker's fees)."""
    iid = instrument.instrument_id
    taker_position = position_of(taker, iid)
    reduce_only_checks: list[Account] = []
    premium_total, fees_total, maker_fees_total, volume = _settle_makers(
        state, instrument, taker_order_id, taker.account_id, side, fills, ctx, sub, events,
        reduce_only_checks,
    )
    taker.cash -= premium_total + fees_total
    taker.fees_paid += fees_total
    trade_position(taker_position, taker, volume if side == BUY else -volume, premium_total)
    refresh_requirement(state, taker, taker_position, instrument)
    state.fee_account.cash += fees_total + maker_fees_total
    state.trades_total += len(fills)
    state.volume_total += volume
    state.meta_dirty = True
    dirty_accounts = state.dirty_accounts
    dirty_accounts[taker.account_id] = None
    dirty_accounts[state.fee_account.account_id] = None
    state.dirty_positions[(taker.account_id, iid)] = None
    state.dirty_books[iid] = None
    if taker.reduce_only and iid in taker.reduce_only:
        reduce_only_checks.append(taker)
    checked: set[int] = set()
    for account in reduce_only_checks:  # list order: deterministic
        if account.account_id not in checked:
            checked.add(account.account_id)
            events += enforce_reduce_only(state, account, instrument)
    return premium_total, fees_total


def _settle_makers(
    state: Tables,
    instrument: Instrument,
    taker_order_id: int,
    taker_id: int,
    side: int,
    fills: list[Fill],
    ctx: Context,
    sub: int,
    events: list[Any],
    reduce_only_checks: list[Account],
) -> tuple[int, int, int, int]:
    """The makers' side of ``fills`` and one ``Trade`` each; returns the totals the taker
    settles: (premium paid by the taker, taker fees, maker fees, quantity)."""
    cs = instrument.contract_size_raw
    reference = state.reference_prices[instrument.underlying]
    fee_per_contract = instrument.fee_per_contract
    taker_rate, maker_rate = instrument.taker_fee_ppm, instrument.maker_fee_ppm
    name = instrument.name
    recent = state.recent_trades[instrument.instrument_id]
    taker_side = SIDE_OF[side]
    values = state.event_values
    price_of, quantity_of, amount_of = values.price, values.quantity, values.amount
    trade_id_base = log_id(ctx.height, ctx.position)  # + sub: the command's trade ids
    premium_total = fees_total = maker_fees_total = volume = 0
    last_price = premium_c = taker_fee_c = maker_fee_c = reserve_c = 0
    for maker, quantity in fills:
        price = maker.price
        if price != last_price:  # fills come level by level: per-contract money once per level
            last_price = price
            premium_c = price * cs // NOTIONAL_DIVISOR
            taker_fee_c = fee_per_contract(taker_rate, reference, price)
            maker_fee_c = fee_per_contract(maker_rate, reference, price)
            if side == SELL:
                reserve_c = instrument.reserve_per_contract(price)
        contracts = quantity // cs
        premium = contracts * premium_c
        taker_fee = contracts * taker_fee_c
        maker_fee = contracts * maker_fee_c
        _settle_maker(state, instrument, maker, side, quantity, premium, maker_fee,
                      contracts * reserve_c, reduce_only_checks)
        premium_total += premium if side == BUY else -premium
        fees_total += taker_fee
        maker_fees_total += maker_fee
        volume += quantity
        event = trade(
            trade_id_base + sub, name, price_of(price), quantity_of(quantity), taker_side,
            taker_order_id, maker.order_id, taker_id, maker.account, amount_of(taker_fee),
            amount_of(maker_fee),
        )
        sub += 1
        events.append(event)
        recent.append(event)
    return premium_total, fees_total, maker_fees_total, volume


def _settle_maker(
    state: Tables,
    instrument: Instrument,
    maker: Order,
    side: int,
    quantity: int,
    premium: int,
    fee: int,
    reserve: int,
    reduce_only_checks: list[Account],
) -> None:
    """One fill for its maker: open exposure, cash, position, collateral, the order record.
    ``side`` is the taker's; ``reserve`` the buy reserve the fill releases (maker buys)."""
    iid = instrument.instrument_id
    maker_id = maker.account
    account = state.accounts[maker_id]
    position = account.positions[iid]
    if side == BUY:  # the maker sold
        position.open_sell_quantity -= quantity
        account.cash += premium - fee
        trade_position(position, account, -quantity, -premium)
    else:
        position.open_buy_quantity -= quantity
        position.open_buy_reserve -= reserve
        account.cash -= premium + fee
        trade_position(position, account, quantity, premium)
    account.fees_paid += fee
    refresh_requirement(state, account, position, instrument)
    if maker.remaining == 0:
        forget_open(state, account, maker)
        remember_closed(state, maker, OrderStatus.FILLED)
    if account.reduce_only and iid in account.reduce_only:
        reduce_only_checks.append(account)
    state.dirty_orders[maker.order_id] = None
    state.dirty_accounts[maker_id] = None
    state.dirty_positions[(maker_id, iid)] = None


# --- edits -----------------------------------------------------------------------------


def edit(state: Tables, command: EditOrder, ctx: Context) -> list[Any]:
    """Change a resting order's price and amount: in place when only the amount goes down,
    otherwise out of the queue and in again (taking liquidity if it now crosses)."""
    order = state.orders.get(command.order_id)
    if order is None:
        return [OrderRejected(command.account, "", RejectReason.UNKNOWN_ORDER, "",
                              command.order_id)]
    instrument = state.instruments[order.instrument_id]
    remaining = command.amount.raw - (order.amount - order.remaining)  # what may still fill
    reason = _edit_checks(state, command, order, instrument, remaining, ctx)
    if reason is None:
        if command.price.raw == order.price and remaining <= order.remaining:
            return _edit_in_place(state, command, order, instrument, remaining)
        reason = _release_for_requeue(state, command, order, instrument, remaining)
        if reason is None:
            return _requeue(state, command, order, instrument, remaining, ctx)
    return [OrderRejected(command.account, instrument.name, reason, order.label,
                          command.order_id)]


def _edit_checks(
    state: Tables, command: EditOrder, order: Order, instrument: Instrument, remaining: int,
    ctx: Context,
) -> RejectReason | None:
    """The checks every edit passes, in place or re-queued."""
    if order.account != command.account:
        return RejectReason.NOT_ORDER_OWNER
    reason = gate(state, instrument, command.account, ctx.time_ns)
    if reason is not None:
        return reason
    amount = command.amount.raw
    if not instrument.is_valid_price(command.price.raw):
        return RejectReason.INVALID_PRICE_TICK
    if amount % instrument.contract_size_raw:
        return RejectReason.INVALID_AMOUNT_STEP
    if amount < instrument.min_amount_raw:
        return RejectReason.AMOUNT_BELOW_MINIMUM
    if remaining <= 0:  # below what has filled already
        return RejectReason.INVALID_AMOUNT
    return None


def _edit_in_place(
    state: Tables, command: EditOrder, order: Order, instrument: Instrument, remaining: int
) -> list[Any]:
    """Same price, no more than is left: the order keeps its place in the queue."""
    if remaining < order.remaining:
        account = state.accounts[order.account]
        position = remove_exposure(order, account, instrument, order.remaining - remaining)
        state.books[order.instrument_id].reduce(order, remaining)
        order.amount = command.amount.raw
        refresh_requirement(state, account, position, instrument)
        state.dirty_orders[order.order_id] = None
        state.dirty_books[instrument.instrument_id] = None
        state.dirty_accounts[account.account_id] = None
    return [OrderEdited(order.order_id, order.account, instrument.name, command.price,
                        command.amount, Quantity(remaining), True)]


def _release_for_requeue(
    state: Tables, command: EditOrder, order: Order, instrument: Instrument, remaining: int
) -> RejectReason | None:
    """Check the edited order as a new one, with the old one's exposure released; on
    refusal the exposure is restored, on acceptance it stays released for ``_requeue``."""
    account = state.accounts[order.account]
    price = command.price.raw
    if (command.post_only or order.post_only) and state.books[order.instrument_id].would_cross(
        order.side, price
    ):
        return RejectReason.POST_ONLY_WOULD_CROSS
    if order.reduce_only and not reduces(
        state, account, instrument, order.side, remaining, exclude=order.order_id
    ):
        return RejectReason.REDUCE_ONLY_WOULD_INCREASE
    position = remove_exposure(order, account, instrument, order.remaining)
    refresh_requirement(state, account, position, instrument)
    reason = state.risk.check_order(state.access, account, instrument, order.side, price,
                                    remaining)
    if reason is not None:
        add_exposure(position, order, instrument, order.remaining)
        refresh_requirement(state, account, position, instrument)
    return reason


def _requeue(
    state: Tables, command: EditOrder, order: Order, instrument: Instrument, remaining: int,
    ctx: Context,
) -> list[Any]:
    """Take the order out of its queue, match it at the new price, rest what is left."""
    price, amount = command.price.raw, command.amount.raw
    account = state.accounts[order.account]
    book = state.books[order.instrument_id]
    book.remove(order.order_id)
    forget_open(state, account, order)
    state.dirty_orders[order.order_id] = None
    state.dirty_books[instrument.instrument_id] = None
    state.dirty_accounts[account.account_id] = None
    name = instrument.name
    events: list[Any] = [OrderEdited(order.order_id, order.account, name, command.price,
                                     command.amount, Quantity(remaining), False)]
    left = take(state, instrument, book, order.order_id, account, order.side, price, remaining,
                ctx, events)
    order.price, order.amount, order.remaining = price, amount, left
    if left == 0:
        remember_closed(state, order, OrderStatus.FILLED)
    elif book.would_cross(order.side, price):
        remember_closed(state, order, OrderStatus.CANCELLED)
        events.append(OrderCancelled(order.order_id, order.account, name, Quantity(left),
                                     CancelReason.FILL_LIMIT))
    else:
        # A fresh record: the old one may still sit, dead, in a level's queue.
        requeued = Order(
            order.order_id, order.account, order.instrument_id, order.side, price, amount,
            left, log_id(ctx.height, ctx.position), order.time_in_force, order.expire_at_ns,
            order.post_only or command.post_only, order.reduce_only, order.label,
            order.order_type,
        )
        rest(state, requeued, account, instrument)
    return events
