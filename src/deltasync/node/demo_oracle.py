"""The demo oracle: signed price reports of the public demo sources (demo mode only).

One sans-I/O object serves every demo: a demo node's leader submits what it returns
(``NodeServer._demo_oracle``), the demo scenario relays it through the API
(``deltasync.demo.oracle``), and a single-node venue puts it in its blocks.

``DemoOracle`` keeps a "true" price per underlying that moves with block time: a
Gaussian walk in log space, Poisson jumps, and an optional scheduled ``Drop`` (a
crash). Each demo source observes the true price with its own noise, now and then
sends a bad tick, stays silent during its outage, and signs its report with its
public demo seed. With the default options prices stay where they are put and the
three default sources report them exactly: ``reports(t)`` is then what
``exchange.assembly.demo_reports(prices, t)`` signs.

Randomness comes only from the ``random.Random`` the caller passes in (nothing is
drawn for a feature that is off), time only from the block times it is given.
Prices are floats here; the reports carry integer ``Price``s, so nothing of the
float arithmetic reaches replicated state except through the log.

The seeds are public on purpose: ``sha256(b"deltasync/demo-oracle/" + source id)``,
the scheme of ``exchange.assembly.DEMO_ORACLE_SEEDS``. Never use them outside demos.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from deltasync.core.fixed import Price
from deltasync.exchange.assembly import DEMO_SOURCE_IDS
from deltasync.exchange.oracle import OracleReport, sign_report
from deltasync.exchange.svi import SviSlice

NS_PER_S = 1_000_000_000
NS_PER_YEAR = 365 * 86_400 * NS_PER_S
DEMO_SEED_PREFIX = b"deltasync/demo-oracle/"
SMILE_EXPIRY_MARGIN_NS = 60 * NS_PER_S  # an expiry closer than this gets no smile
ATM_VOL_DEFAULT = 0.6


def demo_source_seed(source_id: str) -> bytes:
    """The public ed25519 seed of a demo source (demos and tests only)."""
    return hashlib.sha256(DEMO_SEED_PREFIX + source_id.encode()).digest()


@dataclass(frozen=True, slots=True)
class SourceBehaviour:
    """How one demo source observes the true price."""

    noise: float = 0.0  # relative standard deviation of one observation
    bad_tick_probability: float = 0.0  # chance that an observation is off by ``bad_tick``
    bad_tick: float = 0.04  # relative error of a bad tick, up or down
    silent_ns: tuple[int, int] | None = None  # block-time window [start, end) of an outage


@dataclass(frozen=True, slots=True)
class Drop:
    """A scheduled fall of the true prices, linear over ``length_ns`` of block time."""

    start_ns: int
    length_ns: int
    fraction: Mapping[str, float]  # underlying -> fraction lost at the bottom (0.2 = -20 %)

    def progress(self, time_ns: int) -> float:
        """0 before the drop, 1 from its bottom on."""
        if time_ns <= self.start_ns:
            return 0.0
        return min(1.0, (time_ns - self.start_ns) / max(1, self.length_ns))


@dataclass(frozen=True, slots=True)
class DemoOracleOptions:
    """What the demo oracle simulates. The defaults: fixed prices, three exact sources."""

    sources: tuple[str, ...] = DEMO_SOURCE_IDS
    behaviour: Mapping[str, SourceBehaviour] = field(default_factory=dict)  # by source id
    vol_per_sqrt_s: float = 0.0  # walk of the log price per square-root second of block time
    jump_every_s: float = 0.0  # mean block seconds between jumps (0: no jumps)
    jump_size: tuple[float, float] = (0.005, 0.015)  # a jump's size in log price, up or down
    drop: Drop | None = None
    smile_expiries_ns: tuple[int, ...] = ()  # each report carries an SVI smile per expiry
    atm_vol: Mapping[str, float] = field(default_factory=dict)  # by underlying, for smiles


class DemoOracle:
    """True prices that move with block time, observed and signed by the demo sources.

    ``options`` may be replaced between calls (the demo scenario schedules its crash
    and its outage once trading starts).
    """

    def __init__(
        self,
        rng: random.Random,
        reference_prices_raw: Mapping[str, int],
        options: DemoOracleOptions | None = None,
    ) -> None:
        assert reference_prices_raw and all(raw > 0 for raw in reference_prices_raw.values())
        self.rng = rng
        self.options = options if options is not None else DemoOracleOptions()
        self._base_raw = dict(reference_prices_raw)
        self._walk = {underlying: 0.0 for underlying in reference_prices_raw}
        self._time_ns: int | None = None  # block time the walk has reached
        self.bad_ticks = 0  # bad ticks sent so far

    @property
    def underlyings(self) -> tuple[str, ...]:
        return tuple(sorted(self._base_raw))

    def set_price(self, underlying: str, price_raw: int) -> None:
        """Put the true price of ``underlying`` at ``price_raw`` (the walk restarts there)."""
        assert price_raw > 0 and underlying in self._base_raw, (underlying, price_raw)
        self._base_raw[underlying] = price_raw
        self._walk[underlying] = 0.0

    def advance(self, time_ns: int) -> None:
        """Move the true prices to block time ``time_ns`` (earlier times change nothing)."""
        if self._time_ns is None:
            self._time_ns = time_ns
            return
        if time_ns <= self._time_ns:
            return
        dt_s = (time_ns - self._time_ns) / NS_PER_S
        self._time_ns = time_ns
        options = self.options
        for underlying in sorted(self._walk):
            if options.vol_per_sqrt_s > 0:
                self._walk[underlying] += self.rng.gauss(0.0, options.vol_per_sqrt_s * math.sqrt(dt_s))
            if options.jump_every_s > 0 and self.rng.random() < dt_s / options.jump_every_s:
                size = self.rng.uniform(*options.jump_size)
                self._walk[underlying] += self.rng.choice((-1.0, 1.0)) * size

    def price_raw(self, underlying: str, time_ns: int) -> int:
        """The true price at ``time_ns`` (after ``advance``), in ``Price`` raw units."""
        base, walk = self._base_raw[underlying], self._walk[underlying]
        drop = self.options.drop
        lost = 0.0 if drop is None else drop.fraction.get(underlying, 0.0) * drop.progress(time_ns)
        if walk == 0.0 and lost == 0.0:
            return base
        return max(1, round(base * math.exp(walk) * (1.0 - lost)))

    def reports(
        self,
        time_ns: int,
        underlyings: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
    ) -> list[OracleReport]:
        """Advance to ``time_ns``, then one signed report per source (default: all of
        ``options.sources``) and underlying (default: all), stamped ``time_ns``, in order
        of underlying, then source; a source in its outage reports nothing."""
        self.advance(time_ns)
        chosen_sources = self.options.sources if sources is None else tuple(sources)
        chosen = self.underlyings if underlyings is None else sorted(underlyings)
        out: list[OracleReport] = []
        for underlying in chosen:
            true_raw = self.price_raw(underlying, time_ns)
            for source in chosen_sources:
                behaviour = self.options.behaviour.get(source, SourceBehaviour())
                silent = behaviour.silent_ns
                if silent is not None and silent[0] <= time_ns < silent[1]:
                    continue
                observed = Price(self._observe(true_raw, behaviour))
                surface = self._smile(underlying, time_ns)
                out.append(sign_report(demo_source_seed(source), source, underlying, observed,
                                       time_ns, surface))
        return out

    def _observe(self, true_raw: int, behaviour: SourceBehaviour) -> int:
        if behaviour.noise <= 0 and behaviour.bad_tick_probability <= 0:
            return true_raw
        price = float(true_raw)
        if behaviour.noise > 0:
            price *= 1.0 + self.rng.gauss(0.0, behaviour.noise)
        if behaviour.bad_tick_probability > 0 and self.rng.random() < behaviour.bad_tick_probability:
            price *= 1.0 + self.rng.choice((-1.0, 1.0)) * behaviour.bad_tick
            self.bad_ticks += 1  # the oracle's clamp band absorbs it
        return max(1, round(price))

    def _smile(self, underlying: str, time_ns: int) -> tuple[SviSlice, ...] | None:
        """One SVI slice per listed expiry after ``time_ns``: skewed to puts, the ATM vol
        rising by half during a drop."""
        options = self.options
        if not options.smile_expiries_ns:
            return None
        progress = 0.0 if options.drop is None else options.drop.progress(time_ns)
        atm_vol = options.atm_vol.get(underlying, ATM_VOL_DEFAULT) * (1.0 + 0.5 * progress)
        slices = []
        for expiry_ns in sorted(options.smile_expiries_ns):
            if expiry_ns <= time_ns + SMILE_EXPIRY_MARGIN_NS:
                continue  # about to pass: no smile (the margin engine's default vol)
            t_years = (expiry_ns - time_ns) / NS_PER_YEAR
            vol = atm_vol * (1.0 + self.rng.uniform(-0.02, 0.02))
            b, sigma = 0.5 * t_years, 0.1
            a = vol * vol * t_years - b * sigma
            slices.append(SviSlice.from_floats(expiry_ns, a, b, -0.3, 0.0, sigma))
        return tuple(slices) or None
