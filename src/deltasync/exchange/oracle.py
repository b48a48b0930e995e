"""Oracle synchronization: signed reports -> index prices, circuit breaker, smiles, TWAP.

A pure component (no clock, no I/O): block time arrives as an argument.  The
exchange state machine plugs it in like this::

    oracle = OracleState(OracleConfig.from_dict(genesis["oracle"]))
    # for each OracleReport command in a block, in log order:
    events += oracle.on_report(command, block.time_ns)
    # once per block, after the block's commands and before margin/liquidation:
    events += oracle.on_block(block.time_ns)
    oracle.index_price("BTC")            # Price | None
    oracle.is_cancel_only("BTC")         # new orders refused, liquidations paused
    oracle.vol_at("BTC", expiry_ns, strike_raw, block.time_ns)  # vol ppm | None
    oracle.mark_price_raw("BTC", expiry_ns, strike_raw, OptionKind.CALL, block.time_ns)
    oracle.twap_raw("BTC", expiry_ns)    # settlement price (raw) | None
    # state root: oracle.records() / oracle.dirty_records(); oracle.clear_dirty()
    # snapshots: oracle.snapshot() (plain canonical data), OracleState.restore(config, data)

Commands and events are frozen dataclasses registered in ``ORACLE_REGISTRY``
with tags in 100..199 (the exchange registries reserve that range for this
module; merge by re-registering the same classes with the same tags).

Reports
-------
``OracleReport(source_id, underlying, price, ts_ns, vol_surface, signature)``;
the signature is ed25519 over ``REPORT_DOMAIN + codec.encode([source_id,
underlying, price_raw, ts_ns, surface])`` where ``surface`` is ``None`` or a list of
``[expiry_ns, a, b, rho, m, sigma]`` (``svi.SviSlice`` at ``svi.SVI_SCALE``).  A report is
rejected with an ``OracleReportRejected`` event, checked in this order:
``unknown_source``, ``source_not_allowed_for_underlying``, ``bad_signature``,
``non_positive_price``, ``timestamp_out_of_window`` (``|ts - block time| >
max_report_skew_ns``), ``not_newer`` (a replay or reordering: ``ts_ns`` not above the
source's last accepted report for that underlying), ``invalid_vol_surface``.
Only the latest report per (underlying, source) is kept.

Index (per underlying, recomputed by ``on_block``, integers only)
------------------------------------------------------------------
1. fresh reports: the latest of each allowed source with ``block_time - ts_ns
   <= staleness_ns``; fewer than ``min_sources`` -> breaker reason ``stale``.
2. ``median`` of their prices (an even count averages the two middle prices,
   rounding half-even); ``band = median * clamp_band_ppm // 1e6``.
3. fewer than ``min_sources`` prices inside ``[median - band, median + band]``
   -> breaker reason ``sources_disagree``.
4. candidate index = round_half_even(mean of the prices clamped to that band).
   A lying source moves it by at most ``band / n``; a minority of liars cannot
   move the median at all.
5. if an index was accepted before and ``|candidate - last| * 1e6 >
   jump_bound_ppm * last``, the jump needs ``jump_confirm_sources`` fresh prices
   within ``candidate * clamp_band_ppm // 1e6`` of the candidate; otherwise the
   index is held at ``last`` and the breaker reason is ``unconfirmed_jump``.
6. otherwise the candidate becomes the index (``IndexPriceUpdated`` when it
   changes) and a tripped breaker resets (``CircuitBreakerReset``).

Circuit breaker: an underlying is cancel-only from genesis until its first index
and whenever a step above fails; ``CircuitBreakerTripped(underlying, reason, ...)``
marks the transition into cancel-only, ``CircuitBreakerReset`` the way out.  The
index price is never cleared: a tripped underlying keeps its last accepted index.

Volatility: ``vol_at`` takes, among fresh reports carrying a slice for that
expiry, each source's SVI vol at the strike (log-moneyness against the index,
rate ``rate_ppm``, 0 by default so F = index) and returns their median (vol ppm).

Settlement TWAP: the index is sampled on a grid of ``twap_interval_ns`` (1 s) of
block time; the sample at grid time g is the index in effect at g (after the
last block with time <= g).  ``twap_raw(u, end_ns)`` is the round-half-even mean
of the samples at grid times in ``(end_ns - twap_window_ns, end_ns]`` (1800
samples for 30 min), exact in integers; grid times after the last block use the
current index; times before the first index have no sample (the mean covers
what exists).  Storage is a ring of ``2 x window / interval`` slots per
underlying, so the settlement block may come up to one window after expiry.

State root: ``records()`` are (key, value) pairs of canonical bytes:
``b"oracle/report/" + encode([u, source])`` -> ``[price, ts_ns, surface]``,
``b"oracle/index/" + encode(u)`` -> ``[index or None, cancel_only, reason or None,
last_grid_ns or None]``, ``b"oracle/twap/" + encode([u, slot])`` -> ``[grid_ns, price]``,
``b"oracle/clock"`` -> last block time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from deltasync.core import limits
from deltasync.core.codec import Registry, encode
from deltasync.core.errors import ConfigError
from deltasync.core.fixed import Price, Rounding, div_round
from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_MINUTE, NS_PER_SECOND
from deltasync.exchange import pricing
from deltasync.exchange.events import RejectReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.ports import StateAccess
from deltasync.exchange.sequencing import Context
from deltasync.exchange.svi import SviSlice, slice_violation, vol_ppm_at

ORACLE_REGISTRY = Registry("oracle")
ORACLE_REGISTRY.register(101)(SviSlice)

REPORT_DOMAIN = b"deltasync/oracle-report/v1\x00"
PPM = 1_000_000
TWAP_WINDOW_NS_DEFAULT = 30 * NS_PER_MINUTE
TWAP_INTERVAL_NS_DEFAULT = NS_PER_SECOND

_KEY_REPORT = b"oracle/report/"
_KEY_INDEX = b"oracle/index/"
_KEY_TWAP = b"oracle/twap/"
_KEY_CLOCK = b"oracle/clock"


class BreakerReason(Enum):
    STALE = "stale"  # fewer than min_sources fresh reports (also: no index yet)
    SOURCES_DISAGREE = "sources_disagree"  # fewer than min_sources inside the band
    UNCONFIRMED_JUMP = "unconfirmed_jump"  # beyond jump_bound, too few confirmations


# --- commands and events ------------------------------------------------------


@ORACLE_REGISTRY.register(100)
@dataclass(frozen=True, slots=True)
class OracleReport:
    """Command: one source's signed price (and optional smile) for one underlying."""

    source_id: str
    underlying: str
    price: Price
    ts_ns: int
    vol_surface: tuple[SviSlice, ...] | None
    signature: bytes


