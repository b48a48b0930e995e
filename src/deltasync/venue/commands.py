"""Validated request fields become the exchange's commands, once, here.

The API parses and validates a request's params; these functions build the
one exchange command (``exchange.commands``, ``exchange.oracle.OracleReport``)
that travels through the log. A field the command's own validation refuses is
an ``InvalidRequest`` with the command's structured fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from deltasync.core.errors import DeltasyncError
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.core.timeutil import NS_PER_DAY
from deltasync.exchange import commands as xc
from deltasync.exchange.oracle import OracleReport
from deltasync.exchange.svi import SviSlice
from deltasync.venue.errors import InvalidRequest
from deltasync.venue.views import ComboLeg, OrderType, Side, TimeInForce

T = TypeVar("T")


def _built(build: Callable[[], T]) -> T:
    try:
        return build()
    except DeltasyncError as exc:
        raise InvalidRequest(**{key: str(value) for key, value in exc.fields.items()}) from None


def place_order(
    account_id: int, *, instrument_name: str, side: Side, amount_raw: int,
    order_type: OrderType, price_raw: int | None, time_in_force: TimeInForce,
    valid_until_ms: int | None, post_only: bool, reduce_only: bool, label: str,
    block_time_ns: int,
) -> xc.PlaceOrder:
    """``GOOD_TIL_TIME`` without ``valid_until_ms`` lasts to the end of the UTC day
    of ``block_time_ns`` (the last block's time)."""
    expire_at_ns = 0
    if valid_until_ms is not None:
        time_in_force = TimeInForce.GOOD_TIL_TIME
        expire_at_ns = valid_until_ms * 1_000_000
    elif time_in_force is TimeInForce.GOOD_TIL_TIME:
        expire_at_ns = (block_time_ns // NS_PER_DAY + 1) * NS_PER_DAY
    market = order_type is OrderType.MARKET
    return _built(lambda: xc.PlaceOrder(
        account=account_id, instrument=instrument_name, side=side, amount=Quantity(amount_raw),
        price=None if market or price_raw is None else Price(price_raw),
        order_type=order_type, time_in_force=time_in_force, expire_at_ns=expire_at_ns,
        post_only=post_only, reduce_only=reduce_only, label=label,
    ))


def place_combo(
    account_id: int, *, legs: tuple[ComboLeg, ...], side: Side, amount_raw: int,
    price_raw: int, time_in_force: TimeInForce, label: str,
) -> xc.PlaceCombo:
    return _built(lambda: xc.PlaceCombo(
        account=account_id,
        legs=tuple(xc.ComboLeg(leg.instrument_name, Side.BUY if leg.ratio > 0 else Side.SELL,
                               abs(leg.ratio)) for leg in legs),
        side=side, amount=Quantity(amount_raw), price=Price(price_raw),
        time_in_force=time_in_force, label=label,
    ))


def edit_order(account_id: int, *, order_id: int, amount_raw: int, price_raw: int,
               post_only: bool) -> xc.EditOrder:
    return _built(lambda: xc.EditOrder(account=account_id, order_id=order_id,
                                       price=Price(price_raw), amount=Quantity(amount_raw),
                                       post_only=post_only))


def cancel_order(account_id: int, order_id: int) -> xc.CancelOrder:
    return _built(lambda: xc.CancelOrder(account=account_id, order_id=order_id))


def cancel_all(account_id: int, instrument_name: str | None) -> xc.CancelAll:
    return _built(lambda: xc.CancelAll(account=account_id, instrument=instrument_name))


def cancel_by_label(account_id: int, label: str, instrument_name: str | None) -> xc.CancelByLabel:
    return _built(lambda: xc.CancelByLabel(account=account_id, label=label,
                                           instrument=instrument_name))


def deposit(account_id: int, amount_raw: int) -> xc.Deposit:
    try:
        return xc.Deposit(account_id, Amount(amount_raw))
    except DeltasyncError as exc:
        raise InvalidRequest(reason=str(exc)) from None


def oracle_report(
    *, source_id: str, underlying: str, price_raw: int, ts_ns: int,
    vol_surface: tuple[tuple[int, int, int, int, int, int], ...] | None, signature: bytes,
) -> OracleReport:
    try:
        slices = None
        if vol_surface is not None:
            slices = tuple(SviSlice(*item) for item in vol_surface)
        return OracleReport(source_id, underlying, Price(price_raw), ts_ns, slices, signature)
    except (ValueError, TypeError, DeltasyncError) as exc:
        raise InvalidRequest(param="report", reason=str(exc)[:200]) from None


def account_of(command: Any) -> int | None:
    """The account a command acts for (extension commands may have none)."""
    account = getattr(command, "account", None)
    return account if type(account) is int else None
