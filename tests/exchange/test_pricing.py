"""Pricing: special functions and Black-Scholes against mpmath and published values."""

from __future__ import annotations

import itertools
import math
import random

import mpmath
import pytest

from deltasync.core import limits
from deltasync.core.fixed import INT64_MAX, PRICE_SCALE
from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_DAY, NS_PER_YEAR_365
from deltasync.exchange import pricing
from deltasync.exchange.pricing import (
    DELTA_SCALE,
    GAMMA_SCALE,
    Greeks,
    IvStatus,
    black_scholes,
    float_to_raw,
    greeks_raw,
    implied_vol,
    mark_price_raw,
)

mpmath.mp.dps = 50
GREEK_NAMES = Greeks._fields


# An independent reference: the textbook formulas in mpmath at 50 digits, sharing
# no code with deltasync.exchange.pricing.
def reference_greeks(
    spot: float, strike: float, vol: float, t_years: float, rate: float, is_call: bool
) -> dict[str, mpmath.mpf]:
    with mpmath.workdps(50):
        s, k, v, t, r = (mpmath.mpf(x) for x in (spot, strike, vol, t_years, rate))
        sqrt_t = mpmath.sqrt(t)
        d1 = (mpmath.log(s / k) + (r + v * v / 2) * t) / (v * sqrt_t)
        d2 = d1 - v * sqrt_t
        disc = mpmath.exp(-r * t)
        pdf1 = mpmath.npdf(d1)
        gamma = pdf1 / (s * v * sqrt_t)
        vega = s * pdf1 * sqrt_t / 100
        decay = -s * pdf1 * v / (2 * sqrt_t)
        if is_call:
            price = s * mpmath.ncdf(d1) - k * disc * mpmath.ncdf(d2)
            delta = mpmath.ncdf(d1)
            theta = (decay - r * k * disc * mpmath.ncdf(d2)) / 365
            rho = k * t * disc * mpmath.ncdf(d2) / 100
        else:
            price = k * disc * mpmath.ncdf(-d2) - s * mpmath.ncdf(-d1)
            delta = -mpmath.ncdf(-d1)
            theta = (decay + r * k * disc * mpmath.ncdf(-d2)) / 365
            rho = -k * t * disc * mpmath.ncdf(-d2) / 100
        return {
            "price": price,
            "delta": delta,
            "gamma": gamma,
            "vega": vega,
            "theta": theta,
            "rho": rho,
        }


def _relative_error(value: float, reference: mpmath.mpf) -> float:
    if reference == 0:
        return abs(value)
    return float(abs((mpmath.mpf(value) - reference) / reference))


# --- special functions ---------------------------------------------------------


def test_exp_matches_mpmath_within_one_ulp() -> None:
    rng = random.Random(7)
    points = [rng.uniform(-708.0, 709.0) for _ in range(3000)]
    points += [rng.uniform(-1.0, 1.0) for _ in range(3000)]
    points += [0.0, 1e-300, -1e-300, 1e-10, 0.5 * math.log(2.0), 709.7, -708.3]
    worst = max(_relative_error(pricing.exp(x), mpmath.exp(x)) for x in points)
    assert worst < 2.3e-16, worst
    assert pricing.exp(0.0) == 1.0
    assert pricing.exp(710.0) == math.inf
    assert pricing.exp(-746.0) == 0.0
    assert 0.0 < pricing.exp(-740.0) < 1e-320  # subnormal results are still produced
    assert math.isnan(pricing.exp(math.nan))


def test_log_matches_mpmath_within_one_ulp() -> None:
    rng = random.Random(8)
    points = [math.ldexp(rng.uniform(0.5, 1.0), rng.randint(-1070, 1020)) for _ in range(3000)]
    points += [rng.uniform(0.25, 4.0) for _ in range(3000)]
    points += [1.0 + 2.0**-52, 1.0 - 2.0**-53, 5e-324, 1.7976931348623157e308, math.e]
    worst = max(_relative_error(pricing.log(x), mpmath.log(x)) for x in points if x != 1.0)
    assert worst < 2.3e-16, worst
    assert pricing.log(1.0) == 0.0
    with pytest.raises(ValueError):
        pricing.log(0.0)
    with pytest.raises(ValueError):
        pricing.log(-1.0)


