from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltasync.consensus import NO_NODE, Entry, EntryType, HardState
from deltasync.storage.errors import CorruptStateError, StorageUsageError
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.raft_log import (
    RaftStorage,
    decode_record,
    encode_entry,
    encode_hard_state,
)
from deltasync.storage.wal import WriteAheadLog


def entries(first: int, last: int, term: int, tag: bytes = b"") -> list[Entry]:
    return [Entry(i, term, EntryType(i % 3), b"cmd-%d" % i + tag) for i in range(first, last + 1)]


def reopen(directory: Path, **kwargs):  # type: ignore[no-untyped-def]
    return RaftStorage.open(str(directory), **kwargs)


def test_fresh_storage_is_empty(tmp_path: Path) -> None:
    storage, recovered = reopen(tmp_path)
    assert recovered.hard_state == HardState()
    assert recovered.entries == () and recovered.snapshot_index == 0
    assert storage.first_index() == 1 and storage.last_index() == 0
    assert storage.term(0) == 0 and storage.term(1) is None


def test_hard_state_and_entries_survive_a_restart(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1, vote=2, commit=0), entries(1, 5, 1))
    storage.save(HardState(term=1, vote=2, commit=3), [])
    storage.save(None, entries(6, 7, 1))
    storage.close()
    storage, recovered = reopen(tmp_path)
    assert recovered.hard_state == HardState(term=1, vote=2, commit=3)
    assert list(recovered.entries) == entries(1, 7, 1)
    assert storage.entries(2, 4) == entries(2, 3, 1)
    assert storage.term(7) == 1 and storage.last_index() == 7
    with pytest.raises(StorageUsageError):
        storage.entries(0, 3)


def test_records_round_trip() -> None:
    for record in (
        Entry(7, 3, EntryType.CONF_CHANGE, b"data"),
        HardState(4, NO_NODE, 9),
        HardState(4, 1, 0),
    ):
        payload = encode_entry(record) if isinstance(record, Entry) else encode_hard_state(record)
        assert decode_record(payload) == record


def test_the_on_disk_format_is_pinned() -> None:
    """Bytes written by every earlier version (data dirs written before keep opening)."""
    entry = encode_entry(Entry(7, 3, EntryType.CONF_CHANGE, b"data"))
    assert entry.hex() == "01070000000000000003000000000000000100000064617461"
    no_vote = encode_hard_state(HardState(4, NO_NODE, 9))
    assert no_vote.hex() == "0204000000000000000900000000000000000000000000000000"
    vote = encode_hard_state(HardState(4, 1, 0))
    assert vote.hex() == "0204000000000000000000000000000000010000000000000001"
    state_files = {
        NO_NODE: "4453524146545354070000004c4fdb08960102c0030202",
        2: "445352414654535407000000c1699fd496010202030202",
    }
    for voted, expected in state_files.items():
        fs = MemoryFileSystem()
        storage, _ = RaftStorage.open("/r", fs)
        storage.save(HardState(2, voted, 3), entries(1, 3, 2))
        storage.compact(2)  # writes raft.state
        assert fs.read("/r/raft.state").hex() == expected
        _, recovered = RaftStorage.open("/r", fs)
        assert recovered.hard_state == HardState(2, voted, 3)


def test_an_entry_of_an_unknown_type_on_disk_is_refused(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(str(tmp_path / "wal"))
    good = encode_entry(Entry(1, 1, EntryType.NORMAL, b"x"))
    wal.append_batch([good[:17] + (7).to_bytes(4, "little") + good[21:]])
    wal.close()
    with pytest.raises(CorruptStateError):
        reopen(tmp_path)


def test_a_vote_is_one_fsync_and_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1), entries(1, 1, 1))  # creates the first segment
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    storage.save(HardState(term=2, vote=3, commit=0), [])
    assert len(calls) == 1
    calls.clear()
    storage.save(HardState(term=2, vote=3, commit=1), entries(2, 50, 2))
    assert len(calls) == 1  # hard state and 49 entries: one group commit
    calls.clear()
    storage.save(HardState(term=2, vote=3, commit=2), [], sync=False)
    assert calls == []
    monkeypatch.undo()
    _, recovered = reopen(tmp_path)
    assert recovered.hard_state.vote == 3 and recovered.hard_state.term == 2


