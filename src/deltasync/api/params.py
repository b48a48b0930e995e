"""Typed access to a request's ``params`` with Deribit-style -32602 errors.

Parameters arrive as JSON values (POST, WebSocket) or as strings (HTTP GET
query), so every getter accepts both spellings: ``"true"``/``true``,
``"5"``/``5``, ``"0.1"``/``0.1``. Numbers that are money are converted to raw
fixed-point integers exactly; a value with more decimals than the scale is
refused, never rounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from deltasync.api.errors import invalid_param
from deltasync.core import limits
from deltasync.core.fixed import INT64_MAX, INT64_MIN

T = TypeVar("T")

_ASCII_INT = re.compile(r"-?[0-9]{1,19}")


def ascii_int(text: str) -> int | None:
    """An integer spelled in ASCII digits (at most 19), else None. ``str.isdigit``
    would accept "²" and unbounded lengths, which ``int()`` then refuses."""
    text = text.strip()
    return int(text) if _ASCII_INT.fullmatch(text) else None

_MISSING = object()


def utf8_text(name: str, value: str) -> str:
    """``value`` if it has a UTF-8 form; a lone surrogate (``"\\ud800"``, which JSON can
    spell) has none, so it could neither be signed, compared, hashed nor enter the log."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise invalid_param(name, "not valid UTF-8 text (lone surrogate)") from None
    return value


def int64(name: str, value: int, low: int = INT64_MIN) -> int:
    """``value`` if it is within [low, INT64_MAX], the range of every integer in the log."""
    if not low <= value <= INT64_MAX:
        raise invalid_param(name, f"must be between {low} and {INT64_MAX}")
    return value


class Params:
    """``within`` names the object these params are part of (``trades[1]``): errors then
    name ``trades[1].amount``."""

    def __init__(self, raw: Any, *, within: str = "") -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise invalid_param(within or "params", "must be an object")
        self.raw: dict[str, Any] = raw
        self.within = within

    def param(self, name: str) -> str:
        """The name an error gives the parameter ``name``."""
        return f"{self.within}.{name}" if self.within else name

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _get(self, name: str, required: bool) -> Any:
        value = self.raw.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise invalid_param(self.param(name), "value_required")
            return _MISSING
        return value

    def string(
        self, name: str, *, required: bool = True, default: str = "", max_len: int = 256
    ) -> str:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if type(value) is not str:
            raise invalid_param(self.param(name), "must be a string")
        if len(value) > max_len:
            raise invalid_param(self.param(name), f"longer than {max_len} characters")
        return utf8_text(self.param(name), value)

    def optional_string(self, name: str, *, max_len: int = 256) -> str | None:
        if not self.has(name):
            return None
        return self.string(name, max_len=max_len)

    def integer(
        self,
        name: str,
        *,
        required: bool = True,
        default: int = 0,
        low: int = 0,
        high: int = INT64_MAX,
    ) -> int:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if type(value) is str:
            parsed = ascii_int(value)
            value = value if parsed is None else parsed
        if type(value) is not int:
            raise invalid_param(self.param(name), "must be an integer")
        if not low <= value <= high:
            raise invalid_param(self.param(name), f"must be between {low} and {high}")
        return value

    def optional_integer(self, name: str, *, low: int = 0, high: int = INT64_MAX) -> int | None:
        if not self.has(name):
            return None
        return self.integer(name, low=low, high=high)

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if value is True or value == "true":
            return True
        if value is False or value == "false":
            return False
        raise invalid_param(self.param(name), "must be a boolean")

    def optional_boolean(self, name: str) -> bool | None:
        if not self.has(name):
            return None
        return self.boolean(name)

    def named(self, name: str, names: Mapping[T, str], *, default: T | None = None) -> T:
        """One of the values of ``names`` (value -> its spelling), given by its spelling."""
        value = self._get(name, default is None)
        if value is _MISSING:
            assert default is not None
            return default
        for member, spelling in names.items():
            if spelling == value:
                return member
        raise invalid_param(self.param(name), f"must be one of {', '.join(names.values())}")

    def decimal(self, name: str, *, required: bool = True) -> Decimal | None:
        """A number, bounded in digits and exponent before anything computes with it."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if type(value) is bool:
            raise invalid_param(self.param(name), "must be a number")
        if type(value) is int:
            number = Decimal(value)
        elif type(value) is Decimal:
            number = value
        elif type(value) is str and len(value) <= 64:
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise invalid_param(self.param(name), "must be a number") from None
        else:
            raise invalid_param(self.param(name), "must be a number")
        return bounded_decimal(self.param(name), number)

    def fixed(
        self,
        name: str,
        *,
        required: bool = True,
        decimals: int = 6,
        positive: bool = True,
        allow_negative: bool = False,
    ) -> int | None:
        """A number as raw fixed-point units; refuses lost precision."""
        number = self.decimal(name, required=required)
        if number is None:
            return None
        return to_raw(number, self.param(name), decimals=decimals, positive=positive, allow_negative=allow_negative)


def bounded_decimal(name: str, number: Decimal) -> Decimal:
    """``number`` if it is finite, has at most ``api_decimal_digits_max`` significant digits
    and an exponent within ``api_decimal_exponent_max``; reading the exponent and the digit
    count costs nothing, whereas ``int()`` of ``1e999999`` takes seconds."""
    if not number.is_finite():
        raise invalid_param(name, "must be a finite number")
    if not number:
        return Decimal(0)
    if len(number.as_tuple().digits) > limits.api_decimal_digits_max:
        raise invalid_param(name, f"at most {limits.api_decimal_digits_max} significant digits")
    if abs(number.adjusted()) > limits.api_decimal_exponent_max:
        raise invalid_param(name, "out of range")
    return number


def to_raw(
    number: Decimal,
    name: str,
    *,
    decimals: int = 6,
    positive: bool = True,
    allow_negative: bool = False,
) -> int:
    if abs(number.adjusted()) > limits.api_decimal_exponent_max:
        raise invalid_param(name, "out of range")
    scaled = number.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise invalid_param(name, f"at most {decimals} decimal places")
    raw = int(scaled)
    if abs(raw) > INT64_MAX:
        raise invalid_param(name, "out of range")
    if raw < 0 and not allow_negative:
        raise invalid_param(name, "must not be negative")
    if raw == 0 and positive:
        raise invalid_param(name, "must be positive")
    return raw
