from __future__ import annotations

import pytest

from deltasync.core.errors import ParseError
from deltasync.core.ids import OptionKind, parse_option_name
from deltasync.core.timeutil import civil_from_days, days_from_civil


def test_parse_deribit_linear_option_names() -> None:
    name = parse_option_name("BTC_USDC-27DEC26-100000-C")
    assert name.underlying == "BTC" and name.quote == "USDC"
    assert civil_from_days(name.expiry_days) == (2026, 12, 27)
    assert name.strike_raw == 100_000_000_000
    assert name.kind is OptionKind.CALL
    assert str(name) == "BTC_USDC-27DEC26-100000-C"
    assert str(parse_option_name("XRP_USDC-5JAN27-2d25-P")) == "XRP_USDC-5JAN27-2d25-P"


@pytest.mark.parametrize(
    "bad",
    ["", "BTC-27DEC26-100000-C", "BTC_USDC-32DEC26-100000-C", "BTC_USDC-27XYZ26-1-C",
     "BTC_USDC-27DEC26-0-C", "BTC_USDC-27DEC26-100000-X", "BTC_USDC-05JAN27-100-C",
     "BTC_USDC-29FEB27-100-C"],
)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ParseError):
        parse_option_name(bad)


def test_civil_days_round_trip() -> None:
    for days in range(-800_000, 800_000, 997):
        assert days_from_civil(*civil_from_days(days)) == days
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11017