def test_conflicting_entries_replace_the_suffix(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1, vote=1), entries(1, 10, 1))
    storage.save(HardState(term=2, vote=NO_NODE, commit=4), entries(6, 8, 2, b"-new"))
    assert storage.last_index() == 8 and storage.term(6) == 2 and storage.term(5) == 1
    storage.close()
    storage, recovered = reopen(tmp_path)
    assert list(recovered.entries) == entries(1, 5, 1) + entries(6, 8, 2, b"-new")
    assert recovered.hard_state == HardState(term=2, vote=NO_NODE, commit=4)


def test_hard_state_survives_truncating_the_wal_suffix_that_held_it(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1, vote=1, commit=0), entries(1, 6, 1))
    storage.save(HardState(term=5, vote=2, commit=2), [])  # the vote sits after entry 6 in the WAL
    storage.truncate_suffix(4)  # removes WAL records from entry 4 on, including that vote
    storage.close()
    storage, recovered = reopen(tmp_path)
    assert recovered.hard_state == HardState(term=5, vote=2, commit=2)
    assert list(recovered.entries) == entries(1, 3, 1)


def test_compaction_drops_segments_and_keeps_the_rest(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path, segment_bytes_target=256)
    for first in range(1, 100, 10):
        storage.save(HardState(term=1, vote=1, commit=first + 9), entries(first, first + 9, 1))
    segments_before = len(storage.wal.segments())
    with pytest.raises(StorageUsageError):
        storage.compact(101)  # beyond the log
    removed = storage.compact(60)
    assert removed and len(storage.wal.segments()) == segments_before - len(removed)
    assert storage.first_index() == 61 and storage.term(60) == 1 and storage.term(59) is None
    storage.save(HardState(term=2, vote=NO_NODE, commit=100), entries(101, 105, 2))
    storage.close()
    storage, recovered = reopen(tmp_path, segment_bytes_target=256)
    assert recovered.snapshot_index == 60 and recovered.snapshot_term == 1
    assert [e.index for e in recovered.entries] == list(range(61, 106))
    with pytest.raises(StorageUsageError):
        storage.truncate_suffix(60)  # compacted entries cannot be overwritten


def test_compaction_refuses_uncommitted_entries(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1, vote=1, commit=3), entries(1, 10, 1))
    with pytest.raises(StorageUsageError):
        storage.compact(4)
    storage.compact(3)
    assert storage.first_index() == 4


def test_install_snapshot_beyond_the_log_discards_it(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=3, vote=1, commit=2), entries(1, 5, 3))
    storage.install_snapshot(100, 4)
    assert storage.last_index() == 100 and storage.first_index() == 101
    assert storage.hard_state.commit == 100
    storage.save(HardState(term=4, vote=1, commit=100), entries(101, 102, 4))
    storage.close()
    _, recovered = reopen(tmp_path)
    assert recovered.snapshot_index == 100 and recovered.snapshot_term == 4
    assert [e.index for e in recovered.entries] == [101, 102]


def test_install_snapshot_that_agrees_with_the_log_keeps_the_suffix(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=3, vote=1, commit=2), entries(1, 8, 3))
    storage.install_snapshot(5, 3)
    assert [e.index for e in storage.entries(6, 9)] == [6, 7, 8]
    storage.install_snapshot(7, 9)  # disagrees with entry 7's term: the whole log goes
    assert storage.last_index() == 7 and storage.entries(8, 8) == []
    storage.close()
    _, recovered = reopen(tmp_path)
    assert recovered.entries == () and recovered.snapshot_index == 7


