"""A full venue (new_exchange) driven block by block with the demo oracle, checked every block."""

from __future__ import annotations

from typing import Any

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange import invariants, queries
from deltasync.exchange.assembly import demo_reports, new_exchange
from deltasync.exchange.commands import Deposit, PlaceOrder, Side
from deltasync.exchange.genesis import GenesisConfig, default_genesis_dict
from deltasync.exchange.margin import MarginEngine
from deltasync.exchange.state import BlockResult, ExchangeState

S = 1_000_000_000
CALL = "BTC_USDC-27NOV26-100000-C"
CALL_110 = "BTC_USDC-27NOV26-110000-C"
PUT = "BTC_USDC-27NOV26-100000-P"
PUT_90 = "BTC_USDC-27NOV26-90000-P"
ETH_CALL = "ETH_USDC-27NOV26-3500-C"


def risk_genesis(**margin: Any) -> GenesisConfig:
    raw = default_genesis_dict()
    raw["margin"] = margin
    return GenesisConfig.from_dict(raw)


def money_problems(state: ExchangeState) -> list[str]:
    """The trading core's invariants, except negative cash (allowed under margin: a
    liquidated or settled account may owe until the insurance fund covers it), plus
    the exact money identity with the insurance fund and fees included."""
    problems = [p for p in invariants.check_invariants(state) if "negative cash" not in p]
    total = sum(account.cash for account in state.accounts.values())
    if total != state.deposits_total - state.withdrawals_total:
        problems.append(f"money: {total} != {state.deposits_total - state.withdrawals_total}")
    return problems


def margin_problems(state: ExchangeState) -> list[str]:
    """The margin engine's incrementally kept parts equal a fresh evaluation of every account."""
    margin = state.risk
    assert isinstance(margin, MarginEngine)
    problems = []
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        fresh = margin.evaluate(state, account, margin.mode_of(account_id))
        kept = margin.accounts[account_id].parts if account_id in margin.accounts else {}
        if kept != fresh:
            problems.append(f"account {account_id}: parts {kept} != fresh {fresh}")
        for underlying in fresh:
            if account_id not in margin.exposed.get(underlying, {}):
                problems.append(f"account {account_id} missing from exposed[{underlying}]")
    return problems


class RiskVenue:
    """new_exchange + a clock; every block carries fresh demo oracle reports at ``index``."""

    def __init__(self, config: GenesisConfig | None = None, btc: int = 100_000) -> None:
        self.config = config or risk_genesis()
        self.state = new_exchange(self.config)
        self.height = 0
        self.time_ns = self.config.genesis_time_ns
        self.prices = {"BTC": Price.whole(btc), "ETH": Price.whole(3_500)}
        self.last: BlockResult | None = None
        self.block()
        self.block()  # the index forms at this block's start

    @property
    def margin(self) -> MarginEngine:
        risk = self.state.risk
        assert isinstance(risk, MarginEngine)
        return risk

    def block(self, *commands: Any, seconds: int = 1, reports: bool = True) -> list[list[Any]]:
        self.height += 1
        self.time_ns += seconds * S
        listed = list(commands)
        if reports:
            listed += demo_reports(self.prices, self.time_ns)
        self.last = self.state.apply_block(self.height, self.time_ns, listed)
        problems = money_problems(self.state) + margin_problems(self.state)
        assert problems == [], problems
        return [list(events) for events in self.last.events[: len(commands)]]

    def move(self, btc: int) -> None:
        """Publish a new BTC index; it is in effect from the second block on."""
        self.prices["BTC"] = Price.whole(btc)
        self.block()
        self.block()

    def fund(self, *accounts: int, usdc: int = 1_000_000) -> None:
        self.block(*(Deposit(a, Amount.whole(usdc)) for a in accounts))

    def size(self, account: int, name: str) -> int:
        instrument = queries.instrument(self.state, name)
        assert instrument is not None
        position = self.state.accounts[account].positions.get(instrument.instrument_id)
        return 0 if position is None else position.size

    def end_events(self) -> list[Any]:
        assert self.last is not None
        return list(self.last.end_events)

    def start_events(self) -> list[Any]:
        assert self.last is not None
        return list(self.last.start_events)


def order(account: int, name: str, side: Side, amount: str, price: str, **kw: Any) -> PlaceOrder:
    return PlaceOrder(account, name, side, Quantity.parse(amount), Price.parse(price), **kw)


def buy(account: int, name: str, amount: str, price: str, **kw: Any) -> PlaceOrder:
    return order(account, name, Side.BUY, amount, price, **kw)


def sell(account: int, name: str, amount: str, price: str, **kw: Any) -> PlaceOrder:
    return order(account, name, Side.SELL, amount, price, **kw)
