"""INTERIM: the hot events built without their constructors (moved as is from state.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange.commands import OrderType, Side, TimeInForce
from deltasync.exchange.events import CancelReason, OrderAccepted, OrderCancelled, Trade

_V = TypeVar("_V", Price, Quantity, Amount)
_VALUE_CACHE_MAX = 1 << 16


def _value_cache(cls: type[_V]) -> Callable[[int], _V]:
    cache: dict[int, _V] = {}

    def make(raw: int) -> _V:
        value = cache.get(raw)
        if value is None:
            if len(cache) >= _VALUE_CACHE_MAX:
                cache.clear()
            value = cache[raw] = cls(raw)
        return value

    return make


price_of = _value_cache(Price)
quantity_of = _value_cache(Quantity)
amount_of = _value_cache(Amount)


def _slot_setters(cls: type, count: int) -> tuple[Any, ...]:
    names = tuple(field.name for field in dataclasses.fields(cls))
    assert len(names) == count and names == tuple(cls.__dict__["__slots__"]), cls
    assert not hasattr(cls, "__post_init__") and cls.__new__ is object.__new__, cls
    return tuple(getattr(cls, name).__set__ for name in names)


def order_accepted(
    order_id: int, account: int, instrument: str, side: Side, order_type: OrderType,
    price: Price, amount: Quantity, time_in_force: TimeInForce, label: str,
    _setters: tuple[Any, ...] = _slot_setters(OrderAccepted, 9), _new: Any = object.__new__,
) -> OrderAccepted:
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = _setters
    event: OrderAccepted = _new(OrderAccepted)
    s0(event, order_id)
    s1(event, account)
    s2(event, instrument)
    s3(event, side)
    s4(event, order_type)
    s5(event, price)
    s6(event, amount)
    s7(event, time_in_force)
    s8(event, label)
    return event


def order_cancelled(
    order_id: int, account: int, instrument: str, remaining: Quantity, reason: CancelReason,
    _setters: tuple[Any, ...] = _slot_setters(OrderCancelled, 5), _new: Any = object.__new__,
) -> OrderCancelled:
    s0, s1, s2, s3, s4 = _setters
    event: OrderCancelled = _new(OrderCancelled)
    s0(event, order_id)
    s1(event, account)
    s2(event, instrument)
    s3(event, remaining)
    s4(event, reason)
    return event


def trade(
    trade_id: int, instrument: str, price: Price, amount: Quantity, taker_side: Side,
    taker_order_id: int, maker_order_id: int, taker_account: int, maker_account: int,
    taker_fee: Amount, maker_fee: Amount,
    _setters: tuple[Any, ...] = _slot_setters(Trade, 11), _new: Any = object.__new__,
) -> Trade:
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = _setters
    event: Trade = _new(Trade)
    s0(event, trade_id)
    s1(event, instrument)
    s2(event, price)
    s3(event, amount)
    s4(event, taker_side)
    s5(event, taker_order_id)
    s6(event, maker_order_id)
    s7(event, taker_account)
    s8(event, maker_account)
    s9(event, taker_fee)
    s10(event, maker_fee)
    return event
