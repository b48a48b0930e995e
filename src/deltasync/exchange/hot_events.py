"""The hot events, built fast: the one place where the exchange skips a constructor.

Every order placed makes an ``OrderAccepted``, every fill a ``Trade``, most
cancels an ``OrderCancelled``: about 1,300 events per block of 1,000 orders.
A frozen dataclass's ``__init__`` stores each field with
``object.__setattr__`` (the price of ``frozen=True``), which for these events
costs about as much as the rest of an order's bookkeeping, and each
fixed-point value (``Price``, ``Quantity``, ``Amount``) validates its range
when built. Built with their constructors and without interning, these events
made ``deltasync bench exchange`` slower in paired runs: the medians of
``apply_orders_per_s`` by about 4 %, of ``apply_orders_per_s_excluding_root``
by about 10 %.

So, here and nowhere else:

- ``order_accepted``, ``order_cancelled`` and ``trade`` allocate the event
  with ``object.__new__`` and store each field through its slot descriptor:
  what the generated ``__init__`` does, minus the frozen guard. That is only
  equivalent for a plain slotted dataclass without ``__post_init__``, which
  ``_slot_setters`` asserts for each class, and each builder is asserted equal
  to the constructor below.
- ``EventValues`` interns the fixed-point values of event fields. It belongs
  to one state (never to the module), its tables are bounded by
  ``limits.event_values_cached_max`` and cleared when full, and the values are
  immutable, so sharing them between events changes nothing.

A compiled build (mypyc) makes dataclass construction cheap but cannot
compile this module: it should replace the three builders with the
constructors and ``EventValues`` with the value types. Nothing else in the
exchange depends on how events are built.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from deltasync.core import limits
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange.commands import OrderType, Side, TimeInForce
from deltasync.exchange.events import CancelReason, OrderAccepted, OrderCancelled, Trade

_V = TypeVar("_V", Price, Quantity, Amount)


def _slot_setters(cls: type, count: int) -> tuple[Any, ...]:
    """The ``__set__`` of each field's slot, in field order (checked to be all there is)."""
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


assert order_accepted(
    1, 2, "x", Side.BUY, OrderType.LIMIT, Price(3), Quantity(4), TimeInForce.GOOD_TIL_CANCELLED, "l"
) == OrderAccepted(
    1, 2, "x", Side.BUY, OrderType.LIMIT, Price(3), Quantity(4), TimeInForce.GOOD_TIL_CANCELLED, "l"
)
assert order_cancelled(1, 2, "x", Quantity(3), CancelReason.USER) == OrderCancelled(
    1, 2, "x", Quantity(3), CancelReason.USER
)
assert trade(1, "x", Price(2), Quantity(3), Side.SELL, 4, 5, 6, 7, Amount(8), Amount(9)) == Trade(
    1, "x", Price(2), Quantity(3), Side.SELL, 4, 5, 6, 7, Amount(8), Amount(9)
)


class EventValues:
    """Interned ``Price``, ``Quantity`` and ``Amount`` values for event fields (one state's)."""

    __slots__ = ("_prices", "_quantities", "_amounts")

    def __init__(self) -> None:
        self._prices: dict[int, Price] = {}
        self._quantities: dict[int, Quantity] = {}
        self._amounts: dict[int, Amount] = {}

    def price(self, raw: int) -> Price:
        value = self._prices.get(raw)
        return value if value is not None else _intern(self._prices, Price, raw)

    def quantity(self, raw: int) -> Quantity:
        value = self._quantities.get(raw)
        return value if value is not None else _intern(self._quantities, Quantity, raw)

    def amount(self, raw: int) -> Amount:
        value = self._amounts.get(raw)
        return value if value is not None else _intern(self._amounts, Amount, raw)


def _intern(table: dict[int, _V], cls: type[_V], raw: int) -> _V:
    if len(table) >= limits.event_values_cached_max:
        table.clear()
    value = table[raw] = cls(raw)
    return value
