"""The oracle plugged into ExchangeState: gating, reference prices, state root, snapshots."""

from __future__ import annotations

from typing import Any

from deltasync.core.codec import encode
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange import invariants
from deltasync.exchange.commands import CancelOrder, Deposit, PlaceOrder, Side
from deltasync.exchange.events import OrderAccepted, OrderRejected, RejectReason
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.oracle import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    IndexPriceUpdated,
    OracleConfig,
    OracleExtension,
    OracleState,
    public_key_of,
    sign_report,
)
from deltasync.exchange.state import ExchangeState

SEEDS = {name: bytes([index + 11]) * 32 for index, name in enumerate("ABC")}
S = 1_000_000_000
CALL = "BTC_USDC-27NOV26-100000-C"


def _oracle_config() -> OracleConfig:
    return OracleConfig.from_dict(
        {
            "sources": [
                {
                    "id": n,
                    "public_key": public_key_of(SEEDS[n]).hex(),
                    "underlyings": ["BTC", "ETH"],
                }
                for n in "ABC"
            ],
            "min_sources": 2,
            "staleness_ns": 10 * S,
            "clamp_band_ppm": 10_000,
            "max_report_skew_ns": 5 * S,
            "jump_bound_ppm": 100_000,
            "jump_confirm_sources": 2,
        }
    )


class _Chain:
    def __init__(self) -> None:
        self.extension = OracleExtension(OracleState(_oracle_config()))
        self.state = ExchangeState.from_genesis(default_genesis(), extensions=[self.extension])
        self.height = 0
        self.time_ns = self.state.time_ns

    def block(self, *commands: Any, seconds: int = 1) -> tuple[list[Any], list[list[Any]]]:
        self.height += 1
        self.time_ns += seconds * S
        result = self.state.apply_block(self.height, self.time_ns, list(commands))
        assert invariants.check_invariants(self.state) == []
        return list(result.start_events), [list(events) for events in result.events]

    def report(self, source: str, price: int, underlying: str = "BTC") -> Any:
        # reports are stamped with the time of the block they will land in
        return sign_report(SEEDS[source], source, underlying, Price.whole(price), self.time_ns + S)


def _buy(price: str = "1000") -> PlaceOrder:
    return PlaceOrder(7, CALL, Side.BUY, Quantity.parse("0.1"), Price.parse(price))


def test_orders_wait_for_an_index_then_trade_and_halt_when_stale() -> None:
    chain = _Chain()
    chain.block(Deposit(7, Amount.whole(100_000)))
    [[rejected]] = chain.block(_buy())[1]
    assert type(rejected) is OrderRejected and rejected.reason is RejectReason.TRADING_HALTED

    chain.block(chain.report("A", 100_000), chain.report("B", 100_200))
    start, [[accepted]] = chain.block(_buy())  # the index forms at this block's start
    assert IndexPriceUpdated("BTC", Price.whole(100_100), 2, chain.time_ns) in start
    assert CircuitBreakerReset("BTC", Price.whole(100_100), chain.time_ns) in start
    assert type(accepted) is OrderAccepted
    assert chain.state.reference_prices["BTC"] == Price.whole(100_100).raw

    start, _ = chain.block(seconds=20)  # no reports for 20 s: stale -> cancel-only
    assert any(type(e) is CircuitBreakerTripped and e.underlying == "BTC" for e in start)
    [[halted], cancelled] = chain.block(_buy("900"), CancelOrder(7, accepted.order_id))[1]
    assert type(halted) is OrderRejected and halted.reason is RejectReason.TRADING_HALTED
    assert cancelled and type(cancelled[0]) is not OrderRejected  # cancels are never gated


def test_oracle_records_reach_the_state_root_and_survive_a_snapshot() -> None:
    chain = _Chain()
    root_before = chain.state.state_root()
    chain.block(chain.report("A", 100_000), chain.report("B", 100_200))
    chain.block()
    assert chain.state.state_root() != root_before
    records = chain.extension.oracle.records()
    assert b"oracle/index/" + encode("BTC") in dict(records)
    assert all(chain.state.merkle.get(key) == value for key, value in records)
    assert sum(1 for key in chain.state.merkle if key.startswith(b"oracle/")) == len(records)

    data = chain.state.snapshot_bytes()
    fresh = OracleExtension(OracleState(_oracle_config()))
    restored = ExchangeState.restore(data, extensions=[fresh])
    assert restored.state_root() == chain.state.state_root()
    assert fresh.oracle.index_price("BTC") == Price.whole(100_100)
    assert fresh.oracle.records() == chain.extension.oracle.records()
