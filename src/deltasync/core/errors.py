"""Structured errors.

Two families, as h11 splits them: ``LocalError`` (we broke a rule: a bug or a
misuse of an API by our own code) and ``RemoteError`` (input from outside broke
the rules: a malformed frame, a bad parameter). Every error carries structured
fields saying what was wrong and what was expected; ``str()`` renders them.

Business rejections inside the state machine (insufficient funds, post-only
would cross, ...) are *events*, never exceptions.
"""

from __future__ import annotations

from typing import Any


class DeltasyncError(Exception):
    """Base class; ``fields`` holds the structured detail."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        detail = ", ".join(f"{key}={value!r}" for key, value in fields.items())
        super().__init__(f"{type(self).__name__}({detail})")


class LocalError(DeltasyncError):
    """Our own code broke a rule."""


class RemoteError(DeltasyncError):
    """Input from outside broke a rule; the input is refused and nothing changes."""


class FixedPointOverflow(LocalError):
    """A fixed-point result left the signed 64-bit range (fields: what, value)."""


class ParseError(RemoteError):
    """Text could not be parsed (fields: what, value, expected)."""


class CodecError(RemoteError):
    """Bytes are not a valid canonical encoding (fields: reason, ...)."""


class ConfigError(RemoteError):
    """A configuration (genesis, node config) is invalid (fields: key, reason)."""