@ORACLE_REGISTRY.register(110)
@dataclass(frozen=True, slots=True)
class OracleReportAccepted:
    source_id: str
    underlying: str
    price: Price
    ts_ns: int


@ORACLE_REGISTRY.register(111)
@dataclass(frozen=True, slots=True)
class OracleReportRejected:
    source_id: str
    underlying: str
    reason: RejectReason
    detail: str


@ORACLE_REGISTRY.register(112)
@dataclass(frozen=True, slots=True)
class IndexPriceUpdated:
    underlying: str
    price: Price
    sources: int  # fresh reports that formed it
    block_time_ns: int


@ORACLE_REGISTRY.register(113)
@dataclass(frozen=True, slots=True)
class CircuitBreakerTripped:
    underlying: str
    reason: BreakerReason
    fresh_sources: int
    candidate: Price | None  # the index that was refused (unconfirmed jump), if any
    block_time_ns: int


@ORACLE_REGISTRY.register(114)
@dataclass(frozen=True, slots=True)
class CircuitBreakerReset:
    underlying: str
    price: Price  # the index it resumes with
    block_time_ns: int


OracleEvent = (
    OracleReportAccepted
    | OracleReportRejected
    | IndexPriceUpdated
    | CircuitBreakerTripped
    | CircuitBreakerReset
)


# --- signing ---------------------------------------------------------------------


def _surface_wire(vol_surface: tuple[SviSlice, ...] | None) -> list[list[int]] | None:
    return None if vol_surface is None else [svi.to_wire() for svi in vol_surface]


def report_signing_bytes(
    source_id: str,
    underlying: str,
    price: Price,
    ts_ns: int,
    vol_surface: tuple[SviSlice, ...] | None,
) -> bytes:
    """The exact bytes a source signs (domain-separated canonical encoding)."""
    return REPORT_DOMAIN + encode(
        [source_id, underlying, price.raw, ts_ns, _surface_wire(vol_surface)]
    )


def sign_report(
    signing_key: bytes,
    source_id: str,
    underlying: str,
    price: Price,
    ts_ns: int,
    vol_surface: tuple[SviSlice, ...] | None = None,
) -> OracleReport:
    """Build a signed report (publishers and tests; ``signing_key`` is the 32-byte seed)."""
    message = report_signing_bytes(source_id, underlying, price, ts_ns, vol_surface)
    signature = SigningKey(signing_key).sign(message).signature
    return OracleReport(source_id, underlying, price, ts_ns, vol_surface, bytes(signature))