def test_norm_cdf_both_tails_match_mpmath_to_1e_15_relative() -> None:
    rng = random.Random(9)
    points = [rng.uniform(-37.5, 37.5) for _ in range(2000)]
    points += [rng.uniform(-3.0, 3.0) for _ in range(2000)]
    points += [0.0, 0.67448975, -0.67448975, 5.656854249492, -5.656854249492, 1e-12]
    worst = 0.0
    for x in points:
        lower, upper = pricing.norm_cdf_pair(x)
        for value, reference in ((lower, mpmath.ncdf(x)), (upper, mpmath.ncdf(-x))):
            if reference > 1e-300:
                worst = max(worst, _relative_error(value, reference))
    assert worst < 1e-15, worst
    assert pricing.norm_cdf(0.0) == 0.5
    assert pricing.norm_cdf(-40.0) == 0.0 and pricing.norm_cdf(40.0) == 1.0


def test_norm_pdf_matches_mpmath() -> None:
    rng = random.Random(10)
    points = [rng.uniform(-37.0, 37.0) for _ in range(3000)] + [0.0]
    worst = max(_relative_error(pricing.norm_pdf(x), mpmath.npdf(x)) for x in points)
    assert worst < 1e-15, worst
    assert pricing.norm_pdf(0.0) == pricing.INV_SQRT_2PI
    assert pricing.norm_pdf(50.0) == 0.0


# --- Black-Scholes vs mpmath -------------------------------------------------------

SPOTS = (100.0, 87_654.321)
MONEYNESS = (0.2, 0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0, 5.0)
VOLS = (0.01, 0.15, 0.6, 1.5, 3.0)
EXPIRIES_YEARS = (1.0 / 8760.0, 1.0 / 365.0, 30.0 / 365.0, 1.0, 5.0)
RATES = (-0.05, 0.0, 0.05, 0.2)


def _grid() -> list[tuple[float, float, float, float, float, bool]]:
    return [
        (spot, spot * moneyness, vol, t_years, rate, is_call)
        for spot, moneyness, vol, t_years, rate, is_call in itertools.product(
            SPOTS, MONEYNESS, VOLS, EXPIRIES_YEARS, RATES, (True, False)
        )
    ]


def _floor(name: str, spot: float) -> float:
    """Absolute floor for values that are ~0 (deep out of the money): 1e-12 of the scale."""
    return 1e-12 / spot if name == "gamma" else 1e-12 * spot


def test_black_scholes_agrees_with_mpmath_to_1e_9_over_the_grid() -> None:
    worst = dict.fromkeys(GREEK_NAMES, 0.0)
    for case in _grid():
        greeks = black_scholes(*case)
        reference = reference_greeks(*case)
        for name, value in zip(GREEK_NAMES, greeks, strict=True):
            expected = reference[name]
            error = float(abs(mpmath.mpf(value) - expected))
            bound = 1e-9 * float(abs(expected)) + _floor(name, case[0])
            assert error <= bound, (name, case, value, float(expected))
            if abs(expected) > 1000 * _floor(name, case[0]):
                worst[name] = max(worst[name], error / float(abs(expected)))
    # The documented figure: far better than the 1e-9 contract where values are not ~0.
    assert max(worst.values()) < 1e-11, worst


def test_black_scholes_agrees_with_mpmath_on_random_cases() -> None:
    rng = random.Random(5)
    for _ in range(1500):
        spot = rng.choice([1.0, 100.0, 3000.0, 90_000.0])
        case = (
            spot,
            spot * 10 ** rng.uniform(-0.7, 0.7),
            10 ** rng.uniform(-2.0, 0.5),
            10 ** rng.uniform(-4.5, 0.8),  # 17 minutes .. 6 years
            rng.uniform(-0.05, 0.2),
            rng.random() < 0.5,
        )
        reference = reference_greeks(*case)
        for name, value in zip(GREEK_NAMES, black_scholes(*case), strict=True):
            error = float(abs(mpmath.mpf(value) - reference[name]))
            assert error <= 1e-9 * float(abs(reference[name])) + _floor(name, spot), (name, case)


def test_put_call_parity_and_greek_identities() -> None:
    for spot, strike, vol, t_years, rate, _ in _grid()[::7]:
        call = black_scholes(spot, strike, vol, t_years, rate, True)
        put = black_scholes(spot, strike, vol, t_years, rate, False)
        forward_gap = spot - strike * pricing.exp(-rate * t_years)
        assert call.price - put.price == pytest.approx(forward_gap, rel=1e-12, abs=1e-12 * spot)
        assert call.delta - put.delta == pytest.approx(1.0, abs=1e-15)
        assert call.gamma == put.gamma and call.vega == put.vega


