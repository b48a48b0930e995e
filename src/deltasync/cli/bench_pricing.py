"""Pricing figures for `deltasync bench` (it needs a clock, so it lives outside the pure layer).

``bench_greeks(n)`` evaluates the full set of Greeks (price, delta, gamma, vega,
theta, rho, one pass each) for ``n`` options spread over moneyness, vol,
expiry and both kinds, on one core, and returns options per second.  The
exchange bench adds it to its JSON as ``greeks_per_s``.
"""

from __future__ import annotations

import random
import time


def _options(n: int, seed: int) -> list[tuple[float, float, float, float, float, bool]]:
    rng = random.Random(seed)
    return [
        (
            100_000.0,
            100_000.0 * rng.uniform(0.5, 1.5),
            rng.uniform(0.2, 1.2),
            rng.uniform(1.0 / 365.0, 1.0),
            0.0 if index % 2 else 0.05,
            index % 4 < 2,
        )
        for index in range(n)
    ]


def bench_greeks(n: int = 200_000, seed: int = 1) -> float:
    """Full Greeks evaluations per second on one core (best of three runs)."""
    from deltasync.exchange.pricing import black_scholes

    assert n > 0
    options = _options(n, seed)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for spot, strike, vol, t_years, rate, is_call in options:
            black_scholes(spot, strike, vol, t_years, rate, is_call)
        elapsed = time.perf_counter() - started
        best = max(best, n / elapsed)
    return best


def bench_mark_prices(n: int = 200_000, seed: int = 1) -> float:
    """Integer-in, integer-out mark prices per second (the state machine's path)."""
    from deltasync.core.fixed import PRICE_SCALE
    from deltasync.core.ids import OptionKind
    from deltasync.core.timeutil import NS_PER_YEAR_365
    from deltasync.exchange.pricing import mark_price_raw

    raw = [
        (
            int(spot * PRICE_SCALE),
            int(strike * PRICE_SCALE),
            int(vol * 1_000_000),
            int(t_years * NS_PER_YEAR_365),
            int(rate * 1_000_000),
            OptionKind.CALL if is_call else OptionKind.PUT,
        )
        for spot, strike, vol, t_years, rate, is_call in _options(n, seed)
    ]
    started = time.perf_counter()
    for spot_raw, strike_raw, vol_ppm, t_ns, rate_ppm, kind in raw:
        mark_price_raw(spot_raw, strike_raw, vol_ppm, t_ns, rate_ppm, kind)
    return n / (time.perf_counter() - started)
