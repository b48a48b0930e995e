from __future__ import annotations

import random

import pytest

from deltasync.storage.errors import WalFailedError
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.wal import WriteAheadLog


def test_unsynced_data_and_names_are_lost_in_a_crash() -> None:
    fs = MemoryFileSystem()
    fs.makedirs("/d")
    durable = fs.create("/d/a")
    durable.write(b"kept")
    durable.sync()
    fs.sync_dir("/d")
    durable.write(b" lost")
    volatile = fs.create("/d/b")
    volatile.write(b"never synced")
    volatile.sync()  # contents durable, but the name is not
    fs.crash()
    assert fs.listdir("/d") == ["a"]
    assert fs.read("/d/a") == b"kept"


def test_rename_is_durable_only_after_sync_dir() -> None:
    fs = MemoryFileSystem()
    fs.makedirs("/d")
    old = fs.create("/d/target")
    old.write(b"old")
    old.sync()
    fs.sync_dir("/d")
    new = fs.create("/d/target.tmp")
    new.write(b"new")
    new.sync()
    fs.rename("/d/target.tmp", "/d/target")
    assert fs.read("/d/target") == b"new"
    fs.crash()
    assert fs.read("/d/target") == b"old" and fs.listdir("/d") == ["target"]


def test_torn_writes_keep_a_prefix() -> None:
    lengths = set()
    for seed in range(30):
        fs = MemoryFileSystem()
        handle = fs.create("/f")
        handle.write(b"a" * 10)
        handle.sync()
        fs.sync_dir("/")
        handle.write(b"b" * 10)
        fs.crash(random.Random(seed))
        data = fs.read("/f")
        assert data == (b"a" * 10 + b"b" * 10)[: len(data)] and len(data) >= 10
        lengths.add(len(data))
    assert len(lengths) > 3


def test_handles_from_before_a_crash_are_dead() -> None:
    fs = MemoryFileSystem()
    handle = fs.create("/f")
    fs.crash()
    with pytest.raises(AssertionError):
        handle.write(b"zombie")


def test_injected_fsync_fault_fails_the_wal_and_recovery_keeps_durable_records() -> None:
    fs = MemoryFileSystem()
    wal, _ = WriteAheadLog.open("/wal", fs)
    wal.append(b"one")
    fs.inject_fault("sync")
    with pytest.raises(WalFailedError):
        wal.append(b"two")
    with pytest.raises(WalFailedError):
        wal.append(b"three")
    fs.crash()
    wal, _ = WriteAheadLog.open("/wal", fs)
    assert [payload for _, payload in wal.iter_records()] == [b"one"]
