"""The ledger: accounts, deposits, withdrawals, transfers, and what positions cost.

Money: ``cash`` is exact; premiums and fees are per contract and integer, and
every transfer is between two accounts (fees to the genesis fee account), so
``sum(cash) == deposits - withdrawals`` holds after every command. Deposits
are bounded by ``limits.deposits_total_raw_max`` for the whole venue, which
keeps every money sum inside int64.

Positions keep the signed size, the open cost (premium paid for the open size)
and realized PnL: ``trade_position`` books a fill (or a settlement, a backstop
transfer) like an average-cost ledger, realizing PnL on the part that closes.
What a position locks is the risk engine's figure (``refresh_requirement``).
"""

from __future__ import annotations

from typing import Any

from deltasync.core import limits
from deltasync.exchange.accounts import Account, Position
from deltasync.exchange.commands import Deposit, Withdraw
from deltasync.exchange.events import (
    Deposited,
    DepositRejected,
    RejectReason,
    Withdrawn,
    WithdrawRejected,
)
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.tables import Tables


def open_account(state: Tables, account_id: int) -> Account:
    """The account, created empty on first use."""
    account = state.accounts.get(account_id)
    if account is None:
        account = state.accounts[account_id] = Account(account_id)
    return account


def deposit(state: Tables, command: Deposit) -> list[Any]:
    if state.deposits_total - state.withdrawals_total + command.amount.raw > (
        limits.deposits_total_raw_max
    ):
        return [DepositRejected(command.account, command.amount, RejectReason.DEPOSIT_LIMIT)]
    account = open_account(state, command.account)
    amount = command.amount.raw
    account.cash += amount
    account.deposited += amount
    state.deposits_total += amount
    state.dirty_accounts[account.account_id] = None
    state.meta_dirty = True
    return [Deposited(account.account_id, command.amount,
                      state.event_values.amount(account.cash))]


def withdraw(state: Tables, command: Withdraw) -> list[Any]:
    account = state.accounts.get(command.account)
    amount = command.amount.raw
    if account is None:
        return [WithdrawRejected(command.account, command.amount, RejectReason.UNKNOWN_ACCOUNT)]
    reason = state.risk.check_withdraw(state.access, account, amount)
    if reason is None and amount > account.cash:
        reason = RejectReason.INSUFFICIENT_FUNDS
    if reason is not None:
        return [WithdrawRejected(command.account, command.amount, reason)]
    account.cash -= amount
    account.withdrawn += amount
    state.withdrawals_total += amount
    state.dirty_accounts[account.account_id] = None
    state.meta_dirty = True
    return [Withdrawn(account.account_id, command.amount,
                      state.event_values.amount(account.cash))]


def transfer(state: Tables, source: int, target: int, amount_raw: int) -> None:
    """Move cash between accounts (settlement, liquidation fees); creates the target."""
    assert amount_raw >= 0
    source_account = state.accounts[source]
    target_account = open_account(state, target)
    source_account.cash -= amount_raw
    target_account.cash += amount_raw
    state.dirty_accounts[source] = None
    state.dirty_accounts[target] = None


def position_of(account: Account, instrument_id: int) -> Position:
    """The account's position on an instrument, created flat on first use."""
    position = account.positions.get(instrument_id)
    if position is None:
        position = account.positions[instrument_id] = Position(instrument_id)
    return position


def trade_position(position: Position, account: Account, quantity: int, cost: int) -> None:
    """Add a signed quantity bought (+) or sold (-) for a signed premium ``cost`` (paid +)."""
    size = position.size
    if size == 0 or (size > 0) == (quantity > 0):
        position.size = size + quantity
        position.open_cost += cost
        return
    size_abs, quantity_abs = abs(size), abs(quantity)
    closing = quantity_abs if quantity_abs < size_abs else size_abs
    open_cost = position.open_cost
    released = abs(open_cost) * closing // size_abs
    if open_cost < 0:
        released = -released
    closing_cost = cost * closing // quantity_abs  # exact: both are whole contracts
    realized = -(released + closing_cost)
    position.realized_pnl += realized
    account.realized_pnl += realized
    position.open_cost = open_cost - released
    if quantity_abs > size_abs:
        position.open_cost = cost - closing_cost
    position.size = size + quantity


def refresh_requirement(
    state: Tables, account: Account, position: Position, instrument: Instrument
) -> None:
    """Re-run the risk engine on a position whose size or exposure changed."""
    requirement = state.risk.position_requirement(instrument, position)
    if requirement != position.requirement:
        account.locked += requirement - position.requirement
        position.requirement = requirement
