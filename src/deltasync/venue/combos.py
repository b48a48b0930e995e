"""Self-describing combo instrument names.

A combo's name spells its legs, so any node can decode it without shared
state: ``BTC_USDC-CMB-27DEC26.100000.C.B1-27DEC26.110000.C.S1`` is a call
spread (buy 1 x 100000 call, sell 1 x 110000 call). Legs are sorted by
instrument name and ratios divided by their greatest common divisor, so the
same combo always gets the same name.
"""

from __future__ import annotations

import hashlib
import re
from math import gcd

from deltasync.core import limits
from deltasync.core.errors import ParseError
from deltasync.core.ids import parse_option_name
from deltasync.venue.errors import InvalidRequest, UnknownInstrument
from deltasync.venue.views import ComboLeg

MARK = "CMB"
_RATIO = re.compile(r"[0-9]{1,19}")


def combo_instrument_id(name: str) -> int:
    """A stable id for a combo (the same on every node): 31 bits of its name's hash,
    above the range of listed instruments."""
    digest = hashlib.sha256(name.encode()).digest()
    return (1 << 30) | int.from_bytes(digest[:4], "big") >> 2


def is_combo_name(name: str) -> bool:
    parts = name.split("-", 2)
    return len(parts) == 3 and parts[1] == MARK


def make_combo(legs: list[ComboLeg]) -> tuple[str, tuple[ComboLeg, ...]]:
    """Validate and normalise legs; return (name, legs in canonical order)."""
    if not limits.combo_legs_min <= len(legs) <= limits.combo_legs_max:
        raise InvalidRequest(
            param="trades",
            reason=f"a combo has {limits.combo_legs_min} to {limits.combo_legs_max} legs",
        )
    by_name: dict[str, int] = {}
    prefix = None
    for leg in legs:
        try:
            option = parse_option_name(leg.instrument_name)
        except ParseError:
            raise UnknownInstrument(instrument_name=leg.instrument_name[:80]) from None
        leg_prefix = f"{option.underlying}_{option.quote}"
        if prefix is not None and leg_prefix != prefix:
            raise InvalidRequest(param="trades", reason="all legs must share one underlying")
        prefix = leg_prefix
        if leg.instrument_name in by_name:
            raise InvalidRequest(param="trades", reason="a leg instrument appears twice")
        by_name[leg.instrument_name] = leg.ratio
    divisor = 0
    for ratio in by_name.values():
        divisor = gcd(divisor, abs(ratio))
    ordered = tuple(
        ComboLeg(name, by_name[name] // divisor) for name in sorted(by_name)
    )
    if any(abs(leg.ratio) > limits.combo_ratio_max for leg in ordered):
        raise InvalidRequest(param="trades",
                             reason=f"leg ratios are at most {limits.combo_ratio_max}")
    spelled = []
    for leg in ordered:
        _, expiry, strike, kind = leg.instrument_name.split("-")
        side = "B" if leg.ratio > 0 else "S"
        spelled.append(f"{expiry}.{strike}.{kind}.{side}{abs(leg.ratio)}")
    return f"{prefix}-{MARK}-" + "-".join(spelled), ordered


def parse_combo(name: str) -> tuple[ComboLeg, ...]:
    """The legs of a combo name; raises ``UnknownInstrument`` for anything malformed."""
    bad = UnknownInstrument(instrument_name=name[:120])
    parts = name.split("-")
    if len(parts) < 4 or parts[1] != MARK or len(name) > 400:
        raise bad
    legs = []
    for spelled in parts[2:]:
        fields = spelled.split(".")
        if len(fields) != 4 or len(fields[3]) < 2 or fields[3][0] not in "BS":
            raise bad
        expiry, strike, kind, side_ratio = fields
        if not _RATIO.fullmatch(side_ratio[1:]):
            raise bad
        ratio = int(side_ratio[1:]) * (1 if side_ratio[0] == "B" else -1)
        if ratio == 0:
            raise bad
        legs.append(ComboLeg(f"{parts[0]}-{expiry}-{strike}-{kind}", ratio))
    canonical, ordered = make_combo(legs)
    if canonical != name:
        raise bad
    return ordered
