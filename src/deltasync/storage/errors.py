"""Storage errors: damage found on disk, and misuse of the storage API.

Damage on disk is neither our bug nor a peer's bad input, so it has its own
family. A node that meets one must stop rather than guess: the error says which
file, which byte offset and what was expected, and ``deltasync verify DATA_DIR``
prints the same findings offline.
"""

from __future__ import annotations

from deltasync.core.errors import DeltasyncError, LocalError


class StorageError(DeltasyncError):
    """Data on disk is damaged or inconsistent (fields say where and what)."""


class CorruptRecordError(StorageError):
    """A WAL record that is followed by valid data failed its checks.

    Fields: segment (file path), offset (byte offset of the record in the
    segment), seq (the record number expected there), reason.
    """

    @property
    def segment(self) -> str:
        return str(self.fields["segment"])

    @property
    def offset(self) -> int:
        return int(self.fields["offset"])


class CorruptSegmentError(StorageError):
    """A WAL segment header is damaged, or segments do not follow each other
    (fields: segment, reason, expected/found)."""


class CorruptSnapshotError(StorageError):
    """A snapshot file failed verification (fields: path, reason)."""


class CorruptStateError(StorageError):
    """A small state file (hard state, node.json) is damaged (fields: path, reason)."""


class WalFailedError(StorageError):
    """A WAL write or fsync failed; the log refuses further writes until it is reopened
    (fields: directory, operation, detail)."""


class StorageUsageError(LocalError):
    """The storage API was called out of contract (fields: reason, ...)."""
