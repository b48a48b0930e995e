"""Oracle: signed reports, index (median + clamp), circuit breaker, smiles, TWAP, state root."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltasync.core.codec import decode, encode
from deltasync.core.errors import ConfigError
from deltasync.core.fixed import PRICE_SCALE, Price, Rounding, div_round
from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND
from deltasync.exchange.events import RejectReason
from deltasync.exchange.oracle import (
    ORACLE_REGISTRY,
    BreakerReason,
    CircuitBreakerReset,
    CircuitBreakerTripped,
    IndexPriceUpdated,
    OracleConfig,
    OracleReport,
    OracleReportAccepted,
    OracleReportRejected,
    OracleState,
    public_key_of,
    report_signing_bytes,
    sign_report,
)
from deltasync.exchange.pricing import mark_price_raw
from deltasync.exchange.svi import SviSlice, vol_ppm_at

SEEDS = {name: bytes([index + 1]) * 32 for index, name in enumerate("ABCDE")}
T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01T00:00:00Z, on every grid
S = NS_PER_SECOND


def _config_dict(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sources": [
            {
                "id": name,
                "public_key": public_key_of(SEEDS[name]).hex(),
                "underlyings": ["BTC", "ETH"],
            }
            for name in "ABC"
        ]
        + [{"id": "E", "public_key": public_key_of(SEEDS["E"]).hex(), "underlyings": ["ETH"]}],
        "min_sources": 2,
        "staleness_ns": 10 * S,
        "clamp_band_ppm": 10_000,  # 1 %
        "max_report_skew_ns": 5 * S,
        "jump_bound_ppm": 50_000,  # 5 %
        "jump_confirm_sources": 3,
    }
    raw.update(overrides)
    return raw


def _oracle(**overrides: Any) -> OracleState:
    return OracleState(OracleConfig.from_dict(_config_dict(**overrides)))


def _report(
    source: str,
    price: int,
    ts_ns: int,
    underlying: str = "BTC",
    surface: tuple[SviSlice, ...] | None = None,
) -> OracleReport:
    return sign_report(SEEDS[source], source, underlying, Price.whole(price), ts_ns, surface)


def _feed(
    oracle: OracleState, now_ns: int, prices: dict[str, int], underlying: str = "BTC"
) -> list[Any]:
    events: list[Any] = []
    for source, price in sorted(prices.items()):
        events += oracle.on_report(_report(source, price, now_ns, underlying), now_ns)
    return events + oracle.on_block(now_ns)


def _of(kind: type, events: list[Any]) -> list[Any]:
    return [event for event in events if type(event) is kind]


# --- configuration ------------------------------------------------------------------


def test_config_round_trips_and_sorts_sources() -> None:
    raw = _config_dict()
    raw["sources"] = list(reversed(raw["sources"]))
    config = OracleConfig.from_dict(raw)
    assert [source.source_id for source in config.sources] == ["A", "B", "C", "E"]
    assert config.underlyings() == ("BTC", "ETH")
    assert config.sources_for("ETH") == ("A", "B", "C", "E")
    assert OracleConfig.from_dict(config.to_dict()) == config
    assert config.twap_window_ns == 30 * NS_PER_MINUTE and config.twap_interval_ns == S


@pytest.mark.parametrize(
    "change,key",
    [
        ({"min_sources": 4}, "oracle.min_sources"),  # BTC has only 3 sources
        ({"jump_confirm_sources": 4}, "oracle.jump_confirm_sources"),
        ({"clamp_band_ppm": 1_000_000}, "oracle.clamp_band_ppm"),
        ({"staleness_ns": 0}, "oracle.staleness_ns"),
        ({"staleness_ns": 1.5}, "oracle.staleness_ns"),
        ({"surprise": 1}, "oracle.surprise"),
        ({"twap_window_ns": 1_500_000_000}, "oracle.twap_window_ns"),
        ({"twap_interval_ns": 1_000}, "oracle.twap_interval_ns"),
        ({"sources": []}, "oracle.sources"),
    ],
)
def test_config_errors_name_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        OracleConfig.from_dict(_config_dict(**change))
    assert error.value.fields["key"] == key


def test_config_rejects_bad_sources() -> None:
    raw = _config_dict()
    raw["sources"][1]["id"] = "A"
    with pytest.raises(ConfigError, match="duplicate source id"):
        OracleConfig.from_dict(raw)
    raw = _config_dict()
    raw["sources"][0]["public_key"] = "zz" * 32
    with pytest.raises(ConfigError, match="public_key"):
        OracleConfig.from_dict(raw)
    raw = _config_dict()
    raw["sources"][0]["underlyings"] = []
    with pytest.raises(ConfigError, match="underlyings"):
        OracleConfig.from_dict(raw)


# --- report validation ----------------------------------------------------------------


def _rejection(oracle: OracleState, report: OracleReport, now_ns: int = T0) -> RejectReason:
    [event] = oracle.on_report(report, now_ns)
    assert type(event) is OracleReportRejected, event
    return event.reason


def test_valid_report_is_accepted() -> None:
    oracle = _oracle()
    [event] = oracle.on_report(_report("A", 100_000, T0), T0)
    assert event == OracleReportAccepted("A", "BTC", Price.whole(100_000), T0)


def test_forged_signatures_are_rejected() -> None:
    oracle = _oracle()
    signed_by_b = sign_report(SEEDS["B"], "A", "BTC", Price.whole(100_000), T0)  # B poses as A
    assert _rejection(oracle, signed_by_b) is RejectReason.BAD_SIGNATURE
    genuine = _report("A", 100_000, T0)
    tampered = dataclasses.replace(genuine, price=Price.whole(90_000))
    assert _rejection(oracle, tampered) is RejectReason.BAD_SIGNATURE
    moved = dataclasses.replace(genuine, underlying="ETH")  # signed for BTC, replayed on ETH
    assert _rejection(oracle, moved) is RejectReason.BAD_SIGNATURE
    assert _rejection(oracle, dataclasses.replace(genuine, signature=b"\x00" * 63)) is (
        RejectReason.BAD_SIGNATURE
    )
    flipped = bytes([genuine.signature[0] ^ 1]) + genuine.signature[1:]
    assert _rejection(oracle, dataclasses.replace(genuine, signature=flipped)) is (
        RejectReason.BAD_SIGNATURE
    )
    assert oracle.records() == _oracle().records()  # nothing was stored


def test_signature_covers_the_domain_and_every_field() -> None:
    base = report_signing_bytes("A", "BTC", Price(1), T0, None)
    assert base.startswith(b"deltasync/oracle-report/v1\x00")
    assert decode(base[len(b"deltasync/oracle-report/v1\x00") :]) == ["A", "BTC", 1, T0, None]
    variants = [
        report_signing_bytes("B", "BTC", Price(1), T0, None),
        report_signing_bytes("A", "ETH", Price(1), T0, None),
        report_signing_bytes("A", "BTC", Price(2), T0, None),
        report_signing_bytes("A", "BTC", Price(1), T0 + 1, None),
        report_signing_bytes("A", "BTC", Price(1), T0, (SviSlice(T0 + 1, 0, 1, 0, 0, 1),)),
    ]
    assert len({base, *variants}) == 6


def test_unknown_and_unauthorised_sources() -> None:
    oracle = _oracle()
    stranger = sign_report(SEEDS["D"], "D", "BTC", Price.whole(100_000), T0)
    assert _rejection(oracle, stranger) is RejectReason.UNKNOWN_SOURCE
    e_on_btc = _report("E", 100_000, T0, "BTC")  # E may report ETH only
    assert _rejection(oracle, e_on_btc) is RejectReason.SOURCE_NOT_ALLOWED_FOR_UNDERLYING
    unknown_underlying = _report("A", 100, T0, "DOGE")
    assert _rejection(oracle, unknown_underlying) is RejectReason.SOURCE_NOT_ALLOWED_FOR_UNDERLYING


def test_non_positive_price_and_timestamp_window_and_replay() -> None:
    oracle = _oracle()
    assert _rejection(oracle, _report("A", 0, T0)) is RejectReason.NON_POSITIVE_PRICE
    assert _rejection(oracle, _report("A", -5, T0)) is RejectReason.NON_POSITIVE_PRICE
    assert (
        _rejection(oracle, _report("A", 100, T0 - 5 * S - 1))
        is RejectReason.TIMESTAMP_OUT_OF_WINDOW
    )
    assert (
        _rejection(oracle, _report("A", 100, T0 + 5 * S + 1))
        is RejectReason.TIMESTAMP_OUT_OF_WINDOW
    )
    assert type(oracle.on_report(_report("A", 100, T0 - 5 * S), T0)[0]) is OracleReportAccepted
    replay = _report("A", 100, T0 + S)
    assert type(oracle.on_report(replay, T0 + S)[0]) is OracleReportAccepted
    assert _rejection(oracle, replay, T0 + 2 * S) is RejectReason.NOT_NEWER
    assert _rejection(oracle, _report("A", 100, T0), T0 + 2 * S) is RejectReason.NOT_NEWER


def test_invalid_vol_surface_is_rejected() -> None:
    oracle = _oracle()
    bad_slice = SviSlice(T0 + NS_PER_DAY, 0, -1, 0, 0, 1)
    [event] = oracle.on_report(_report("A", 100, T0, surface=(bad_slice,)), T0)
    assert event.reason is RejectReason.INVALID_VOL_SURFACE and "negative_b" in event.detail
    good = SviSlice.from_floats(T0 + NS_PER_DAY, 0.01, 0.1, -0.3, 0.0, 0.1)
    unordered = (good, dataclasses.replace(good, expiry_ns=T0 + 1))
    [event] = oracle.on_report(_report("A", 100, T0, surface=unordered), T0)
    assert event.reason is RejectReason.INVALID_VOL_SURFACE and "increasing" in event.detail


def test_report_round_trips_through_the_registry_and_still_verifies() -> None:
    surface = (SviSlice.from_floats(T0 + NS_PER_DAY, 0.01, 0.1, -0.3, 0.0, 0.1),)
    report = _report("A", 100_000, T0, surface=surface)
    wire = ORACLE_REGISTRY.encode(report)
    decoded = ORACLE_REGISTRY.decode(wire, canonical=True)
    assert decoded == report
    assert type(_oracle().on_report(decoded, T0)[0]) is OracleReportAccepted
    for event in (
        IndexPriceUpdated("BTC", Price(5), 3, T0),
        CircuitBreakerTripped("BTC", BreakerReason.STALE, 1, None, T0),
        CircuitBreakerReset("BTC", Price(5), T0),
        OracleReportRejected("A", "BTC", RejectReason.BAD_SIGNATURE, "x"),
    ):
        assert ORACLE_REGISTRY.decode(ORACLE_REGISTRY.encode(event)) == event
    assert all(100 <= ORACLE_REGISTRY.tag_of(cls) < 200 for cls in ORACLE_REGISTRY.classes())


# --- index and circuit breaker ------------------------------------------------------------


def test_cancel_only_until_the_first_index_then_reset() -> None:
    oracle = _oracle()
    assert oracle.is_cancel_only("BTC") and oracle.index_price("BTC") is None
    assert oracle.breaker_reason("BTC") is BreakerReason.STALE
    events = _feed(oracle, T0, {"A": 100_000})
    assert _of(IndexPriceUpdated, events) == [] and oracle.is_cancel_only("BTC")
    events = _feed(oracle, T0 + S, {"B": 100_200})
    assert _of(IndexPriceUpdated, events) == [
        IndexPriceUpdated("BTC", Price.whole(100_100), 2, T0 + S)
    ]
    assert _of(CircuitBreakerReset, events) == [
        CircuitBreakerReset("BTC", Price.whole(100_100), T0 + S)
    ]
    assert not oracle.is_cancel_only("BTC") and oracle.breaker_reason("BTC") is None
    assert oracle.is_cancel_only("ETH")  # other underlyings are independent
    assert oracle.is_cancel_only("DOGE")  # unknown underlyings can never trade


def test_stale_sources_trip_the_breaker_and_fresh_ones_reset_it() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_000, "C": 100_000})
    assert not oracle.is_cancel_only("BTC")
    # 10 s later A and B are still fresh (inclusive bound); only A keeps reporting.
    assert _of(CircuitBreakerTripped, _feed(oracle, T0 + 10 * S, {"A": 100_010})) == []
    events = _feed(oracle, T0 + 11 * S, {"A": 100_020})  # B and C now stale: 1 < min_sources
    assert _of(CircuitBreakerTripped, events) == [
        CircuitBreakerTripped("BTC", BreakerReason.STALE, 1, None, T0 + 11 * S)
    ]
    assert oracle.is_cancel_only("BTC")
    assert oracle.index_price("BTC") == Price(100_003_333_333)  # last accepted index is kept
    assert _feed(oracle, T0 + 12 * S, {}) == []  # still stale: no repeated transition
    events = _feed(oracle, T0 + 13 * S, {"C": 100_030})
    assert _of(CircuitBreakerReset, events) == [
        CircuitBreakerReset("BTC", Price.whole(100_025), T0 + 13 * S)
    ]
    assert not oracle.is_cancel_only("BTC")


def test_a_lying_source_is_outvoted() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_100, "C": 150_000})
    # median 100_100, band 1 % = 1_001: C is clamped to 101_101; index = mean = 100_400.33
    assert oracle.index_price("BTC") == Price(100_400_333_333)
    assert not oracle.is_cancel_only("BTC")
    # However far it lies, one of three sources moves the index by at most band / 3.
    _feed(oracle, T0 + S, {"A": 100_000, "B": 100_100, "C": 10**12})
    assert oracle.index_price("BTC") == Price(100_400_333_333)
    _feed(oracle, T0 + 2 * S, {"A": 100_000, "B": 100_100, "C": 1})
    assert oracle.index_price("BTC") == Price.whole(99_700)  # median 100_000: C clamped to 99_000


def test_disagreeing_sources_trip_the_breaker() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_000, "C": 100_000})
    events = _feed(oracle, T0 + S, {"A": 100_000, "B": 103_000, "C": 106_000})
    # median 103_000, band 1_030: only B agrees with it
    assert _of(CircuitBreakerTripped, events) == [
        CircuitBreakerTripped("BTC", BreakerReason.SOURCES_DISAGREE, 3, None, T0 + S)
    ]
    assert oracle.index_price("BTC") == Price.whole(100_000)
    events = _feed(oracle, T0 + 2 * S, {"A": 103_100, "C": 103_200})
    assert _of(CircuitBreakerReset, events) and not oracle.is_cancel_only("BTC")


def test_a_jump_is_held_until_confirmed() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_000, "C": 100_000})
    events = _feed(oracle, T0 + S, {"A": 110_000, "B": 110_000})  # C still says 100_000
    # median 110_000, C clamped to 108_900 -> candidate 109_633: +9.6 % > 5 %, 2 of 3 confirm
    assert _of(IndexPriceUpdated, events) == []
    assert _of(CircuitBreakerTripped, events) == [
        CircuitBreakerTripped(
            "BTC", BreakerReason.UNCONFIRMED_JUMP, 3, Price(109_633_333_333), T0 + S
        )
    ]
    assert oracle.index_price("BTC") == Price.whole(100_000) and oracle.is_cancel_only("BTC")
    events = _feed(oracle, T0 + 2 * S, {"A": 110_010, "B": 110_000})  # still held
    assert _of(IndexPriceUpdated, events) == _of(CircuitBreakerTripped, events) == []
    events = _feed(oracle, T0 + 3 * S, {"C": 110_020})  # the third source confirms
    assert _of(IndexPriceUpdated, events) == [
        IndexPriceUpdated("BTC", Price.whole(110_010), 3, T0 + 3 * S)
    ]
    assert _of(CircuitBreakerReset, events) and not oracle.is_cancel_only("BTC")


def test_a_move_within_the_jump_bound_needs_no_confirmation() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_000, "C": 100_000})
    events = _feed(oracle, T0 + S, {"A": 104_000, "B": 104_000})  # C clamped: +3.7 %
    assert _of(IndexPriceUpdated, events) and not oracle.is_cancel_only("BTC")


def test_after_an_outage_a_jump_still_needs_confirmation() -> None:
    oracle = _oracle()
    _feed(oracle, T0, {"A": 100_000, "B": 100_000, "C": 100_000})
    _feed(oracle, T0 + 20 * S, {})
    assert oracle.breaker_reason("BTC") is BreakerReason.STALE
    events = _feed(oracle, T0 + 21 * S, {"A": 80_000, "B": 80_000})  # -20 %, only 2 sources
    assert (
        oracle.is_cancel_only("BTC")
        and oracle.breaker_reason("BTC") is BreakerReason.UNCONFIRMED_JUMP
    )
    assert _of(CircuitBreakerTripped, events) == []  # already cancel-only: no new transition
    _feed(oracle, T0 + 22 * S, {"C": 80_000})
    assert oracle.index_price("BTC") == Price.whole(80_000) and not oracle.is_cancel_only("BTC")


# --- volatility -----------------------------------------------------------------------------


def test_vol_at_is_the_median_of_fresh_sources_smiles() -> None:
    oracle = _oracle()
    expiry = T0 + 30 * NS_PER_DAY
    smiles = {
        "A": SviSlice.from_floats(expiry, 0.004, 0.05, -0.3, 0.0, 0.1),
        "B": SviSlice.from_floats(expiry, 0.005, 0.05, -0.3, 0.0, 0.1),
        "C": SviSlice.from_floats(expiry, 0.009, 0.05, -0.3, 0.0, 0.1),
    }
    for source, smile in smiles.items():
        oracle.on_report(_report(source, 100_000, T0, surface=(smile,)), T0)
    oracle.on_block(T0)
    strike_raw = 110_000 * PRICE_SCALE
    index = oracle.index_price("BTC")
    assert index is not None
    index_raw = index.raw
    vols = [vol_ppm_at(smile, index_raw, strike_raw, T0) for smile in smiles.values()]
    assert vols[0] is not None and vols[1] is not None and vols[2] is not None
    assert vols[0] < vols[1] < vols[2]
    assert oracle.vol_at("BTC", expiry, strike_raw, T0) == vols[1]
    assert oracle.vol_at("BTC", expiry + 1, strike_raw, T0) is None  # no smile for that expiry
    assert oracle.vol_at("BTC", expiry, strike_raw, expiry) is None  # expired
    assert oracle.vol_at("ETH", expiry, strike_raw, T0) is None  # no index
    # once C goes stale the median is over A and B (mean of the two, half-even)
    later = T0 + 11 * S
    oracle.on_report(_report("A", 100_000, later, surface=(smiles["A"],)), later)
    oracle.on_report(_report("B", 100_000, later, surface=(smiles["B"],)), later)
    oracle.on_block(later)
    a = vol_ppm_at(smiles["A"], index_raw, strike_raw, later)
    b = vol_ppm_at(smiles["B"], index_raw, strike_raw, later)
    assert a is not None and b is not None
    assert a < b  # two different vols: the median of an even count is their half-even mean
    assert oracle.vol_at("BTC", expiry, strike_raw, later) == div_round(
        a + b, 2, Rounding.HALF_EVEN
    )


def test_mark_price_combines_index_smile_and_time_to_expiry() -> None:
    oracle = _oracle()
    expiry = T0 + 30 * NS_PER_DAY
    smile = (SviSlice.from_floats(expiry, 0.004, 0.05, -0.3, 0.0, 0.1),)
    strike_raw = 105_000 * PRICE_SCALE
    assert oracle.mark_price_raw("BTC", expiry, strike_raw, OptionKind.CALL, T0) is None
    for source in "AB":
        oracle.on_report(_report(source, 100_000, T0, surface=smile), T0)
    oracle.on_block(T0)
    vol = oracle.vol_at("BTC", expiry, strike_raw, T0)
    assert vol is not None
    expected = mark_price_raw(
        100_000 * PRICE_SCALE, strike_raw, vol, expiry - T0, 0, OptionKind.CALL
    )
    assert oracle.mark_price_raw("BTC", expiry, strike_raw, OptionKind.CALL, T0) == expected > 0
    assert oracle.mark_price_raw("BTC", expiry + 1, strike_raw, OptionKind.CALL, T0) is None
    put_at_expiry = oracle.mark_price_raw("BTC", expiry, strike_raw, OptionKind.PUT, expiry)
    assert put_at_expiry == 5_000 * PRICE_SCALE  # intrinsic against the index


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10**7), min_size=3, max_size=3),
    st.integers(min_value=0, max_value=200_000),
)
def test_index_stays_within_the_band_of_the_median(prices: list[int], band_ppm: int) -> None:
    oracle = _oracle(clamp_band_ppm=band_ppm, min_sources=1, jump_confirm_sources=1)
    _feed(oracle, T0, dict(zip("ABC", prices, strict=True)))
    ordered = sorted(price * PRICE_SCALE for price in prices)
    median = ordered[1]
    band = median * band_ppm // 1_000_000
    index = oracle.index_price("BTC")
    assert index is not None
    assert ordered[0] <= index.raw <= ordered[2]
    assert abs(index.raw - median) <= band * 2 // 3 + 1  # two outliers move it by band/3 each


# --- TWAP --------------------------------------------------------------------------------------


def _naive_twap(history: list[tuple[int, int | None]], end_ns: int, window_ns: int) -> int | None:
    """Reference: the index in effect at each whole second in (end - window, end]."""
    samples = []
    first_grid_ns = (end_ns - window_ns) // S * S + S
    for grid_ns in range(first_grid_ns, end_ns + 1, S):
        in_effect = None
        for block_ns, index_raw in history:
            if block_ns <= grid_ns:
                in_effect = index_raw
        if in_effect is not None:
            samples.append(in_effect)
    if not samples:
        return None
    quotient, remainder = divmod(sum(samples), len(samples))
    twice = 2 * remainder
    if twice > len(samples) or (twice == len(samples) and quotient % 2):
        quotient += 1
    return quotient


def test_twap_over_30_minutes_is_exact() -> None:
    oracle = _oracle(staleness_ns=30 * S)
    history: list[tuple[int, int | None]] = []
    now = T0 + 123_456_789  # blocks off the grid, irregular spacing
    price = 100_000
    step = 0
    while now < T0 + 40 * NS_PER_MINUTE:
        if step % 3 == 0:  # reports every third block; index moves a little each time
            price += (step * 7919) % 61 - 30
            for source in "ABC":
                oracle.on_report(_report(source, price + ord(source), now), now)
        oracle.on_block(now)
        index = oracle.index_price("BTC")
        history.append((now, None if index is None else index.raw))
        now += 700_000_000 + (step * 104_729) % 900_000_000
        step += 1
    window = 30 * NS_PER_MINUTE
    last_block = history[-1][0]
    for end_ns in (
        T0 + 35 * NS_PER_MINUTE,
        T0 + 39 * NS_PER_MINUTE + 1,
        last_block,
        T0 + 11 * NS_PER_MINUTE,
    ):
        assert oracle.twap_raw("BTC", end_ns) == _naive_twap(history, end_ns, window), end_ns
    with pytest.raises(ValueError, match="no longer held"):
        oracle.twap_raw("BTC", T0 + 9 * NS_PER_MINUTE)  # the ring keeps two windows
    # after the last block the current index holds
    future = last_block + 5 * NS_PER_MINUTE
    assert oracle.twap_raw("BTC", future) == _naive_twap(history, future, window)
    # before any index exists there is nothing to average
    assert _oracle().twap_raw("BTC", T0) is None
    assert oracle.twap_raw("ETH", last_block) is None


def test_twap_short_history_and_long_gap() -> None:
    oracle = _oracle(staleness_ns=NS_PER_DAY)
    _feed(oracle, T0, {"A": 100_000, "B": 100_000})
    _feed(oracle, T0 + 10 * S, {"A": 100_200, "B": 100_200})
    # grid (T0 - 30 min, T0 + 10 s]: T0..T0+9 s hold 100_000, T0+10 s holds 100_200
    assert oracle.twap_raw("BTC", T0 + 10 * S) == (10 * 100_000 + 100_200) * PRICE_SCALE // 11
    # a gap longer than the window: the ring is refilled with the index held meanwhile
    _feed(oracle, T0 + 2 * 3600 * S + 500_000_000, {"A": 100_300, "B": 100_300})
    assert oracle.twap_raw("BTC", T0 + 2 * 3600 * S) == 100_200 * PRICE_SCALE


# --- state root, snapshots, determinism --------------------------------------------------------


def _scenario(oracle: OracleState) -> list[Any]:
    events: list[Any] = []
    expiry = T0 + 7 * NS_PER_DAY
    smile = (SviSlice.from_floats(expiry, 0.004, 0.05, -0.3, 0.0, 0.1),)
    for second in range(40):
        now = T0 + second * S + 250_000_000
        for source in "CAB":  # arrival order inside a block is part of the log
            if (second + ord(source)) % 4:
                report = sign_report(
                    SEEDS[source],
                    source,
                    "BTC",
                    Price(100_000 * PRICE_SCALE + second * 37_000_001),
                    now,
                    smile,
                )
                events += oracle.on_report(report, now)
        for source in "EB":
            events += oracle.on_report(_report(source, 3_000 + second, now, "ETH"), now)
        events += oracle.on_block(now)
    return events


def test_dirty_records_match_records() -> None:
    oracle = _oracle()
    assert oracle.dirty_records() == []
    _scenario(oracle)
    everything = dict(oracle.records())
    dirty = oracle.dirty_records()
    assert dirty and all(everything[key] == value for key, value in dirty)
    assert {key for key, _ in dirty} == set(everything)  # from genesis, everything was touched
    oracle.clear_dirty()
    assert oracle.dirty_records() == []
    oracle.on_report(_report("A", 100_500, T0 + 41 * S), T0 + 41 * S)
    [(key, value)] = oracle.dirty_records()
    assert key == b"oracle/report/" + encode(["BTC", "A"])
    assert decode(value) == [100_500 * PRICE_SCALE, T0 + 41 * S, None]
    assert dict(oracle.records())[key] == value


def test_snapshot_restore_round_trip() -> None:
    config = OracleConfig.from_dict(_config_dict())
    oracle = OracleState(config)
    _scenario(oracle)
    data = decode(encode(oracle.snapshot()), canonical=True)  # plain canonical data
    restored = OracleState.restore(config, data)
    assert restored.records() == oracle.records()
    assert restored.snapshot() == oracle.snapshot()
    later = T0 + 45 * S
    for state in (oracle, restored):
        state.on_report(_report("A", 100_000, later), later)
    assert _feed(oracle, later, {}) == _feed(restored, later, {})
    assert restored.records() == oracle.records()
    assert restored.twap_raw("BTC", later) == oracle.twap_raw("BTC", later)


def test_same_log_same_records_whatever_the_config_order() -> None:
    raw = _config_dict()
    shuffled = _config_dict()
    shuffled["sources"] = [shuffled["sources"][i] for i in (2, 3, 0, 1)]
    for source in shuffled["sources"]:
        source["underlyings"] = list(reversed(source["underlyings"]))
    first, second = (
        OracleState(OracleConfig.from_dict(raw)),
        OracleState(OracleConfig.from_dict(shuffled)),
    )
    assert _scenario(first) == _scenario(second)
    assert first.records() == second.records()


_DIGEST_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, {tests!r})
import test_oracle as t
oracle = t._oracle()
events = t._scenario(oracle)
digest = hashlib.sha256()
for key, value in oracle.records():
    digest.update(key + value)
print(json.dumps([digest.hexdigest(), len(events)]))
"""


def test_records_do_not_depend_on_the_hash_seed() -> None:
    tests_dir = str(Path(__file__).resolve().parent)
    src = str(Path(__file__).resolve().parents[2] / "src")
    outputs = []
    for seed in ("1", "2"):
        completed = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT.format(tests=tests_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        outputs.append(json.loads(completed.stdout))
    assert outputs[0] == outputs[1]
