"""The file system seen by the WAL and the snapshot store, as a small protocol.

Storage code never calls ``os`` or ``open`` directly: it goes through a
``FileSystem``. ``OsFileSystem`` is the real one (raw file descriptors, no
Python buffering, ``os.fsync`` on files and directories). ``MemoryFileSystem``
is a deterministic in-memory disk for tests and the simulator: it remembers
what was made durable (file ``sync`` for contents, ``sync_dir`` for names) and
``crash()`` throws away everything else, optionally keeping a torn prefix of
unsynced appends, as a power loss would.

Paths are plain strings; directories are created with ``makedirs``.
"""

from __future__ import annotations

import errno
import os
import posixpath
import random
from typing import Protocol


class WritableFile(Protocol):
    """A file open for appending at its end."""

    def write(self, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    def read(self, path: str) -> bytes: ...

    def open_append(self, path: str) -> WritableFile:
        """Open ``path`` for appending, creating it empty if missing."""
        ...

    def create(self, path: str) -> WritableFile:
        """Create ``path`` empty (truncating any old content) and open it for appending."""
        ...

    def rename(self, source: str, target: str) -> None:
        """Atomically replace ``target`` by ``source`` (durable after ``sync_dir``)."""
        ...

    def remove(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]:
        """Names in directory ``path``, sorted."""
        ...

    def makedirs(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None:
        """Make the names in directory ``path`` (creations, renames, removals) durable."""
        ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def file_size(self, path: str) -> int: ...


# --- the real disk -------------------------------------------------------------


class OsFile:
    __slots__ = ("path", "_fd")

    def __init__(self, path: str, flags: int) -> None:
        self.path = path
        self._fd = os.open(path, flags | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The operating system's file system."""

    def read(self, path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def open_append(self, path: str) -> OsFile:
        return OsFile(path, os.O_CREAT)

    def create(self, path: str) -> OsFile:
        return OsFile(path, os.O_CREAT | os.O_TRUNC)

    def rename(self, source: str, target: str) -> None:
        os.replace(source, target)

    def remove(self, path: str) -> None:
        os.remove(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def file_size(self, path: str) -> int:
        return os.path.getsize(path)


# --- a simulated disk ------------------------------------------------------------


class _Inode:
    __slots__ = ("data", "synced")

    def __init__(self) -> None:
        self.data = bytearray()
        self.synced = b""


class MemoryFile:
    __slots__ = ("path", "_fs", "_inode", "_open", "_generation")

    def __init__(self, fs: MemoryFileSystem, path: str, inode: _Inode) -> None:
        self.path = path
        self._fs = fs
        self._inode = inode
        self._open = True
        self._generation = fs.generation

    def _check(self, operation: str) -> None:
        assert self._open, f"{self.path}: {operation} after close"
        assert self._generation == self._fs.generation, (
            f"{self.path}: {operation} through a handle opened before a crash"
        )

    def write(self, data: bytes) -> None:
        self._check("write")
        self._fs._maybe_fail("write", self.path)
        self._inode.data += data
        self._fs.bytes_written += len(data)

    def sync(self) -> None:
        self._check("sync")
        self._fs._maybe_fail("sync", self.path)
        self._inode.synced = bytes(self._inode.data)
        self._fs.fsync_count += 1

    def truncate(self, size: int) -> None:
        self._check("truncate")
        del self._inode.data[size:]

    def size(self) -> int:
        return len(self._inode.data)

    def close(self) -> None:
        self._open = False


class MemoryFileSystem:
    """An in-memory disk with power-loss semantics, for tests and the simulator.

    File contents become durable on ``WritableFile.sync``; names (creations,
    renames, removals) on ``sync_dir`` of their directory. ``crash()`` restores
    the durable view. Counters (``fsync_count``, ``bytes_written``) let a
    simulator charge latency per operation.
    """

    def __init__(self) -> None:
        self._names: dict[str, _Inode] = {}
        self._durable_names: dict[str, _Inode] = {}
        self._dirs: set[str] = {"/", "."}
        self._faults: dict[str, int] = {}
        self.generation = 0  # bumped by crash(): handles from before a crash refuse to work
        self.fsync_count = 0
        self.bytes_written = 0

    @staticmethod
    def _norm(path: str) -> str:
        return posixpath.normpath(path)

    def _parent(self, path: str) -> str:
        parent = posixpath.dirname(path)
        return parent or "."

    def _inode(self, path: str) -> _Inode:
        inode = self._names.get(self._norm(path))
        if inode is None:
            raise FileNotFoundError(path)
        return inode

    def read(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def open_append(self, path: str) -> MemoryFile:
        path = self._norm(path)
        self._require_dir(self._parent(path))
        inode = self._names.get(path)
        if inode is None:
            inode = self._names[path] = _Inode()
        return MemoryFile(self, path, inode)

    def create(self, path: str) -> MemoryFile:
        path = self._norm(path)
        self._require_dir(self._parent(path))
        inode = self._names[path] = (
            _Inode()
        )  # a new inode: the old one stays durable until sync_dir
        return MemoryFile(self, path, inode)

    def rename(self, source: str, target: str) -> None:
        inode = self._inode(source)
        del self._names[self._norm(source)]
        self._names[self._norm(target)] = inode

    def remove(self, path: str) -> None:
        self._inode(path)
        del self._names[self._norm(path)]

    def listdir(self, path: str) -> list[str]:
        path = self._norm(path)
        self._require_dir(path)
        names = {posixpath.basename(name) for name in self._names if self._parent(name) == path}
        names |= {
            posixpath.basename(d) for d in self._dirs if d != path and self._parent(d) == path
        }
        return sorted(names)

    def makedirs(self, path: str) -> None:
        path = self._norm(path)
        while path not in self._dirs:
            self._dirs.add(path)
            path = self._parent(path)

    def sync_dir(self, path: str) -> None:
        path = self._norm(path)
        self._require_dir(path)
        self._maybe_fail("sync_dir", path)
        self.fsync_count += 1
        for name in [n for n in self._durable_names if self._parent(n) == path]:
            del self._durable_names[name]
        for name, inode in self._names.items():
            if self._parent(name) == path:
                self._durable_names[name] = inode

    def exists(self, path: str) -> bool:
        path = self._norm(path)
        return path in self._names or path in self._dirs

    def is_dir(self, path: str) -> bool:
        return self._norm(path) in self._dirs

    def file_size(self, path: str) -> int:
        return len(self._inode(path).data)

    def _require_dir(self, path: str) -> None:
        if path not in self._dirs:
            raise FileNotFoundError(path)

    # --- faults -------------------------------------------------------------------

    def inject_fault(self, operation: str, count: int = 1) -> None:
        """Make the next ``count`` calls of ``operation`` ("write", "sync" or "sync_dir")
        raise ``OSError(EIO)`` without doing anything, as a failing disk would."""
        assert operation in ("write", "sync", "sync_dir") and count >= 0
        self._faults[operation] = count

    def _maybe_fail(self, operation: str, path: str) -> None:
        remaining = self._faults.get(operation, 0)
        if remaining:
            self._faults[operation] = remaining - 1
            raise OSError(errno.EIO, f"injected {operation} fault", path)

    def crash(self, rng: random.Random | None = None) -> None:
        """Lose everything not made durable. With ``rng``, a file whose unsynced
        content extends its synced content keeps a random prefix of the extension
        (a torn write), as page-cache writeback may leave it."""
        self.generation += 1
        self._faults.clear()
        self._names = dict(self._durable_names)
        survivors: list[_Inode] = []
        for name in sorted(self._names):  # sorted: the same rng draws in the same order
            inode = self._names[name]
            if any(inode is seen for seen in survivors):
                continue
            survivors.append(inode)
            kept = inode.synced
            data = bytes(inode.data)
            if rng is not None and len(data) > len(kept) and data.startswith(kept):
                kept = data[: rng.randint(len(kept), len(data))]
            inode.data = bytearray(kept)
            inode.synced = kept

    def flip_bit(self, path: str, offset: int, bit: int = 0) -> None:
        """Damage one bit of a file, durably (bit rot)."""
        inode = self._inode(path)
        inode.data[offset] ^= 1 << bit
        if offset < len(inode.synced):
            synced = bytearray(inode.synced)
            synced[offset] ^= 1 << bit
            inode.synced = bytes(synced)
