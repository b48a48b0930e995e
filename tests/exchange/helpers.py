"""Shared helpers for the exchange tests: a venue driven block by block, checked every block."""

from __future__ import annotations

from typing import Any

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange import invariants, queries
from deltasync.exchange.commands import Deposit, PlaceOrder, Side, TimeInForce
from deltasync.exchange.genesis import GenesisConfig, default_genesis, default_genesis_dict
from deltasync.exchange.state import BlockResult, ExchangeState

CALL = "BTC_USDC-27NOV26-100000-C"
CALL_105 = "BTC_USDC-27NOV26-105000-C"
CALL_110 = "BTC_USDC-27NOV26-110000-C"
PUT = "BTC_USDC-27NOV26-100000-P"
ETH_CALL = "ETH_USDC-27NOV26-3500-C"
SECOND_NS = 1_000_000_000


def q(text: str) -> Quantity:
    return Quantity.parse(text)


def p(text: str) -> Price:
    return Price.parse(text)


def usdc(text: str) -> int:
    return Amount.parse(text).raw


def genesis(**overrides: Any) -> GenesisConfig:
    raw = default_genesis_dict()
    raw.update(overrides)
    return GenesisConfig.from_dict(raw)


class Venue:
    """An exchange state plus a block clock; every block is followed by an invariant check."""

    def __init__(self, config: GenesisConfig | None = None) -> None:
        self.config = config or default_genesis()
        self.state = ExchangeState.from_genesis(self.config)
        self.height = 0
        self.time_ns = self.config.genesis_time_ns
        self.last: BlockResult | None = None

    def block(self, *commands: Any, seconds: int = 1) -> list[list[Any]]:
        self.height += 1
        self.time_ns += seconds * SECOND_NS
        self.last = self.state.apply_block(self.height, self.time_ns, list(commands))
        problems = invariants.check_invariants(self.state) + invariants.check_commitment(self.state)
        assert problems == [], problems
        return [list(events) for events in self.last.events]

    def one(self, command: Any) -> list[Any]:
        return self.block(command)[0]

    def fund(self, *accounts: int, usdc_whole: int = 1_000_000) -> None:
        self.block(*(Deposit(a, Amount.whole(usdc_whole)) for a in accounts))

    def cash(self, account: int) -> int:
        return self.state.accounts[account].cash

    def size(self, account: int, name: str) -> int:
        instrument = queries.instrument(self.state, name)
        assert instrument is not None
        position = self.state.accounts[account].positions.get(instrument.instrument_id)
        return 0 if position is None else position.size


def buy(account: int, name: str, amount: str, price: str | None, **kw: Any) -> PlaceOrder:
    return PlaceOrder(account, name, Side.BUY, q(amount), None if price is None else p(price), **kw)


def sell(account: int, name: str, amount: str, price: str | None, **kw: Any) -> PlaceOrder:
    return PlaceOrder(account, name, Side.SELL, q(amount), None if price is None else p(price), **kw)


IOC = TimeInForce.IMMEDIATE_OR_CANCEL
FOK = TimeInForce.FILL_OR_KILL
GTT = TimeInForce.GOOD_TIL_TIME


def records(state: ExchangeState) -> list[tuple[bytes, bytes]]:
    """Every committed record except the block header (height, time)."""
    state.state_root()  # commits
    return [(k, v) for k, v in state.merkle.items() if not k.startswith(b"meta/")]


def kinds(events: list[Any], cls: type) -> list[Any]:
    return [event for event in events if isinstance(event, cls)]
