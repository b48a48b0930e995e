"""Margin: equity at mark, standard and portfolio requirements, incremental re-margining.

``MarginEngine`` is both the exchange's ``RiskEngine`` (pre-trade checks) and
an ``Extension`` named ``"margin"`` (marks at block start, re-margining, the
margin-mode command, records in the state root). The formulas, parameters and
their defaults are in docs/risk.md; this docstring is the short form.

Units: every figure here is an integer. Money is Amount raw (1e-6 USDC),
prices Price raw, sizes are counted in *contracts* (``size // contract_size``)
inside the engine. Floats appear only inside ``pricing.mark_price_raw``
(IEEE basic operations).

Marks (per instrument, refreshed per underlying)
    spot = the oracle index, or the exchange reference price when the oracle
    has none yet; vol = the oracle's smile vol at the strike (median over fresh
    sources), or ``vol_ppm[underlying]`` / ``default_vol_ppm`` when no fresh
    smile covers the expiry; mark = Black-Scholes(spot, strike, vol, T, r = 0).
    An underlying's marks are recomputed at the start of a block when its spot
    changed or when ``mark_refresh_ns`` of block time has passed since the last
    refresh (smiles and time decay then enter), and only then are accounts
    exposed to it re-margined.

Equity = cash + sum(contracts x mark value per contract); the value per contract
is rounded down for longs and up for shorts (against the account).

Standard mode (per position, Deribit's standard option margin, per unit)
    short IM = max(im_base - OTM / spot, im_min) x spot + mark
    short MM = mm_base x spot + mark
    long positions: no requirement beyond the premium, which is paid in cash.

Portfolio mode (per underlying)
    scenario grid: spot x (1 + move) for each ``moves_ppm`` and
    ``extended_moves_ppm`` (the latter's P&L weighted by
    ``extended_weight_ppm``), each at vol x (1 + shock) for ``vol_shocks_ppm``;
    requirement = max(0, -worst scenario P&L) + short_option_ppm x spot per
    unit short; MM = mm_fraction_ppm x that requirement (positions only).

Open orders (initial margin only): every open sell is assumed filled (worst
short), every open buy costs what its cash reserve exceeds its mark value; in
portfolio mode both "all buys fill" and "all sells fill" portfolios are scored
and the worse one counts. A buy's premium must also be covered by cash:
``cash - reserve of open buys >= 0``.

Pre-trade rule: an order, edit, combo, mode switch or withdrawal is refused
(``INSUFFICIENT_MARGIN``) when it leaves ``equity < IM`` *and* raises IM;
orders that lower the requirement always pass.

Incremental re-margining: per account the engine keeps, per underlying, the
part ``(value, IM, MM)``; an index move re-computes only that underlying's part
of the accounts in ``exposed[underlying]``; accounts changed by a block
(trades, deposits, settlement, liquidation) are re-computed at its end.
Portfolio scenario vectors are packed into one big integer per instrument
(64-bit slots), so an account's scenario P&L is a few big-integer
multiply-adds and one ``min`` over the slots.

State root: ``b"margin/acct/" + u64`` -> ``[mode, equity, IM, MM]`` for every
account with exposure or a non-default mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from deltasync.core import limits
from deltasync.core.codec import Registry, encode_trusted
from deltasync.core.errors import ConfigError
from deltasync.core.fixed import NOTIONAL_DIVISOR
from deltasync.core.ids import OptionKind
from deltasync.core.timeutil import NS_PER_SECOND
from deltasync.exchange import pricing
from deltasync.exchange.accounts import Account, Position, buy_reserve_per_contract
from deltasync.exchange.book import BUY
from deltasync.exchange.events import RejectReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.oracle import OracleExtension, OracleState
from deltasync.exchange.ports import StateAccess
from deltasync.exchange.sequencing import Context

PPM = 1_000_000
RISK_REGISTRY = Registry("risk")  # commands and events of margin, liquidation, settlement

_KEY_ACCOUNT = b"margin/acct/"
_SLOT_BITS = 64
_SLOT_BIAS = 1 << 62  # packed scenario slots hold values in (-2**62, 2**62)
_CALL = OptionKind.CALL


class MarginMode(Enum):
    STANDARD = 1
    PORTFOLIO = 2


# --- commands and events (tags 200-299 of the exchange registries) ----------------------


@RISK_REGISTRY.register(200)
@dataclass(frozen=True, slots=True)
class SetMarginMode:
    """Command: switch an account's margin mode (refused if the new IM exceeds equity)."""

    account: int
    mode: MarginMode


@RISK_REGISTRY.register(210)
@dataclass(frozen=True, slots=True)
class MarginModeChanged:
    account: int
    mode: MarginMode
    initial_margin: int  # Amount raw, in the new mode
    maintenance_margin: int


@RISK_REGISTRY.register(211)
@dataclass(frozen=True, slots=True)
class MarginModeRejected:
    account: int
    mode: MarginMode
    reason: RejectReason


# --- configuration ---------------------------------------------------------------


def _moves_default() -> tuple[int, ...]:
    return tuple(range(-160_000, 160_001, 20_000))


