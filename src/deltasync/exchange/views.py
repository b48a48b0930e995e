"""Read-only views returned by ``ExchangeState`` queries (for the API and the CLI).

Views are frozen snapshots in fixed-point types; holding one never aliases
mutable engine records.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange.commands import OrderType, Side, TimeInForce


class OrderState(Enum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class OrderView:
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
    state: OrderState


@dataclass(frozen=True, slots=True)
class PositionView:
    instrument: str
    size: Quantity  # signed, positive long
    average_price: Price  # of the open size (0 when flat)
    open_cost: Amount  # premium paid for the open size (negative: received)
    realized_pnl: Amount
    open_buy: Quantity
    open_sell: Quantity
    requirement: Amount  # collateral locked for this instrument


@dataclass(frozen=True, slots=True)
class AccountView:
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
class BookView:
    instrument: str
    bids: tuple[DepthLevel, ...]  # best first
    asks: tuple[DepthLevel, ...]  # best first
