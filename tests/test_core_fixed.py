from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasync.core.errors import FixedPointOverflow, ParseError
from deltasync.core.fixed import (
    INT64_MAX,
    Amount,
    Price,
    Quantity,
    Rounding,
    div_round,
    notional,
)

raws = st.integers(min_value=-(2**61), max_value=2**61)


def test_parse_and_format_exactly() -> None:
    assert Amount.parse("12.345678").raw == 12_345_678
    assert str(Amount.parse("-0.5")) == "-0.5"
    assert str(Price.parse("100000")) == "100000"
    with pytest.raises(ParseError):
        Amount.parse("0.0000001")  # more decimals than the scale holds
    with pytest.raises(ParseError):
        Price.parse("nan")
    with pytest.raises(ParseError):
        Price.parse("abc")


def test_no_float_constructor() -> None:
    with pytest.raises(TypeError):
        Amount(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Amount(True)
    with pytest.raises(ParseError):
        Amount.parse(1.5)  # type: ignore[arg-type]


def test_overflow_fails_loudly() -> None:
    with pytest.raises(FixedPointOverflow):
        Amount(INT64_MAX) + Amount(1)
    with pytest.raises(FixedPointOverflow):
        Amount(INT64_MAX + 1)


def test_types_do_not_mix() -> None:
    with pytest.raises(TypeError):
        Amount(1) + Price(1)  # type: ignore[operator]


@given(raws, raws)
def test_addition_laws(a: int, b: int) -> None:
    x, y = Amount(a), Amount(b)
    assert x + y == y + x
    assert (x + y) - y == x
    assert x + Amount.zero() == x
    assert (-x).__neg__() == x


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**9))
def test_div_round_brackets_the_quotient(n: int, d: int) -> None:
    down, up = div_round(n, d, Rounding.DOWN), div_round(n, d, Rounding.UP)
    assert down * d <= n <= up * d
    assert up - down in (0, 1)
    assert (up == down) == (n % d == 0)
    half = div_round(n, d, Rounding.HALF_EVEN)
    assert abs(half * d - n) * 2 <= d
    tz = div_round(n, d, Rounding.TOWARD_ZERO)
    assert abs(tz) <= abs(n) // d + (0 if n % d == 0 else 1) and abs(tz * d) <= abs(n)


@given(st.integers(0, 10**12), st.integers(0, 10**9))
def test_notional_rounding_against_account(p: int, q: int) -> None:
    paid = notional(Price(p), Quantity(q), Rounding.UP)
    received = notional(Price(p), Quantity(q), Rounding.DOWN)
    assert received.raw * 10**6 <= p * q <= paid.raw * 10**6
    assert paid.raw - received.raw in (0, 1)


@given(raws)
def test_text_round_trip(raw: int) -> None:
    assert Quantity.parse(str(Quantity(raw))) == Quantity(raw)
