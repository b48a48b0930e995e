"""Events: what the state machine reports for each command, identically on every replica.

Frozen slotted dataclasses registered in ``EVENTS`` with stable tags. Business
rejections are events carrying a ``RejectReason`` (stable integer codes; add
new codes at the end, never renumber). Amounts and prices are raw-unit
fixed-point values; ids come from the log position.

Tag map (stable, never reuse a tag):

====== ==========================================================
1-9    funding: 1 Deposited, 2 Withdrawn, 3 WithdrawRejected, 4 DepositRejected
10-19  orders: 10 OrderAccepted, 11 OrderRejected, 12 Trade,
       13 OrderCancelled, 14 OrderEdited, 15 OrderExpired,
       16 CancelRejected
20-29  combos: 20 ComboFilled, 21 ComboRejected
30-39  instruments: 30 InstrumentListed, 31 InstrumentExpired,
       32 ListingRejected
100-199 reserved: oracle and price events (oracle owner)
200-299 reserved: margin, liquidation, settlement (margin owner)
====== ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.core.codec import Registry
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange.commands import OrderType, Side, TimeInForce

EVENTS = Registry("exchange.events")


class RejectReason(Enum):
    """Why a command changed nothing, for every command of the exchange and its extensions.

    Codes are stable (API and logs depend on them): add new ones at the end, never
    renumber. ``code`` is the lower-case name, the spelling the API matches on.
    """

    INSUFFICIENT_FUNDS = 1
    POST_ONLY_WOULD_CROSS = 2
    REDUCE_ONLY_WOULD_INCREASE = 3
    UNKNOWN_INSTRUMENT = 4
    TOO_MANY_OPEN_ORDERS = 5
    INVALID_PRICE_TICK = 6
    AMOUNT_BELOW_MINIMUM = 7
    INVALID_AMOUNT_STEP = 8  # not a whole number of contracts
    INSTRUMENT_INACTIVE = 9  # expired or delisted
    INVALID_EXPIRY = 10  # good-til-time already past
    NO_LIQUIDITY = 11  # market order into an empty side
    UNKNOWN_ORDER = 12
    NOT_ORDER_OWNER = 13
    COMBO_INVALID_LEGS = 14
    COMBO_WOULD_NOT_FILL = 15
    NOT_AUTHORIZED = 16
    INSTRUMENT_EXISTS = 17
    TOO_MANY_INSTRUMENTS = 18
    INVALID_AMOUNT = 19  # e.g. an edit below the filled amount
    UNKNOWN_UNDERLYING = 20
    UNKNOWN_ACCOUNT = 21
    INVALID_PRICE = 22
    TRADING_HALTED = 23  # the oracle's circuit breaker holds the underlying (cancel-only)
    INSUFFICIENT_MARGIN = 24  # the margin engine's pre-trade check
    DEPOSIT_LIMIT = 25  # the venue would hold more than limits.deposits_total_raw_max
    # The oracle's report checks (``OracleReportRejected``, in the order they run). These
    # travel by name, as they did when the oracle kept an enum of its own, so answers and
    # snapshots recorded before the merge decode unchanged.
    UNKNOWN_SOURCE = "unknown_source"
    SOURCE_NOT_ALLOWED_FOR_UNDERLYING = "source_not_allowed_for_underlying"
    BAD_SIGNATURE = "bad_signature"
    NON_POSITIVE_PRICE = "non_positive_price"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    NOT_NEWER = "not_newer"
    INVALID_VOL_SURFACE = "invalid_vol_surface"

    @property
    def code(self) -> str:
        return self.name.lower()


class CancelReason(Enum):
    """Why an order left the book without filling (stable codes)."""

    USER = 1  # CancelOrder, CancelByLabel, CancelAll
    UNFILLED = 2  # IOC remainder, FOK that could not fill whole, market remainder
    SELF_TRADE = 3  # resting maker of the same account met by its taker
    INSTRUMENT_EXPIRED = 4
    FILL_LIMIT = 5  # the taker reached fills_per_command_max
    RISK = 6  # reserved: cancelled by margin / liquidation
    SETTLEMENT = 7  # reserved: cancelled by settlement
    REDUCE_ONLY = 8  # a resting reduce-only order no longer fits the position


@EVENTS.register(1)
@dataclass(frozen=True, slots=True)
class Deposited:
    account: int
    amount: Amount
    balance: Amount


@EVENTS.register(2)
@dataclass(frozen=True, slots=True)
class Withdrawn:
    account: int
    amount: Amount
    balance: Amount


@EVENTS.register(3)
@dataclass(frozen=True, slots=True)
class WithdrawRejected:
    account: int
    amount: Amount
    reason: RejectReason


@EVENTS.register(4)
@dataclass(frozen=True, slots=True)
class DepositRejected:
    account: int
    amount: Amount
    reason: RejectReason


@EVENTS.register(10)
@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """``price`` is the limit (for market orders: the band limit it may fill up to)."""

    order_id: int
    account: int
    instrument: str
    side: Side
    order_type: OrderType
    price: Price
    amount: Quantity
    time_in_force: TimeInForce
    label: str


@EVENTS.register(11)
@dataclass(frozen=True, slots=True)
class OrderRejected:
    """A PlaceOrder or EditOrder that changed nothing (``order_id`` 0 for a new order)."""

    account: int
    instrument: str
    reason: RejectReason
    label: str
    order_id: int = 0


@EVENTS.register(12)
@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    instrument: str
    price: Price
    amount: Quantity
    taker_side: Side
    taker_order_id: int
    maker_order_id: int
    taker_account: int
    maker_account: int
    taker_fee: Amount
    maker_fee: Amount


@EVENTS.register(13)
@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order_id: int
    account: int
    instrument: str
    remaining: Quantity
    reason: CancelReason


@EVENTS.register(14)
@dataclass(frozen=True, slots=True)
class OrderEdited:
    order_id: int
    account: int
    instrument: str
    price: Price
    amount: Quantity
    remaining: Quantity
    priority_kept: bool


@EVENTS.register(15)
@dataclass(frozen=True, slots=True)
class OrderExpired:
    """A good-til-time order reached its ``expire_at_ns``."""

    order_id: int
    account: int
    instrument: str
    remaining: Quantity


@EVENTS.register(16)
@dataclass(frozen=True, slots=True)
class CancelRejected:
    account: int
    order_id: int
    reason: RejectReason


@EVENTS.register(20)
@dataclass(frozen=True, slots=True)
class ComboFilled:
    """All legs filled in ratio; the leg trades follow as ``Trade`` events.

    ``premium`` is the net premium the account paid (negative: received),
    before fees; ``fees`` is the taker fee over all legs.
    """

    combo_id: int
    account: int
    side: Side
    amount: Quantity
    premium: Amount
    fees: Amount
    label: str


@EVENTS.register(21)
@dataclass(frozen=True, slots=True)
class ComboRejected:
    account: int
    reason: RejectReason
    label: str
    combo_id: int = 0


@EVENTS.register(30)
@dataclass(frozen=True, slots=True)
class InstrumentListed:
    instrument_id: int
    instrument: str
    expiry_ns: int


@EVENTS.register(31)
@dataclass(frozen=True, slots=True)
class InstrumentExpired:
    """Trading stopped at expiry; open orders were cancelled. Settlement follows (margin owner)."""

    instrument_id: int
    instrument: str


@EVENTS.register(32)
@dataclass(frozen=True, slots=True)
class ListingRejected:
    account: int
    instrument: str
    reason: RejectReason
