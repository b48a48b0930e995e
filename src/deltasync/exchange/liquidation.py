"""Liquidation: accounts under maintenance margin are unwound, deterministically, in bounded steps.

``LiquidationEngine`` is an ``Extension`` (name ``"liquidation"``) that runs at
the end of every block, after the margin engine has re-margined the accounts
the block changed (so it sees this block's prices, trades and settlements).

Order: the accounts with ``equity < MM`` (``MarginEngine.below_maintenance``)
sorted by margin ratio ``equity x 1e6 // MM`` ascending (the worst first; an
account with ``MM == 0`` and negative equity sorts by ``equity x 1e6``), then by
account id; at most ``liquidation_accounts_per_block_max`` per block. The
insurance and backstop accounts are never liquidated. An account with a
position on a cancel-only underlying (oracle circuit breaker) is skipped
while that lasts: its marks are not trusted and its book is halted.

One step per account per block:

1. every open order of the account is cancelled (``CancelReason.RISK``);
2. every position is reduced by ``ceil(contracts x liquidation_step_ppm / 1e6)``
   contracts (all of it when the rest would fall below the minimum amount, or
   when the account's equity is not positive: then there is nothing to save),
   in instrument id order, first by an immediate-or-cancel reduce-only order
   into the book limited to ``mark x (1 +- liquidation_band_ppm)`` (rounded to
   the tick, inward); the account pays the usual taker fee plus a liquidation
   fee of ``liquidation_fee_ppm x index x quantity`` to the insurance fund;
3. what the book did not absorb moves to the backstop account at the mark
   (the account pays or receives the mark value, rounded against it) with a
   penalty of ``backstop_penalty_ppm x index x quantity`` paid to the backstop;
4. an account left with no position and a negative balance is bankrupt: the
   insurance fund pays the deficit as far as its balance goes; the rest is a
   socialized loss (below).

Socialized loss: the uncovered deficit ``D`` is taken pro rata from every other
account with a positive balance (the fee account included, the insurance and
backstop accounts excluded): account ``i`` with balance ``c_i`` pays
``floor(D x c_i / C)`` where ``C = sum c_i``; the remaining few micro-USDC are
taken one each from those accounts in ascending id order. ``D`` is capped at
``C``; anything beyond (no positive balance left anywhere) stays as the
account's negative balance.

Every movement of money is a ``transfer`` between two accounts (or a trade in
the book), so ``sum(balances) == deposits - withdrawals`` holds exactly, fees and
the insurance fund included.

Liquidation orders and their trades take log positions after the block's
commands (``Context.position = commands + k``), so their ids never collide
with the block's own.

State root: ``b"liq/meta"`` -> ``[steps, book quantity, backstop quantity,
fees, insurance paid, socialized]`` running totals (raw units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltasync.core.codec import encode
from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Price, Quantity
from deltasync.exchange.commands import PlaceOrder, Side, TimeInForce
from deltasync.exchange.events import CancelReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.margin import PPM, RISK_REGISTRY, MarginEngine
from deltasync.exchange.ports import StateAccess
from deltasync.exchange.sequencing import Context

_KEY_META = b"liq/meta"
LIQUIDATION_LABEL = "liquidation"


@RISK_REGISTRY.register(220)
@dataclass(frozen=True, slots=True)
class LiquidationStarted:
    """One liquidation step begins for an account under maintenance margin."""

    account: int
    equity: Amount
    maintenance_margin: Amount


@RISK_REGISTRY.register(221)
@dataclass(frozen=True, slots=True)
class LiquidationFill:
    """Quantity of a position closed in the book by a liquidation order, and its fee."""

    account: int
    instrument: str
    amount: Quantity  # signed: + bought back (short), - sold (long)
    fee: Amount  # to the insurance fund


@RISK_REGISTRY.register(222)
@dataclass(frozen=True, slots=True)
class BackstopTransfer:
    account: int
    backstop_account: int
    instrument: str
    amount: Quantity  # signed, from the liquidated account's view
    mark_price: Price
    penalty: Amount


@RISK_REGISTRY.register(223)
@dataclass(frozen=True, slots=True)
class InsuranceCovered:
    account: int
    amount: Amount
    fund_balance: Amount


@RISK_REGISTRY.register(224)
@dataclass(frozen=True, slots=True)
class SocializedLoss:
    account: int
    deficit: Amount  # taken from other balances
    accounts: int  # how many balances were cut
    uncovered: Amount  # left as the account's negative balance


class LiquidationEngine:
    name = "liquidation"

    def __init__(self, margin: MarginEngine) -> None:
        self.margin = margin
        self.config = margin.config
        # running totals, in the state root
        self.steps = 0
        self.book_quantity = 0
        self.backstop_quantity = 0
        self.fees = 0
        self.insurance_paid = 0
        self.socialized = 0
        self._position = 0  # log positions used in the current block's end phase

    def attach(self, state: StateAccess) -> None:
        pass

    def on_block_start(self, state: StateAccess, ctx: Context) -> list[Any]:
        return []

    def on_block_end(self, state: StateAccess, ctx: Context) -> list[Any]:
        margin = self.margin
        if not margin.below_maintenance:
            return []
        self._position = ctx.position
        oracle = margin.oracle
        candidates = []
        for account_id in margin.below_maintenance:
            record = margin.accounts[account_id].record
            equity, mm = (record[1], record[3]) if record is not None else (0, 0)
            ratio = equity * PPM // mm if mm > 0 else equity * PPM
            candidates.append((ratio, account_id))
        candidates.sort()
        events: list[Any] = []
        handled = 0
        for _, account_id in candidates:
            if handled == self.config.liquidation_accounts_per_block_max:
                break
            if account_id not in margin.below_maintenance:
                continue  # restored meanwhile (a socialized loss moves other balances)
            account = state.accounts[account_id]
            underlyings = {
                state.instruments[iid].underlying
                for iid, position in account.positions.items()
                if position.size
            }
            if oracle is not None and any(oracle.is_cancel_only(u) for u in sorted(underlyings)):
                continue  # paused while the breaker holds that underlying
            handled += 1
            events += self._step(state, account_id, ctx)
        # counterparties (makers, the backstop, the fund, haircut accounts) changed too
        margin.update_accounts(state, state.changed_accounts())
        self._write_meta(state)
        return events

    # --- one step -------------------------------------------------------------------

    def _step(self, state: StateAccess, account_id: int, ctx: Context) -> list[Any]:
        margin = self.margin
        record = margin.accounts[account_id].record
        assert record is not None
        events: list[Any] = [LiquidationStarted(account_id, Amount(record[1]), Amount(record[3]))]
        self.steps += 1
        account = state.accounts[account_id]
        events += state.cancel_account_orders(account_id, CancelReason.RISK)
        bankrupt = record[1] <= 0  # nothing left to protect: close everything now
        for iid in sorted(account.positions):
            position = account.positions[iid]
            if position.size:
                events += self._reduce(state, account_id, state.instruments[iid], bankrupt, ctx)
        margin.recompute_accounts(state, [account_id])
        if account.cash < 0 and not any(p.size for p in account.positions.values()):
            events += self._bankrupt(state, account_id)
            margin.recompute_accounts(state, [account_id])
        return events

    def _reduce(
        self, state: StateAccess, account_id: int, instrument: Instrument, whole: bool,
        ctx: Context,
    ) -> list[Any]:
        account = state.accounts[account_id]
        position = account.positions[instrument.instrument_id]
        cs = instrument.contract_size_raw
        contracts = abs(position.size) // cs
        step = -(-contracts * self.config.liquidation_step_ppm // PPM)
        min_contracts = instrument.min_amount_raw // cs
        if whole or contracts - step < min_contracts:
            step = contracts
        buying = position.size < 0
        risk = self.margin.instrument_risk(instrument)
        spot = self.margin.spot_raw(instrument.underlying) or state.reference_prices[
            instrument.underlying
        ]
        events: list[Any] = []
        before = position.size
        if instrument.active and step >= min_contracts:
            events += self._book_order(state, account_id, instrument, buying, step * cs,
                                       risk.mark_raw, ctx)
        filled = abs(position.size - before)  # the same record: positions leave only at commit
        if filled:
            fee = self._fee(self.config.liquidation_fee_ppm, spot, filled)
            state.transfer(account_id, self.config.insurance_account, fee)
            self.fees += fee
            self.book_quantity += filled
            events.append(LiquidationFill(account_id, instrument.name,
                                          Quantity(filled if buying else -filled), Amount(fee)))
        rest = step * cs - filled
        if rest:
            events += self._backstop(state, account_id, instrument, buying, rest,
                                     risk.mark_raw, spot)
        return events

    def _book_order(
        self, state: StateAccess, account_id: int, instrument: Instrument, buying: bool,
        quantity: int, mark_raw: int, ctx: Context,
    ) -> list[Any]:
        band = mark_raw * self.config.liquidation_band_ppm // PPM
        if buying:
            limit = instrument.round_price_down(mark_raw + band)
        else:
            limit = instrument.round_price_up(max(mark_raw - band, instrument.tick_raw))
        if limit <= 0:
            return []
        order = PlaceOrder(
            account_id, instrument.name, Side.BUY if buying else Side.SELL, Quantity(quantity),
            Price(limit), time_in_force=TimeInForce.IMMEDIATE_OR_CANCEL, reduce_only=True,
            label=LIQUIDATION_LABEL,
        )
        order_ctx = Context(ctx.height, ctx.time_ns, self._position)
        self._position += 1
        self.margin.bypass_account = account_id
        try:
            return state.apply(order, order_ctx)
        finally:
            self.margin.bypass_account = None

    @staticmethod
    def _fee(rate_ppm: int, spot_raw: int, quantity: int) -> int:
        return -(-rate_ppm * spot_raw * quantity // (PPM * NOTIONAL_DIVISOR))

    def _backstop(
        self, state: StateAccess, account_id: int, instrument: Instrument, buying: bool,
        quantity: int, mark_raw: int, spot_raw: int,
    ) -> list[Any]:
        backstop = self.config.backstop_account
        state.transfer(account_id, backstop, 0)  # creates the backstop account if needed
        events: list[Any] = []
        if buying:  # the account buys back its short from the backstop at the mark
            value = -(-mark_raw * quantity // NOTIONAL_DIVISOR)
            state.transfer(account_id, backstop, value)
            events += state.book_position(account_id, instrument, quantity, value)
            events += state.book_position(backstop, instrument, -quantity, -value)
        else:  # the account sells its long to the backstop at the mark
            value = mark_raw * quantity // NOTIONAL_DIVISOR
            state.transfer(backstop, account_id, value)
            events += state.book_position(account_id, instrument, -quantity, -value)
            events += state.book_position(backstop, instrument, quantity, value)
        penalty = self._fee(self.config.backstop_penalty_ppm, spot_raw, quantity)
        state.transfer(account_id, backstop, penalty)
        self.backstop_quantity += quantity
        events.insert(0, BackstopTransfer(account_id, backstop, instrument.name,
                                          Quantity(quantity if buying else -quantity),
                                          Price(mark_raw), Amount(penalty)))
        return events

    # --- bankruptcy ----------------------------------------------------------------------

    def _bankrupt(self, state: StateAccess, account_id: int) -> list[Any]:
        events: list[Any] = []
        account = state.accounts[account_id]
        insurance_id = self.config.insurance_account
        state.transfer(account_id, insurance_id, 0)  # creates the fund's account if needed
        fund = state.accounts[insurance_id]
        cover = min(-account.cash, max(fund.cash, 0))
        if cover:
            state.transfer(insurance_id, account_id, cover)
            self.insurance_paid += cover
            events.append(InsuranceCovered(account_id, Amount(cover), Amount(fund.cash)))
        if account.cash < 0:
            events.append(self._socialize(state, account_id, -account.cash))
        return events

    def _socialize(self, state: StateAccess, account_id: int, deficit: int) -> SocializedLoss:
        excluded = (account_id, *self.margin.system_accounts)
        payers = [
            (aid, acct.cash) for aid, acct in sorted(state.accounts.items())
            if acct.cash > 0 and aid not in excluded
        ]
        total = sum(cash for _, cash in payers)
        taken = min(deficit, total)
        if taken == 0:
            return SocializedLoss(account_id, Amount(0), 0, Amount(deficit))
        cuts = [(aid, taken * cash // total, cash) for aid, cash in payers]
        left = taken - sum(cut for _, cut, _ in cuts)
        cut_accounts = 0
        for aid, cut, cash in cuts:
            if left and cut < cash:
                cut += 1
                left -= 1
            if cut:
                state.transfer(aid, account_id, cut)
                cut_accounts += 1
        assert left == 0, left
        self.socialized += taken
        self.margin.recompute_accounts(state, [aid for aid, _, _ in cuts])
        return SocializedLoss(account_id, Amount(taken), cut_accounts, Amount(deficit - taken))

    # --- state root, snapshots ----------------------------------------------------------

    def _totals(self) -> list[int]:
        return [self.steps, self.book_quantity, self.backstop_quantity, self.fees,
                self.insurance_paid, self.socialized]

    def _write_meta(self, state: StateAccess) -> None:
        state.set_record(_KEY_META, encode(self._totals()))

    def snapshot(self) -> Any:
        return self._totals()

    def restore(self, state: StateAccess, data: Any) -> None:
        (self.steps, self.book_quantity, self.backstop_quantity, self.fees,
         self.insurance_paid, self.socialized) = data
        if any(data):
            self._write_meta(state)

