"""Raw SVI volatility smiles (Gatheral 2004), integer parameters, basic-op evaluation.

One ``SviSlice`` describes the smile of one underlying at one expiry by its
total implied variance as a function of log-moneyness::

    w(k) = a + b * (rho * (k - m) + sqrt((k - m)^2 + sigma^2))
    k    = ln(K / F),  F = S * exp(r T)          (forward; r = 0 gives F = S)
    vol(K) = sqrt(w(k) / T),  T = (expiry_ns - now_ns) / NS_PER_YEAR_365

Scales (replicated state holds integers only): ``a, b, rho, m, sigma`` are
stored at ``SVI_SCALE`` = 1e9 (``a = 0.04`` is 40_000_000); ``a`` is total
variance (vol^2 x years), ``b`` and ``rho`` are dimensionless, ``m`` and
``sigma`` are in log-moneyness.  ``expiry_ns`` is block time in ns.

Validity (``slice_violation``), checked exactly with integers:

- ``b >= 0``, ``|rho| < 1``, ``sigma > 0``;
- no negative variance: the minimum of ``w``, ``a + b sigma sqrt(1 - rho^2)``,
  is ``>= 0`` (checked as ``b^2 sigma^2 (1 - rho^2) >= a^2`` when ``a < 0``);
- Roger Lee's moment bound on the wings: ``b (1 + |rho|) <= 2`` (total
  variance cannot grow faster than ``2|k|``);
- every parameter within ``limits.svi_param_abs_max`` (keeps float evaluation tame).

Evaluation uses IEEE basic operations, ``math.sqrt`` and the basic-op
``log``/``exp`` of ``deltasync.exchange.pricing``, so it may sit on the state
path: ``vol_ppm_at`` returns integer vol in ``pricing.VOL_SCALE`` units ready for
``pricing.mark_price_raw``.  Butterfly/calendar arbitrage across slices is the
fitting source's concern; the oracle aggregates several sources by taking the
median of their vols at each strike.

``fit_slice(expiry_ns, [(k, w), ...])`` fits a valid slice to market total
variances (Zeliade's quasi-explicit method: a linear least squares in
``(a, b rho sigma, b sigma)`` for fixed ``(m, sigma)``, searched on a grid and then
locally); it is for price sources and tests, not for the state path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deltasync.core import limits
from deltasync.core.timeutil import NS_PER_YEAR_365
from deltasync.exchange.pricing import RATE_SCALE, VOL_SCALE, exp, float_to_raw, log

SVI_SCALE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SviSlice:
    """Raw SVI parameters of one expiry, each at SVI_SCALE."""

    expiry_ns: int
    a: int
    b: int
    rho: int
    m: int
    sigma: int

    @classmethod
    def from_floats(
        cls, expiry_ns: int, a: float, b: float, rho: float, m: float, sigma: float
    ) -> SviSlice:
        """For publishers and tests: round each parameter half-even to SVI_SCALE."""
        return cls(
            expiry_ns,
            *(float_to_raw(value, SVI_SCALE) for value in (a, b, rho, m, sigma)),
        )

    def to_wire(self) -> list[int]:
        return [self.expiry_ns, self.a, self.b, self.rho, self.m, self.sigma]


def slice_violation(svi: SviSlice) -> str | None:
    """The first rule the slice breaks (a reason code), or None if it is valid."""
    scale = SVI_SCALE
    bound = limits.svi_param_abs_max
    for value in (svi.a, svi.b, svi.rho, svi.m, svi.sigma):
        if type(value) is not int or not -bound <= value <= bound:
            return "parameter_out_of_range"
    if type(svi.expiry_ns) is not int or svi.expiry_ns <= 0:
        return "non_positive_expiry"
    if svi.b < 0:
        return "negative_b"
    if not -scale < svi.rho < scale:
        return "rho_out_of_range"
    if svi.sigma <= 0:
        return "non_positive_sigma"
    # Lee: b (1 + |rho|) <= 2  <=>  b_raw (S + |rho_raw|) <= 2 S^2
    if svi.b * (scale + abs(svi.rho)) > 2 * scale * scale:
        return "wing_slope_above_lee_bound"
    # min w = a + b sigma sqrt(1 - rho^2) >= 0; with a < 0 square both sides:
    # b^2 sigma^2 (1 - rho^2) >= a^2  <=>  b_r^2 sigma_r^2 (S^2 - rho_r^2) >= a_r^2 S^4
    if svi.a < 0:
        lhs = svi.b * svi.b * svi.sigma * svi.sigma * (scale * scale - svi.rho * svi.rho)
        if lhs < svi.a * svi.a * scale**4:
            return "negative_variance"
    return None


def total_variance(svi: SviSlice, log_moneyness: float) -> float:
    """w(k), clamped at 0 (a valid slice is >= 0 up to rounding)."""
    scale = float(SVI_SCALE)
    shifted = log_moneyness - svi.m / scale
    sigma = svi.sigma / scale
    w = svi.a / scale + (svi.b / scale) * (
        (svi.rho / scale) * shifted + math.sqrt(shifted * shifted + sigma * sigma)
    )
    return w if w > 0.0 else 0.0


def log_moneyness(spot: float, strike: float, t_years: float, rate: float) -> float:
    """k = ln(K / F) with F = S exp(r T): ln(K/S) - r T."""
    return log(strike / spot) - rate * t_years


def implied_vol(svi: SviSlice, spot: float, strike: float, t_years: float, rate: float) -> float:
    """sqrt(w(k) / T) at the strike; T must be positive."""
    assert t_years > 0.0, t_years
    return math.sqrt(total_variance(svi, log_moneyness(spot, strike, t_years, rate)) / t_years)


def vol_ppm_at(
    svi: SviSlice, spot_raw: int, strike_raw: int, now_ns: int, rate_ppm: int = 0
) -> int | None:
    """Integer vol (VOL_SCALE) at a strike at block time ``now_ns``; None once expired."""
    t_ns = svi.expiry_ns - now_ns
    if t_ns <= 0:
        return None
    assert spot_raw > 0 and strike_raw > 0, (spot_raw, strike_raw)
    t_years = t_ns / NS_PER_YEAR_365  # int / int: one correctly rounded division
    k = log(strike_raw / spot_raw) - (rate_ppm / RATE_SCALE) * t_years
    return float_to_raw(math.sqrt(total_variance(svi, k) / t_years), VOL_SCALE)


def forward(spot: float, t_years: float, rate: float) -> float:
    """F = S exp(r T) (for callers that want the forward explicitly)."""
    return spot * exp(rate * t_years)


# --- fitting (for price sources; not on the state path) ------------------------------------


def _solve3(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting on a 3x3 system; None if singular."""
    rows = [matrix[i][:] + [rhs[i]] for i in range(3)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-300:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, 3):
            factor = rows[r][col] / rows[col][col]
            for c in range(col, 4):
                rows[r][c] -= factor * rows[col][c]
    out = [0.0, 0.0, 0.0]
    for r in (2, 1, 0):
        out[r] = (rows[r][3] - sum(rows[r][c] * out[c] for c in range(r + 1, 3))) / rows[r][r]
    return out