@pytest.mark.parametrize(
    "spot,strike,vol,t_years,rate,is_call,expected_price",
    [
        # Haug, The Complete Guide to Option Pricing Formulas (2nd ed.), 1.1.1: BSM call.
        (60.0, 65.0, 0.30, 0.25, 0.08, True, 2.1334),
        # Hull, Options, Futures and Other Derivatives, example 15.6.
        (42.0, 40.0, 0.20, 0.50, 0.10, True, 4.76),
        (42.0, 40.0, 0.20, 0.50, 0.10, False, 0.81),
    ],
)
def test_published_reference_prices(
    spot: float,
    strike: float,
    vol: float,
    t_years: float,
    rate: float,
    is_call: bool,
    expected_price: float,
) -> None:
    price = black_scholes(spot, strike, vol, t_years, rate, is_call).price
    decimals = len(str(expected_price).split(".")[1])
    assert round(price, decimals) == expected_price


def test_published_reference_greeks_hull_chapter_19() -> None:
    # Hull's running example: S=49, K=50, r=5 %, vol=20 %, 20 weeks; call 2.40, delta 0.522,
    # gamma 0.066, vega 12.1 per unit vol, theta -4.31 per year, rho 8.91 per unit rate.
    greeks = black_scholes(49.0, 50.0, 0.20, 20.0 / 52.0, 0.05, True)
    assert round(greeks.price, 2) == 2.40
    assert round(greeks.delta, 3) == 0.522
    assert round(greeks.gamma, 3) == 0.066
    assert round(greeks.vega * 100.0, 1) == 12.1  # Deribit unit: per 1 % of vol
    assert round(greeks.theta * 365.0, 2) == -4.31  # Deribit unit: per calendar day
    assert round(greeks.rho * 100.0, 2) == 8.91  # Deribit unit: per 1 % of rate


