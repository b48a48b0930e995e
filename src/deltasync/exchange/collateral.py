"""Simple collateral: the fully collateralised pre-trade rule (the default ``RiskEngine``).

- a buyer must hold the premium plus maximum fee of all its open buys;
- a seller must hold the maximum loss of the short it could end up with if
  all its open sells filled: per unit, the strike for a put, and the genesis
  ``call_short_collateral_per_unit`` of the underlying for a call (a call's
  loss is unbounded in theory; this documented bound is the venue's policy);
- a long position covers sells of the same size; buys are never netted
  against shorts (conservative).

With this rule a fill can never leave an account short of cash: a buy pays at
most its reserve, and a sell receives premium and pays a fee capped below it.
So only new orders, edits, combos and withdrawals are checked. ``MarginEngine``
(``margin``) replaces it through the same port.
"""

from __future__ import annotations

from deltasync.core.fixed import NOTIONAL_DIVISOR
from deltasync.core.ids import OptionKind
from deltasync.exchange.accounts import Account, Position
from deltasync.exchange.book import BUY
from deltasync.exchange.events import RejectReason
from deltasync.exchange.instruments import Instrument, UnderlyingSpec
from deltasync.exchange.ports import StateAccess


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
        state: StateAccess,
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
        if side == BUY:
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
        state: StateAccess,
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
        self, state: StateAccess, account: Account, amount_raw: int
    ) -> RejectReason | None:
        if account.cash - amount_raw < account.locked:
            return RejectReason.INSUFFICIENT_FUNDS
        return None
