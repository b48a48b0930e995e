"""Snapshot files: the state machine at a log position, written atomically, verified on load.

File ``<index, 20 digits>-<term, 20 digits>.snap`` in the snapshot directory::

    magic "DSYNCSNP" | u32 version | u32 meta_len | meta | state bytes
    meta = canonical msgpack [index, term, state_root, config, state_len, state_sha256, header_crc]

``state_sha256`` covers the state bytes; ``header_crc`` (CRC-32) covers the meta
fields before it. SHA-256 rather than a CRC for the body because snapshots also
travel between nodes (InstallSnapshot): the digest names the content, so two
nodes can compare it. On load the checksums are verified, then, if the caller
gives one, a callback recomputes the state root from the state bytes and it
must equal the recorded ``state_root``.

Writes go to a temporary file, are fsynced, renamed into place and the directory
is fsynced; the newest ``keep`` snapshots are kept.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from deltasync.core import codec
from deltasync.core.errors import CodecError
from deltasync.core.limits import (
    snapshot_bytes_max,
    snapshot_meta_bytes_max,
    snapshots_kept_default,
)
from deltasync.storage.atomic import TEMP_SUFFIX, write_atomic
from deltasync.storage.errors import CorruptSnapshotError, StorageUsageError
from deltasync.storage.fs import FileSystem, OsFileSystem

SNAPSHOT_MAGIC = b"DSYNCSNP"
SNAPSHOT_VERSION = 1
SNAPSHOT_SUFFIX = ".snap"
_PREFIX = struct.Struct("<8sII")

RootFunction = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    index: int
    term: int
    state_root: bytes
    config: bytes  # membership / cluster configuration, opaque here
    state: bytes  # canonical state machine bytes, opaque here

    @property
    def state_sha256(self) -> bytes:
        return hashlib.sha256(self.state).digest()


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: str
    index: int
    term: int
    size_bytes: int


def snapshot_name(index: int, term: int) -> str:
    return f"{index:020d}-{term:020d}{SNAPSHOT_SUFFIX}"


def encode_snapshot(snapshot: StoredSnapshot) -> bytes:
    fields = [
        snapshot.index,
        snapshot.term,
        snapshot.state_root,
        snapshot.config,
        len(snapshot.state),
        snapshot.state_sha256,
    ]
    meta = codec.encode([*fields, zlib.crc32(codec.encode(fields))])
    return _PREFIX.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, len(meta)) + meta + snapshot.state


def decode_snapshot(
    data: bytes, *, path: str = "", verify_root: RootFunction | None = None
) -> StoredSnapshot:
    """Parse and verify snapshot bytes; raises ``CorruptSnapshotError`` naming the problem."""

    def fail(reason: str, **fields: object) -> CorruptSnapshotError:
        return CorruptSnapshotError(path=path, reason=reason, **fields)

    if len(data) < _PREFIX.size:
        raise fail("shorter than the header", size=len(data))
    magic, version, meta_len = _PREFIX.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise fail("wrong magic", found=magic)
    if version != SNAPSHOT_VERSION:
        raise fail("unsupported version", version=version)
    if meta_len > snapshot_meta_bytes_max or _PREFIX.size + meta_len > len(data):
        raise fail("meta length out of range", meta_len=meta_len)
    try:
        meta = codec.decode(data[_PREFIX.size : _PREFIX.size + meta_len], canonical=True)
    except CodecError as exc:
        raise fail("meta is not canonical msgpack", detail=str(exc)) from None
    if type(meta) is not list or len(meta) != 7:
        raise fail("meta has the wrong shape")
    *fields, header_crc = meta
    if zlib.crc32(codec.encode(fields)) != header_crc:
        raise fail("meta checksum mismatch")
    index, term, state_root, config, state_len, state_sha256 = fields
    if not all(type(v) is int for v in (index, term, state_len)) or min(index, term, state_len) < 0:
        raise fail("meta integers malformed")
    if not all(type(v) is bytes for v in (state_root, config, state_sha256)):
        raise fail("meta bytes malformed")
    state = data[_PREFIX.size + meta_len :]
    if len(state) != state_len:
        raise fail("state length mismatch", found=len(state), expected=state_len)
    if hashlib.sha256(state).digest() != state_sha256:
        raise fail("state checksum mismatch")
    snapshot = StoredSnapshot(index, term, state_root, config, state)
    if verify_root is not None:
        recomputed = verify_root(state)
        if type(recomputed) is not bytes:
            raise StorageUsageError(
                reason="the state root function must return bytes", got=type(recomputed).__name__
            )
        if recomputed != state_root:
            raise fail(
                "state root mismatch", recorded=state_root.hex(), recomputed=recomputed.hex()
            )
    return snapshot


class SnapshotStore:
    """A directory of snapshot files; the newest ``keep`` are kept."""

    def __init__(
        self, directory: str, fs: FileSystem | None = None, *, keep: int = snapshots_kept_default
    ) -> None:
        assert keep >= 1
        self._fs = fs or OsFileSystem()
        self._directory = directory
        self._keep = keep
        self._fs.makedirs(directory)

    @property
    def directory(self) -> str:
        return self._directory

    def list(self) -> list[SnapshotInfo]:
        """Snapshot files, oldest first (by index, then term)."""
        found = []
        for name in self._fs.listdir(self._directory):
            if not name.endswith(SNAPSHOT_SUFFIX):
                continue
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            index_text, _, term_text = stem.partition("-")
            if not (index_text.isdigit() and term_text.isdigit()):
                continue
            path = f"{self._directory}/{name}"
            found.append(
                SnapshotInfo(path, int(index_text), int(term_text), self._fs.file_size(path))
            )
        found.sort(key=lambda info: (info.index, info.term))
        return found

    def save(self, snapshot: StoredSnapshot) -> SnapshotInfo:
        """Write ``snapshot`` durably, then delete the oldest beyond ``keep``."""
        data = encode_snapshot(snapshot)
        if len(data) > snapshot_bytes_max:
            raise StorageUsageError(
                reason="snapshot too large", size=len(data), max=snapshot_bytes_max
            )
        path = f"{self._directory}/{snapshot_name(snapshot.index, snapshot.term)}"
        write_atomic(self._fs, path, data)
        self._prune()
        return SnapshotInfo(path, snapshot.index, snapshot.term, len(data))

    def load(
        self, info: SnapshotInfo, *, verify_root: RootFunction | None = None
    ) -> StoredSnapshot:
        snapshot = decode_snapshot(
            self._fs.read(info.path), path=info.path, verify_root=verify_root
        )
        if (snapshot.index, snapshot.term) != (info.index, info.term):
            raise CorruptSnapshotError(
                path=info.path,
                reason="file name and content disagree",
                content=(snapshot.index, snapshot.term),
            )
        return snapshot

    def load_latest(self, *, verify_root: RootFunction | None = None) -> StoredSnapshot | None:
        """The newest snapshot, verified; None if there is none. A damaged newest snapshot
        raises rather than silently falling back (the log may be compacted past older ones)."""
        listed = self.list()
        return self.load(listed[-1], verify_root=verify_root) if listed else None

    def _prune(self) -> None:
        listed = self.list()
        for info in listed[: max(0, len(listed) - self._keep)]:
            self._fs.remove(info.path)
        for name in self._fs.listdir(self._directory):
            if name.endswith(SNAPSHOT_SUFFIX + TEMP_SUFFIX):
                self._fs.remove(f"{self._directory}/{name}")  # left by a crash mid-write
        self._fs.sync_dir(self._directory)