def public_key_of(signing_key: bytes) -> bytes:
    return bytes(SigningKey(signing_key).verify_key)


# --- configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OracleSourceConfig:
    source_id: str
    public_key: bytes  # ed25519, 32 bytes
    underlyings: tuple[str, ...]  # sorted


@dataclass(frozen=True, slots=True)
class OracleConfig:
    sources: tuple[OracleSourceConfig, ...]  # sorted by source_id
    min_sources: int
    staleness_ns: int
    clamp_band_ppm: int
    max_report_skew_ns: int
    jump_bound_ppm: int
    jump_confirm_sources: int
    twap_window_ns: int = TWAP_WINDOW_NS_DEFAULT
    twap_interval_ns: int = TWAP_INTERVAL_NS_DEFAULT

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> OracleConfig:
        """Parse and validate the genesis ``oracle`` section (raises ConfigError)."""
        if not isinstance(raw, Mapping):
            raise ConfigError(key="oracle", reason="expected a mapping")
        known = {
            "sources", "min_sources", "staleness_ns", "clamp_band_ppm", "max_report_skew_ns",
            "jump_bound_ppm", "jump_confirm_sources", "twap_window_ns", "twap_interval_ns",
        }  # fmt: skip
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(key=f"oracle.{unknown[0]}", reason="unknown key")
        sources_raw = raw.get("sources")
        if not isinstance(sources_raw, list) or not 1 <= len(sources_raw) <= limits.oracle_sources_max:
            raise ConfigError(
                key="oracle.sources", reason=f"expected a list of 1..{limits.oracle_sources_max} sources"
            )
        sources = tuple(
            sorted(
                (_parse_source(index, item) for index, item in enumerate(sources_raw)),
                key=lambda source: source.source_id,
            )
        )
        ids = [source.source_id for source in sources]
        for previous, current in zip(ids, ids[1:], strict=False):
            if previous == current:
                raise ConfigError(key="oracle.sources", reason=f"duplicate source id {current!r}")

        def integer(key: str, low: int, high: int, default: int | None = None) -> int:
            value = raw.get(key, default)
            if type(value) is not int or not low <= value <= high:
                raise ConfigError(
                    key=f"oracle.{key}", reason=f"expected an integer in [{low}, {high}]"
                )
            return value

        day_ns = 24 * 60 * NS_PER_MINUTE
        config = cls(
            sources=sources,
            min_sources=integer("min_sources", 1, limits.oracle_sources_max),
            staleness_ns=integer("staleness_ns", 1, day_ns),
            clamp_band_ppm=integer("clamp_band_ppm", 0, PPM - 1),
            max_report_skew_ns=integer("max_report_skew_ns", 0, day_ns),
            jump_bound_ppm=integer("jump_bound_ppm", 1, 100 * PPM),
            jump_confirm_sources=integer("jump_confirm_sources", 1, limits.oracle_sources_max),
            twap_window_ns=integer("twap_window_ns", 1, day_ns, TWAP_WINDOW_NS_DEFAULT),
            twap_interval_ns=integer("twap_interval_ns", 1, day_ns, TWAP_INTERVAL_NS_DEFAULT),
        )
        config._check_relations()
        return config

    def _check_relations(self) -> None:
        if self.twap_window_ns % self.twap_interval_ns != 0:
            raise ConfigError(
                key="oracle.twap_window_ns", reason="must be a multiple of twap_interval_ns"
            )
        if 2 * self.twap_window_ns // self.twap_interval_ns > limits.oracle_twap_samples_max:
            raise ConfigError(
                key="oracle.twap_interval_ns",
                reason=f"2 x window / interval must be at most {limits.oracle_twap_samples_max} slots",
            )
        for underlying in self.underlyings():
            allowed = len(self.sources_for(underlying))
            if allowed < self.min_sources:
                raise ConfigError(
                    key="oracle.min_sources",
                    reason=f"{underlying} has {allowed} sources, fewer than min_sources",
                )
            if allowed < self.jump_confirm_sources:
                raise ConfigError(
                    key="oracle.jump_confirm_sources",
                    reason=f"{underlying} has {allowed} sources, a jump could never be confirmed",
                )

    def underlyings(self) -> tuple[str, ...]:
        return tuple(sorted({u for source in self.sources for u in source.underlyings}))

    def sources_for(self, underlying: str) -> tuple[str, ...]:
        """Source ids allowed to report ``underlying``, sorted."""
        return tuple(s.source_id for s in self.sources if underlying in s.underlyings)

    def to_dict(self) -> dict[str, Any]:
        """The plain (genesis-style) form; ``from_dict(to_dict())`` round-trips."""
        return {
            "sources": [
                {
                    "id": source.source_id,
                    "public_key": source.public_key.hex(),
                    "underlyings": list(source.underlyings),
                }
                for source in self.sources
            ],
            "min_sources": self.min_sources,
            "staleness_ns": self.staleness_ns,
            "clamp_band_ppm": self.clamp_band_ppm,
            "max_report_skew_ns": self.max_report_skew_ns,
            "jump_bound_ppm": self.jump_bound_ppm,
            "jump_confirm_sources": self.jump_confirm_sources,
            "twap_window_ns": self.twap_window_ns,
            "twap_interval_ns": self.twap_interval_ns,
        }


