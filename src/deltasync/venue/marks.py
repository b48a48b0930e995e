"""Mark price, implied volatilities and Greeks for display.

The venue shows what Deribit's ticker shows: ``mark_price`` (Black-Scholes at
the index and the smile's vol), ``mark_iv``, ``bid_iv``/``ask_iv`` (the vols
that price the best bid and ask) and the Greeks. These are computed with the
exchange's own pricing functions (so they agree with the state machine's
marks) but they are display values: nothing replicated depends on them.
IVs are in percent, as Deribit sends them (``55.1`` is 55.1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_YEAR_365
from deltasync.exchange import pricing
from deltasync.exchange.instruments import Instrument
from deltasync.venue.views import Greeks

_PERCENT_PPM = Decimal(10_000)  # vol ppm -> percent


@dataclass(frozen=True, slots=True)
class Marks:
    mark_price_raw: int
    mark_iv: Decimal
    greeks: Greeks
    bid_iv: Decimal | None
    ask_iv: Decimal | None


def _iv_percent(price_raw: int | None, spot: float, strike: float, t_years: float,
                is_call: bool) -> Decimal | None:
    if price_raw is None or price_raw <= 0 or t_years <= 0:
        return None
    result = pricing.implied_vol(price_raw / pricing.PRICE_SCALE, spot, strike, t_years, 0.0,
                                 is_call)
    if result.vol is None:
        return None
    return Decimal(repr(round(result.vol * 100, 2)))


def compute_marks(
    instrument: Instrument,
    spot_raw: int,
    vol_ppm: int,
    time_ns: int,
    best_bid_raw: int | None = None,
    best_ask_raw: int | None = None,
) -> Marks:
    t_ns = instrument.expiry_ns - time_ns
    raw = pricing.greeks_raw(spot_raw, instrument.strike_raw, vol_ppm, t_ns, 0, instrument.kind)
    greeks = Greeks(
        delta=Decimal(raw.delta) / pricing.DELTA_SCALE,
        gamma=Decimal(raw.gamma) / pricing.GAMMA_SCALE,
        vega=Decimal(raw.vega) / pricing.GREEK_MONEY_SCALE,
        theta=Decimal(raw.theta) / pricing.GREEK_MONEY_SCALE,
        rho=Decimal(raw.rho) / pricing.GREEK_MONEY_SCALE,
    )
    spot = spot_raw / pricing.PRICE_SCALE
    strike = instrument.strike_raw / pricing.PRICE_SCALE
    t_years = max(t_ns, 0) / NS_PER_YEAR_365
    is_call = instrument.kind is OptionKind.CALL
    return Marks(
        mark_price_raw=raw.price,
        mark_iv=Decimal(vol_ppm) / _PERCENT_PPM,
        greeks=greeks,
        bid_iv=_iv_percent(best_bid_raw, spot, strike, t_years, is_call),
        ask_iv=_iv_percent(best_ask_raw, spot, strike, t_years, is_call),
    )