def _fit_inner(
    points: list[tuple[float, float]], m: float, sigma: float
) -> tuple[float, tuple[float, float, float]] | None:
    """For fixed (m, sigma), w = a + d y + c sqrt(y^2 + 1) with y = (k - m)/sigma is linear
    in (a, d, c) (Zeliade's quasi-explicit form): least squares, then the SVI validity rules."""
    sums = [[0.0] * 3 for _ in range(3)]
    rhs = [0.0, 0.0, 0.0]
    for k, w in points:
        y = (k - m) / sigma
        basis = (1.0, y, math.sqrt(y * y + 1.0))
        for i in range(3):
            rhs[i] += basis[i] * w
            for j in range(3):
                sums[i][j] += basis[i] * basis[j]
    solution = _solve3(sums, rhs)
    if solution is None:
        return None
    a, d, c = solution
    if c <= 0.0 or abs(d) >= c:
        return None
    b, rho = c / sigma, d / c
    if b * (1.0 + abs(rho)) > 2.0 or a + b * sigma * math.sqrt(1.0 - rho * rho) < 0.0:
        return None
    error = 0.0
    for k, w in points:
        y = (k - m) / sigma
        residual = a + d * y + c * math.sqrt(y * y + 1.0) - w
        error += residual * residual
    return error, (a, b, rho)


def fit_slice(expiry_ns: int, points: list[tuple[float, float]], rounds: int = 40) -> SviSlice:
    """Fit raw SVI to (log-moneyness, total variance) points; raises ValueError if no fit.

    A coarse grid over (m, sigma) with the inner linear least squares, then a
    shrinking local search around the best valid candidate.  Meant for price
    sources (publishers), not for the state machine.
    """
    if len(points) < 5:
        raise ValueError("need at least 5 points to fit 5 SVI parameters")
    ks = [k for k, _ in points]
    k_low, k_high = min(ks), max(ks)
    span = max(k_high - k_low, 1e-3)
    best: tuple[float, float, float, tuple[float, float, float]] | None = None
    for i in range(21):
        m = k_low - 0.25 * span + 1.5 * span * i / 20.0
        sigma = 0.002
        while sigma < 4.0:
            fit = _fit_inner(points, m, sigma)
            if fit is not None and (best is None or fit[0] < best[0]):
                best = (fit[0], m, sigma, fit[1])
            sigma *= 1.5
    if best is None:
        raise ValueError("no valid SVI slice fits these points")
    step_m, step_sigma = 0.1 * span, 0.5
    for _ in range(rounds):
        improved = False
        _, m0, s0, _ = best
        for dm in (-step_m, 0.0, step_m):
            for factor in (1.0 / (1.0 + step_sigma), 1.0, 1.0 + step_sigma):
                fit = _fit_inner(points, m0 + dm, s0 * factor)
                if fit is not None and fit[0] < best[0]:
                    best = (fit[0], m0 + dm, s0 * factor, fit[1])
                    improved = True
        if not improved:
            step_m *= 0.5
            step_sigma *= 0.5
    _, m, sigma, (a, b, rho) = best
    fitted = SviSlice.from_floats(expiry_ns, a, b, rho, m, sigma)
    if slice_violation(fitted) == "negative_variance":  # rounding at the boundary: lift a
        fitted = SviSlice(expiry_ns, fitted.a + 1, fitted.b, fitted.rho, fitted.m, fitted.sigma)
    violation = slice_violation(fitted)
    if violation is not None:
        raise ValueError(f"fitted slice is invalid: {violation}")
    return fitted
