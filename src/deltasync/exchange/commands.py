"""Commands: the only inputs of the exchange state machine.

Every command is a frozen slotted dataclass registered in ``COMMANDS`` with a
stable tag; it travels as ``[tag, field, ...]`` in the canonical codec.
Construction validates shape (sizes, counts, ranges) and raises
``CommandError``; decoding a malformed command therefore fails in the codec,
before it can reach the log. Business checks (funds, ticks, instrument state)
happen in the state machine and end as rejection events.

Tag map (stable, never reuse a tag):

====== ==========================================================
1-9    funding: 1 Deposit, 2 Withdraw
10-19  orders: 10 PlaceOrder, 11 CancelOrder, 12 CancelByLabel,
       13 CancelAll, 14 EditOrder
20-29  combos: 20 PlaceCombo, 21 ComboLeg (nested)
30-39  instruments: 30 ListInstruments
100-199 reserved: oracle and price commands (oracle owner)
200-299 reserved: margin, liquidation, settlement (margin owner)
====== ==========================================================

Account ids are integers authenticated by the gateway before a command is
sequenced; the state machine trusts the ``account`` field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.core import limits
from deltasync.core.codec import Registry
from deltasync.core.errors import RemoteError
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.core.ids import OptionKind

COMMANDS = Registry("exchange.commands")


class CommandError(RemoteError):
    """A command is malformed (fields: command, field, reason)."""


class Side(Enum):
    BUY = 1
    SELL = 2

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(Enum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(Enum):
    GOOD_TIL_CANCELLED = 1
    GOOD_TIL_TIME = 2  # until expire_at_ns in block time
    IMMEDIATE_OR_CANCEL = 3
    FILL_OR_KILL = 4


def _require(ok: bool, command: str, field_name: str, reason: str) -> None:
    if not ok:
        raise CommandError(command=command, field=field_name, reason=reason)


def _check_account(account: int, command: str) -> None:
    _require(
        type(account) is int and 0 <= account < limits.accounts_max,
        command, "account", f"an integer in 0..{limits.accounts_max - 1}",
    )


def _check_amount(raw: int, command: str, field_name: str = "amount") -> None:
    _require(
        0 < raw <= limits.order_amount_raw_max,
        command, field_name, f"positive and at most {limits.order_amount_raw_max} raw",
    )


def _check_label(label: str, command: str) -> None:
    _require(
        isinstance(label, str) and len(label.encode()) <= limits.labels_bytes_max,
        command, "label", f"at most {limits.labels_bytes_max} UTF-8 bytes",
    )


def _check_instrument(instrument: str, command: str) -> None:
    _require(
        isinstance(instrument, str) and 0 < len(instrument) <= limits.instrument_name_chars_max,
        command, "instrument",
        f"an instrument name of 1..{limits.instrument_name_chars_max} characters",
    )


@COMMANDS.register(1)
@dataclass(frozen=True, slots=True)
class Deposit:
    account: int
    amount: Amount

    def __post_init__(self) -> None:
        _check_account(self.account, "Deposit")
        _require(
            0 < self.amount.raw <= limits.deposits_total_raw_max,
            "Deposit", "amount", f"positive and at most {limits.deposits_total_raw_max} raw",
        )


@COMMANDS.register(2)
@dataclass(frozen=True, slots=True)
class Withdraw:
    account: int
    amount: Amount

    def __post_init__(self) -> None:
        _check_account(self.account, "Withdraw")
        _require(self.amount.raw > 0, "Withdraw", "amount", "must be positive")


@COMMANDS.register(10)
@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A new order. ``price`` is required for limit orders and must be None for market ones."""

    account: int
    instrument: str
    side: Side
    amount: Quantity
    price: Price | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GOOD_TIL_CANCELLED
    expire_at_ns: int = 0  # GOOD_TIL_TIME only
    post_only: bool = False
    reduce_only: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        name = "PlaceOrder"
        _check_account(self.account, name)
        _check_instrument(self.instrument, name)
        _check_label(self.label, name)
        _check_amount(self.amount.raw, name)
        if self.order_type is OrderType.LIMIT:
            _require(self.price is not None, name, "price", "required for limit orders")
        else:
            _require(self.price is None, name, "price", "market orders carry no price")
            _require(not self.post_only, name, "post_only", "a market order always takes")
            _require(
                self.time_in_force
                in (TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL),
                name, "time_in_force", "market orders are immediate-or-cancel or fill-or-kill",
            )
        if self.time_in_force is TimeInForce.GOOD_TIL_TIME:
            _require(self.expire_at_ns > 0, name, "expire_at_ns", "required for good-til-time")
        else:
            _require(self.expire_at_ns == 0, name, "expire_at_ns", "only for good-til-time")
        if self.post_only:
            _require(
                self.time_in_force
                in (TimeInForce.GOOD_TIL_CANCELLED, TimeInForce.GOOD_TIL_TIME),
                name, "post_only", "post-only orders must be able to rest",
            )


