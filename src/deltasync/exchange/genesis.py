"""The genesis config: everything a venue starts from, parsed from a plain (JSON-able) dict.

Money and prices are decimal strings in the dict (``"100000"``, ``"0.01"``) and
raw integers in the parsed config; rates are integer parts per million (ppm).
Every problem raises ``ConfigError(key=..., reason=...)`` naming the offending
key. ``oracle`` and ``margin`` are passed through untouched as plain dicts;
their owners parse them.

Shape (all keys optional except where noted; defaults from ``DEFAULTS``)::

    {
      "chain_id": "deltasync-local",
      "genesis_time_ns": 1795132800000000000,
      "quote": "USDC",
      "underlyings": {"BTC": {"reference_price": "100000", "contract_size": "0.01",
                              "min_amount": "0.01", "tick_size": "1",
                              "tick_size_steps": [{"above_price": "1000", "tick_size": "5"}],
                              "call_short_collateral_per_unit": "300000"}, "ETH": {...}},
      "fees": {"maker_ppm": 300, "taker_ppm": 300, "cap_ppm": 125000},
      "fee_account": 0,          # receives every fee
      "admin_account": 1,        # may list instruments
      "instruments": ["BTC_USDC-25DEC26-100000-C", ...],
      "listings": [{"underlying": "BTC", "expiry": "25DEC26",
                    "strikes": ["90000", "100000"], "kinds": ["C", "P"]}],
      "limits": {"open_orders_per_account_max": 200, "market_band_ppm": 100000,
                 "market_band_ticks_min": 10, "recent_trades_per_instrument_max": 100},
      "oracle": {...}, "margin": {...}
    }

Fees follow Deribit's options schedule: a rate of the underlying's reference
price per unit, capped at ``cap_ppm`` of the option premium, charged per
contract and rounded up (the account owes the fee).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from deltasync.core import limits as core_limits
from deltasync.core.errors import ConfigError, DeltasyncError
from deltasync.core.fixed import PRICE_DECIMALS, QUANTITY_DECIMALS, format_decimal, parse_decimal
from deltasync.core.ids import OptionKind, parse_option_name
from deltasync.core.timeutil import (
    MONTHS,
    NS_PER_DAY,
    days_from_civil,
    format_ddmmmyy,
    is_valid_date,
)
from deltasync.exchange.instruments import (
    PPM,
    FeeSchedule,
    Instrument,
    TickTier,
    UnderlyingSpec,
    expiry_ns_of,
    make_instrument,
    option_name,
)

QUOTE = "USDC"
GENESIS_TIME_NS_DEFAULT = days_from_civil(2026, 11, 20) * NS_PER_DAY


@dataclass(frozen=True, slots=True)
class TradingLimits:
    open_orders_per_account_max: int = core_limits.open_orders_per_account_max
    market_band_ppm: int = 100_000  # market orders fill at most 10 % through the best price
    market_band_ticks_min: int = 10  # ... or this many ticks, whichever is wider
    recent_trades_per_instrument_max: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.open_orders_per_account_max <= core_limits.open_orders_per_account_max:
            raise ConfigError(
                key="limits.open_orders_per_account_max",
                reason=f"must be within 1..{core_limits.open_orders_per_account_max}",
            )
        if not 0 <= self.market_band_ppm <= PPM:
            raise ConfigError(key="limits.market_band_ppm", reason="must be within 0..1_000_000")
        if not 0 <= self.market_band_ticks_min <= core_limits.market_band_ticks_max:
            raise ConfigError(key="limits.market_band_ticks_min", reason="out of range")
        trades_max = core_limits.recent_trades_per_instrument_max
        if not 0 <= self.recent_trades_per_instrument_max <= trades_max:
            raise ConfigError(
                key="limits.recent_trades_per_instrument_max", reason=f"0..{trades_max}"
            )


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    chain_id: str
    genesis_time_ns: int
    quote: str
    underlyings: tuple[UnderlyingSpec, ...]  # sorted by name
    fees: FeeSchedule
    fee_account: int
    admin_account: int
    instruments: tuple[str, ...]  # listing order gives instrument ids 1, 2, ...
    limits: TradingLimits = field(default_factory=TradingLimits)
    oracle: dict[str, Any] = field(default_factory=dict)  # parsed by the oracle
    margin: dict[str, Any] = field(default_factory=dict)  # parsed by margin

    def underlying(self, name: str) -> UnderlyingSpec | None:
        for spec in self.underlyings:
            if spec.name == name:
                return spec
        return None

    def build_instruments(self) -> list[Instrument]:
        out = []
        for index, name in enumerate(self.instruments, start=1):
            spec = self.underlying(parse_option_name(name).underlying)
            assert spec is not None, "checked by from_dict"
            out.append(make_instrument(index, name, spec, self.fees, self.quote))
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GenesisConfig:
        return _parse(raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ns": self.genesis_time_ns,
            "quote": self.quote,
            "underlyings": {spec.name: _underlying_to_dict(spec) for spec in self.underlyings},
            "fees": {
                "maker_ppm": self.fees.maker_fee_ppm,
                "taker_ppm": self.fees.taker_fee_ppm,
                "cap_ppm": self.fees.fee_cap_ppm,
            },
            "fee_account": self.fee_account,
            "admin_account": self.admin_account,
            "instruments": list(self.instruments),
            "limits": {
                "open_orders_per_account_max": self.limits.open_orders_per_account_max,
                "market_band_ppm": self.limits.market_band_ppm,
                "market_band_ticks_min": self.limits.market_band_ticks_min,
                "recent_trades_per_instrument_max": self.limits.recent_trades_per_instrument_max,
            },
            "oracle": copy.deepcopy(self.oracle),
            "margin": copy.deepcopy(self.margin),
        }


DEFAULT_UNDERLYINGS: dict[str, dict[str, Any]] = {
    "BTC": {
        "reference_price": "100000",
        "contract_size": "0.01",
        "min_amount": "0.01",
        "tick_size": "1",
        "tick_size_steps": [{"above_price": "1000", "tick_size": "5"}],
        "call_short_collateral_per_unit": "300000",
    },
    "ETH": {
        "reference_price": "3500",
        "contract_size": "0.1",
        "min_amount": "0.1",
        "tick_size": "0.1",
        "tick_size_steps": [{"above_price": "100", "tick_size": "0.5"}],
        "call_short_collateral_per_unit": "10500",
    },
}
DEFAULT_FEES = {"maker_ppm": 300, "taker_ppm": 300, "cap_ppm": 125_000}

_TOP_KEYS = {
    "chain_id", "genesis_time_ns", "quote", "underlyings", "fees", "fee_account",
    "admin_account", "instruments", "listings", "limits", "oracle", "margin",
}


def _price(value: Any, key: str) -> int:
    try:
        raw = parse_decimal(value if isinstance(value, str) else str(value), PRICE_DECIMALS, key)
    except DeltasyncError as exc:
        raise ConfigError(key=key, reason=f"not a decimal price: {value!r}") from exc
    if raw <= 0:
        raise ConfigError(key=key, reason="must be positive")
    return raw


def _quantity(value: Any, key: str) -> int:
    try:
        raw = parse_decimal(value if isinstance(value, str) else str(value), QUANTITY_DECIMALS, key)
    except DeltasyncError as exc:
        raise ConfigError(key=key, reason=f"not a decimal amount: {value!r}") from exc
    if raw <= 0:
        raise ConfigError(key=key, reason="must be positive")
    return raw


def _int(raw: dict[str, Any], key: str, default: int, path: str) -> int:
    value = raw.get(key, default)
    if type(value) is not int:
        raise ConfigError(key=f"{path}{key}", reason=f"must be an integer, got {value!r}")
    return value


def _dict(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key=key, reason="must be an object")
    return value


def _parse_underlying(name: str, raw: Any) -> UnderlyingSpec:
    body = _dict(raw, f"underlyings.{name}")
    path = f"underlyings.{name}."
    known = {"reference_price", "contract_size", "min_amount", "tick_size", "tick_size_steps",
             "call_short_collateral_per_unit"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ConfigError(key=path + unknown[0], reason="unknown key")
    if not name.isalnum() or not name.isupper() or not 2 <= len(name) <= 10:
        raise ConfigError(key=f"underlyings.{name}", reason="name must be 2..10 upper-case letters")
    for required in sorted(known - {"tick_size_steps"}):
        if required not in body:
            raise ConfigError(key=path + required, reason="missing")
    steps = body.get("tick_size_steps", [])
    if not isinstance(steps, list):
        raise ConfigError(key=path + "tick_size_steps", reason="must be a list")
    tiers = []
    for index, step in enumerate(steps):
        step = _dict(step, f"{path}tick_size_steps[{index}]")
        tiers.append(
            TickTier(
                above_price_raw=_price(step.get("above_price"), f"{path}tick_size_steps[{index}].above_price"),
                tick_raw=_price(step.get("tick_size"), f"{path}tick_size_steps[{index}].tick_size"),
            )
        )
    return UnderlyingSpec(
        name=name,
        reference_price_raw=_price(body["reference_price"], path + "reference_price"),
        contract_size_raw=_quantity(body["contract_size"], path + "contract_size"),
        min_amount_raw=_quantity(body["min_amount"], path + "min_amount"),
        tick_raw=_price(body["tick_size"], path + "tick_size"),
        tick_tiers=tuple(tiers),
        call_short_collateral_per_unit_raw=_price(
            body["call_short_collateral_per_unit"], path + "call_short_collateral_per_unit"
        ),
    )


def _underlying_to_dict(spec: UnderlyingSpec) -> dict[str, Any]:
    return {
        "reference_price": format_decimal(spec.reference_price_raw, PRICE_DECIMALS),
        "contract_size": format_decimal(spec.contract_size_raw, QUANTITY_DECIMALS),
        "min_amount": format_decimal(spec.min_amount_raw, QUANTITY_DECIMALS),
        "tick_size": format_decimal(spec.tick_raw, PRICE_DECIMALS),
        "tick_size_steps": [
            {
                "above_price": format_decimal(tier.above_price_raw, PRICE_DECIMALS),
                "tick_size": format_decimal(tier.tick_raw, PRICE_DECIMALS),
            }
            for tier in spec.tick_tiers
        ],
        "call_short_collateral_per_unit": format_decimal(
            spec.call_short_collateral_per_unit_raw, PRICE_DECIMALS
        ),
    }


def parse_expiry(text: Any, key: str) -> int:
    """``27DEC26`` -> days since the epoch."""
    if not isinstance(text, str) or not 6 <= len(text) <= 7:
        raise ConfigError(key=key, reason=f"expiry must look like 27DEC26, got {text!r}")
    day_text, month_text, year_text = text[:-5], text[-5:-2], text[-2:]
    if (
        not day_text.isdigit()
        or day_text.startswith("0")
        or month_text not in MONTHS
        or not year_text.isdigit()
    ):
        raise ConfigError(key=key, reason=f"expiry must look like 27DEC26, got {text!r}")
    year, month, day = 2000 + int(year_text), MONTHS.index(month_text) + 1, int(day_text)
    if not is_valid_date(year, month, day):
        raise ConfigError(key=key, reason=f"not a calendar date: {text!r}")
    return days_from_civil(year, month, day)


def expand_listing(raw: Any, key: str, quote: str) -> list[str]:
    """Instrument names of a strike grid listing (strikes x kinds, in the given order)."""
    body = _dict(raw, key)
    underlying = body.get("underlying")
    if not isinstance(underlying, str):
        raise ConfigError(key=f"{key}.underlying", reason="missing")
    expiry_days = parse_expiry(body.get("expiry"), f"{key}.expiry")
    strikes = body.get("strikes")
    if not isinstance(strikes, list) or not 1 <= len(strikes) <= core_limits.strikes_per_listing_max:
        raise ConfigError(
            key=f"{key}.strikes", reason=f"1..{core_limits.strikes_per_listing_max} strikes"
        )
    kinds = body.get("kinds", ["C", "P"])
    if not isinstance(kinds, list) or not kinds or any(k not in ("C", "P") for k in kinds):
        raise ConfigError(key=f"{key}.kinds", reason='a non-empty list of "C" and "P"')
    names = []
    for index, strike in enumerate(strikes):
        strike_raw = _price(strike, f"{key}.strikes[{index}]")
        for kind in kinds:
            names.append(option_name(underlying, quote, expiry_days, strike_raw, OptionKind(kind)))
    return names


def _parse(raw: dict[str, Any]) -> GenesisConfig:
    raw = _dict(raw, "genesis")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(key=unknown[0], reason="unknown key")
    chain_id = raw.get("chain_id", "deltasync-local")
    if not isinstance(chain_id, str) or not 1 <= len(chain_id) <= 64:
        raise ConfigError(key="chain_id", reason="a string of 1..64 characters")
    quote = raw.get("quote", QUOTE)
    if quote != QUOTE:
        raise ConfigError(key="quote", reason="only USDC-settled options are supported")
    genesis_time_ns = _int(raw, "genesis_time_ns", GENESIS_TIME_NS_DEFAULT, "")
    if genesis_time_ns < 0:
        raise ConfigError(key="genesis_time_ns", reason="must be >= 0")
    underlyings_raw = _dict(raw.get("underlyings", DEFAULT_UNDERLYINGS), "underlyings")
    if not underlyings_raw:
        raise ConfigError(key="underlyings", reason="at least one underlying")
    underlyings = tuple(
        _parse_underlying(name, underlyings_raw[name]) for name in sorted(underlyings_raw)
    )
    fees = _parse_fees(raw)
    fee_account, admin_account = _parse_accounts(raw)
    names = _parse_names(raw, quote)
    config = GenesisConfig(
        chain_id=chain_id,
        genesis_time_ns=genesis_time_ns,
        quote=quote,
        underlyings=underlyings,
        fees=fees,
        fee_account=fee_account,
        admin_account=admin_account,
        instruments=tuple(names),
        limits=_parse_limits(raw),
        oracle=copy.deepcopy(_dict(raw.get("oracle", {}), "oracle")),
        margin=copy.deepcopy(_dict(raw.get("margin", {}), "margin")),
    )
    _check_instruments(config)
    return config


def _parse_fees(raw: dict[str, Any]) -> FeeSchedule:
    fees_raw = _dict(raw.get("fees", DEFAULT_FEES), "fees")
    unknown = sorted(set(fees_raw) - {"maker_ppm", "taker_ppm", "cap_ppm"})
    if unknown:
        raise ConfigError(key="fees." + unknown[0], reason="unknown key")
    fees = FeeSchedule(
        maker_fee_ppm=_int(fees_raw, "maker_ppm", DEFAULT_FEES["maker_ppm"], "fees."),
        taker_fee_ppm=_int(fees_raw, "taker_ppm", DEFAULT_FEES["taker_ppm"], "fees."),
        fee_cap_ppm=_int(fees_raw, "cap_ppm", DEFAULT_FEES["cap_ppm"], "fees."),
    )
    for key, value in (("maker_ppm", fees.maker_fee_ppm), ("taker_ppm", fees.taker_fee_ppm),
                       ("cap_ppm", fees.fee_cap_ppm)):
        if not 0 <= value <= PPM:
            raise ConfigError(key=f"fees.{key}", reason="must be within 0..1_000_000 ppm")
    return fees


def _parse_accounts(raw: dict[str, Any]) -> tuple[int, int]:
    """(fee account, admin account)."""
    fee_account = _int(raw, "fee_account", 0, "")
    admin_account = _int(raw, "admin_account", 1, "")
    for key, value in (("fee_account", fee_account), ("admin_account", admin_account)):
        if not 0 <= value < core_limits.accounts_max:
            raise ConfigError(key=key, reason=f"must be within 0..{core_limits.accounts_max - 1}")
    return fee_account, admin_account


def _parse_names(raw: dict[str, Any], quote: str) -> list[str]:
    """The instruments listed at genesis: ``instruments`` then each of ``listings``."""
    names_raw = raw.get("instruments", [])
    if not isinstance(names_raw, list) or not all(isinstance(n, str) for n in names_raw):
        raise ConfigError(key="instruments", reason="a list of instrument names")
    names = list(names_raw)
    listings = raw.get("listings", [])
    if not isinstance(listings, list):
        raise ConfigError(key="listings", reason="a list of strike grids")
    for index, listing in enumerate(listings):
        names += expand_listing(listing, f"listings[{index}]", quote)
    if len(names) > core_limits.instruments_max:
        raise ConfigError(key="instruments", reason=f"at most {core_limits.instruments_max}")
    if len(set(names)) != len(names):
        duplicate = next(n for i, n in enumerate(names) if n in names[:i])
        raise ConfigError(key="instruments", reason=f"listed twice: {duplicate}")
    return names


def _parse_limits(raw: dict[str, Any]) -> TradingLimits:
    limits_raw = _dict(raw.get("limits", {}), "limits")
    default_limits = TradingLimits()
    unknown = sorted(set(limits_raw) - set(TradingLimits.__dataclass_fields__))
    if unknown:
        raise ConfigError(key="limits." + unknown[0], reason="unknown key")
    return TradingLimits(
        **{
            key: _int(limits_raw, key, getattr(default_limits, key), "limits.")
            for key in TradingLimits.__dataclass_fields__
        }
    )


def _check_instruments(config: GenesisConfig) -> None:
    """Every listed name parses, names a known underlying and builds an instrument."""
    for index, name in enumerate(config.instruments):
        try:
            option = parse_option_name(name)
        except DeltasyncError as exc:
            raise ConfigError(key=f"instruments[{index}]", reason=str(exc)) from exc
        if config.underlying(option.underlying) is None:
            raise ConfigError(
                key=f"instruments[{index}]", reason=f"unknown underlying {option.underlying}"
            )
    try:
        config.build_instruments()
    except ConfigError:
        raise
    except DeltasyncError as exc:
        raise ConfigError(key="instruments", reason=str(exc)) from exc


DEFAULT_EXPIRIES = ("27NOV26", "25DEC26", "29JAN27")
LIVE_LEAD_NS = NS_PER_DAY  # a live genesis' nearest expiry is at least this far away
FRIDAY_DAY_MOD_7 = 1  # day 0 (1970-01-01) was a Thursday, so days % 7 == 1 are Fridays


def weekly_expiries(after_ns: int, count: int) -> tuple[str, ...]:
    """The first ``count`` Friday expiries (08:00 UTC) strictly after block time
    ``after_ns``, spelled ``25DEC26``."""
    day = after_ns // NS_PER_DAY
    day += (FRIDAY_DAY_MOD_7 - day) % 7  # the first Friday on or after that day
    if expiry_ns_of(day) <= after_ns:
        day += 7
    return tuple(format_ddmmmyy(day + 7 * week) for week in range(count))


def default_genesis_dict(
    expiries: tuple[str, ...] = DEFAULT_EXPIRIES, genesis_time_ns: int = GENESIS_TIME_NS_DEFAULT
) -> dict[str, Any]:
    """A ready BTC/ETH venue: Friday expiries (three fixed ones unless given), nine strikes
    each, calls and puts."""
    btc_strikes = [str(80_000 + 5_000 * i) for i in range(9)]
    eth_strikes = [str(2_500 + 250 * i) for i in range(9)]
    listings = []
    for expiry in expiries:
        listings.append({"underlying": "BTC", "expiry": expiry, "strikes": btc_strikes})
        listings.append({"underlying": "ETH", "expiry": expiry, "strikes": eth_strikes})
    return {
        "chain_id": "deltasync-local",
        "genesis_time_ns": genesis_time_ns,
        "quote": QUOTE,
        "underlyings": copy.deepcopy(DEFAULT_UNDERLYINGS),
        "fees": dict(DEFAULT_FEES),
        "fee_account": 0,
        "admin_account": 1,
        "listings": listings,
    }


def live_genesis_dict(now_ns: int) -> dict[str, Any]:
    """The default venue as of ``now_ns``: genesis at the start of that day (UTC) and the
    first three Friday expiries at least ``LIVE_LEAD_NS`` after ``now_ns``.

    For venues that start on the wall clock (``cluster up``, the dev venue, ``bench
    consensus``, the real-process tests), so that they trade live options on any date.
    It is computed once and written into every node's config: replicas never derive
    their genesis from their own clock. (The listings do not roll yet: after the last
    of the three expiries the venue has nothing to trade.)"""
    expiries = weekly_expiries(now_ns + LIVE_LEAD_NS, len(DEFAULT_EXPIRIES))
    return default_genesis_dict(expiries, now_ns - now_ns % NS_PER_DAY)


def default_genesis() -> GenesisConfig:
    return GenesisConfig.from_dict(default_genesis_dict())
