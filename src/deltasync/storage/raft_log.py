"""The durable Raft log: hard state and entries, on the WAL.

It stores and recovers the Raft core's own values, ``consensus.Entry`` and
``consensus.HardState``, so the node hands a ``Ready``'s entries and hard state
over as they are. On disk an entry's type is its ``EntryType`` value and "no
vote" (``NO_NODE``) is written as vote 0 with ``has_vote`` 0.

How the node drives it, for every ``Ready`` of the core::

    storage.save(ready.hard_state, ready.entries, sync=ready.must_sync)  # before sending
    ...                                                                 # then send messages
    storage.compact(index)          # after a snapshot at ``index`` is saved
    storage.install_snapshot(i, t)  # after a snapshot from the leader is saved

``save`` is durable when it returns (with ``sync``): term and vote before a vote
is granted, entries before they are acknowledged. One ``save`` is one WAL batch,
hence one fsync; the hard state record goes first in the batch, so a torn batch
never leaves entries of a term whose hard state was lost.

On disk, in the directory given to ``open``::

    wal/         WAL segments: hard-state records and entry records
    raft.state   the compaction point (snapshot index and term) and a copy of the
                 hard state; replaced atomically, only when the log is truncated,
                 compacted or replaced by a snapshot (rare), so the hot path is
                 the WAL's single fsync

Recovery merges the hard state monotonically (highest term; the vote of that
term; highest commit), rebuilds the entries after the compaction point and
refuses (``CorruptStateError``) gaps or two different votes in one term.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from deltasync.consensus.messages import NO_NODE, Entry, EntryType, HardState
from deltasync.core import codec
from deltasync.core.errors import CodecError
from deltasync.core.limits import wal_batch_records_max, wal_segment_bytes_target
from deltasync.storage.atomic import read_checked, write_checked
from deltasync.storage.errors import CorruptStateError, StorageUsageError
from deltasync.storage.fs import FileSystem, OsFileSystem
from deltasync.storage.wal import RecoveryReport, WriteAheadLog

WAL_DIRNAME = "wal"
STATE_FILENAME = "raft.state"
_STATE_MAGIC = b"DSRAFTST"
_STATE_VERSION = 1

_KIND_ENTRY = 1
_KIND_HARD_STATE = 2
_ENTRY = struct.Struct("<BQQI")  # kind, index, term, type; then the data
_HARD_STATE = struct.Struct("<BQQQB")  # kind, term, commit, vote, has_vote
_U64_MAX = 2**64 - 1
_ENTRY_TYPE_OF_VALUE = {entry_type.value: entry_type for entry_type in EntryType}


@dataclass(frozen=True, slots=True)
class RecoveredLog:
    """What opening the log found; with the newest snapshot it makes the core's ``RecoveredState``."""

    hard_state: HardState
    snapshot_index: int  # the log was compacted up to here; entries start after it
    snapshot_term: int
    entries: tuple[Entry, ...]
    wal: RecoveryReport
    repairs: tuple[str, ...]  # what recovery changed on disk, for the node's log

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snapshot_index


def encode_entry(entry: Entry) -> bytes:
    return _ENTRY.pack(_KIND_ENTRY, entry.index, entry.term, entry.type.value) + entry.data


def encode_hard_state(hard: HardState) -> bytes:
    has_vote = hard.vote != NO_NODE
    return _HARD_STATE.pack(_KIND_HARD_STATE, hard.term, hard.commit, hard.vote, has_vote)


def decode_record(payload: bytes) -> Entry | HardState:
    """A WAL payload written by this module; raises ``CodecError`` otherwise."""
    kind = payload[0] if payload else None
    if kind == _KIND_ENTRY and len(payload) >= _ENTRY.size:
        _, index, term, type_value = _ENTRY.unpack_from(payload)
        entry_type = _ENTRY_TYPE_OF_VALUE.get(type_value)
        if index >= 1 and term >= 1 and entry_type is not None:
            return Entry(index, term, entry_type, payload[_ENTRY.size :])
    elif kind == _KIND_HARD_STATE and len(payload) == _HARD_STATE.size:
        _, term, commit, vote, has_vote = _HARD_STATE.unpack(payload)
        # A stored vote 0 with has_vote 1 was never written (node ids are positive); it
        # reads as no vote, as the node has always read it.
        if has_vote in (0, 1) and (has_vote or vote == 0):
            return HardState(term, vote, commit)
    raise CodecError(reason="not a raft log record", kind=kind, size=len(payload))