def _parse_source(index: int, item: Any) -> OracleSourceConfig:
    key = f"oracle.sources[{index}]"
    if not isinstance(item, Mapping) or sorted(item) != ["id", "public_key", "underlyings"]:
        raise ConfigError(key=key, reason="expected {id, public_key, underlyings}")
    source_id = item["id"]
    if not _is_name(source_id):
        raise ConfigError(key=f"{key}.id", reason="expected a non-empty printable ASCII id")
    public_key_hex = item["public_key"]
    try:
        public_key = bytes.fromhex(public_key_hex) if isinstance(public_key_hex, str) else b""
    except ValueError:
        public_key = b""
    if len(public_key) != 32:
        raise ConfigError(key=f"{key}.public_key", reason="expected 64 hex digits (ed25519)")
    try:
        VerifyKey(public_key)
    except CryptoError:
        raise ConfigError(key=f"{key}.public_key", reason="not an ed25519 public key") from None
    underlyings = item["underlyings"]
    if (
        not isinstance(underlyings, list)
        or not underlyings
        or not all(_is_name(u) for u in underlyings)
        or len(set(underlyings)) != len(underlyings)
    ):
        raise ConfigError(key=f"{key}.underlyings", reason="expected a list of distinct names")
    return OracleSourceConfig(source_id, public_key, tuple(sorted(underlyings)))


def _is_name(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value.encode()) <= limits.oracle_id_bytes_max
        and value.isascii()
        and value.isprintable()
    )


# --- state -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Latest:
    price_raw: int
    ts_ns: int
    vol_surface: tuple[SviSlice, ...] | None


@dataclass(slots=True)
class _Underlying:
    index_raw: int | None = None
    cancel_only: bool = True  # no index yet: nothing can be marked
    reason: BreakerReason | None = BreakerReason.STALE
    last_grid_ns: int | None = None  # latest grid time sampled
    samples: list[tuple[int, int] | None] = field(default_factory=list)  # ring: (grid_ns, price)


def _median(sorted_prices: list[int]) -> int:
    count = len(sorted_prices)
    middle = count // 2
    if count % 2:
        return sorted_prices[middle]
    return div_round(sorted_prices[middle - 1] + sorted_prices[middle], 2, Rounding.HALF_EVEN)


