"""Value types, ids, limits, the canonical codec and errors. Imports only the stdlib and msgpack."""

from deltasync.core.errors import (
    CodecError,
    ConfigError,
    DeltasyncError,
    FixedPointOverflow,
    LocalError,
    ParseError,
    RemoteError,
)
from deltasync.core.fixed import Amount, Price, Quantity, Rounding, notional

__all__ = [
    "Amount",
    "CodecError",
    "ConfigError",
    "DeltasyncError",
    "FixedPointOverflow",
    "LocalError",
    "ParseError",
    "Price",
    "Quantity",
    "RemoteError",
    "Rounding",
    "notional",
]