@dataclass(frozen=True, slots=True)
class MarginConfig:
    """The genesis ``margin`` section, parsed (see docs/risk.md for every key)."""

    default_mode: MarginMode = MarginMode.STANDARD
    im_base_ppm: int = 150_000
    im_min_ppm: int = 100_000
    mm_base_ppm: int = 75_000
    moves_ppm: tuple[int, ...] = field(default_factory=_moves_default)
    extended_moves_ppm: tuple[int, ...] = (-330_000, 330_000)
    extended_weight_ppm: int = 500_000
    vol_shocks_ppm: tuple[int, ...] = (-300_000, 0, 500_000)
    short_option_ppm: int = 10_000
    mm_fraction_ppm: int = 800_000
    default_vol_ppm: int = 800_000
    vol_ppm: tuple[tuple[str, int], ...] = ()  # per-underlying fallback vols
    mark_refresh_ns: int = 10 * NS_PER_SECOND
    insurance_account: int = 9_000_001
    backstop_account: int = 9_000_002
    liquidation_fee_ppm: int = 1_500  # of index x quantity closed, to the insurance fund
    liquidation_band_ppm: int = 50_000  # liquidation orders fill within mark x (1 +- band)
    liquidation_step_ppm: int = 250_000  # share of each position closed per block
    liquidation_accounts_per_block_max: int = 64
    backstop_penalty_ppm: int = 5_000  # of index x quantity, paid to the backstop account

    @property
    def scenario_count(self) -> int:
        return (len(self.moves_ppm) + len(self.extended_moves_ppm)) * len(self.vol_shocks_ppm)

    def fallback_vol_ppm(self, underlying: str) -> int:
        for name, vol in self.vol_ppm:
            if name == underlying:
                return vol
        return self.default_vol_ppm

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MarginConfig:
        if not isinstance(raw, Mapping):
            raise ConfigError(key="margin", reason="expected a mapping")
        defaults = cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(key=f"margin.{unknown[0]}", reason="unknown key")
        values: dict[str, Any] = {}

        def integer(key: str, low: int, high: int) -> None:
            value = raw.get(key, getattr(defaults, key))
            if type(value) is not int or not low <= value <= high:
                raise ConfigError(key=f"margin.{key}", reason=f"an integer in [{low}, {high}]")
            values[key] = value

        def ppm_list(key: str, low: int, high: int, length_max: int) -> None:
            value = raw.get(key, list(getattr(defaults, key)))
            if (
                not isinstance(value, list | tuple)
                or not 1 <= len(value) <= length_max
                or not all(type(v) is int and low <= v <= high for v in value)
            ):
                raise ConfigError(
                    key=f"margin.{key}",
                    reason=f"1..{length_max} integers in [{low}, {high}]",
                )
            values[key] = tuple(value)

        for key in ("im_base_ppm", "im_min_ppm", "mm_base_ppm", "short_option_ppm",
                    "mm_fraction_ppm", "extended_weight_ppm", "liquidation_fee_ppm",
                    "liquidation_band_ppm", "backstop_penalty_ppm"):
            integer(key, 0, PPM)
        integer("liquidation_step_ppm", 1, PPM)
        integer("liquidation_accounts_per_block_max", 1, limits.liquidation_accounts_per_block_max)
        integer("default_vol_ppm", 1, limits.pricing_vol_ppm_max)
        integer("mark_refresh_ns", 1, limits.margin_mark_refresh_ns_max)
        integer("insurance_account", 0, limits.accounts_max - 1)
        integer("backstop_account", 0, limits.accounts_max - 1)
        ppm_list("moves_ppm", -900_000, 900_000, limits.margin_moves_max)
        ppm_list("extended_moves_ppm", -900_000, 900_000, limits.margin_extended_moves_max)
        ppm_list("vol_shocks_ppm", -900_000, 10 * PPM, limits.margin_vol_shocks_max)
        mode = raw.get("default_mode", defaults.default_mode.name.lower())
        if mode not in ("standard", "portfolio"):
            raise ConfigError(key="margin.default_mode", reason='"standard" or "portfolio"')
        values["default_mode"] = MarginMode[mode.upper()]
        vols = raw.get("vol_ppm", {})
        if not isinstance(vols, Mapping) or not all(
            isinstance(k, str) and type(v) is int and 1 <= v <= limits.pricing_vol_ppm_max
            for k, v in vols.items()
        ):
            raise ConfigError(key="margin.vol_ppm", reason="a map underlying -> vol ppm")
        values["vol_ppm"] = tuple(sorted(vols.items()))
        config = cls(**values)
        if config.im_min_ppm > config.im_base_ppm:
            raise ConfigError(key="margin.im_min_ppm", reason="must not exceed im_base_ppm")
        if config.mm_base_ppm > config.im_min_ppm:
            raise ConfigError(key="margin.mm_base_ppm", reason="must not exceed im_min_ppm")
        if config.insurance_account == config.backstop_account:
            raise ConfigError(key="margin.backstop_account", reason="must differ from insurance")
        if 0 not in config.vol_shocks_ppm or 0 not in config.moves_ppm:
            raise ConfigError(key="margin.moves_ppm", reason="moves and shocks must include 0")
        return config


# --- per-instrument risk figures ----------------------------------------------------


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


