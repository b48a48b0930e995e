"""node.demo_oracle: the one demo oracle of the node's demo mode and the demo scenario."""

from __future__ import annotations

import random

from deltasync.core.fixed import Price
from deltasync.exchange.assembly import DEMO_ORACLE_SEEDS, demo_reports, new_exchange
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.oracle import IndexPriceUpdated, OracleReportAccepted
from deltasync.node.demo_oracle import (
    DemoOracle,
    DemoOracleOptions,
    Drop,
    SourceBehaviour,
    demo_source_seed,
)

S = 1_000_000_000
PRICES = {"BTC": Price.whole(100_000).raw, "ETH": Price.whole(3_500).raw}
T0 = default_genesis().genesis_time_ns + S


def test_the_default_oracle_signs_what_the_published_demo_reports_sign() -> None:
    oracle = DemoOracle(random.Random(1), PRICES)
    prices = {name: Price(raw) for name, raw in PRICES.items()}
    for t in (T0, T0 + 7 * S):
        assert oracle.reports(t) == demo_reports(prices, t)
    oracle.set_price("BTC", Price.whole(90_000).raw)
    assert oracle.reports(T0 + 8 * S) == demo_reports({**prices, "BTC": Price.whole(90_000)},
                                                      T0 + 8 * S)


def test_the_seeds_are_the_published_demo_seeds() -> None:
    assert {source: demo_source_seed(source) for source in DEMO_ORACLE_SEEDS} == DEMO_ORACLE_SEEDS


def test_the_venue_accepts_its_reports_and_forms_an_index() -> None:
    state = new_exchange(default_genesis())
    oracle = DemoOracle(random.Random(1), PRICES, DemoOracleOptions(vol_per_sqrt_s=0.001))
    result = state.apply_block(1, T0, oracle.reports(T0))
    assert all(type(events[0]) is OracleReportAccepted for events in result.events)
    result = state.apply_block(2, T0 + S, oracle.reports(T0 + S))
    assert {e.underlying for e in result.start_events if type(e) is IndexPriceUpdated} == {
        "BTC", "ETH"}


def test_the_same_seed_gives_the_same_walk_and_the_walk_moves() -> None:
    options = DemoOracleOptions(vol_per_sqrt_s=0.001, jump_every_s=5.0,
                                behaviour={"demo-a": SourceBehaviour(noise=0.001)})
    runs = []
    for _ in range(2):
        oracle = DemoOracle(random.Random(9), PRICES, options)
        runs.append([oracle.reports(T0 + k * S) for k in range(20)])
    assert runs[0] == runs[1]
    last = {r.underlying: r.price.raw for r in runs[0][-1] if r.source_id == "demo-b"}
    assert last != PRICES
    other = DemoOracle(random.Random(10), PRICES, options)
    assert [other.reports(T0 + k * S) for k in range(20)] != runs[0]


def test_a_source_in_its_outage_reports_nothing() -> None:
    silent = SourceBehaviour(silent_ns=(T0 + 10 * S, T0 + 20 * S))
    oracle = DemoOracle(random.Random(1), PRICES, DemoOracleOptions(behaviour={"demo-c": silent}))
    for t, expected in ((T0, 3), (T0 + 10 * S, 2), (T0 + 19 * S, 2), (T0 + 20 * S, 3)):
        sources = {r.source_id for r in oracle.reports(t, underlyings=["BTC"])}
        assert len(sources) == expected and ("demo-c" in sources) == (expected == 3), t


def test_a_drop_lowers_the_true_price_linearly_to_its_bottom() -> None:
    drop = Drop(T0 + 10 * S, 4 * S, {"BTC": 0.2})
    oracle = DemoOracle(random.Random(1), PRICES, DemoOracleOptions(drop=drop))

    def btc(t: int) -> int:
        return oracle.reports(t, underlyings=["BTC"], sources=["demo-a"])[0].price.raw

    assert btc(T0 + 10 * S) == PRICES["BTC"]
    assert btc(T0 + 12 * S) == PRICES["BTC"] * 9 // 10
    assert btc(T0 + 14 * S) == btc(T0 + 60 * S) == PRICES["BTC"] * 8 // 10
    eth = oracle.reports(T0 + 60 * S, underlyings=["ETH"], sources=["demo-a"])[0]
    assert eth.price.raw == PRICES["ETH"]


def test_bad_ticks_are_off_by_their_size_and_counted() -> None:
    behaviour = {"demo-d": SourceBehaviour(bad_tick_probability=1.0, bad_tick=0.04)}
    options = DemoOracleOptions(sources=("demo-a", "demo-d"), behaviour=behaviour)
    oracle = DemoOracle(random.Random(3), PRICES, options)
    reports = oracle.reports(T0, underlyings=["BTC"])
    by_source = {r.source_id: r.price.raw for r in reports}
    assert by_source["demo-a"] == PRICES["BTC"]
    assert by_source["demo-d"] in (PRICES["BTC"] * 96 // 100, PRICES["BTC"] * 104 // 100)
    assert oracle.bad_ticks == 1


def test_reports_carry_a_smile_per_expiry_not_about_to_pass() -> None:
    soon, later = T0 + 30 * S, T0 + 86_400 * S
    options = DemoOracleOptions(smile_expiries_ns=(soon, later), atm_vol={"BTC": 0.5})
    report = DemoOracle(random.Random(1), PRICES, options).reports(T0, ["BTC"], ["demo-a"])[0]
    assert report.vol_surface is not None
    assert [s.expiry_ns for s in report.vol_surface] == [later]
