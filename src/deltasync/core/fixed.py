"""Fixed-point value types for replicated state.

Every value that can reach the state root is an integer count of a documented
smallest unit. There is no float constructor: parse decimal strings or build
from raw integers. Arithmetic is checked against the signed 64-bit range so a
value always fits the canonical codec; an overflow raises
``FixedPointOverflow`` instead of wrapping.

Scales (smallest unit per whole unit):

- ``Amount``   USDC collateral, 6 decimals  (1 raw = 0.000001 USDC)
- ``Price``    USDC per unit of underlying, 6 decimals
- ``Quantity`` units of underlying (contracts x contract size), 6 decimals

Hot paths (the matching engine) work on the raw integers directly and wrap
them in these types only at their boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import ClassVar, Self

from deltasync.core.errors import FixedPointOverflow, ParseError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

AMOUNT_DECIMALS = 6
PRICE_DECIMALS = 6
QUANTITY_DECIMALS = 6
AMOUNT_SCALE = 10**AMOUNT_DECIMALS
PRICE_SCALE = 10**PRICE_DECIMALS
QUANTITY_SCALE = 10**QUANTITY_DECIMALS

# price (1e-6 USDC per unit) x quantity (1e-6 unit) / NOTIONAL_DIVISOR = amount (1e-6 USDC)
NOTIONAL_DIVISOR = PRICE_SCALE * QUANTITY_SCALE // AMOUNT_SCALE
assert NOTIONAL_DIVISOR == 10**6


class Rounding(Enum):
    """Named rounding for divisions whose result is money.

    ``AGAINST_ACCOUNT`` is used when the account owes the money (round up what it
    pays, round down what it receives), so the venue never pays out dust it
    does not hold.
    """

    DOWN = "down"  # toward negative infinity
    UP = "up"  # toward positive infinity
    TOWARD_ZERO = "toward_zero"
    HALF_EVEN = "half_even"


def div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Integer division with an explicit rounding rule."""
    assert denominator != 0, "division by zero"
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)  # floor division
    if remainder == 0:
        return quotient
    match rounding:
        case Rounding.DOWN:
            return quotient
        case Rounding.UP:
            return quotient + 1
        case Rounding.TOWARD_ZERO:
            return quotient + 1 if numerator < 0 else quotient
        case Rounding.HALF_EVEN:
            twice = 2 * remainder
            if twice > denominator or (twice == denominator and quotient % 2 == 1):
                return quotient + 1
            return quotient
    raise AssertionError(rounding)


def check_int64(value: int, what: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise FixedPointOverflow(what=what, value=value)
    return value


def parse_decimal(text: str, decimals: int, what: str) -> int:
    """Parse a decimal string exactly into raw units; reject lost precision."""
    if not isinstance(text, str):
        raise ParseError(what=what, value=repr(text), expected="a decimal string")
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ParseError(what=what, value=text, expected="a decimal number") from None
    if not number.is_finite():
        raise ParseError(what=what, value=text, expected="a finite decimal number")
    scaled = number.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ParseError(
            what=what, value=text, expected=f"at most {decimals} decimal places"
        )
    return check_int64(int(scaled), what)


def format_decimal(raw: int, decimals: int) -> str:
    sign = "-" if raw < 0 else ""
    whole, frac = divmod(abs(raw), 10**decimals)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


@dataclass(frozen=True, slots=True, order=True)
class _Fixed:
    raw: int
    DECIMALS: ClassVar[int] = 6

    def __post_init__(self) -> None:
        if type(self.raw) is not int:  # bools and floats are not raw units
            raise TypeError(f"{type(self).__name__}.raw must be int, got {type(self.raw).__name__}")
        check_int64(self.raw, type(self).__name__)

    @classmethod
    def parse(cls, text: str) -> Self:
        return cls(parse_decimal(text, cls.DECIMALS, cls.__name__))

    @classmethod
    def whole(cls, units: int) -> Self:
        return cls(check_int64(units * 10**cls.DECIMALS, cls.__name__))

    @classmethod
    def zero(cls) -> Self:
        return cls(0)

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(check_int64(self.raw + other.raw, type(self).__name__))

    def __sub__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(check_int64(self.raw - other.raw, type(self).__name__))

    def __neg__(self) -> Self:
        return type(self)(check_int64(-self.raw, type(self).__name__))

    def __abs__(self) -> Self:
        return type(self)(abs(self.raw))

    def __bool__(self) -> bool:
        return self.raw != 0

    def mul_int(self, factor: int) -> Self:
        return type(self)(check_int64(self.raw * factor, type(self).__name__))

    def is_positive(self) -> bool:
        return self.raw > 0

    def is_negative(self) -> bool:
        return self.raw < 0

    def __str__(self) -> str:
        return format_decimal(self.raw, self.DECIMALS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class Amount(_Fixed):
    """USDC collateral in micro-USDC."""

    DECIMALS: ClassVar[int] = AMOUNT_DECIMALS


@dataclass(frozen=True, slots=True, order=True, repr=False)
class Price(_Fixed):
    """USDC per unit of underlying, in micro-USDC."""

    DECIMALS: ClassVar[int] = PRICE_DECIMALS

    def is_multiple_of(self, tick: Price) -> bool:
        return tick.raw > 0 and self.raw % tick.raw == 0


@dataclass(frozen=True, slots=True, order=True, repr=False)
class Quantity(_Fixed):
    """Units of underlying in millionths."""

    DECIMALS: ClassVar[int] = QUANTITY_DECIMALS


def notional_raw(price_raw: int, quantity_raw: int, rounding: Rounding) -> int:
    """price x quantity in raw Amount units, rounded as asked (hot-path form)."""
    return check_int64(div_round(price_raw * quantity_raw, NOTIONAL_DIVISOR, rounding), "Amount")


def notional(price: Price, quantity: Quantity, rounding: Rounding) -> Amount:
    return Amount(notional_raw(price.raw, quantity.raw, rounding))