class InstrumentRisk:
    """Figures of one instrument at its underlying's current marks (per contract)."""

    __slots__ = (
        "instrument_id", "underlying", "contract_size", "mark_raw", "vol_ppm", "value_floor",
        "value_ceil", "im_short", "mm_short", "short_term", "_vectors", "_inputs",
    )

    def __init__(self, instrument: Instrument, spot_raw: int, vol_ppm: int, t_ns: int,
                 config: MarginConfig) -> None:
        cs = instrument.contract_size_raw
        strike, kind = instrument.strike_raw, instrument.kind
        mark = pricing.mark_price_raw(spot_raw, strike, vol_ppm, t_ns, 0, kind)
        self.instrument_id = instrument.instrument_id
        self.underlying = instrument.underlying
        self.contract_size = cs
        self.mark_raw = mark
        self.vol_ppm = vol_ppm
        self.value_floor = mark * cs // NOTIONAL_DIVISOR
        self.value_ceil = _ceil_div(mark * cs, NOTIONAL_DIVISOR)
        otm = strike - spot_raw if kind is _CALL else spot_raw - strike
        otm = otm if otm > 0 else 0
        im_rate = config.im_base_ppm * spot_raw - otm * PPM  # x PPM
        im_floor = config.im_min_ppm * spot_raw
        im_unit = _ceil_div(im_rate if im_rate > im_floor else im_floor, PPM) + mark
        mm_unit = _ceil_div(config.mm_base_ppm * spot_raw, PPM) + mark
        self.im_short = _ceil_div(im_unit * cs, NOTIONAL_DIVISOR)
        self.mm_short = _ceil_div(mm_unit * cs, NOTIONAL_DIVISOR)
        self.short_term = _ceil_div(config.short_option_ppm * spot_raw * cs, PPM * NOTIONAL_DIVISOR)
        self._vectors: tuple[int, int, int] | None = None  # floor, ceil, max |slot|
        self._inputs = (spot_raw, strike, vol_ppm, t_ns, kind, config)

    def vectors(self) -> tuple[int, int, int]:
        """Packed scenario P&L per contract: (rounded down, rounded up, max |slot|)."""
        if self._vectors is None:
            self._vectors = _scenario_vectors(self.mark_raw, self.contract_size, *self._inputs)
        return self._vectors


