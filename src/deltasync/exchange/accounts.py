"""Accounts and positions: the money and exposure records of the ledger.

An ``Account`` holds USDC ``cash`` (Amount raw), the collateral ``locked`` by
its positions and open orders (the sum of its positions' ``requirement``, as
computed by the risk engine), and running totals (deposited, withdrawn, fees
paid, realized PnL). ``cash`` is the single source of truth for money: the
exchange-wide invariant is ``sum(cash) == deposits - withdrawals`` exactly.

Only money and positions are committed (``to_wire``); ``locked`` and the
open-order exposure are derived from the committed open orders, so placing or
cancelling an order changes one order record, not the account's.

A ``Position`` per (account, instrument) holds the signed size (Quantity raw,
positive long), the open cost (premium paid for the open size, negative when
short, so ``avg_price = open_cost / size``), realized PnL, and the open-order
exposure on that instrument: open buy and sell quantities and the buy reserve
(premium plus the fee cap of every open buy at its limit price).

The rules that move these records live in ``ledger`` (money, positions) and
``collateral`` / ``margin`` (what a position locks).
"""

from __future__ import annotations

from deltasync.exchange.instruments import Instrument


class Position:
    __slots__ = (
        "instrument_id", "size", "open_cost", "realized_pnl", "open_buy_quantity",
        "open_sell_quantity", "open_buy_reserve", "requirement",
    )

    def __init__(self, instrument_id: int) -> None:
        self.instrument_id = instrument_id
        self.size = 0
        self.open_cost = 0
        self.realized_pnl = 0
        self.open_buy_quantity = 0
        self.open_sell_quantity = 0
        self.open_buy_reserve = 0
        self.requirement = 0

    def is_flat(self) -> bool:
        """Nothing to commit: no size, no cost, no realized PnL."""
        return not (self.size or self.open_cost or self.realized_pnl)

    def is_empty(self) -> bool:
        """Flat and without open orders: the record can be forgotten."""
        return not (
            self.size or self.open_cost or self.realized_pnl or self.open_buy_quantity
            or self.open_sell_quantity or self.requirement
        )

    def to_wire(self) -> list[int]:
        """The committed part; open-order exposure is derived from the open orders."""
        return [self.size, self.open_cost, self.realized_pnl]

    @classmethod
    def from_wire(cls, instrument_id: int, wire: list[int]) -> Position:
        position = cls(instrument_id)
        position.size, position.open_cost, position.realized_pnl = wire
        return position


class Account:
    __slots__ = (
        "account_id", "cash", "locked", "deposited", "withdrawn", "fees_paid", "realized_pnl",
        "positions", "orders", "reduce_only", "committed",
    )

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.cash = 0
        self.locked = 0
        self.deposited = 0
        self.withdrawn = 0
        self.fees_paid = 0
        self.realized_pnl = 0
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, None] = {}  # open order ids (insertion order is not relied on)
        self.reduce_only: dict[int, int] = {}  # instrument id -> open reduce-only orders
        self.committed = b""  # the record's bytes as last written to the state commitment

    @property
    def available(self) -> int:
        return self.cash - self.locked

    def to_wire(self) -> list[int]:
        """The committed part; ``locked`` and the open orders are derived from other records."""
        return [self.cash, self.deposited, self.withdrawn, self.fees_paid, self.realized_pnl]


def buy_reserve_per_contract(instrument: Instrument, price_raw: int) -> int:
    """What one contract bought at ``price_raw`` can cost at most: premium plus fee cap."""
    return instrument.reserve_per_contract(price_raw)