def _in_u64_range(hard: HardState) -> bool:
    """What the record and state file formats can hold (the core's type does not bound it)."""
    return 0 <= hard.term <= _U64_MAX and 0 <= hard.vote <= _U64_MAX and 0 <= hard.commit <= _U64_MAX


def merge_hard_states(a: HardState, b: HardState, *, where: str = "") -> HardState:
    """The newer of two persisted hard states (terms only grow, a term has one vote)."""
    commit = max(a.commit, b.commit)
    if a.term != b.term:
        newer = a if a.term > b.term else b
        return HardState(newer.term, newer.vote, commit)
    if a.vote != NO_NODE and b.vote != NO_NODE and a.vote != b.vote:
        raise CorruptStateError(
            path=where,
            reason="two different votes persisted in one term",
            term=a.term,
            votes=(a.vote, b.vote),
        )
    return HardState(a.term, a.vote if a.vote != NO_NODE else b.vote, commit)


@dataclass(frozen=True, slots=True)
class _StateFile:
    hard_state: HardState
    snapshot_index: int
    snapshot_term: int


def _read_state_file(fs: FileSystem, path: str) -> _StateFile:
    if not fs.exists(path):
        return _StateFile(HardState(), 0, 0)
    payload = read_checked(fs, path, _STATE_MAGIC)
    try:
        wire = codec.decode(payload, canonical=True)
        version, term, vote, commit, snapshot_index, snapshot_term = wire
        if version != _STATE_VERSION:
            raise CorruptStateError(path=path, reason="unsupported version", version=version)
        hard = HardState(term, NO_NODE if vote is None else vote, commit)
        if not _in_u64_range(hard):
            raise ValueError(f"hard state beyond u64: {hard}")
        return _StateFile(hard, snapshot_index, snapshot_term)
    except (CodecError, ValueError, TypeError, AssertionError) as exc:
        raise CorruptStateError(path=path, reason="malformed raft state", detail=str(exc)) from None