class OracleState:
    """Latest reports, index prices, breaker flags and TWAP samples; see the module doc."""

    def __init__(self, config: OracleConfig) -> None:
        self.config = config
        self._verify_keys = {s.source_id: VerifyKey(s.public_key) for s in config.sources}
        self._allowed = {s.source_id: frozenset(s.underlyings) for s in config.sources}
        self._underlyings = config.underlyings()
        self._sources_for = {u: config.sources_for(u) for u in self._underlyings}
        # Twice the window: a settlement block may come up to one window after expiry.
        self._slots = 2 * config.twap_window_ns // config.twap_interval_ns
        self._latest: dict[tuple[str, str], _Latest] = {}
        self._state = {u: _Underlying(samples=[None] * self._slots) for u in self._underlyings}
        self._clock_ns: int | None = None
        self._dirty: dict[bytes, tuple[str, Any]] = {}

    # --- queries ---------------------------------------------------------------

    def underlyings(self) -> tuple[str, ...]:
        return self._underlyings

    def index_price(self, underlying: str) -> Price | None:
        state = self._state.get(underlying)
        if state is None or state.index_raw is None:
            return None
        return Price(state.index_raw)

    def is_cancel_only(self, underlying: str) -> bool:
        state = self._state.get(underlying)
        return True if state is None else state.cancel_only

    def breaker_reason(self, underlying: str) -> BreakerReason | None:
        state = self._state.get(underlying)
        return BreakerReason.STALE if state is None else state.reason

    def vol_at(
        self,
        underlying: str,
        expiry_ns: int,
        strike_raw: int,
        block_time_ns: int,
        rate_ppm: int = 0,
    ) -> int | None:
        """Median over fresh sources of their SVI vol (ppm) at the strike, or None."""
        state = self._state.get(underlying)
        if state is None or state.index_raw is None or expiry_ns <= block_time_ns:
            return None
        vols: list[int] = []
        for source_id in self._sources_for[underlying]:
            latest = self._latest.get((underlying, source_id))
            if latest is None or latest.vol_surface is None:
                continue
            if not self._is_fresh(latest.ts_ns, block_time_ns):
                continue
            for svi in latest.vol_surface:
                if svi.expiry_ns == expiry_ns:
                    vol = vol_ppm_at(svi, state.index_raw, strike_raw, block_time_ns, rate_ppm)
                    if vol is not None:
                        vols.append(vol)
                    break
        if not vols:
            return None
        vols.sort()
        return _median(vols)

    def mark_price_raw(
        self,
        underlying: str,
        expiry_ns: int,
        strike_raw: int,
        kind: OptionKind,
        block_time_ns: int,
        rate_ppm: int = 0,
    ) -> int | None:
        """Black-Scholes mark (Price raw): index, smile vol at the strike, T from block time.

        None without an index, or (before expiry) without a fresh smile for the
        expiry; at or after expiry the intrinsic value against the index.
        """
        index = self.index_price(underlying)
        if index is None:
            return None
        t_ns = expiry_ns - block_time_ns
        if t_ns <= 0:
            return pricing.mark_price_raw(index.raw, strike_raw, 0, 0, rate_ppm, kind)
        vol_ppm = self.vol_at(underlying, expiry_ns, strike_raw, block_time_ns, rate_ppm)
        if vol_ppm is None:
            return None
        return pricing.mark_price_raw(index.raw, strike_raw, vol_ppm, t_ns, rate_ppm, kind)

    def twap_raw(self, underlying: str, end_ns: int) -> int | None:
        """Mean of the grid samples in (end_ns - window, end_ns]; None without samples.

        The ring holds two windows of samples, so a settlement block may arrive up
        to one window after expiry; older windows raise ValueError.
        """
        state = self._state.get(underlying)
        if state is None:
            return None
        interval = self.config.twap_interval_ns
        last_grid = state.last_grid_ns
        first_grid = (end_ns - self.config.twap_window_ns) // interval * interval + interval
        if last_grid is not None and first_grid <= last_grid - self._slots * interval:
            raise ValueError(
                f"TWAP window ending at {end_ns} is no longer held: the ring keeps "
                f"grid times after {last_grid - self._slots * interval}"
            )
        total = 0
        count = 0
        for grid_ns in range(first_grid, end_ns + 1, interval):
            if last_grid is not None and grid_ns <= last_grid:
                sample = state.samples[(grid_ns // interval) % self._slots]
                if sample is None or sample[0] != grid_ns:
                    continue
                total += sample[1]
            elif state.index_raw is not None:
                total += state.index_raw  # after the last block: the index now in effect
            else:
                continue
            count += 1
        if count == 0:
            return None
        return div_round(total, count, Rounding.HALF_EVEN)

    # --- inputs ------------------------------------------------------------------

    def on_report(self, report: OracleReport, block_time_ns: int) -> list[OracleEvent]:
        """Validate and store one report; returns one Accepted or Rejected event."""
        reason, detail = self._check_report(report, block_time_ns)
        if reason is not None:
            return [OracleReportRejected(report.source_id, report.underlying, reason, detail)]
        key = (report.underlying, report.source_id)
        self._latest[key] = _Latest(report.price.raw, report.ts_ns, report.vol_surface)
        self._dirty[_KEY_REPORT + encode(list(key))] = ("report", key)
        return [
            OracleReportAccepted(report.source_id, report.underlying, report.price, report.ts_ns)
        ]

    def _check_report(
        self, report: OracleReport, block_time_ns: int
    ) -> tuple[RejectReason | None, str]:
        verify_key = self._verify_keys.get(report.source_id)
        if verify_key is None:
            return (
                RejectReason.UNKNOWN_SOURCE,
                f"no source {report.source_id!r} in the genesis config",
            )
        if report.underlying not in self._allowed[report.source_id]:
            return (
                RejectReason.SOURCE_NOT_ALLOWED_FOR_UNDERLYING,
                f"source {report.source_id!r} may not report {report.underlying!r}",
            )
        message = report_signing_bytes(
            report.source_id, report.underlying, report.price, report.ts_ns, report.vol_surface
        )
        try:
            if len(report.signature) != 64:
                raise BadSignatureError("signature must be 64 bytes")
            verify_key.verify(message, report.signature)
        except (BadSignatureError, CryptoError, ValueError, TypeError):
            return RejectReason.BAD_SIGNATURE, "ed25519 signature does not verify"
        if report.price.raw <= 0:
            return RejectReason.NON_POSITIVE_PRICE, f"price {report.price} is not positive"
        skew_ns = report.ts_ns - block_time_ns
        if abs(skew_ns) > self.config.max_report_skew_ns:
            return (
                RejectReason.TIMESTAMP_OUT_OF_WINDOW,
                f"ts_ns is {skew_ns} ns from block time, allowed +-{self.config.max_report_skew_ns}",
            )
        previous = self._latest.get((report.underlying, report.source_id))
        if previous is not None and report.ts_ns <= previous.ts_ns:
            return RejectReason.NOT_NEWER, f"ts_ns {report.ts_ns} <= last accepted {previous.ts_ns}"
        if report.vol_surface is not None:
            problem = self._surface_problem(report.vol_surface, report.ts_ns)
            if problem is not None:
                return RejectReason.INVALID_VOL_SURFACE, problem
        return None, ""

    @staticmethod
    def _surface_problem(surface: tuple[SviSlice, ...], ts_ns: int) -> str | None:
        if not 1 <= len(surface) <= limits.oracle_surface_slices_max:
            return f"expected 1..{limits.oracle_surface_slices_max} slices, got {len(surface)}"
        previous_expiry = ts_ns
        for position, svi in enumerate(surface):
            violation = slice_violation(svi)
            if violation is not None:
                return f"slice {position}: {violation}"
            if svi.expiry_ns <= previous_expiry:
                return f"slice {position}: expiries must be increasing and after ts_ns"
            previous_expiry = svi.expiry_ns
        return None

    def on_block(self, block_time_ns: int) -> list[OracleEvent]:
        """Recompute every underlying's index and breaker at this block time."""
        assert self._clock_ns is None or block_time_ns >= self._clock_ns, (
            "block time went backwards",
            self._clock_ns,
            block_time_ns,
        )
        events: list[OracleEvent] = []
        for underlying in self._underlyings:
            state = self._state[underlying]
            self._sample_before(underlying, state, block_time_ns)
            events += self._update_index(underlying, state, block_time_ns)
            self._sample_at(underlying, state, block_time_ns)
        if self._clock_ns != block_time_ns:
            self._clock_ns = block_time_ns
            self._dirty[_KEY_CLOCK] = ("clock", None)
        return events

    # --- index and breaker ---------------------------------------------------------

    def _is_fresh(self, ts_ns: int, block_time_ns: int) -> bool:
        return block_time_ns - ts_ns <= self.config.staleness_ns

    def _update_index(self, underlying: str, state: _Underlying, now_ns: int) -> list[OracleEvent]:
        config = self.config
        prices = []
        for source_id in self._sources_for[underlying]:
            latest = self._latest.get((underlying, source_id))
            if latest is not None and self._is_fresh(latest.ts_ns, now_ns):
                prices.append(latest.price_raw)
        fresh = len(prices)
        if fresh < config.min_sources:
            return self._trip(underlying, state, BreakerReason.STALE, fresh, None, now_ns)
        prices.sort()
        median = _median(prices)
        band = median * config.clamp_band_ppm // PPM
        low, high = median - band, median + band
        agreeing = sum(1 for price in prices if low <= price <= high)
        if agreeing < config.min_sources:
            return self._trip(
                underlying, state, BreakerReason.SOURCES_DISAGREE, fresh, None, now_ns
            )
        clamped_total = sum(low if p < low else high if p > high else p for p in prices)
        candidate = div_round(clamped_total, fresh, Rounding.HALF_EVEN)
        last = state.index_raw
        if last is not None and abs(candidate - last) * PPM > config.jump_bound_ppm * last:
            candidate_band = candidate * config.clamp_band_ppm // PPM
            confirming = sum(1 for price in prices if abs(price - candidate) <= candidate_band)
            if confirming < config.jump_confirm_sources:
                return self._trip(
                    underlying,
                    state,
                    BreakerReason.UNCONFIRMED_JUMP,
                    fresh,
                    Price(candidate),
                    now_ns,
                )
        events: list[OracleEvent] = []
        if candidate != last:
            state.index_raw = candidate
            events.append(IndexPriceUpdated(underlying, Price(candidate), fresh, now_ns))
        if state.cancel_only:
            state.cancel_only = False
            state.reason = None
            events.append(CircuitBreakerReset(underlying, Price(candidate), now_ns))
        if events:
            self._mark_index(underlying)
        return events

    def _trip(
        self,
        underlying: str,
        state: _Underlying,
        reason: BreakerReason,
        fresh: int,
        candidate: Price | None,
        now_ns: int,
    ) -> list[OracleEvent]:
        if state.cancel_only and state.reason is reason:
            return []
        self._mark_index(underlying)
        was_cancel_only = state.cancel_only
        state.cancel_only = True
        state.reason = reason
        if was_cancel_only:
            return []  # still cancel-only, for another reason: not a transition
        return [CircuitBreakerTripped(underlying, reason, fresh, candidate, now_ns)]

    # --- TWAP samples ----------------------------------------------------------------

    def _write_sample(self, underlying: str, state: _Underlying, grid_ns: int, price: int) -> None:
        slot = (grid_ns // self.config.twap_interval_ns) % self._slots
        state.samples[slot] = (grid_ns, price)
        self._dirty[_KEY_TWAP + encode([underlying, slot])] = ("twap", (underlying, slot))

    def _sample_before(self, underlying: str, state: _Underlying, now_ns: int) -> None:
        """Grid times in (last sampled, now) saw the index as it was before this block."""
        interval = self.config.twap_interval_ns
        last_before = (now_ns - 1) // interval * interval  # latest grid time < now
        if state.last_grid_ns is not None and last_before <= state.last_grid_ns:
            return
        if state.index_raw is not None:
            first = last_before - (self._slots - 1) * interval  # older ones would be overwritten
            if state.last_grid_ns is not None:
                first = max(first, state.last_grid_ns + interval)
            for grid_ns in range(first, last_before + 1, interval):
                self._write_sample(underlying, state, grid_ns, state.index_raw)
        state.last_grid_ns = last_before
        self._mark_index(underlying)

    def _sample_at(self, underlying: str, state: _Underlying, now_ns: int) -> None:
        """A block exactly on a grid time sets that sample to the index after the block."""
        if now_ns % self.config.twap_interval_ns != 0:
            return
        if state.index_raw is not None:
            self._write_sample(underlying, state, now_ns, state.index_raw)
        if state.last_grid_ns != now_ns:
            state.last_grid_ns = now_ns
            self._mark_index(underlying)

    # --- state root, snapshots ---------------------------------------------------------

    def _mark_index(self, underlying: str) -> None:
        self._dirty[_KEY_INDEX + encode(underlying)] = ("index", underlying)

    def _report_record(self, underlying: str, source_id: str) -> tuple[bytes, bytes]:
        latest = self._latest[(underlying, source_id)]
        return (
            _KEY_REPORT + encode([underlying, source_id]),
            encode([latest.price_raw, latest.ts_ns, _surface_wire(latest.vol_surface)]),
        )

    def _index_record(self, underlying: str) -> tuple[bytes, bytes]:
        state = self._state[underlying]
        return (
            _KEY_INDEX + encode(underlying),
            encode(
                [
                    state.index_raw,
                    state.cancel_only,
                    None if state.reason is None else state.reason.value,
                    state.last_grid_ns,
                ]
            ),
        )

    def _all_records(self) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        if self._clock_ns is not None:
            out[_KEY_CLOCK] = encode(self._clock_ns)
        for underlying in self._underlyings:
            key, value = self._index_record(underlying)
            out[key] = value
            for source_id in self._sources_for[underlying]:
                if (underlying, source_id) in self._latest:
                    key, value = self._report_record(underlying, source_id)
                    out[key] = value
            for slot, sample in enumerate(self._state[underlying].samples):
                if sample is not None:
                    out[_KEY_TWAP + encode([underlying, slot])] = encode(list(sample))
        return out

    def records(self) -> list[tuple[bytes, bytes]]:
        """Every oracle record as (key, canonical value), sorted by key."""
        return sorted(self._all_records().items())

    def dirty_records(self) -> list[tuple[bytes, bytes]]:
        """Records changed since the last ``clear_dirty()``, sorted by key (values current).

        Oracle records are never deleted, so every dirty key has a value.
        """
        out: list[tuple[bytes, bytes]] = []
        for key in sorted(self._dirty):
            kind, args = self._dirty[key]
            match kind:
                case "report":
                    out.append(self._report_record(*args))
                case "index":
                    out.append(self._index_record(args))
                case "twap":
                    underlying, slot = args
                    sample = self._state[underlying].samples[slot]
                    assert sample is not None
                    out.append((key, encode(list(sample))))
                case "clock":
                    out.append((key, encode(self._clock_ns)))
                case _:
                    raise AssertionError(kind)
        return out

    def clear_dirty(self) -> None:
        self._dirty.clear()

    def snapshot(self) -> dict[str, Any]:
        """Plain canonical data (codec.encode-able); ``restore(config, snapshot)`` inverts it."""
        return {
            "clock_ns": self._clock_ns,
            "reports": [
                [u, s, latest.price_raw, latest.ts_ns, _surface_wire(latest.vol_surface)]
                for (u, s), latest in sorted(self._latest.items())
            ],
            "underlyings": [
                [
                    u,
                    state.index_raw,
                    state.cancel_only,
                    None if state.reason is None else state.reason.value,
                    state.last_grid_ns,
                    [list(sample) for sample in state.samples if sample is not None],
                ]
                for u, state in sorted(self._state.items())
            ],
        }

    @classmethod
    def restore(cls, config: OracleConfig, snapshot: Mapping[str, Any]) -> OracleState:
        oracle = cls(config)
        oracle._clock_ns = snapshot["clock_ns"]
        for u, s, price_raw, ts_ns, surface in snapshot["reports"]:
            assert (u, s) not in oracle._latest and s in oracle._sources_for.get(u, ()), (u, s)
            slices = None if surface is None else tuple(SviSlice(*fields) for fields in surface)
            oracle._latest[(u, s)] = _Latest(price_raw, ts_ns, slices)
        assert [row[0] for row in snapshot["underlyings"]] == list(oracle._underlyings)
        interval = config.twap_interval_ns
        for u, index_raw, cancel_only, reason, last_grid_ns, samples in snapshot["underlyings"]:
            state = oracle._state[u]
            state.index_raw = index_raw
            state.cancel_only = cancel_only
            state.reason = None if reason is None else BreakerReason(reason)
            state.last_grid_ns = last_grid_ns
            for grid_ns, price in samples:
                state.samples[(grid_ns // interval) % oracle._slots] = (grid_ns, price)
        return oracle


# --- plugging into the exchange state machine ----------------------------------------------


class OracleExtension:
    """The oracle as an ``Extension`` (``ports``) of the exchange state machine.

    - ``OracleReport`` commands are routed to ``OracleState.on_report`` in
      sequencing class 0 (with cancels, ahead of orders in the block);
    - at block start, ``on_block(block time)`` recomputes indexes and breakers,
      so freshness is judged at the time of the block whose orders are gated;
      reports of a block therefore count from the next block on;
    - an order gate rejects new orders on a cancel-only underlying with
      ``RejectReason.TRADING_HALTED`` (cancels are never gated);
    - each accepted index becomes the exchange's reference price, and the
      oracle's dirty records are written with ``set_record`` so they reach the
      state root;
    - snapshot/restore carry ``OracleState.snapshot()``.
    """

    name = "oracle"

    def __init__(self, oracle: OracleState) -> None:
        self.oracle = oracle

    def attach(self, state: StateAccess) -> None:
        halted = RejectReason.TRADING_HALTED

        def handle(command: OracleReport, ctx: Context) -> list[Any]:
            events: list[Any] = self.oracle.on_report(command, ctx.time_ns)
            self._flush(state)
            return events

        def gate(_state: StateAccess, instrument: Instrument, _account_id: int) -> RejectReason | None:
            return halted if self.oracle.is_cancel_only(instrument.underlying) else None

        state.register_command(OracleReport, handle, priority=0)
        state.add_order_gate(gate)

    def _flush(self, state: StateAccess) -> None:
        for key, value in self.oracle.dirty_records():
            state.set_record(key, value)
        self.oracle.clear_dirty()

    def on_block_start(self, state: StateAccess, ctx: Context) -> list[Any]:
        events: list[Any] = self.oracle.on_block(ctx.time_ns)
        for event in events:
            if type(event) is IndexPriceUpdated and event.underlying in state.reference_prices:
                state.set_reference_price(event.underlying, event.price.raw)
        self._flush(state)
        return events

    def on_block_end(self, state: StateAccess, ctx: Context) -> list[Any]:
        return []

    def snapshot(self) -> Any:
        return self.oracle.snapshot()

    def restore(self, state: StateAccess, data: Any) -> None:
        self.oracle = OracleState.restore(self.oracle.config, data)
        for key, value in self.oracle.records():
            state.set_record(key, value)
