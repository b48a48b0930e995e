"""Durable storage: WAL, Raft log, snapshots, data-dir layout. Imports only `core` (and `consensus` types)."""

from deltasync.storage.datadir import DataDir, NodeIdentity
from deltasync.storage.errors import (
    CorruptRecordError,
    CorruptSegmentError,
    CorruptSnapshotError,
    CorruptStateError,
    StorageError,
    StorageUsageError,
    WalFailedError,
)
from deltasync.storage.fs import FileSystem, MemoryFileSystem, OsFileSystem
from deltasync.storage.raft_log import RaftStorage, RecoveredLog
from deltasync.storage.snapshot import SnapshotStore, StoredSnapshot
from deltasync.storage.wal import RecoveryReport, WriteAheadLog

__all__ = [
    "CorruptRecordError",
    "CorruptSegmentError",
    "CorruptSnapshotError",
    "CorruptStateError",
    "DataDir",
    "FileSystem",
    "MemoryFileSystem",
    "NodeIdentity",
    "OsFileSystem",
    "RaftStorage",
    "RecoveredLog",
    "RecoveryReport",
    "SnapshotStore",
    "StorageError",
    "StorageUsageError",
    "StoredSnapshot",
    "WalFailedError",
    "WriteAheadLog",
]
