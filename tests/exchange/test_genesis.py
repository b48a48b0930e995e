"""Genesis parsing, instruments, tick tiers and fee arithmetic."""

from __future__ import annotations

import json

import pytest

from deltasync.core.errors import ConfigError
from deltasync.core.fixed import Price
from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_DAY, NS_PER_HOUR, civil_from_days, days_from_civil
from deltasync.exchange.genesis import (
    GenesisConfig,
    default_genesis,
    default_genesis_dict,
    live_genesis_dict,
    weekly_expiries,
)
from deltasync.exchange.instruments import TickTier, expiry_ns_of


def test_default_genesis_is_a_ready_btc_eth_venue() -> None:
    config = default_genesis()
    assert [u.name for u in config.underlyings] == ["BTC", "ETH"]
    assert len(config.instruments) == 108
    instruments = config.build_instruments()
    assert [i.instrument_id for i in instruments] == list(range(1, 109))
    first = instruments[0]
    assert first.name == "BTC_USDC-27NOV26-80000-C" and first.kind is OptionKind.CALL
    assert first.expiry_ns == expiry_ns_of(first.option_name.expiry_days)
    assert civil_from_days(first.expiry_ns // 86_400_000_000_000) == (2026, 11, 27)
    assert first.expiry_ns % 86_400_000_000_000 == 8 * 3_600_000_000_000
    assert config.oracle == {} and config.margin == {}


def test_round_trip_through_json() -> None:
    raw = default_genesis_dict()
    raw["oracle"] = {"sources": [{"id": "a", "key": "00"}], "band": 0.05}
    raw["margin"] = {"mode": "standard"}
    config = GenesisConfig.from_dict(json.loads(json.dumps(raw)))
    again = GenesisConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.oracle["band"] == 0.05


@pytest.mark.parametrize(
    "patch,key",
    [
        ({"quote": "USDT"}, "quote"),
        ({"surprise": 1}, "surprise"),
        ({"fees": {"maker_ppm": -1}}, "fees.maker_ppm"),
        ({"fees": {"cap_ppm": "x"}}, "fees.cap_ppm"),
        ({"instruments": ["BTC_USDC-27NOV26-80000-C"]}, "instruments"),  # also in listings
        ({"instruments": ["SOL_USDC-27NOV26-80-C"]}, "instruments[0]"),
        ({"instruments": ["nonsense"]}, "instruments[0]"),
        ({"limits": {"open_orders_per_account_max": 0}}, "limits.open_orders_per_account_max"),
        ({"limits": {"nope": 1}}, "limits.nope"),
        ({"listings": [{"underlying": "BTC", "expiry": "31NOV26", "strikes": ["1"]}]},
         "listings[0].expiry"),
        ({"listings": [{"underlying": "BTC", "expiry": "27NOV26", "strikes": []}]},
         "listings[0].strikes"),
        ({"underlyings": {"BTC": {"reference_price": "1"}}}, "underlyings.BTC.call_short"),
    ],
)
def test_config_errors_name_the_key(patch: dict, key: str) -> None:
    raw = default_genesis_dict()
    raw.update(patch)
    with pytest.raises(ConfigError) as info:
        GenesisConfig.from_dict(raw)
    assert info.value.fields["key"].startswith(key), info.value


def test_tick_tiers() -> None:
    instrument = default_genesis().build_instruments()[0]
    assert instrument.tick_tiers == (TickTier(Price.whole(1000).raw, Price.whole(5).raw),)
    assert instrument.is_valid_price(Price.parse("999").raw)
    assert instrument.is_valid_price(Price.parse("1000").raw)
    assert not instrument.is_valid_price(Price.parse("1001").raw)
    assert instrument.is_valid_price(Price.parse("1005").raw)
    assert not instrument.is_valid_price(Price.parse("0.5").raw)
    assert instrument.round_price_down(Price.parse("1003").raw) == Price.parse("1000").raw
    assert instrument.round_price_up(Price.parse("1001").raw) == Price.parse("1005").raw
    assert instrument.round_price_up(Price.parse("998.2").raw) == Price.parse("999").raw


def test_bad_tick_grid_is_refused() -> None:
    raw = default_genesis_dict()
    raw["underlyings"]["BTC"]["tick_size"] = "0.00001"  # x 0.01 BTC is not a whole micro-USDC
    with pytest.raises(ConfigError):
        GenesisConfig.from_dict(raw)
    raw = default_genesis_dict()
    raw["underlyings"]["BTC"]["tick_size_steps"] = [{"above_price": "1000", "tick_size": "1.5"}]
    with pytest.raises(ConfigError):
        GenesisConfig.from_dict(raw)


def test_fee_is_rate_of_underlying_capped_by_premium_share() -> None:
    instrument = default_genesis().build_instruments()[0]  # BTC, 0.01 per contract
    reference = Price.whole(100_000).raw
    # 300 ppm x 100,000 x 0.01 = 0.3 USDC; cap 12.5 % x price x 0.01
    assert instrument.fee_per_contract(300, reference, Price.whole(1000).raw) == 300_000
    assert instrument.fee_per_contract(300, reference, Price.whole(100).raw) == 125_000
    assert instrument.fee_per_contract(300, reference, Price.whole(1).raw) == 1_250
    assert instrument.fee_cap_per_contract(Price.whole(3).raw) == 3_750


def test_reserve_is_premium_plus_fee_cap_on_every_tick() -> None:
    for instrument in default_genesis().build_instruments()[::17]:
        for price in range(instrument.tick_raw, 3_000 * instrument.tick_raw, 997 * instrument.tick_raw):
            price = instrument.round_price_up(price)
            assert instrument.reserve_per_contract(price) == (
                instrument.premium_per_contract(price) + instrument.fee_cap_per_contract(price)
            )
            assert instrument.premium_per_contract(price) * 10**6 == price * instrument.contract_size_raw


def test_weekly_expiries_are_the_next_fridays_at_eight_utc() -> None:
    friday_ns = days_from_civil(2026, 11, 27) * NS_PER_DAY
    assert weekly_expiries(friday_ns + 8 * NS_PER_HOUR - 1, 2) == ("27NOV26", "4DEC26")
    assert weekly_expiries(friday_ns + 8 * NS_PER_HOUR, 2) == ("4DEC26", "11DEC26")
    assert weekly_expiries(days_from_civil(2026, 12, 2) * NS_PER_DAY, 3) == (
        "4DEC26", "11DEC26", "18DEC26")
    assert weekly_expiries(days_from_civil(2031, 12, 27) * NS_PER_DAY, 2) == ("2JAN32", "9JAN32")


def test_live_genesis_lists_three_expiries_at_least_a_day_ahead() -> None:
    for day in range(days_from_civil(2031, 6, 9), days_from_civil(2031, 6, 16)):  # a whole week
        now_ns = day * NS_PER_DAY + 13 * NS_PER_HOUR
        config = GenesisConfig.from_dict(live_genesis_dict(now_ns))
        expiries = sorted({i.expiry_ns for i in config.build_instruments()})
        assert [b - a for a, b in zip(expiries, expiries[1:], strict=False)] == [7 * NS_PER_DAY] * 2
        assert now_ns + NS_PER_DAY < expiries[0] <= now_ns + 8 * NS_PER_DAY
        assert config.genesis_time_ns == day * NS_PER_DAY
        assert len(config.instruments) == len(default_genesis().instruments)
