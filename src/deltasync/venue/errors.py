"""The venue's errors: why a request was refused before (or without) reaching a block.

Every error carries structured fields (``DeltasyncError.fields``); the API maps
each class to one Deribit code (``api.errors.from_venue_error``). Business
rejections by the state machine are not errors: they come back as
``CommandResult.rejection``, from the command's events.
"""

from __future__ import annotations

from deltasync.core.errors import DeltasyncError, RemoteError


class VenueError(DeltasyncError):
    """Base class of everything a venue refuses."""


class InvalidRequest(VenueError, RemoteError):
    """A request field is malformed or out of range (fields: param, reason)."""


class UnknownInstrument(VenueError, RemoteError):
    """No instrument, or no well-formed combo, of that name (fields: instrument_name)."""


class InvalidForInstrument(VenueError, RemoteError):
    """The request is well formed but not allowed for this instrument (fields: reason, param)."""


class OrderNotFound(VenueError, RemoteError):
    """The caller has no such order (fields: order_id)."""


class NotSupported(VenueError):
    """This venue does not take such commands (fields: reason)."""


class Forbidden(VenueError):
    """The venue refuses this request here (fields: reason)."""


class Unavailable(VenueError):
    """The request did not complete, and may be retried (fields: reason, detail).

    A command refused this way has no block: it timed out before commit (it may
    still apply later, so retry it with the same request id), was proposed on a
    stale chain tip, its answer expired from the session table, or the venue
    stopped."""


class QueueFull(VenueError):
    """Too many commands are waiting for the log; nothing was queued (no fields)."""


class Refused(VenueError):
    """The state machine rejected a command the venue issued on its own, such as the
    deposit that funds a new account (fields: reason)."""
