from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from deltasync.storage.errors import CorruptSnapshotError
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.snapshot import (
    SnapshotStore,
    StoredSnapshot,
    decode_snapshot,
    encode_snapshot,
)


def fake_root(state: bytes) -> bytes:
    return hashlib.sha256(b"root:" + state).digest()


def snapshot(index: int, term: int = 1, state: bytes | None = None) -> StoredSnapshot:
    state = state if state is not None else b"state at %d" % index * 10
    return StoredSnapshot(index, term, fake_root(state), b"voters=1,2,3", state)


def test_round_trip_and_latest(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    assert store.load_latest() is None
    for index in (10, 30, 20):
        store.save(snapshot(index))
    assert [info.index for info in store.list()] == [10, 20, 30]
    latest = store.load_latest(verify_root=fake_root)
    assert latest == snapshot(30)


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), keep=2)
    for index in range(1, 6):
        store.save(snapshot(index))
    assert [info.index for info in store.list()] == [4, 5]


def test_every_flipped_bit_is_detected() -> None:
    data = encode_snapshot(snapshot(7, 2, b"tiny state"))
    assert decode_snapshot(data, verify_root=fake_root) == snapshot(7, 2, b"tiny state")
    for offset in range(len(data)):
        for bit in (0, 5):
            damaged = bytearray(data)
            damaged[offset] ^= 1 << bit
            with pytest.raises(CorruptSnapshotError):
                decode_snapshot(bytes(damaged))


def test_flipped_bit_in_a_file_is_reported_with_its_path(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    info = store.save(snapshot(5))
    data = bytearray(Path(info.path).read_bytes())
    data[-3] ^= 0x01
    Path(info.path).write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshotError) as caught:
        store.load_latest()
    assert caught.value.fields["path"] == info.path
    assert caught.value.fields["reason"] == "state checksum mismatch"


def test_root_recomputed_from_the_state_must_match() -> None:
    lying = StoredSnapshot(3, 1, b"\x00" * 32, b"", b"some state")
    data = encode_snapshot(lying)
    assert decode_snapshot(data).state == b"some state"  # checksums alone pass
    with pytest.raises(CorruptSnapshotError) as caught:
        decode_snapshot(data, verify_root=fake_root)
    assert caught.value.fields["reason"] == "state root mismatch"


def test_truncated_file_is_detected() -> None:
    data = encode_snapshot(snapshot(9))
    for cut in (0, 5, 16, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(data[:cut])


def test_renamed_file_disagreeing_with_its_content_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    info = store.save(snapshot(5))
    Path(info.path).rename(tmp_path / "00000000000000000009-00000000000000000001.snap")
    with pytest.raises(CorruptSnapshotError):
        store.load_latest()


def test_a_crash_mid_write_leaves_the_previous_snapshot() -> None:
    fs = MemoryFileSystem()
    store = SnapshotStore("/snaps", fs)
    store.save(snapshot(1))
    handle = fs.create("/snaps/00000000000000000002-00000000000000000001.snap.tmp")
    handle.write(encode_snapshot(snapshot(2))[:40])  # the process dies here
    fs.crash()
    store = SnapshotStore("/snaps", fs)
    assert store.load_latest() == snapshot(1)
    store.save(snapshot(3))  # leftovers of the crash are cleaned up
    assert not any(name.endswith(".tmp") for name in fs.listdir("/snaps"))


def test_snapshot_is_durable_once_saved() -> None:
    fs = MemoryFileSystem()
    SnapshotStore("/snaps", fs).save(snapshot(4))
    fs.crash()
    assert SnapshotStore("/snaps", fs).load_latest() == snapshot(4)
