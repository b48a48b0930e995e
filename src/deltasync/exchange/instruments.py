"""Instruments: USDC-settled, cash-settled European options.

Names follow Deribit's linear options (``BTC_USDC-27DEC26-100000-C``) and are
parsed with :func:`deltasync.core.ids.parse_option_name`. An option expires at
08:00 UTC on its expiry day (``expiry_ns`` in block time).

Units (see ``core.fixed``): prices are ``Price`` raw (1e-6 USDC per unit of
underlying), amounts are ``Quantity`` raw (1e-6 unit of underlying). An order
amount is a whole number of contracts (``contract_size_raw``) and at least
``min_amount_raw``. Tick tiers follow Deribit's ``tick_size_steps``: the base
tick applies up to the first ``above_price``; above it that tier's tick.

Money per contract is always an exact integer: every tick times the contract
size is a multiple of ``NOTIONAL_DIVISOR`` (checked at construction), so
premiums, reserves and fee caps are linear in the number of contracts and
partial fills never leave rounding dust.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltasync.core.errors import ConfigError
from deltasync.core.fixed import INT64_MAX, NOTIONAL_DIVISOR
from deltasync.core.ids import OptionKind, OptionName, parse_option_name
from deltasync.core.timeutil import NS_PER_DAY, NS_PER_HOUR

EXPIRY_HOUR_UTC = 8
PPM = 1_000_000  # parts per million: fee rates and fractions
FEE_DIVISOR = PPM * NOTIONAL_DIVISOR  # ppm x price raw x quantity raw -> Amount raw


def expiry_ns_of(expiry_days: int) -> int:
    """Block time (ns) at which an option expiring on ``expiry_days`` expires."""
    return expiry_days * NS_PER_DAY + EXPIRY_HOUR_UTC * NS_PER_HOUR


@dataclass(frozen=True, slots=True)
class TickTier:
    """Above ``above_price_raw`` (exclusive) prices move in steps of ``tick_raw``."""

    above_price_raw: int
    tick_raw: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed option. Immutable; deactivation replaces the object."""

    instrument_id: int
    name: str
    underlying: str
    kind: OptionKind
    strike_raw: int
    expiry_ns: int
    contract_size_raw: int
    min_amount_raw: int
    tick_raw: int  # base tick
    tick_tiers: tuple[TickTier, ...]  # ascending above_price_raw
    maker_fee_ppm: int  # of the underlying reference price, per unit
    taker_fee_ppm: int
    fee_cap_ppm: int  # fees never exceed this fraction of the option premium
    active: bool = True

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ConfigError:
            return ConfigError(key=f"{self.name}.{key}", reason=reason)

        if self.contract_size_raw <= 0:
            raise bad("contract_size", "must be positive")
        if self.min_amount_raw < self.contract_size_raw or (
            self.min_amount_raw % self.contract_size_raw
        ):
            raise bad("min_amount", "must be a positive multiple of the contract size")
        previous_above, previous_tick = 0, 1
        for tick, above in [(self.tick_raw, 0)] + [
            (tier.tick_raw, tier.above_price_raw) for tier in self.tick_tiers
        ]:
            if tick <= 0:
                raise bad("tick", "must be positive")
            if (tick * self.contract_size_raw) % NOTIONAL_DIVISOR:
                raise bad("tick", "tick x contract size must be a whole micro-USDC")
            if above < previous_above or above % tick or tick % previous_tick:
                raise bad("tick_tiers", "tiers must ascend, start on their tick, coarsen by multiples")
            previous_above, previous_tick = above, tick
        for key, value in (
            ("maker_fee_ppm", self.maker_fee_ppm),
            ("taker_fee_ppm", self.taker_fee_ppm),
            ("fee_cap_ppm", self.fee_cap_ppm),
        ):
            if not 0 <= value <= PPM:
                raise bad(key, "must be within 0..1_000_000 ppm")
        if not 0 < self.strike_raw <= INT64_MAX // self.contract_size_raw:
            raise bad("strike", "out of range")

    @property
    def option_name(self) -> OptionName:
        return parse_option_name(self.name)

    def tick_for(self, price_raw: int) -> int:
        """The tick that applies at ``price_raw``."""
        tick = self.tick_raw
        for tier in self.tick_tiers:
            if price_raw > tier.above_price_raw:
                tick = tier.tick_raw
            else:
                break
        return tick

    def is_valid_price(self, price_raw: int) -> bool:
        if price_raw <= 0:
            return False
        tick = self.tick_raw
        for tier in self.tick_tiers:  # tick_for, inlined: checked for every order
            if price_raw > tier.above_price_raw:
                tick = tier.tick_raw
            else:
                break
        return price_raw % tick == 0

    def round_price_down(self, price_raw: int) -> int:
        """The largest valid price <= ``price_raw`` (0 if none)."""
        if price_raw <= 0:
            return 0
        rounded = price_raw - price_raw % self.tick_for(price_raw)
        # Rounding down may cross into a finer tier; the result is on its grid
        # because every tier boundary is a multiple of the coarser tick.
        return rounded

    def round_price_up(self, price_raw: int) -> int:
        """The smallest valid price >= ``price_raw``."""
        if price_raw <= self.tick_raw:
            return self.tick_raw
        tick = self.tick_for(price_raw)
        remainder = price_raw % tick
        return price_raw if remainder == 0 else price_raw + tick - remainder

    def contracts(self, amount_raw: int) -> int:
        return amount_raw // self.contract_size_raw

    def premium_per_contract(self, price_raw: int) -> int:
        """Amount raw paid for one contract at a valid price (exact)."""
        return price_raw * self.contract_size_raw // NOTIONAL_DIVISOR

    def fee_cap_per_contract(self, price_raw: int) -> int:
        """The most fee one contract can pay at ``price_raw`` (rounded up)."""
        return -(-self.fee_cap_ppm * price_raw * self.contract_size_raw // FEE_DIVISOR)

    def reserve_per_contract(self, price_raw: int) -> int:
        """Premium plus fee cap of one contract bought at ``price_raw``: the most it can cost."""
        notional = price_raw * self.contract_size_raw
        return notional // NOTIONAL_DIVISOR - (-self.fee_cap_ppm * notional // FEE_DIVISOR)

    def fee_per_contract(self, rate_ppm: int, reference_price_raw: int, price_raw: int) -> int:
        """Deribit's option fee: a rate of the underlying, capped at a share of the premium."""
        by_rate = -(-rate_ppm * reference_price_raw * self.contract_size_raw // FEE_DIVISOR)
        cap = -(-self.fee_cap_ppm * price_raw * self.contract_size_raw // FEE_DIVISOR)
        return by_rate if by_rate < cap else cap

    def to_wire(self) -> list[object]:
        return [
            self.instrument_id,
            self.name,
            self.underlying,
            self.kind.value,
            self.strike_raw,
            self.expiry_ns,
            self.contract_size_raw,
            self.min_amount_raw,
            self.tick_raw,
            [[tier.above_price_raw, tier.tick_raw] for tier in self.tick_tiers],
            self.maker_fee_ppm,
            self.taker_fee_ppm,
            self.fee_cap_ppm,
            self.active,
        ]

    @classmethod
    def from_wire(cls, wire: list[object]) -> Instrument:
        (iid, name, underlying, kind, strike, expiry, cs, min_amount, tick, tiers,
         maker, taker, cap, active) = wire
        return cls(
            instrument_id=int(iid),  # type: ignore[call-overload]
            name=str(name),
            underlying=str(underlying),
            kind=OptionKind(kind),
            strike_raw=int(strike),  # type: ignore[call-overload]
            expiry_ns=int(expiry),  # type: ignore[call-overload]
            contract_size_raw=int(cs),  # type: ignore[call-overload]
            min_amount_raw=int(min_amount),  # type: ignore[call-overload]
            tick_raw=int(tick),  # type: ignore[call-overload]
            tick_tiers=tuple(TickTier(int(a), int(t)) for a, t in tiers),  # type: ignore[attr-defined]
            maker_fee_ppm=int(maker),  # type: ignore[call-overload]
            taker_fee_ppm=int(taker),  # type: ignore[call-overload]
            fee_cap_ppm=int(cap),  # type: ignore[call-overload]
            active=bool(active),
        )


@dataclass(frozen=True, slots=True)
class UnderlyingSpec:
    """Per-underlying trading parameters from the genesis config."""

    name: str
    reference_price_raw: int  # index until the oracle provides one; fees use it
    contract_size_raw: int
    min_amount_raw: int
    tick_raw: int
    tick_tiers: tuple[TickTier, ...]
    call_short_collateral_per_unit_raw: int  # Price raw: collateral per unit of short call


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    maker_fee_ppm: int
    taker_fee_ppm: int
    fee_cap_ppm: int


def make_instrument(
    instrument_id: int, name: str, spec: UnderlyingSpec, fees: FeeSchedule, quote: str
) -> Instrument:
    """Build an instrument from its name and its underlying's parameters.

    Raises ``ParseError`` for a malformed name and ``ConfigError`` when the name
    does not match the underlying or the parameters are inconsistent.
    """
    option = parse_option_name(name)
    if option.underlying != spec.name:
        raise ConfigError(key=name, reason=f"underlying is not {spec.name}")
    if option.quote != quote:
        raise ConfigError(key=name, reason=f"quote currency must be {quote}")
    return Instrument(
        instrument_id=instrument_id,
        name=name,
        underlying=option.underlying,
        kind=option.kind,
        strike_raw=option.strike_raw,
        expiry_ns=expiry_ns_of(option.expiry_days),
        contract_size_raw=spec.contract_size_raw,
        min_amount_raw=spec.min_amount_raw,
        tick_raw=spec.tick_raw,
        tick_tiers=spec.tick_tiers,
        maker_fee_ppm=fees.maker_fee_ppm,
        taker_fee_ppm=fees.taker_fee_ppm,
        fee_cap_ppm=fees.fee_cap_ppm,
    )


def option_name(underlying: str, quote: str, expiry_days: int, strike_raw: int, kind: OptionKind) -> str:
    return str(OptionName(underlying, quote, expiry_days, strike_raw, kind))
