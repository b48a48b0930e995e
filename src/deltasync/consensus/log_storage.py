"""The core's in-memory copy of its log: the latest snapshot and the entries after it.

``MemoryStorage`` mirrors what the caller's durable storage holds plus the
entries not yet persisted: entries up to ``stable_index`` were handed out in a
``Ready`` and acknowledged by ``advance``; those after it are *unstable* and
appear in the next ``Ready.entries``. The core is usable with this class alone
(tests, simulations); a real node persists every ``Ready`` and rebuilds the core
from a ``RecoveredState`` after a restart.
"""

from __future__ import annotations

from deltasync.consensus.messages import ConfState, Entry, Snapshot, SnapshotMeta

EMPTY_SNAPSHOT = Snapshot(SnapshotMeta(index=0, term=0, conf_state=ConfState()), b"")


class MemoryStorage:
    """Snapshot + a contiguous list of entries (``snapshot.index + 1`` ...)."""

    __slots__ = ("snapshot", "entries", "stable_index")

    def __init__(self, snapshot: Snapshot = EMPTY_SNAPSHOT, entries: tuple[Entry, ...] = ()) -> None:
        self.snapshot = snapshot
        self.entries: list[Entry] = []
        self.stable_index = snapshot.meta.index
        expected = snapshot.meta.index + 1
        for entry in entries:
            if entry.index <= snapshot.meta.index:
                continue  # covered by the snapshot
            assert entry.index == expected, f"log gap: expected {expected}, got {entry.index}"
            self.entries.append(entry)
            expected += 1
        self.stable_index = self.last_index()

    # --- reads ------------------------------------------------------------

    @property
    def offset(self) -> int:
        """The index just before the first entry held (the snapshot's index)."""
        return self.snapshot.meta.index

    def first_index(self) -> int:
        return self.offset + 1

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def term(self, index: int) -> int | None:
        """The term at ``index``; None if compacted away or beyond the last entry."""
        if index == self.offset:
            return self.snapshot.meta.term
        if index < self.offset or index > self.last_index():
            return None
        return self.entries[index - self.offset - 1].term

    def entry(self, index: int) -> Entry:
        assert self.offset < index <= self.last_index(), f"entry {index} not held"
        return self.entries[index - self.offset - 1]

    def slice(self, low: int, high: int, bytes_max: int | None = None) -> list[Entry]:
        """Entries [low, high), stopping before ``bytes_max`` of data (at least one entry)."""
        assert self.offset < low <= high <= self.last_index() + 1, f"slice [{low},{high}) unavailable"
        selected = self.entries[low - self.offset - 1 : high - self.offset - 1]
        if bytes_max is None:
            return selected
        size = 0
        for count, entry in enumerate(selected):
            size += len(entry.data)
            if size > bytes_max and count > 0:
                return selected[:count]
        return selected

    def unstable(self) -> list[Entry]:
        return self.entries[self.stable_index - self.offset :]

    # --- writes -----------------------------------------------------------

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries, first dropping any held entry at or after the first new index."""
        if not entries:
            return
        first = entries[0].index
        assert self.offset < first <= self.last_index() + 1, f"append at {first} leaves a gap"
        del self.entries[first - self.offset - 1 :]
        self.entries.extend(entries)
        self.stable_index = min(self.stable_index, first - 1)

    def stable_to(self, index: int, term: int) -> None:
        """Mark entries up to ``index`` persisted, unless that entry was replaced meanwhile."""
        if self.term(index) == term and index > self.stable_index:
            self.stable_index = index

    def compact(self, snapshot: Snapshot) -> None:
        """Install a snapshot the application took: drop the entries it covers."""
        index = snapshot.meta.index
        assert self.offset < index <= self.last_index(), f"cannot compact at {index}"
        assert self.term(index) == snapshot.meta.term
        del self.entries[: index - self.offset]
        self.snapshot = snapshot
        self.stable_index = max(self.stable_index, index)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace everything with a snapshot received from the leader."""
        self.snapshot = snapshot
        self.entries = []
        self.stable_index = snapshot.meta.index
