"""A simulated disk: the storage layer's ``MemoryFileSystem`` plus injectable faults.

* power loss: ``crash`` keeps only what was synced, optionally with a torn
  (random-length) prefix of unsynced appends;
* a lost fsync: the next ``sync`` of a file only *pretends* to make it durable
  (a lying disk cache); a crash before a later real sync loses that data;
* bit rot: ``flip_bit_in_wal`` damages one durable bit inside a WAL record.

The simulator keeps the promise the storage layer makes (what ``save(sync=True)``
returned is durable) on healthy disks, and records every fault it injects on a
faulty one so that the checkers can tell a bug from a disk that lied.
"""

from __future__ import annotations

import random

from deltasync.storage.fs import MemoryFile, MemoryFileSystem
from deltasync.storage.wal import RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES


class SimFile:
    __slots__ = ("_disk", "_file")

    def __init__(self, disk: SimDisk, file: MemoryFile) -> None:
        self._disk = disk
        self._file = file

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def sync(self) -> None:
        disk = self._disk
        if disk.syncs_to_lose > 0:
            disk.syncs_to_lose -= 1
            disk.lost_sync_paths[self._file.path] = None
            return
        disk.lost_sync_paths.pop(self._file.path, None)
        self._file.sync()

    def truncate(self, size: int) -> None:
        self._file.truncate(size)

    def size(self) -> int:
        return self._file.size()

    def close(self) -> None:
        self._file.close()


class SimDisk:
    """Implements the storage ``FileSystem`` protocol over a ``MemoryFileSystem``."""

    def __init__(self) -> None:
        self.fs = MemoryFileSystem()
        self.syncs_to_lose = 0
        self.lost_sync_paths: dict[str, None] = {}  # files whose last sync was a lie
        self.error_armed = False  # an injected EIO is waiting for its operation

    # --- the FileSystem protocol ---------------------------------------------------

    def read(self, path: str) -> bytes:
        return self.fs.read(path)

    def open_append(self, path: str) -> SimFile:
        return SimFile(self, self.fs.open_append(path))

    def create(self, path: str) -> SimFile:
        return SimFile(self, self.fs.create(path))

    def rename(self, source: str, target: str) -> None:
        self.fs.rename(source, target)

    def remove(self, path: str) -> None:
        self.fs.remove(path)

    def listdir(self, path: str) -> list[str]:
        return self.fs.listdir(path)

    def makedirs(self, path: str) -> None:
        self.fs.makedirs(path)

    def sync_dir(self, path: str) -> None:
        self.fs.sync_dir(path)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def is_dir(self, path: str) -> bool:
        return self.fs.is_dir(path)

    def file_size(self, path: str) -> int:
        return self.fs.file_size(path)

    # --- faults ----------------------------------------------------------------------

    def crash(self, rng: random.Random, torn: bool) -> bool:
        """Power loss. Returns whether a lied-about sync was outstanding (data may be lost)."""
        lied = bool(self.lost_sync_paths)
        self.lost_sync_paths.clear()
        self.syncs_to_lose = 0
        self.error_armed = False
        self.fs.crash(rng if torn else None)
        return lied

    def inject_error(self, operation: str) -> None:
        """The next ``operation`` ("write", "sync" or "sync_dir") fails with EIO."""
        self.fs.inject_fault(operation, 1)
        self.error_armed = True

    def disarm_errors(self) -> None:
        for operation in ("write", "sync", "sync_dir"):
            self.fs.inject_fault(operation, 0)
        self.error_armed = False

    def flip_bit_in_wal(self, wal_dir: str, rng: random.Random) -> str | None:
        """Flip one durable bit inside a WAL record (not a segment header). Returns where."""
        if not self.fs.is_dir(wal_dir):
            return None
        segments = [name for name in self.fs.listdir(wal_dir) if name.endswith(".wal")]
        candidates = []
        for name in segments:
            path = f"{wal_dir}/{name}"
            if self.fs.file_size(path) > SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES:
                candidates.append(path)
        if not candidates:
            return None
        path = rng.choice(candidates)
        offset = rng.randrange(SEGMENT_HEADER_BYTES, self.fs.file_size(path))
        bit = rng.randrange(8)
        self.fs.flip_bit(path, offset, bit)
        return f"{path}@{offset}.{bit}"
