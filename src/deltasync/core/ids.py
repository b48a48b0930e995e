"""Identifiers.

Account, order and trade ids are integers. Order and trade ids come from the
log position (block height and index inside the block), never from a counter
that could differ between replicas. Instrument names follow Deribit's spelling
of its USDC-settled linear options: ``BTC_USDC-27DEC26-100000-C``; a decimal
strike uses ``d`` for the point (``XRP_USDC-30MAY25-2d2-C``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from deltasync.core import limits
from deltasync.core.errors import ParseError
from deltasync.core.fixed import PRICE_DECIMALS, format_decimal, parse_decimal
from deltasync.core.timeutil import MONTHS, days_from_civil, format_ddmmmyy, is_valid_date

# An id from the log: height in the high bits, position in the block below, then the
# sub-index (several ids from one log position: a command's trades).
_POSITION_BITS = 20
assert limits.log_positions_max == 1 << _POSITION_BITS


def log_id(height: int, position: int, sub: int = 0) -> int:
    """A unique id from a log position (and a sub-index for several ids per command)."""
    assert 0 <= position < limits.log_positions_max and 0 <= sub < limits.log_sub_ids_max
    return ((height << _POSITION_BITS) | position) * limits.log_sub_ids_max + sub


class OptionKind(Enum):
    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class OptionName:
    underlying: str  # BTC
    quote: str  # USDC
    expiry_days: int  # civil day since the epoch; expiry is at 08:00 UTC that day
    strike_raw: int  # Price raw units
    kind: OptionKind

    def __str__(self) -> str:
        strike = format_decimal(self.strike_raw, PRICE_DECIMALS).replace(".", "d")
        return (
            f"{self.underlying}_{self.quote}-{format_ddmmmyy(self.expiry_days)}"
            f"-{strike}-{self.kind.value}"
        )


_NAME = re.compile(
    r"^(?P<under>[A-Z0-9]{2,10})_(?P<quote>[A-Z]{3,5})-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})"
    r"(?P<yy>\d{2})-(?P<strike>\d+(?:d\d+)?)-(?P<kind>[CP])$"
)


def parse_option_name(name: str) -> OptionName:
    if not isinstance(name, str) or len(name) > limits.instrument_name_chars_max:
        raise ParseError(what="instrument_name", value=repr(name)[:80], expected="a string")
    match = _NAME.match(name)
    if match is None:
        raise ParseError(
            what="instrument_name", value=name, expected="UNDER_QUOTE-DDMMMYY-STRIKE-C|P"
        )
    month_name = match["mon"]
    if month_name not in MONTHS:
        raise ParseError(what="instrument_name", value=name, expected="a month like DEC")
    year, month, day = 2000 + int(match["yy"]), MONTHS.index(month_name) + 1, int(match["day"])
    if not is_valid_date(year, month, day):
        raise ParseError(what="instrument_name", value=name, expected="a valid date")
    strike_raw = parse_decimal(match["strike"].replace("d", "."), PRICE_DECIMALS, "strike")
    if strike_raw <= 0:
        raise ParseError(what="instrument_name", value=name, expected="a positive strike")
    option = OptionName(
        underlying=match["under"],
        quote=match["quote"],
        expiry_days=days_from_civil(year, month, day),
        strike_raw=strike_raw,
        kind=OptionKind(match["kind"]),
    )
    if str(option) != name:  # e.g. a leading zero in the day or strike
        raise ParseError(what="instrument_name", value=name, expected=str(option))
    return option
