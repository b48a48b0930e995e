"""SVI smiles: formula vs mpmath, exact integer validation, vol at a strike."""

from __future__ import annotations

import math
import random

import mpmath
import pytest

from deltasync.core.fixed import PRICE_SCALE
from deltasync.core.limits import svi_param_abs_max
from deltasync.core.timeutil import NS_PER_DAY, NS_PER_YEAR_365
from deltasync.exchange import svi as svi_module
from deltasync.exchange.pricing import VOL_SCALE
from deltasync.exchange.svi import (
    SVI_SCALE,
    SviSlice,
    fit_slice,
    implied_vol,
    slice_violation,
    total_variance,
    vol_ppm_at,
)

EXPIRY_NS = 1_800_000_000 * 10**9
TYPICAL = SviSlice.from_floats(EXPIRY_NS, a=0.02, b=0.15, rho=-0.35, m=0.05, sigma=0.2)


def _reference_w(svi: SviSlice, k: float) -> mpmath.mpf:
    a, b, rho, m, sigma = (
        mpmath.mpf(v) / SVI_SCALE for v in (svi.a, svi.b, svi.rho, svi.m, svi.sigma)
    )
    x = mpmath.mpf(k) - m
    return a + b * (rho * x + mpmath.sqrt(x * x + sigma * sigma))


def test_from_floats_rounds_to_the_scale() -> None:
    assert TYPICAL == SviSlice(
        EXPIRY_NS, 20_000_000, 150_000_000, -350_000_000, 50_000_000, 200_000_000
    )
    assert TYPICAL.to_wire() == [
        EXPIRY_NS,
        20_000_000,
        150_000_000,
        -350_000_000,
        50_000_000,
        200_000_000,
    ]


def test_total_variance_matches_mpmath() -> None:
    rng = random.Random(3)
    for _ in range(500):
        svi = SviSlice.from_floats(
            EXPIRY_NS,
            a=rng.uniform(0.0, 0.2),
            b=rng.uniform(0.0, 0.9),
            rho=rng.uniform(-0.95, 0.95),
            m=rng.uniform(-0.5, 0.5),
            sigma=rng.uniform(0.01, 1.0),
        )
        k = rng.uniform(-3.0, 3.0)
        reference = _reference_w(svi, k)
        assert abs(total_variance(svi, k) - reference) <= 1e-14 * abs(reference) + 1e-17


def test_minimum_of_the_smile_is_the_no_negative_variance_bound() -> None:
    # min_k w(k) = a + b sigma sqrt(1 - rho^2), reached at k = m - rho sigma / sqrt(1 - rho^2)
    a, b, rho, m, sigma = 0.02, 0.15, -0.35, 0.05, 0.2
    k_min = m - rho * sigma / math.sqrt(1 - rho * rho)
    expected = a + b * sigma * math.sqrt(1 - rho * rho)
    assert total_variance(TYPICAL, k_min) == pytest.approx(expected, rel=1e-14)
    assert total_variance(TYPICAL, k_min + 1e-3) > total_variance(TYPICAL, k_min)
    assert total_variance(TYPICAL, k_min - 1e-3) > total_variance(TYPICAL, k_min)


def test_valid_slice_passes() -> None:
    assert slice_violation(TYPICAL) is None


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"b": -1}, "negative_b"),
        ({"rho": SVI_SCALE}, "rho_out_of_range"),
        ({"rho": -SVI_SCALE}, "rho_out_of_range"),
        ({"sigma": 0}, "non_positive_sigma"),
        ({"b": 1_500_000_000, "rho": 400_000_000}, "wing_slope_above_lee_bound"),
        ({"a": -svi_param_abs_max - 1}, "parameter_out_of_range"),
        ({"expiry_ns": 0}, "non_positive_expiry"),
    ],
)
def test_invalid_slices_are_named(change: dict[str, int], reason: str) -> None:
    fields = {name: getattr(TYPICAL, name) for name in ("expiry_ns", "a", "b", "rho", "m", "sigma")}
    fields.update(change)
    assert slice_violation(SviSlice(**fields)) == reason


def test_negative_variance_boundary_is_exact() -> None:
    # rho = 0: min w = a + b sigma; b = 0.1, sigma = 0.2 -> a may go down to exactly -0.02.
    at_boundary = SviSlice(EXPIRY_NS, -20_000_000, 100_000_000, 0, 0, 200_000_000)
    assert slice_violation(at_boundary) is None
    one_below = SviSlice(EXPIRY_NS, -20_000_001, 100_000_000, 0, 0, 200_000_000)
    assert slice_violation(one_below) == "negative_variance"
    # rho = 0.6: sqrt(1 - rho^2) = 0.8 -> boundary a = -b sigma 0.8 = -0.016 exactly.
    assert (
        slice_violation(SviSlice(EXPIRY_NS, -16_000_000, 100_000_000, 600_000_000, 0, 200_000_000))
        is None
    )
    assert (
        slice_violation(SviSlice(EXPIRY_NS, -16_000_001, 100_000_000, 600_000_000, 0, 200_000_000))
        == "negative_variance"
    )