def test_degenerate_inputs() -> None:
    assert black_scholes(110.0, 100.0, 0.5, 0.0, 0.05, True) == Greeks(10.0, 1.0, 0, 0, 0, 0)
    assert black_scholes(90.0, 100.0, 0.5, 0.0, 0.05, True) == Greeks(0, 0, 0, 0, 0, 0)
    assert black_scholes(90.0, 100.0, 0.5, 0.0, 0.05, False) == Greeks(10.0, -1.0, 0, 0, 0, 0)
    assert black_scholes(100.0, 100.0, 0.5, 0.0, 0.0, True).delta == 0.5
    zero_vol = black_scholes(110.0, 100.0, 0.0, 1.0, 0.05, True)
    assert zero_vol.price == pytest.approx(110.0 - 100.0 * math.exp(-0.05), rel=1e-15)
    assert zero_vol.delta == 1.0 and zero_vol.gamma == 0.0 and zero_vol.vega == 0.0
    vanishing = black_scholes(100.0, 100.0, 1e-160, 1e-200, 0.0, True)  # vol sqrt(T) ~ 1e-260
    assert vanishing == Greeks(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for bad in (
        (0.0, 100.0, 0.5, 1.0, 0.0),
        (100.0, -1.0, 0.5, 1.0, 0.0),
        (100.0, 100.0, -0.1, 1.0, 0.0),
        (100.0, 100.0, 0.5, -1.0, 0.0),
        (100.0, 100.0, 0.5, 1.0, math.nan),
        (math.inf, 100.0, 0.5, 1.0, 0.0),
        (100.0, 100.0, 1e200, 1.0, 0.0),  # vol^2 would overflow
        (100.0, 100.0, 0.5, 1.0, -1000.0),  # exp(-r T) would overflow
        (100.0, 100.0, 0.5, 1e9, 0.0),
    ):
        with pytest.raises(ValueError):
            black_scholes(*bad, True)


# --- implied volatility --------------------------------------------------------------


def test_implied_vol_recovers_the_vol_over_the_grid() -> None:
    checked = 0
    for spot, strike, vol, t_years, rate, is_call in _grid()[::3]:
        greeks = black_scholes(spot, strike, vol, t_years, rate, is_call)
        result = implied_vol(greeks.price, spot, strike, t_years, rate, is_call)
        assert result.status is IvStatus.OK, (spot, strike, vol, t_years, rate, is_call, result)
        assert result.vol is not None and result.iterations <= limits.implied_vol_iterations_max
        # Always: the vol found reprices the option to within a few ulps of its price terms.
        price_ulps = 8.0 * 2.2e-16 * max(spot, strike)
        repriced = black_scholes(spot, strike, result.vol, t_years, rate, is_call).price
        assert abs(repriced - greeks.price) <= price_ulps, (
            spot,
            strike,
            vol,
            t_years,
            rate,
            result,
        )
        # Where the price pins the vol (|dvol| <= |dprice| / vega), the vol itself is recovered.
        vega_per_unit = greeks.vega * 100.0
        if vega_per_unit * 1e-9 * vol > price_ulps:
            assert abs(result.vol - vol) <= 1e-9 * vol, (spot, strike, vol, t_years, rate, result)
            checked += 1
    assert checked > 500  # most of the grid pins the vol to better than 1e-6 relative


def test_implied_vol_refuses_prices_outside_no_arbitrage_bounds() -> None:
    below = implied_vol(9.0, 110.0, 100.0, 1.0, 0.0, True)  # under intrinsic 10
    assert below.status is IvStatus.BELOW_LOWER_BOUND and below.vol is None
    above = implied_vol(110.0, 110.0, 100.0, 1.0, 0.0, True)  # a call is worth less than S
    assert above.status is IvStatus.ABOVE_UPPER_BOUND and above.vol is None
    put_above = implied_vol(100.0 * math.exp(-0.05), 50.0, 100.0, 1.0, 0.05, False)
    assert put_above.status is IvStatus.ABOVE_UPPER_BOUND
    expired = implied_vol(1.0, 100.0, 100.0, 0.0, 0.0, True)
    assert expired.status is IvStatus.NO_CONVERGENCE and expired.vol is None


def test_implied_vol_of_a_price_at_intrinsic_is_zero() -> None:
    result = implied_vol(10.0, 110.0, 100.0, 1.0, 0.0, True)
    assert result.status is IvStatus.OK and result.vol == 0.0


# --- fixed-point boundary --------------------------------------------------------------


def test_float_to_raw_rounds_half_even_exactly() -> None:
    assert float_to_raw(0.5, 1) == 0
    assert float_to_raw(1.5, 1) == 2
    assert float_to_raw(2.5, 1) == 2
    assert float_to_raw(-0.5, 1) == 0
    assert float_to_raw(-1.5, 1) == -2
    assert float_to_raw(1.25, 10) == 12  # 12.5 is exact in binary: ties to even
    assert float_to_raw(0.1, 10) == 1
    assert float_to_raw(1e300, 1) == INT64_MAX
    assert float_to_raw(-1e300, 1) == -(2**63)
    rng = random.Random(11)
    for _ in range(2000):
        value = rng.uniform(-1e6, 1e6)
        assert float_to_raw(value, PRICE_SCALE) == round(value * PRICE_SCALE)


def test_greeks_raw_scales_and_expiry() -> None:
    spot_raw, strike_raw = 60 * PRICE_SCALE, 65 * PRICE_SCALE
    t_ns = NS_PER_YEAR_365 // 4
    raw = greeks_raw(spot_raw, strike_raw, 300_000, t_ns, 80_000, OptionKind.CALL)
    floats = black_scholes(60.0, 65.0, 0.30, 0.25, 0.08, True)
    assert raw.price == round(floats.price * PRICE_SCALE) == 2_133_368
    assert raw.delta == round(floats.delta * DELTA_SCALE)
    assert raw.gamma == round(floats.gamma * GAMMA_SCALE)
    assert raw.vega == round(floats.vega * PRICE_SCALE)
    assert raw.theta == round(floats.theta * PRICE_SCALE) < 0
    assert raw.rho == round(floats.rho * PRICE_SCALE)
    assert mark_price_raw(spot_raw, strike_raw, 300_000, t_ns, 80_000, OptionKind.CALL) == raw.price
    # at and after expiry: exact integer intrinsic value
    assert (
        mark_price_raw(70 * PRICE_SCALE, strike_raw, 300_000, 0, 0, OptionKind.CALL)
        == 5 * PRICE_SCALE
    )
    assert (
        mark_price_raw(70 * PRICE_SCALE, strike_raw, 300_000, -NS_PER_DAY, 0, OptionKind.PUT) == 0
    )
    expired_put = greeks_raw(60 * PRICE_SCALE, strike_raw, 1, 0, 0, OptionKind.PUT)
    assert expired_put.price == 5 * PRICE_SCALE and expired_put.delta == -DELTA_SCALE


def test_greeks_raw_saturates_instead_of_overflowing() -> None:
    # At the money one nanosecond before expiry gamma is enormous on a cheap underlying.
    raw = greeks_raw(1, 1, 10_000, 1, 0, OptionKind.CALL)
    assert raw.gamma == INT64_MAX
    # An absurd integer vol saturates at pricing_vol_max: the call is worth (almost) the spot.
    huge = greeks_raw(
        100 * PRICE_SCALE, 100 * PRICE_SCALE, 2**62, NS_PER_YEAR_365, 0, OptionKind.CALL
    )
    assert huge == greeks_raw(
        100 * PRICE_SCALE,
        100 * PRICE_SCALE,
        limits.pricing_vol_ppm_max,
        NS_PER_YEAR_365,
        0,
        OptionKind.CALL,
    )
    assert huge.price == 100 * PRICE_SCALE