def _scenario_vectors(
    mark: int, cs: int, spot_raw: int, strike: int, vol_ppm: int, t_ns: int, kind: OptionKind,
    config: MarginConfig,
) -> tuple[int, int, int]:
    floor_vector = ceil_vector = 0
    largest = 0
    slot = 0
    divisor = NOTIONAL_DIVISOR * PPM
    moves = [(move, PPM) for move in config.moves_ppm]
    moves += [(move, config.extended_weight_ppm) for move in config.extended_moves_ppm]
    for shock in config.vol_shocks_ppm:
        vol = vol_ppm * (PPM + shock) // PPM
        vol = vol if vol > 0 else 1
        for move, weight in moves:
            spot = spot_raw * (PPM + move) // PPM
            price = pricing.mark_price_raw(spot if spot > 0 else 1, strike, vol, t_ns, 0, kind)
            exact = (price - mark) * cs * weight  # / divisor
            low = exact // divisor
            high = -(-exact // divisor)
            shift = slot * _SLOT_BITS
            floor_vector += low << shift
            ceil_vector += high << shift
            largest = max(largest, -low, high)
            slot += 1
    return floor_vector, ceil_vector, largest


def _bias(slots: int) -> int:
    """The packed vector with 2**62 in every slot (makes every slot non-negative)."""
    return sum(_SLOT_BIAS << (_SLOT_BITS * s) for s in range(slots))


def _packed_min(packed: int, slots: int, bias: int) -> int:
    """The smallest slot of a packed vector whose slots are all within (-2**62, 2**62)."""
    data = (packed + bias).to_bytes(slots * 8, "little")
    return min(memoryview(data).cast("Q")) - _SLOT_BIAS


# --- per-underlying marks -------------------------------------------------------------


class _UnderlyingMarks:
    __slots__ = ("spot_raw", "time_ns", "instruments")

    def __init__(self, spot_raw: int, time_ns: int) -> None:
        self.spot_raw = spot_raw
        self.time_ns = time_ns
        self.instruments: dict[int, InstrumentRisk] = {}


# A part of an account: (equity value of positions, IM, MM) in one underlying.
Part = tuple[int, int, int]
_ZERO: Part = (0, 0, 0)


class AccountMargin:
    """What the engine knows of one account (per-underlying parts, last record)."""

    __slots__ = ("mode", "parts", "accs", "rows", "record")

    def __init__(self, mode: MarginMode) -> None:
        self.mode = mode
        self.parts: dict[str, Part] = {}
        # the additive terms behind ``parts`` (None until recomputed after a restore)
        self.accs: dict[str, list[int]] | None = {}
        # underlying -> instrument id -> the row ``accs`` holds for it
        self.rows: dict[str, dict[int, Row]] = {}
        self.record: tuple[int, int, int, int] | None = None

    def totals(self, cash: int) -> tuple[int, int, int]:
        equity, im, mm = cash, 0, 0
        for value, part_im, part_mm in self.parts.values():
            equity += value
            im += part_im
            mm += part_mm
        return equity, im, mm


@dataclass(frozen=True, slots=True)
class MarginSummary:
    """An account's margin figures (Amount raw)."""

    account: int
    mode: MarginMode
    equity: int
    initial_margin: int
    maintenance_margin: int
    cash: int
    cash_reserved: int  # open buys' premium and fee cap

    @property
    def available(self) -> int:
        return self.equity - self.initial_margin


# A position as the engine sees it: (contracts, open buy contracts, open sell
# contracts, buy reserve); a Change is added to a Row field by field.
Row = tuple[int, int, int, int]
Change = Row
_NO_ROW: Row = (0, 0, 0, 0)


class MarginEngine:
    """RiskEngine + Extension: see the module docstring."""

    name = "margin"

    def __init__(self, config: MarginConfig, oracle: OracleExtension | None = None) -> None:
        self.config = config
        # The oracle extension (its OracleState is replaced on restore, so it is read
        # through the extension); None: reference prices and fallback vols only.
        self.oracle_extension = oracle
        self.accounts: dict[int, AccountMargin] = {}
        self.exposed: dict[str, dict[int, None]] = {}
        self.below_maintenance: dict[int, None] = {}
        self._marks: dict[str, _UnderlyingMarks] = {}
        self._risks: dict[int, InstrumentRisk] = {}  # every instrument's current figures
        self._slots = config.scenario_count
        self._bias = _bias(self._slots)
        self._bias_three = _bias(3 * self._slots)
        # statistics (not replicated): parts recomputed, accounts re-margined after a move
        self.recomputed_parts = 0
        self.remargined_accounts = 0
        self.system_accounts = (config.insurance_account, config.backstop_account)
        self.bypass_account: int | None = None  # the account being liquidated: no checks
        self._state: StateAccess | None = None

    # --- Extension ----------------------------------------------------------------------

    def attach(self, state: StateAccess) -> None:
        assert state.risk is self, "pass the MarginEngine as the state's risk engine too"
        self._state = state
        state.register_command(SetMarginMode, self._set_mode, priority=2)

    def on_block_start(self, state: StateAccess, ctx: Context) -> list[Any]:
        for underlying in sorted(state.reference_prices):
            if self._refresh_marks(state, underlying, ctx.time_ns):
                self._remargin_underlying(state, underlying)
        return []

    def on_block_end(self, state: StateAccess, ctx: Context) -> list[Any]:
        self.update_accounts(state, state.changed_accounts())
        return []

    def snapshot(self) -> Any:
        return {
            "marks": [
                [u, marks.spot_raw, marks.time_ns,
                 [[iid, risk.vol_ppm] for iid, risk in sorted(marks.instruments.items())]]
                for u, marks in sorted(self._marks.items())
            ],
            "accounts": [
                [aid, margin.mode.value,
                 [[u, *margin.parts[u]] for u in sorted(margin.parts)],
                 None if margin.record is None else list(margin.record)]
                for aid, margin in sorted(self.accounts.items())
            ],
        }

    def restore(self, state: StateAccess, data: Any) -> None:
        self._marks = {}
        self._risks = {}
        for u, spot_raw, time_ns, vols in data["marks"]:
            marks = self._marks[u] = _UnderlyingMarks(spot_raw, time_ns)
            for iid, vol_ppm in vols:
                marks.instruments[iid] = InstrumentRisk(
                    state.instruments[iid], spot_raw, vol_ppm,
                    state.instruments[iid].expiry_ns - time_ns, self.config,
                )
            self._risks.update(marks.instruments)
        self.accounts = {}
        self.exposed = {}
        self.below_maintenance = {}
        for aid, mode, parts, record in data["accounts"]:
            margin = self.accounts[aid] = AccountMargin(MarginMode(mode))
            margin.accs = None  # not in the snapshot: recomputed in full when next needed
            for u, value, im, mm in parts:
                margin.parts[u] = (value, im, mm)
                self.exposed.setdefault(u, {})[aid] = None
            margin.record = None if record is None else tuple(record)
            if margin.record is not None:
                key = _KEY_ACCOUNT + aid.to_bytes(8, "big")
                state.set_record(key, encode_trusted(list(margin.record)))
            if (
                margin.record is not None and margin.record[1] < margin.record[3]
                and aid not in self.system_accounts
            ):
                self.below_maintenance[aid] = None
        # Rebuild every cache now rather than lazily: a replica restored from a snapshot
        # must take exactly the code paths (cached pre-trade checks included) that a
        # replica which never stopped takes, or the two can decide an order differently.
        self._state = state
        self.recompute_accounts(state, sorted(self.accounts))

    # --- marks ----------------------------------------------------------------------------

    @property
    def oracle(self) -> OracleState | None:
        return None if self.oracle_extension is None else self.oracle_extension.oracle

    def _spot(self, state: StateAccess, underlying: str) -> int:
        oracle = self.oracle
        if oracle is not None:
            index = oracle.index_price(underlying)
            if index is not None:
                return index.raw
        return state.reference_prices[underlying]

    def _vol(self, underlying: str, instrument: Instrument, time_ns: int) -> int:
        oracle = self.oracle
        if oracle is not None:
            vol = oracle.vol_at(underlying, instrument.expiry_ns, instrument.strike_raw, time_ns)
            if vol is not None:
                return vol
        return self.config.fallback_vol_ppm(underlying)

    def _refresh_marks(self, state: StateAccess, underlying: str, time_ns: int) -> bool:
        """Recompute an underlying's marks if its spot moved or the refresh interval passed."""
        spot = self._spot(state, underlying)
        marks = self._marks.get(underlying)
        if marks is not None and marks.spot_raw == spot and (
            time_ns - marks.time_ns < self.config.mark_refresh_ns
        ):
            return False
        fresh = _UnderlyingMarks(spot, time_ns)
        for iid in sorted(state.instruments):
            instrument = state.instruments[iid]
            if instrument.underlying == underlying:
                fresh.instruments[iid] = InstrumentRisk(
                    instrument, spot, self._vol(underlying, instrument, time_ns),
                    instrument.expiry_ns - time_ns, self.config,
                )
        self._marks[underlying] = fresh
        self._risks.update(fresh.instruments)
        return True

    def instrument_risk(self, instrument: Instrument) -> InstrumentRisk:
        """The instrument's figures at its underlying's marks (built on demand for new listings)."""
        marks = self._marks.get(instrument.underlying)
        if marks is None:
            assert self._state is not None
            self._refresh_marks(self._state, instrument.underlying, self._state.time_ns)
            marks = self._marks[instrument.underlying]
        risk = marks.instruments.get(instrument.instrument_id)
        if risk is None:
            risk = marks.instruments[instrument.instrument_id] = InstrumentRisk(
                instrument, marks.spot_raw,
                self._vol(instrument.underlying, instrument, marks.time_ns),
                instrument.expiry_ns - marks.time_ns, self.config,
            )
            self._risks[instrument.instrument_id] = risk
        return risk

    def mark_price_raw(self, instrument: Instrument) -> int:
        return self.instrument_risk(instrument).mark_raw

    def marks_time_ns(self, underlying: str) -> int | None:
        """Block time of the underlying's last mark refresh."""
        marks = self._marks.get(underlying)
        return None if marks is None else marks.time_ns

    def spot_raw(self, underlying: str) -> int | None:
        marks = self._marks.get(underlying)
        return None if marks is None else marks.spot_raw

    # --- evaluation ---------------------------------------------------------------------

    def _margin(self, account_id: int) -> AccountMargin:
        margin = self.accounts.get(account_id)
        if margin is None:
            margin = self.accounts[account_id] = AccountMargin(self.config.default_mode)
        return margin

    def mode_of(self, account_id: int) -> MarginMode:
        margin = self.accounts.get(account_id)
        return self.config.default_mode if margin is None else margin.mode

    def evaluate(
        self,
        state: StateAccess,
        account: Account,
        mode: MarginMode,
        changes: Mapping[int, Change] | None = None,
        only: str | None = None,
    ) -> dict[str, Part]:
        """Per-underlying parts of ``account`` (with hypothetical ``changes``), fresh."""
        finish = self._portfolio_part if mode is MarginMode.PORTFOLIO else _standard_part
        return {
            u: finish(acc)
            for u, acc in self._accumulate(state, account, mode, changes, only).items()
        }

    def _rows(
        self, state: StateAccess, account: Account, changes: Mapping[int, Change] | None,
        only: str | None,
    ) -> list[tuple[int, InstrumentRisk, Row]]:
        """(instrument id, risk, row) per position with exposure."""
        risks = self._risks
        pending = dict(changes) if changes else None
        rows: list[tuple[int, InstrumentRisk, Row]] = []
        for iid, position in account.positions.items():
            risk = risks.get(iid)
            if risk is None:
                risk = self.instrument_risk(state.instruments[iid])
            if only is not None and risk.underlying != only:
                continue
            cs = risk.contract_size
            contracts = position.size // cs
            buys = position.open_buy_quantity // cs
            sells = position.open_sell_quantity // cs
            reserve = position.open_buy_reserve
            if pending is not None and iid in pending:
                change = pending.pop(iid)
                contracts += change[0]
                buys += change[1]
                sells += change[2]
                reserve += change[3]
            if contracts or buys or sells:
                rows.append((iid, risk, (contracts, buys, sells, reserve)))
        if pending:
            for iid in sorted(pending):
                rows.append((iid, self.instrument_risk(state.instruments[iid]), pending[iid]))
        return rows

    def _accumulate(
        self, state: StateAccess, account: Account, mode: MarginMode,
        changes: Mapping[int, Change] | None = None, only: str | None = None,
        rows_out: dict[str, dict[int, Row]] | None = None,
    ) -> dict[str, list[int]]:
        """One pass over the positions: the additive terms of each underlying's part."""
        add = _add_portfolio if mode is MarginMode.PORTFOLIO else _add_standard
        size = _PORTFOLIO_TERMS if mode is MarginMode.PORTFOLIO else _STANDARD_TERMS
        accumulators: dict[str, list[int]] = {}
        for iid, risk, row in self._rows(state, account, changes, only):
            acc = accumulators.get(risk.underlying)
            if acc is None:
                acc = accumulators[risk.underlying] = [0] * size
            add(acc, risk, *row, 1)
            if rows_out is not None:
                held = rows_out.get(risk.underlying)
                if held is None:
                    held = rows_out[risk.underlying] = {}
                held[iid] = row
        return accumulators

    def _accumulate_rows(self, margin: AccountMargin, underlying: str) -> dict[str, list[int]]:
        held = margin.rows.get(underlying)
        if not held:
            return {}
        portfolio = margin.mode is MarginMode.PORTFOLIO
        add = _add_portfolio if portfolio else _add_standard
        acc = [0] * (_PORTFOLIO_TERMS if portfolio else _STANDARD_TERMS)
        risks = self._risks
        for iid, row in held.items():
            add(acc, risks[iid], *row, 1)
        return {underlying: acc}

    def cached_totals(
        self, state: StateAccess, account: Account, margin: AccountMargin | None,
        changes: Mapping[int, Change], cash_delta: int,
    ) -> tuple[int, int, int]:
        """(equity, IM after ``changes``, IM before) from the account's cached terms.

        Valid while the account is unchanged since its last recompute (not dirty
        in this block). Only the changed positions' terms are taken out and put
        back, so the cost does not grow with the size of the portfolio.
        """
        if margin is None:
            mode, accs, parts = self.config.default_mode, {}, {}
        else:
            assert margin.accs is not None
            mode, accs, parts = margin.mode, margin.accs, margin.parts
        portfolio = mode is MarginMode.PORTFOLIO
        add = _add_portfolio if portfolio else _add_standard
        touched: dict[str, list[int]] = {}
        for iid in sorted(changes):
            change = changes[iid]
            risk = self._risks.get(iid)
            if risk is None:
                risk = self.instrument_risk(state.instruments[iid])
            acc = touched.get(risk.underlying)
            if acc is None:
                cached = accs.get(risk.underlying)
                acc = touched[risk.underlying] = (
                    list(cached) if cached is not None
                    else [0] * (_PORTFOLIO_TERMS if portfolio else _STANDARD_TERMS)
                )
            # Take out what the terms hold for this instrument (the cached row) and put
            # in the position as it is now plus the change: mid-edit, the trading core
            # has already released the old order from the position.
            held = None if margin is None else margin.rows.get(risk.underlying)
            cached_row = None if held is None else held.get(iid)
            if cached_row is not None:
                add(acc, risk, *cached_row, -1)
            position = account.positions.get(iid)
            cs = risk.contract_size
            if position is None:
                now: Row = _NO_ROW
            else:
                now = (position.size // cs, position.open_buy_quantity // cs,
                       position.open_sell_quantity // cs, position.open_buy_reserve)
            new = (now[0] + change[0], now[1] + change[1], now[2] + change[2],
                   now[3] + change[3])
            if new[0] or new[1] or new[2]:
                add(acc, risk, *new, 1)
        finish = self._portfolio_part if portfolio else _standard_part
        equity, im_after, im_before = account.cash + cash_delta, 0, 0
        for underlying, (value, im, _) in parts.items():
            im_before += im
            if underlying not in touched:
                equity += value
                im_after += im
        for acc in touched.values():
            value, im, _ = finish(acc)
            equity += value
            im_after += im
        return equity, im_after, im_before

    def _portfolio_part(self, acc: list[int]) -> Part:
        value, positions, buys, sells, bound, short_term, short_worst, buy_excess, orders, _ = acc
        assert orders >= 0, orders
        if bound >= _SLOT_BIAS:
            raise OverflowError("portfolio scenario P&L beyond the packed slot range")
        slots = self._slots
        if orders:
            # the three portfolios (as is, all buys filled, all sells filled) in one
            # integer: one conversion, then min over the first third and over all
            width = slots * _SLOT_BITS
            packed = positions + ((positions + buys) << width) + ((positions - sells) << 2 * width)
            data = (packed + self._bias_three).to_bytes(24 * slots, "little")
            view = memoryview(data).cast("Q")
            worst_positions = min(view[:slots]) - _SLOT_BIAS
            worst = min(view[slots:]) - _SLOT_BIAS
            worst = worst if worst < worst_positions else worst_positions
        else:
            worst_positions = worst = (
                _packed_min(positions, slots, self._bias) if positions else 0
            )
        mm_base = (-worst_positions if worst_positions < 0 else 0) + short_term
        mm = _ceil_div(mm_base * self.config.mm_fraction_ppm, PPM)
        if not orders:
            return value, mm_base, mm
        im = (-worst if worst < 0 else 0) + short_worst + buy_excess
        return value, (im if im > mm_base else mm_base), mm

    # --- re-margining -----------------------------------------------------------------

    def _store(self, state: StateAccess, account_id: int, margin: AccountMargin) -> None:
        """Write the account's record (if changed) and its below-maintenance flag."""
        cash = state.accounts[account_id].cash
        equity, im, mm = margin.totals(cash)
        below = equity < mm and account_id not in self.system_accounts
        if below:
            self.below_maintenance[account_id] = None
        else:
            self.below_maintenance.pop(account_id, None)
        # a bankrupt account (no position, negative balance) keeps its record too
        keep = below or bool(margin.parts) or margin.mode is not self.config.default_mode
        record = (margin.mode.value, equity, im, mm) if keep else None
        if record != margin.record:
            margin.record = record
            key = _KEY_ACCOUNT + account_id.to_bytes(8, "big")
            state.set_record(key, None if record is None else encode_trusted(list(record)))
        if not keep and account_id in self.accounts:
            del self.accounts[account_id]

    def recompute_accounts(self, state: StateAccess, account_ids: list[int]) -> None:
        """Recompute every part of each account (after trades, deposits, settlement...)."""
        for account_id in account_ids:
            account = state.accounts.get(account_id)
            if account is None:
                continue
            margin = self._margin(account_id)
            rows: dict[str, dict[int, Row]] = {}
            accs = self._accumulate(state, account, margin.mode, rows_out=rows)
            finish = self._portfolio_part if margin.mode is MarginMode.PORTFOLIO else _standard_part
            parts = {u: finish(acc) for u, acc in accs.items()}
            margin.accs = accs
            margin.rows = rows
            self.recomputed_parts += len(parts) or 1
            for underlying in margin.parts:
                if underlying not in parts:
                    self.exposed[underlying].pop(account_id, None)
            for underlying in parts:
                self.exposed.setdefault(underlying, {})[account_id] = None
            margin.parts = parts
            self._store(state, account_id, margin)

    def update_accounts(self, state: StateAccess, account_ids: Iterable[int]) -> None:
        """Bring accounts changed by a block up to date: only the positions whose row
        changed are taken out of and put back into the cached terms, so the costly
        part (big-integer scenario vectors) grows with the changes, not the portfolio."""
        for account_id in account_ids:
            account = state.accounts.get(account_id)
            if account is None:
                continue
            margin = self.accounts.get(account_id)
            if margin is None or margin.accs is None:
                self.recompute_accounts(state, [account_id])
                continue
            self._update_rows(state, account_id, account, margin)
            self._store(state, account_id, margin)

    def _update_rows(
        self, state: StateAccess, account_id: int, account: Account, margin: AccountMargin
    ) -> None:
        assert margin.accs is not None
        portfolio = margin.mode is MarginMode.PORTFOLIO
        add = _add_portfolio if portfolio else _add_standard
        touched: dict[str, list[int]] = {}
        rows = margin.rows
        kept = 0  # positions holding a row after this pass
        for iid, position in account.positions.items():
            risk = self._risks.get(iid)
            if risk is None:
                risk = self.instrument_risk(state.instruments[iid])
            cs = risk.contract_size
            new: Row = (
                position.size // cs, position.open_buy_quantity // cs,
                position.open_sell_quantity // cs, position.open_buy_reserve,
            )
            held = rows.get(risk.underlying)
            old = None if held is None else held.get(iid)
            if new == (old or _NO_ROW):
                kept += old is not None
                continue
            acc = self._touch(margin, touched, risk, portfolio)
            if old is not None:
                add(acc, risk, *old, -1)
            if new[0] or new[1] or new[2]:
                add(acc, risk, *new, 1)
                if held is None:
                    held = rows[risk.underlying] = {}
                held[iid] = new
                kept += 1
            else:
                assert held is not None
                del held[iid]
        if kept < sum(len(held) for held in rows.values()):
            # positions the trading core dropped since the last pass
            for underlying in sorted(rows):
                held = rows[underlying]
                for iid in sorted(held):
                    if iid not in account.positions:
                        risk = self._risks[iid]
                        acc = self._touch(margin, touched, risk, portfolio)
                        add(acc, risk, *held.pop(iid), -1)
        for underlying, acc in touched.items():
            self.recomputed_parts += 1
            if acc[-1] == 0:  # no row left in this underlying
                del margin.accs[underlying]
                rows.pop(underlying, None)
                margin.parts.pop(underlying, None)
                self.exposed[underlying].pop(account_id, None)
            else:
                margin.parts[underlying] = (
                    self._portfolio_part(acc) if portfolio else _standard_part(acc)
                )
                self.exposed.setdefault(underlying, {})[account_id] = None

    @staticmethod
    def _touch(
        margin: AccountMargin, touched: dict[str, list[int]], risk: InstrumentRisk,
        portfolio: bool,
    ) -> list[int]:
        acc = touched.get(risk.underlying)
        if acc is None:
            assert margin.accs is not None
            acc = margin.accs.get(risk.underlying)
            if acc is None:
                acc = margin.accs[risk.underlying] = (
                    [0] * (_PORTFOLIO_TERMS if portfolio else _STANDARD_TERMS)
                )
            touched[risk.underlying] = acc
        return acc

    def _remargin_underlying(self, state: StateAccess, underlying: str) -> None:
        """After ``underlying``'s marks changed: recompute its part of the exposed accounts."""
        exposed = self.exposed.get(underlying)
        if not exposed:
            return
        accounts = state.accounts
        for account_id in sorted(exposed):
            margin = self.accounts[account_id]
            if margin.accs is None:  # after a restore: read the positions
                accs = self._accumulate(state, accounts[account_id], margin.mode, only=underlying)
            else:  # the cached rows are the positions (updated at every block end)
                accs = self._accumulate_rows(margin, underlying)
            self.recomputed_parts += 1
            self.remargined_accounts += 1
            acc = accs.get(underlying)
            if acc is None:
                margin.parts.pop(underlying, None)
                if margin.accs is not None:
                    margin.accs.pop(underlying, None)
                del exposed[account_id]
            else:
                portfolio = margin.mode is MarginMode.PORTFOLIO
                margin.parts[underlying] = (
                    self._portfolio_part(acc) if portfolio else _standard_part(acc)
                )
                if margin.accs is not None:
                    margin.accs[underlying] = acc
            self._store(state, account_id, margin)

    # --- queries --------------------------------------------------------------------------

    def summary(self, state: StateAccess, account_id: int) -> MarginSummary | None:
        """Fresh margin figures of an account (None if unknown)."""
        account = state.accounts.get(account_id)
        if account is None:
            return None
        mode = self.mode_of(account_id)
        equity, im, mm = self._totals(state, account, mode)
        return MarginSummary(account_id, mode, equity, im, mm, account.cash, account.locked)

    def _totals(
        self, state: StateAccess, account: Account, mode: MarginMode,
        changes: Mapping[int, Change] | None = None, cash_delta: int = 0,
    ) -> tuple[int, int, int]:
        equity, im, mm = account.cash + cash_delta, 0, 0
        for value, part_im, part_mm in self.evaluate(state, account, mode, changes).values():
            equity += value
            im += part_im
            mm += part_mm
        return equity, im, mm

    # --- RiskEngine -----------------------------------------------------------------------

    def position_requirement(self, instrument: Instrument, position: Position) -> int:
        """Cash locked by a position: its open buys' premium and fee cap (margin is separate)."""
        return position.open_buy_reserve

    def _check(
        self, state: StateAccess, account: Account, changes: Mapping[int, Change],
        cash_delta: int = 0,
    ) -> RejectReason | None:
        margin = self.accounts.get(account.account_id)
        if not state.has_changed(account.account_id) and (
            margin is None or margin.accs is not None
        ):
            equity, im_after, im_before = self.cached_totals(
                state, account, margin, changes, cash_delta
            )
            if im_after <= equity or im_after <= im_before:
                return None
            return RejectReason.INSUFFICIENT_MARGIN
        mode = self.mode_of(account.account_id)
        equity_after, im_after, _ = self._totals(state, account, mode, changes, cash_delta)
        if im_after <= equity_after:
            return None
        _, im_before, _ = self._totals(state, account, mode)
        return RejectReason.INSUFFICIENT_MARGIN if im_after > im_before else None

    def check_order(
        self,
        state: StateAccess,
        account: Account,
        instrument: Instrument,
        side: int,
        price_raw: int,
        amount_raw: int,
    ) -> RejectReason | None:
        if account.account_id == self.bypass_account:
            return None
        contracts = amount_raw // instrument.contract_size_raw
        if side == BUY:
            reserve = contracts * buy_reserve_per_contract(instrument, price_raw)
            if account.cash - account.locked < reserve:
                return RejectReason.INSUFFICIENT_FUNDS
            change: Change = (0, contracts, 0, reserve)
            return self._check(state, account, {instrument.instrument_id: change})
        # A sell below its mark value loses the difference when it fills.
        risk = self.instrument_risk(instrument)
        shortfall = contracts * (risk.value_ceil - instrument.premium_per_contract(price_raw))
        change = (0, 0, contracts, 0)
        return self._check(
            state, account, {instrument.instrument_id: change},
            -shortfall if shortfall > 0 else 0,
        )

    def check_combo(
        self,
        state: StateAccess,
        account: Account,
        legs: list[tuple[Instrument, int]],
        cash_delta: int,
    ) -> RejectReason | None:
        if account.cash + cash_delta < account.locked:
            return RejectReason.INSUFFICIENT_FUNDS
        changes = {
            instrument.instrument_id: (quantity // instrument.contract_size_raw, 0, 0, 0)
            for instrument, quantity in legs
        }
        return self._check(state, account, changes, cash_delta)

    def check_withdraw(
        self, state: StateAccess, account: Account, amount_raw: int
    ) -> RejectReason | None:
        if account.cash - amount_raw < account.locked:
            return RejectReason.INSUFFICIENT_FUNDS
        mode = self.mode_of(account.account_id)
        equity, im, _ = self._totals(state, account, mode)
        if equity - amount_raw < im:
            return RejectReason.INSUFFICIENT_MARGIN
        return None

    # --- the mode command -------------------------------------------------------------

    def _set_mode(self, command: SetMarginMode, ctx: Context) -> list[Any]:
        state = self._state
        assert state is not None
        account = state.accounts.get(command.account)
        if account is None:
            return [MarginModeRejected(command.account, command.mode, RejectReason.UNKNOWN_ACCOUNT)]
        if account.account_id in self.system_accounts:
            return [MarginModeRejected(command.account, command.mode, RejectReason.NOT_AUTHORIZED)]
        equity, im, mm = self._totals(state, account, command.mode)
        if im > equity:
            return [MarginModeRejected(command.account, command.mode,
                                       RejectReason.INSUFFICIENT_MARGIN)]
        margin = self._margin(command.account)
        margin.mode = command.mode
        self.recompute_accounts(state, [command.account])
        return [MarginModeChanged(command.account, command.mode, im, mm)]


# Additive terms of a part. Every position adds (sign = 1) or removes (sign = -1)
# its own terms, so a cached sum can be updated for one changed position.
_STANDARD_TERMS = 4  # value, IM (worst-case shorts + buy excess), MM, rows
_PORTFOLIO_TERMS = 10  # value, packed P&L of positions, of open buys, of open sells,
# bound on |slot|, short term now, short term worst case, buy excess, rows with orders, rows


def _add_standard(
    acc: list[int], risk: InstrumentRisk, contracts: int, buys: int, sells: int, reserve: int,
    sign: int,
) -> None:
    acc[3] += sign
    if contracts > 0:
        acc[0] += sign * contracts * risk.value_floor
    elif contracts < 0:
        acc[0] += sign * contracts * risk.value_ceil
        acc[2] -= sign * contracts * risk.mm_short
    worst_short = sells - contracts
    if worst_short > 0:
        acc[1] += sign * worst_short * risk.im_short
    if buys:
        excess = reserve - buys * risk.value_floor
        if excess > 0:
            acc[1] += sign * excess


def _standard_part(acc: list[int]) -> Part:
    value, im, mm, _ = acc
    return value, (im if im > mm else mm), mm


def _add_portfolio(
    acc: list[int], risk: InstrumentRisk, contracts: int, buys: int, sells: int, reserve: int,
    sign: int,
) -> None:
    floor_vector, ceil_vector, largest = risk.vectors()
    acc[9] += sign
    if contracts > 0:
        acc[0] += sign * contracts * risk.value_floor
        acc[1] += sign * contracts * floor_vector
        acc[4] += sign * contracts * largest
    elif contracts < 0:
        acc[0] += sign * contracts * risk.value_ceil
        acc[1] += sign * contracts * ceil_vector
        acc[4] -= sign * contracts * largest
        acc[5] -= sign * contracts * risk.short_term
    if buys or sells:
        acc[8] += sign
        if buys:
            acc[2] += sign * buys * floor_vector
            acc[4] += sign * buys * largest
            excess = reserve - buys * risk.value_floor
            if excess > 0:
                acc[7] += sign * excess
        if sells:
            acc[3] += sign * sells * ceil_vector
            acc[4] += sign * sells * largest
        worst_short = sells - contracts
        if worst_short > 0:
            acc[6] += sign * worst_short * risk.short_term
    elif contracts < 0:
        acc[6] -= sign * contracts * risk.short_term