def test_lee_bound_is_exact() -> None:
    # b (1 + |rho|) = 2 exactly is allowed, one raw unit more is not.
    assert slice_violation(SviSlice(EXPIRY_NS, 0, 1_000_000_000, 0, 0, SVI_SCALE)) is None
    assert slice_violation(SviSlice(EXPIRY_NS, 0, 2_000_000_000, 0, 0, SVI_SCALE)) is None
    assert (
        slice_violation(SviSlice(EXPIRY_NS, 0, 2_000_000_001, 0, 0, SVI_SCALE))
        == "wing_slope_above_lee_bound"
    )


def test_implied_vol_uses_log_moneyness_against_the_forward() -> None:
    t_years = 0.25
    spot, strike, rate = 50_000.0, 55_000.0, 0.05
    k = math.log(strike / (spot * math.exp(rate * t_years)))
    expected = math.sqrt(float(_reference_w(TYPICAL, k)) / t_years)
    assert implied_vol(TYPICAL, spot, strike, t_years, rate) == pytest.approx(expected, rel=1e-13)
    # with r = 0 the forward is the spot
    k0 = math.log(strike / spot)
    expected0 = math.sqrt(float(_reference_w(TYPICAL, k0)) / t_years)
    assert implied_vol(TYPICAL, spot, strike, t_years, 0.0) == pytest.approx(expected0, rel=1e-13)
    assert svi_module.forward(spot, t_years, rate) == pytest.approx(
        spot * math.exp(0.0125), rel=1e-15
    )


def test_vol_ppm_at_is_an_integer_and_none_after_expiry() -> None:
    now_ns = EXPIRY_NS - 30 * NS_PER_DAY
    spot_raw, strike_raw = 60_000 * PRICE_SCALE, 66_000 * PRICE_SCALE
    vol = vol_ppm_at(TYPICAL, spot_raw, strike_raw, now_ns)
    t_years = 30 * NS_PER_DAY / NS_PER_YEAR_365
    expected = math.sqrt(float(_reference_w(TYPICAL, math.log(1.1))) / t_years)
    assert isinstance(vol, int)
    assert abs(vol - expected * VOL_SCALE) <= 0.5 + 1e-6 * vol
    assert vol_ppm_at(TYPICAL, spot_raw, strike_raw, EXPIRY_NS) is None
    assert vol_ppm_at(TYPICAL, spot_raw, strike_raw, EXPIRY_NS + 1) is None
    # the skew: with rho < 0, low strikes carry a higher vol than high strikes
    low = vol_ppm_at(TYPICAL, spot_raw, 40_000 * PRICE_SCALE, now_ns)
    assert low is not None and low > vol


@pytest.mark.parametrize(
    "a,b,rho,m,sigma",
    [(0.02, 0.15, -0.35, 0.05, 0.2), (0.01, 0.3, 0.0, 0.0, 0.1), (0.04, 0.4, -0.8, -0.1, 0.35)],
)
def test_fit_recovers_a_smile_from_its_own_points(
    a: float, b: float, rho: float, m: float, sigma: float
) -> None:
    true = SviSlice.from_floats(EXPIRY_NS, a, b, rho, m, sigma)
    points = [(k / 10.0, total_variance(true, k / 10.0)) for k in range(-15, 16)]
    fitted = fit_slice(EXPIRY_NS, points)
    assert slice_violation(fitted) is None
    assert max(abs(total_variance(fitted, k) - w) for k, w in points) < 1e-6
    for name, tolerance in (("a", 1e-4), ("b", 1e-4), ("rho", 1e-3), ("m", 1e-3), ("sigma", 1e-3)):
        assert abs(getattr(fitted, name) - getattr(true, name)) <= tolerance * SVI_SCALE, name


def test_fit_to_noisy_quotes_stays_within_the_noise() -> None:
    true = SviSlice.from_floats(EXPIRY_NS, 0.02, 0.15, -0.35, 0.05, 0.2)
    rng = random.Random(4)
    points = [
        (k / 10.0, total_variance(true, k / 10.0) * (1.0 + rng.uniform(-0.01, 0.01)))
        for k in range(-15, 16)
    ]
    fitted = fit_slice(EXPIRY_NS, points)
    assert slice_violation(fitted) is None
    worst = max(abs(total_variance(fitted, k) / total_variance(true, k) - 1.0) for k, _ in points)
    assert worst < 0.01


def test_fit_needs_enough_points() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        fit_slice(EXPIRY_NS, [(0.0, 0.01), (0.1, 0.012)])