def test_crash_between_snapshot_install_and_log_truncation_is_repaired(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=3, vote=1, commit=2), entries(1, 5, 3))
    storage.close()
    # As if install_snapshot had written raft.state and crashed before truncating the WAL.
    writer, _ = reopen(tmp_path)
    writer._snapshot_index, writer._snapshot_term = 50, 4
    writer._write_state()
    writer.close()
    storage, recovered = reopen(tmp_path)
    assert recovered.entries == () and recovered.snapshot_index == 50
    assert any("replaced by snapshot" in repair for repair in recovered.repairs)
    storage.save(HardState(term=4, vote=NO_NODE, commit=50), entries(51, 52, 4))
    storage.close()
    _, recovered = reopen(tmp_path)
    assert [e.index for e in recovered.entries] == [51, 52] and recovered.repairs == ()


@pytest.mark.parametrize(
    "hard, new_entries",
    [
        (HardState(term=1), []),  # term went backwards
        (HardState(term=2, vote=9), []),  # a second vote in term 2
        (None, entries(12, 12, 2)),  # gap
        (None, [Entry(11, 2, EntryType.NORMAL, b""), Entry(13, 2, EntryType.NORMAL, b"")]),  # not contiguous
        (None, entries(11, 11, 1)),  # term lower than the previous entry's
        (None, entries(11, 11, 3)),  # term above the current term
    ],
)
def test_out_of_contract_saves_are_refused(tmp_path: Path, hard, new_entries) -> None:  # type: ignore[no-untyped-def]
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=2, vote=1, commit=0), entries(1, 10, 2))
    with pytest.raises(StorageUsageError):
        storage.save(hard, new_entries)
    assert storage.last_index() == 10 and storage.hard_state.term == 2


def test_two_votes_in_one_term_on_disk_are_refused(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(str(tmp_path / "wal"))
    wal.append_batch([encode_hard_state(HardState(3, 1, 0)), encode_hard_state(HardState(3, 2, 0))])
    wal.close()
    with pytest.raises(CorruptStateError) as caught:
        reopen(tmp_path)
    assert "two different votes" in caught.value.fields["reason"]


def test_a_gap_in_the_log_on_disk_is_refused(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(str(tmp_path / "wal"))
    wal.append_batch([encode_entry(e) for e in entries(1, 3, 1) + entries(5, 6, 1)])
    wal.close()
    with pytest.raises(CorruptStateError):
        reopen(tmp_path)


def test_torn_batch_lowers_a_commit_that_points_past_the_log(tmp_path: Path) -> None:
    storage, _ = reopen(tmp_path)
    storage.save(HardState(term=1, vote=1, commit=0), entries(1, 3, 1))
    storage.save(HardState(term=1, vote=1, commit=6), entries(4, 6, 1))
    storage.close()
    segment = sorted((tmp_path / "wal").glob("*.wal"))[0]
    segment.write_bytes(segment.read_bytes()[:-20])  # entry 6 is torn off; commit=6 survives
    _, recovered = reopen(tmp_path)
    assert recovered.last_index == 5
    assert recovered.hard_state.commit == 5
    assert any("torn" in repair for repair in recovered.repairs)


# --- crashes on a simulated disk --------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 6), st.booleans(), st.booleans()), min_size=1, max_size=12),
    st.integers(0, 2**32),
)
def test_acknowledged_saves_survive_a_power_loss(
    steps: list[tuple[int, bool, bool]], seed: int
) -> None:
    fs = MemoryFileSystem()
    storage, _ = RaftStorage.open("/node", fs, segment_bytes_target=300)
    term = 1
    last = 0
    durable_last = 0
    durable_term = 0
    written: list[Entry] = []
    for count, sync, new_term in steps:
        term += new_term
        batch = entries(last + 1, last + count, term)
        storage.save(HardState(term=term, vote=1, commit=last), batch, sync=sync)
        written += batch
        last += count
        if sync:
            durable_last, durable_term = last, term
    fs.crash(random.Random(seed))
    _, recovered = RaftStorage.open("/node", fs, segment_bytes_target=300)
    got = list(recovered.entries)
    assert got == written[: len(got)], "recovered log must be a prefix of what was written"
    assert len(got) >= durable_last, "every acknowledged entry must survive"
    assert recovered.hard_state.term >= durable_term
    assert recovered.hard_state.commit <= recovered.last_index
