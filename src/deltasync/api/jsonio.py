"""JSON text in and out without floats.

Numbers are parsed to ``int`` or ``Decimal`` and written from ``int`` or
``Decimal`` digit by digit, so an amount a client sends as ``0.1`` reaches the
fixed-point types as exactly one tenth, and a raw ``Price`` goes out as the
decimal it is. ``NaN`` and ``Infinity`` are refused.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from deltasync.core.fixed import format_decimal


class JsonError(ValueError):
    """The text is not the JSON we accept."""


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except JsonError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise JsonError(str(exc)[:200]) from None


def money(raw: int | None, decimals: int = 6) -> Decimal | None:
    """A raw fixed-point integer as the exact decimal a client sees."""
    if raw is None:
        return None
    return Decimal(format_decimal(raw, decimals))


_escape = json.encoder.encode_basestring_ascii


def _write(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_escape(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(str(value))
    elif kind is dict:
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_escape(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif kind is Decimal:
        if not value.is_finite():
            out.append("null")
        else:
            text = format(value.normalize() if value else Decimal(0), "f")
            out.append(text)
    elif kind is float:  # only timing figures (usDiff never is) reach here; keep them finite
        out.append(repr(value) if value == value and abs(value) != float("inf") else "null")
    elif isinstance(value, int):  # IntEnum, bool handled above
        out.append(str(int(value)))
    else:
        raise TypeError(f"not JSON-encodable: {kind.__name__}")


def dumps(value: Any) -> str:
    out: list[str] = []
    _write(value, out)
    return "".join(out)