@COMMANDS.register(11)
@dataclass(frozen=True, slots=True)
class CancelOrder:
    account: int
    order_id: int

    def __post_init__(self) -> None:
        _check_account(self.account, "CancelOrder")
        _require(type(self.order_id) is int and self.order_id >= 0, "CancelOrder", "order_id", ">= 0")


@COMMANDS.register(12)
@dataclass(frozen=True, slots=True)
class CancelByLabel:
    account: int
    label: str
    instrument: str | None = None

    def __post_init__(self) -> None:
        _check_account(self.account, "CancelByLabel")
        _check_label(self.label, "CancelByLabel")
        if self.instrument is not None:
            _check_instrument(self.instrument, "CancelByLabel")


@COMMANDS.register(13)
@dataclass(frozen=True, slots=True)
class CancelAll:
    account: int
    instrument: str | None = None

    def __post_init__(self) -> None:
        _check_account(self.account, "CancelAll")
        if self.instrument is not None:
            _check_instrument(self.instrument, "CancelAll")


@COMMANDS.register(14)
@dataclass(frozen=True, slots=True)
class EditOrder:
    """Change a resting order's price and total amount (filled part included, as Deribit).

    Decreasing the amount at the same price keeps queue priority; a price
    change or an increase loses it and the order may then take liquidity
    (unless ``post_only``, which rejects the edit if it would cross).
    """

    account: int
    order_id: int
    price: Price
    amount: Quantity
    post_only: bool = False

    def __post_init__(self) -> None:
        _check_account(self.account, "EditOrder")
        _check_amount(self.amount.raw, "EditOrder")
        _require(self.price.raw > 0, "EditOrder", "price", "must be positive")


@COMMANDS.register(21)
@dataclass(frozen=True, slots=True)
class ComboLeg:
    """One leg: buying one combo unit trades ``ratio`` x amount of ``instrument`` on ``side``."""

    instrument: str
    side: Side
    ratio: int

    def __post_init__(self) -> None:
        _check_instrument(self.instrument, "ComboLeg")
        _require(
            type(self.ratio) is int and 1 <= self.ratio <= limits.combo_ratio_max,
            "ComboLeg", "ratio", f"1..{limits.combo_ratio_max}",
        )


@COMMANDS.register(20)
@dataclass(frozen=True, slots=True)
class PlaceCombo:
    """A multi-leg order that fills every leg in ratio within a net limit, or nothing.

    ``price`` is the net price per combo unit (sum of leg prices x ratio, buys
    positive, sells negative); it may be negative (a credit). Selling the
    combo reverses every leg. Only IOC and FOK: a combo never rests.
    """

    account: int
    legs: tuple[ComboLeg, ...]
    side: Side
    amount: Quantity
    price: Price
    time_in_force: TimeInForce = TimeInForce.FILL_OR_KILL
    label: str = ""

    def __post_init__(self) -> None:
        name = "PlaceCombo"
        _check_account(self.account, name)
        _check_label(self.label, name)
        _require(
            isinstance(self.legs, tuple)
            and limits.combo_legs_min <= len(self.legs) <= limits.combo_legs_max,
            name, "legs", f"{limits.combo_legs_min}..{limits.combo_legs_max} legs",
        )
        _require(
            len({leg.instrument for leg in self.legs}) == len(self.legs),
            name, "legs", "each instrument at most once",
        )
        _check_amount(self.amount.raw * max(leg.ratio for leg in self.legs), name)
        _require(
            self.time_in_force in (TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL),
            name, "time_in_force", "combos are immediate-or-cancel or fill-or-kill",
        )


@COMMANDS.register(30)
@dataclass(frozen=True, slots=True)
class ListInstruments:
    """List a strike grid for one expiry (admin account only)."""

    account: int
    underlying: str
    expiry: str  # 27DEC26
    strikes: tuple[Price, ...]
    kinds: tuple[OptionKind, ...] = (OptionKind.CALL, OptionKind.PUT)

    def __post_init__(self) -> None:
        name = "ListInstruments"
        _check_account(self.account, name)
        _require(
            isinstance(self.strikes, tuple)
            and 1 <= len(self.strikes) <= limits.strikes_per_listing_max,
            name, "strikes", f"1..{limits.strikes_per_listing_max} strikes",
        )
        _require(all(s.raw > 0 for s in self.strikes), name, "strikes", "must be positive")
        _require(len(set(self.strikes)) == len(self.strikes), name, "strikes", "no duplicates")
        _require(
            isinstance(self.kinds, tuple) and 1 <= len(self.kinds) <= 2
            and len(set(self.kinds)) == len(self.kinds),
            name, "kinds", "C, P or both",
        )


Command = (
    Deposit | Withdraw | PlaceOrder | CancelOrder | CancelByLabel | CancelAll | EditOrder
    | PlaceCombo | ListInstruments
)
