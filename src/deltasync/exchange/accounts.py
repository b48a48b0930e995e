"""Accounts, positions and the collateral check interface.

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

Risk engines implement ``RiskEngine``. ``SimpleCollateral`` is the
conservative, fully collateralised rule used until portfolio margin lands:

- a buyer must hold the premium plus maximum fee of all its open buys;
- a seller must hold the maximum loss of the short it could end up with if
  all its open sells filled: per unit, the strike for a put, and the genesis
  ``call_short_collateral_per_unit`` of the underlying for a call (a call's
  loss is unbounded in theory; this documented bound is the venue's policy);
- a long position covers sells of the same size; buys are never netted
  against shorts (conservative).

With this rule a fill can never leave an account short of cash: a buy pays at
most its reserve, and a sell receives premium and pays a fee capped below it.
So only new orders, edits, combos and withdrawals are checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from deltasync.core.fixed import NOTIONAL_DIVISOR
from deltasync.core.ids import OptionKind
from deltasync.exchange.events import RejectReason
from deltasync.exchange.instruments import Instrument, UnderlyingSpec

if TYPE_CHECKING:
    from deltasync.exchange.state import ExchangeState


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


class RiskEngine(Protocol):
    """The pre-trade check interface. Margin replaces ``SimpleCollateral`` through it.

    ``position_requirement`` is called by the state whenever a position's size
    or open-order exposure changes; the account's ``locked`` is kept equal to
    the sum over its positions. An engine that does not decompose per position
    (portfolio margin) returns 0 there and does its work in the checks.
    """

    def position_requirement(self, instrument: Instrument, position: Position) -> int: ...

    def check_order(
        self,
        state: ExchangeState,
        account: Account,
        instrument: Instrument,
        side: int,
        price_raw: int,
        amount_raw: int,
    ) -> RejectReason | None: ...

    def check_combo(
        self,
        state: ExchangeState,
        account: Account,
        legs: list[tuple[Instrument, int]],
        cash_delta: int,
    ) -> RejectReason | None:
        """``legs``: (instrument, signed quantity change); ``cash_delta`` includes fees."""
        ...

    def check_withdraw(
        self, state: ExchangeState, account: Account, amount_raw: int
    ) -> RejectReason | None: ...


class SimpleCollateral:
    """Fully collateralised options: see the module docstring for the rule."""

    __slots__ = ("_call_unit_raw", "_short_per_contract")

    def __init__(self, underlyings: tuple[UnderlyingSpec, ...]) -> None:
        self._call_unit_raw = {
            spec.name: spec.call_short_collateral_per_unit_raw for spec in underlyings
        }
        self._short_per_contract: dict[int, int] = {}

    def short_collateral_per_contract(self, instrument: Instrument) -> int:
        cached = self._short_per_contract.get(instrument.instrument_id)
        if cached is None:
            unit = (
                instrument.strike_raw
                if instrument.kind is OptionKind.PUT
                else self._call_unit_raw[instrument.underlying]
            )
            cached = -(-unit * instrument.contract_size_raw // NOTIONAL_DIVISOR)
            self._short_per_contract[instrument.instrument_id] = cached
        return cached

    def _term(self, instrument: Instrument, size: int, open_sell: int, reserve: int) -> int:
        worst_short = open_sell - size
        if worst_short <= 0:
            return reserve
        per_contract = self._short_per_contract.get(instrument.instrument_id)
        if per_contract is None:
            per_contract = self.short_collateral_per_contract(instrument)
        return reserve + (worst_short // instrument.contract_size_raw) * per_contract

    def position_requirement(self, instrument: Instrument, position: Position) -> int:
        worst_short = position.open_sell_quantity - position.size
        if worst_short <= 0:
            return position.open_buy_reserve
        per_contract = self._short_per_contract.get(instrument.instrument_id)
        if per_contract is None:
            per_contract = self.short_collateral_per_contract(instrument)
        return position.open_buy_reserve + (
            worst_short // instrument.contract_size_raw
        ) * per_contract

    def check_order(
        self,
        state: ExchangeState,
        account: Account,
        instrument: Instrument,
        side: int,
        price_raw: int,
        amount_raw: int,
    ) -> RejectReason | None:
        position = account.positions.get(instrument.instrument_id)
        if position is None:
            size = open_sell = reserve = before = 0
        else:
            size, open_sell = position.size, position.open_sell_quantity
            reserve, before = position.open_buy_reserve, position.requirement
        if side == 1:
            reserve += (amount_raw // instrument.contract_size_raw) * (
                instrument.reserve_per_contract(price_raw)
            )
        else:
            open_sell += amount_raw
        after = (
            reserve if open_sell <= size else self._term(instrument, size, open_sell, reserve)
        )
        if account.locked - before + after > account.cash:
            return RejectReason.INSUFFICIENT_FUNDS
        return None

    def check_combo(
        self,
        state: ExchangeState,
        account: Account,
        legs: list[tuple[Instrument, int]],
        cash_delta: int,
    ) -> RejectReason | None:
        locked = account.locked
        for instrument, change in legs:
            position = account.positions.get(instrument.instrument_id)
            if position is None:
                position = Position(instrument.instrument_id)
            locked += self._term(
                instrument, position.size + change, position.open_sell_quantity,
                position.open_buy_reserve,
            ) - position.requirement
        if locked > account.cash + cash_delta:
            return RejectReason.INSUFFICIENT_FUNDS
        return None

    def check_withdraw(
        self, state: ExchangeState, account: Account, amount_raw: int
    ) -> RejectReason | None:
        if account.cash - amount_raw < account.locked:
            return RejectReason.INSUFFICIENT_FUNDS
        return None
