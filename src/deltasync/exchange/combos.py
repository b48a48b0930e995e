"""Combos: multi-leg orders that fill every leg in ratio within a net limit, or nothing.

A ``PlaceCombo`` names 2..4 legs on one underlying; buying one combo unit
trades ``ratio`` x the amount of each leg on its side (selling reverses every
leg). The price is the net per unit (buys positive, sells negative) and may be
a credit. Combos never rest: FOK fills whole or not at all, IOC fills the
largest size within the limit.

The plan is made before anything changes: each leg walks its book with
``Book.plan_take`` (skipping the account's own orders, so a combo that does
not fill leaves the books untouched), the risk engine checks the whole
package, and only then are the planned fills taken and settled like trades
(``matching.settle_fills``), their trade ids following the combo's log id.
"""

from __future__ import annotations

from typing import Any

from deltasync.core import limits
from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Quantity
from deltasync.core.ids import log_id
from deltasync.exchange.book import BUY, Fill, book_side
from deltasync.exchange.commands import PlaceCombo, Side, TimeInForce
from deltasync.exchange.events import ComboFilled, ComboRejected, RejectReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.matching import gate, settle_fills
from deltasync.exchange.sequencing import Context
from deltasync.exchange.tables import Tables

Leg = tuple[Instrument, int, int]  # instrument, book side, ratio


def place_combo(state: Tables, command: PlaceCombo, ctx: Context) -> list[Any]:
    def reject(reason: RejectReason) -> list[Any]:
        return [ComboRejected(command.account, reason, command.label)]

    account = state.accounts.get(command.account)
    if account is None:
        return reject(RejectReason.UNKNOWN_ACCOUNT)
    legs = _legs(state, command, ctx)
    if isinstance(legs, RejectReason):
        return reject(legs)
    step = legs[0][0].contract_size_raw
    amount = command.amount.raw
    if amount % step:
        return reject(RejectReason.INVALID_AMOUNT_STEP)
    if amount < max(instrument.min_amount_raw for instrument, _, _ in legs):
        return reject(RejectReason.AMOUNT_BELOW_MINIMUM)
    plan = _plan(state, command, legs, amount // step, step)
    if plan is None:
        return reject(RejectReason.COMBO_WOULD_NOT_FILL)
    units, leg_fills = plan
    changes, cash_delta = _package(state, legs, leg_fills, units * step)
    reason = state.risk.check_combo(state.access, account, changes, cash_delta)
    if reason is not None:
        return reject(reason)
    combo_id = log_id(ctx.height, ctx.position)
    events: list[Any] = []
    sub = 1
    paid = fees_paid = 0
    for (instrument, side, _), fills in zip(legs, leg_fills, strict=True):
        state.books[instrument.instrument_id].take_planned(fills)
        premium, fees = settle_fills(state, instrument, combo_id, account, side, fills, ctx, sub,
                                     events)
        sub += len(fills)
        paid += premium
        fees_paid += fees
    events.insert(0, ComboFilled(combo_id, command.account, command.side,
                                 Quantity(units * step), Amount(paid), Amount(fees_paid),
                                 command.label))
    return events


def _legs(state: Tables, command: PlaceCombo, ctx: Context) -> list[Leg] | RejectReason:
    """The legs as (instrument, book side, ratio) in the combo's direction, or why not."""
    legs: list[Leg] = []
    for leg in command.legs:
        instrument = state.instrument_by_name.get(leg.instrument)
        if instrument is None:
            return RejectReason.UNKNOWN_INSTRUMENT
        reason = gate(state, instrument, command.account, ctx.time_ns)
        if reason is not None:
            return reason
        leg_side = leg.side if command.side is Side.BUY else leg.side.opposite
        legs.append((instrument, book_side(leg_side), leg.ratio))
    if len({instrument.underlying for instrument, _, _ in legs}) != 1:
        return RejectReason.COMBO_INVALID_LEGS
    return legs


def _package(
    state: Tables, legs: list[Leg], leg_fills: list[list[Fill]], quantity: int
) -> tuple[list[tuple[Instrument, int]], int]:
    """What the planned combo changes for the risk check: (instrument, signed quantity) per
    leg, and the money the account pays (negative: receives), fees included."""
    cash_delta = 0
    changes: list[tuple[Instrument, int]] = []
    for (instrument, side, ratio), fills in zip(legs, leg_fills, strict=True):
        premium = sum(
            (q // instrument.contract_size_raw) * instrument.premium_per_contract(m.price)
            for m, q in fills
        )
        reference = state.reference_prices[instrument.underlying]
        fees = sum(
            (q // instrument.contract_size_raw)
            * instrument.fee_per_contract(instrument.taker_fee_ppm, reference, m.price)
            for m, q in fills
        )
        leg_quantity = ratio * quantity
        cash_delta += (-premium if side == BUY else premium) - fees
        changes.append((instrument, leg_quantity if side == BUY else -leg_quantity))
    return changes, cash_delta


def _plan(
    state: Tables, command: PlaceCombo, legs: list[Leg], units_max: int, step: int
) -> tuple[int, list[list[Fill]]] | None:
    """The largest fill (in combo contracts) within the net limit, with its leg fills.

    The net cost of ``n`` combo contracts is convex in ``n`` (each leg walks
    its book from the best price outward), so the average is monotone and
    the fillable sizes form a prefix: FOK tests ``units_max``, IOC binary
    searches it. Nothing is changed here.
    """
    full = _plan_units(state, command, legs, units_max, step)
    if full is not None:
        return units_max, full
    if command.time_in_force is TimeInForce.FILL_OR_KILL:
        return None
    min_units = max(-(-instrument.min_amount_raw // step) for instrument, _, _ in legs)
    low, high, best = min_units, units_max - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = _plan_units(state, command, legs, middle, step)
        if candidate is None:
            high = middle - 1
        else:
            best = (middle, candidate)
            low = middle + 1
    return best


def _plan_units(
    state: Tables, command: PlaceCombo, legs: list[Leg], units: int, step: int
) -> list[list[Fill]] | None:
    """Each leg's fills for ``units`` combo contracts, or None beyond the books or the limit."""
    leg_fills = []
    net_paid = 0  # premium paid along the combo's own direction
    fills_count = 0
    for instrument, side, ratio in legs:
        book = state.books[instrument.instrument_id]
        fills, left = book.plan_take(side, ratio * units * step, command.account,
                                     limits.levels_walked_per_order_max)
        if left:
            return None
        fills_count += len(fills)
        cost = sum(
            (q // instrument.contract_size_raw) * instrument.premium_per_contract(m.price)
            for m, q in fills
        )
        net_paid += cost if side == BUY else -cost
        leg_fills.append(fills)
    if fills_count > limits.fills_per_command_max:
        return None
    bound = command.price.raw * units * step  # x NOTIONAL_DIVISOR, compared exactly
    if command.side is Side.BUY and net_paid * NOTIONAL_DIVISOR > bound:
        return None
    if command.side is not Side.BUY and -net_paid * NOTIONAL_DIVISOR < bound:
        return None
    return leg_fills
