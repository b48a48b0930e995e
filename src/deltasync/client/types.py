"""Typed results of the API. Numbers are ``Decimal`` (exact, as the server sent them)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class ApiError(Exception):
    """The server answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code} {message}" + (f" {data}" if data is not None else ""))


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, str) and not value[:1].isdigit() and value[:1] != "-":
        return None
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def _dec0(value: Any) -> Decimal:
    result = _dec(value)
    return Decimal(0) if result is None else result


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    instrument_name: str
    direction: str
    order_type: str
    order_state: str
    time_in_force: str
    price: Decimal | None
    amount: Decimal
    filled_amount: Decimal
    average_price: Decimal
    label: str
    post_only: bool
    reduce_only: bool
    creation_timestamp: int
    last_update_timestamp: int
    cancel_reason: str
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        return cls(
            order_id=str(data["order_id"]),
            instrument_name=data["instrument_name"],
            direction=data["direction"],
            order_type=data["order_type"],
            order_state=data["order_state"],
            time_in_force=data.get("time_in_force", ""),
            price=_dec(data.get("price")),
            amount=_dec0(data.get("amount")),
            filled_amount=_dec0(data.get("filled_amount")),
            average_price=_dec0(data.get("average_price")),
            label=data.get("label", ""),
            post_only=bool(data.get("post_only")),
            reduce_only=bool(data.get("reduce_only")),
            creation_timestamp=int(data.get("creation_timestamp", 0)),
            last_update_timestamp=int(data.get("last_update_timestamp", 0)),
            cancel_reason=data.get("cancel_reason", ""),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    trade_seq: int
    instrument_name: str
    price: Decimal
    amount: Decimal
    direction: str
    timestamp: int
    order_id: str | None
    fee: Decimal | None
    liquidity: str | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trade:
        return cls(
            trade_id=str(data["trade_id"]),
            trade_seq=int(data.get("trade_seq", 0)),
            instrument_name=data["instrument_name"],
            price=_dec0(data["price"]),
            amount=_dec0(data["amount"]),
            direction=data["direction"],
            timestamp=int(data.get("timestamp", 0)),
            order_id=None if data.get("order_id") is None else str(data["order_id"]),
            fee=_dec(data.get("fee")),
            liquidity=data.get("liquidity"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class OrderResult:
    order: Order
    trades: tuple[Trade, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderResult:
        return cls(Order.from_json(data["order"]),
                   tuple(Trade.from_json(trade) for trade in data.get("trades", ())))


@dataclass(frozen=True, slots=True)
class Position:
    instrument_name: str
    size: Decimal
    direction: str
    average_price: Decimal
    mark_price: Decimal | None
    floating_profit_loss: Decimal
    realized_profit_loss: Decimal
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        return cls(
            instrument_name=data["instrument_name"],
            size=_dec0(data["size"]),
            direction=data.get("direction", "zero"),
            average_price=_dec0(data.get("average_price")),
            mark_price=_dec(data.get("mark_price")),
            floating_profit_loss=_dec0(data.get("floating_profit_loss")),
            realized_profit_loss=_dec0(data.get("realized_profit_loss")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class AccountSummary:
    currency: str
    balance: Decimal
    equity: Decimal
    available_funds: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    total_pl: Decimal
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountSummary:
        return cls(
            currency=data["currency"],
            balance=_dec0(data["balance"]),
            equity=_dec0(data["equity"]),
            available_funds=_dec0(data["available_funds"]),
            initial_margin=_dec0(data["initial_margin"]),
            maintenance_margin=_dec0(data["maintenance_margin"]),
            total_pl=_dec0(data.get("total_pl")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class OrderBook:
    instrument_name: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    change_id: int
    timestamp: int
    best_bid_price: Decimal | None
    best_ask_price: Decimal | None
    mark_price: Decimal | None
    index_price: Decimal | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderBook:
        return cls(
            instrument_name=data["instrument_name"],
            bids=tuple((_dec0(p), _dec0(a)) for p, a in data.get("bids", ())),
            asks=tuple((_dec0(p), _dec0(a)) for p, a in data.get("asks", ())),
            change_id=int(data.get("change_id", 0)),
            timestamp=int(data.get("timestamp", 0)),
            best_bid_price=_dec(data.get("best_bid_price")),
            best_ask_price=_dec(data.get("best_ask_price")),
            mark_price=_dec(data.get("mark_price")),
            index_price=_dec(data.get("index_price")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Notification:
    channel: str
    data: Any