class RaftStorage:
    """Hard state + log entries after the compaction point, durable and held in memory."""

    def __init__(
        self, fs: FileSystem, directory: str, wal: WriteAheadLog, state: _StateFile
    ) -> None:
        self._fs = fs
        self._directory = directory
        self._wal = wal
        self._hard = state.hard_state
        self._snapshot_index = state.snapshot_index
        self._snapshot_term = state.snapshot_term
        self._entries: list[Entry] = []
        self._seqs = array("Q")  # WAL seq of each held entry
        self._read_only = False

    # --- opening ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str,
        fs: FileSystem | None = None,
        *,
        segment_bytes_target: int = wal_segment_bytes_target,
        read_only: bool = False,
    ) -> tuple[RaftStorage, RecoveredLog]:
        """Open or create the log in ``directory`` and recover it (repairing a torn tail).

        With ``read_only`` (``deltasync verify``) nothing on disk changes: repairs that
        opening would make are listed in ``RecoveredLog.repairs`` as "would ..." and
        writes refuse.
        """
        fs = fs or OsFileSystem()
        if not read_only:
            fs.makedirs(directory)
        state_path = f"{directory}/{STATE_FILENAME}"
        state = _read_state_file(fs, state_path)
        wal, report = WriteAheadLog.open(
            f"{directory}/{WAL_DIRNAME}",
            fs,
            segment_bytes_target=segment_bytes_target,
            read_only=read_only,
        )
        storage = cls(fs, directory, wal, state)
        storage._read_only = read_only
        repairs = []
        if report.torn_tail is not None:
            verb = "cut" if report.repaired else "would cut"
            repairs.append(
                f"{verb} torn WAL tail ({report.torn_tail.bytes_dropped} bytes):"
                f" {report.torn_tail.reason}"
            )
        repairs += storage._replay()
        recovered = RecoveredLog(
            storage._hard,
            storage._snapshot_index,
            storage._snapshot_term,
            tuple(storage._entries),
            report,
            tuple(repairs),
        )
        return storage, recovered

    def _replay(self) -> list[str]:
        """Rebuild the hard state and the entries from the WAL; returns the repairs made."""
        self._read_wal()
        repairs = self._drop_entries_the_snapshot_covers()
        hard = self._hard
        last = self.last_index()
        if hard.commit > last:
            # The entries a commit index points at were lost with a torn tail; they were
            # never acknowledged, and the leader will send them again.
            repairs.append(f"commit index {hard.commit} lowered to the last index held {last}")
            # In memory only: the next hard state saved carries the lowered commit.
            self._hard = HardState(hard.term, hard.vote, last)
        return repairs

    def _read_wal(self) -> None:
        """Every record in order: hard states merge, entries append or overwrite a suffix."""
        hard = self._hard
        entries = self._entries
        seqs = self._seqs
        for seq, payload in self._wal.iter_records():
            try:
                record = decode_record(payload)
            except CodecError as exc:
                raise CorruptStateError(
                    path=self._wal.directory, seq=seq, reason=str(exc)
                ) from None
            if isinstance(record, HardState):
                hard = merge_hard_states(hard, record, where=f"{self._wal.directory}#{seq}")
                continue
            if entries and entries[-1].index + 1 < record.index <= self._snapshot_index + 1:
                # A snapshot replaced the log (install_snapshot truncates only the entries
                # after the old compaction point): what we hold is covered by the snapshot.
                del entries[:]
                del seqs[:]
            if entries and record.index != entries[-1].index + 1:
                if record.index > entries[-1].index:
                    raise CorruptStateError(
                        path=self._wal.directory,
                        seq=seq,
                        reason="gap in the log",
                        expected=entries[-1].index + 1,
                        found=record.index,
                    )
                keep = record.index - entries[0].index  # an overwrite: drop the old suffix
                del entries[max(keep, 0) :]
                del seqs[max(keep, 0) :]
            entries.append(record)
            seqs.append(seq)
        self._hard = hard

    def _drop_entries_the_snapshot_covers(self) -> list[str]:
        """Keep only the entries after the compaction point, or none if a snapshot replaced them."""
        entries = self._entries
        seqs = self._seqs
        snapshot = self._snapshot_index
        if entries and entries[0].index > snapshot + 1:
            raise CorruptStateError(
                path=self._wal.directory,
                reason="entries missing between the compaction point and the log",
                snapshot_index=snapshot,
                first_entry=entries[0].index,
            )
        if not entries or entries[0].index > snapshot:
            return []
        if (
            entries[-1].index >= snapshot
            and entries[snapshot - entries[0].index].term == self._snapshot_term
        ):
            drop = snapshot - entries[0].index + 1
            del entries[:drop]
            del seqs[:drop]
            return []
        # a snapshot replaced this log; its entries are not ours any more
        if not self._read_only:
            self._write_state()
            self._wal.truncate_after(seqs[0] - 1)
        verb = "would drop" if self._read_only else "dropped"
        dropped = len(entries)
        entries.clear()
        del seqs[:]
        return [f"{verb} {dropped} log entries replaced by snapshot {snapshot}"]

    # --- reads ------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard

    @property
    def snapshot_index(self) -> int:
        return self._snapshot_index

    @property
    def snapshot_term(self) -> int:
        return self._snapshot_term

    @property
    def wal(self) -> WriteAheadLog:
        return self._wal

    def first_index(self) -> int:
        return self._snapshot_index + 1

    def last_index(self) -> int:
        return self._snapshot_index + len(self._entries)

    def term(self, index: int) -> int | None:
        """The term of entry ``index``; the snapshot term at the compaction point; None if unknown."""
        if index == self._snapshot_index:
            return self._snapshot_term
        if not self._snapshot_index < index <= self.last_index():
            return None
        return self._entries[index - self._snapshot_index - 1].term

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index < hi``."""
        if not self._snapshot_index < lo <= hi <= self.last_index() + 1:
            raise StorageUsageError(
                reason="entries out of range",
                lo=lo,
                hi=hi,
                first=self.first_index(),
                last=self.last_index(),
            )
        return self._entries[lo - self._snapshot_index - 1 : hi - self._snapshot_index - 1]

    # --- writes -------------------------------------------------------------------------

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool = True
    ) -> None:
        """Persist a new hard state and/or entries. Entries may overwrite a suffix of the log
        (a conflict); with ``sync`` everything is durable when this returns."""
        records: list[bytes] = []
        if hard_state is not None and hard_state != self._hard:
            self._check_hard_state(hard_state)
            records.append(encode_hard_state(hard_state))
        if entries:
            self._check_entries(entries, hard_state or self._hard)
            if entries[0].index <= self.last_index():
                self.truncate_suffix(entries[0].index)
            records.extend(encode_entry(entry) for entry in entries)
        if not records:
            if sync:
                self._wal.sync()
            return
        last_seq = 0
        for start in range(0, len(records), wal_batch_records_max):
            chunk = records[start : start + wal_batch_records_max]
            last_seq = self._wal.append_batch(
                chunk, sync=sync and start + len(chunk) == len(records)
            )
        if hard_state is not None:
            self._hard = hard_state
        first_seq = last_seq - len(entries) + 1
        self._entries.extend(entries)
        self._seqs.extend(range(first_seq, last_seq + 1))

    def sync(self) -> None:
        self._wal.sync()

    def truncate_suffix(self, from_index: int) -> None:
        """Durably remove entries ``from_index`` and after (a Raft log conflict)."""
        if from_index > self.last_index():
            return
        if from_index <= self._snapshot_index:
            raise StorageUsageError(
                reason="cannot truncate compacted entries",
                from_index=from_index,
                snapshot_index=self._snapshot_index,
            )
        position = from_index - self._snapshot_index - 1
        # The WAL suffix may hold the newest hard-state records: keep them in the state file.
        self._write_state()
        self._wal.truncate_after(self._seqs[position] - 1)
        del self._entries[position:]
        del self._seqs[position:]

    def compact(self, upto_index: int) -> list[str]:
        """Forget entries up to ``upto_index`` (covered by a saved snapshot) and delete the WAL
        segments that hold only those. Returns the segment paths removed."""
        if upto_index <= self._snapshot_index:
            return []
        if upto_index > self.last_index() or upto_index > self._hard.commit:
            raise StorageUsageError(
                reason="can only compact committed entries held",
                upto_index=upto_index,
                last_index=self.last_index(),
                commit=self._hard.commit,
            )
        term = self.term(upto_index)
        assert term is not None
        drop = upto_index - self._snapshot_index
        self._snapshot_index, self._snapshot_term = upto_index, term
        self._write_state()
        del self._entries[:drop]
        del self._seqs[:drop]
        keep_from = self._seqs[0] if len(self._seqs) else self._wal.next_seq
        return self._wal.drop_before(keep_from)

    def install_snapshot(self, index: int, term: int) -> None:
        """The state machine was replaced by a snapshot at (``index``, ``term``): keep the log
        after it if it agrees with the snapshot (Raft's rule), else discard the whole log."""
        if index <= self._snapshot_index:
            return
        keep_suffix = self.term(index) == term
        previous_first = self._seqs[0] if len(self._seqs) else None
        drop = index - self._snapshot_index if keep_suffix else len(self._entries)
        self._snapshot_index, self._snapshot_term = index, term
        if self._hard.commit < index:
            self._hard = HardState(self._hard.term, self._hard.vote, index)
        self._write_state()
        if not keep_suffix and previous_first is not None:
            self._wal.truncate_after(previous_first - 1)
        del self._entries[:drop]
        del self._seqs[:drop]
        self._wal.drop_before(self._seqs[0] if len(self._seqs) else self._wal.next_seq)

    def close(self) -> None:
        self._wal.close()

    # --- internals ------------------------------------------------------------------------

    def _write_state(self) -> None:
        hard = self._hard
        payload = codec.encode(
            [
                _STATE_VERSION,
                hard.term,
                None if hard.vote == NO_NODE else hard.vote,
                hard.commit,
                self._snapshot_index,
                self._snapshot_term,
            ]
        )
        write_checked(self._fs, f"{self._directory}/{STATE_FILENAME}", _STATE_MAGIC, payload)

    def _check_hard_state(self, new: HardState) -> None:
        old = self._hard
        if not _in_u64_range(new):
            raise StorageUsageError(
                reason="hard state beyond u64", term=new.term, vote=new.vote, commit=new.commit
            )
        if new.term < old.term:
            raise StorageUsageError(reason="term went backwards", old=old.term, new=new.term)
        if new.term == old.term and old.vote != NO_NODE and new.vote != old.vote:
            raise StorageUsageError(
                reason="vote changed within a term", term=new.term, old=old.vote, new=new.vote
            )

    def _check_entries(self, entries: Sequence[Entry], hard: HardState) -> None:
        first = entries[0].index
        if first <= self._snapshot_index:
            raise StorageUsageError(
                reason="entries overlap the compacted log",
                first=first,
                snapshot_index=self._snapshot_index,
            )
        if first > self.last_index() + 1:
            raise StorageUsageError(
                reason="gap before new entries", first=first, last_index=self.last_index()
            )
        previous_term = self.term(first - 1) or 0
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise StorageUsageError(
                    reason="entries not contiguous", at=entry.index, expected=first + offset
                )
            if entry.term < previous_term or entry.term > hard.term:
                raise StorageUsageError(
                    reason="entry term out of order",
                    index=entry.index,
                    term=entry.term,
                    current_term=hard.term,
                )
            previous_term = entry.term
