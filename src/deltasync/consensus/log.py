"""The replicated log as one node sees it: storage plus the commit and apply cursors.

Invariants (asserted): ``applied <= committed <= last_index``; entries are
contiguous; a committed entry is never truncated.
"""

from __future__ import annotations

from deltasync.consensus.log_storage import MemoryStorage
from deltasync.consensus.messages import Entry, Snapshot


class RaftLog:
    __slots__ = ("storage", "committed", "applied", "pending_snapshot")

    def __init__(self, storage: MemoryStorage, committed: int, applied: int) -> None:
        self.storage = storage
        assert storage.offset <= applied <= committed <= storage.last_index(), (
            f"bad cursors: snapshot {storage.offset} applied {applied} committed {committed} "
            f"last {storage.last_index()}"
        )
        self.committed = committed
        self.applied = applied
        # A snapshot received from the leader and not yet persisted/applied by the caller.
        self.pending_snapshot: Snapshot | None = None

    # --- reads ------------------------------------------------------------

    def first_index(self) -> int:
        return self.storage.first_index()

    def last_index(self) -> int:
        return self.storage.last_index()

    def last_term(self) -> int:
        term = self.storage.term(self.last_index())
        assert term is not None
        return term

    def term(self, index: int) -> int | None:
        return self.storage.term(index)

    def match_term(self, index: int, term: int) -> bool:
        return self.storage.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Would a candidate with this last entry have a log at least as up to date as ours?"""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries_from(self, index: int, count_max: int, bytes_max: int) -> list[Entry]:
        high = min(self.last_index() + 1, index + count_max)
        return self.storage.slice(index, high, bytes_max)

    def first_index_of_term_at(self, index: int) -> int:
        """The first held index whose term equals the term at ``index``."""
        term = self.storage.term(index)
        assert term is not None
        first = index
        while first - 1 > self.storage.offset and self.storage.term(first - 1) == term:
            first -= 1
        return first

    def last_index_of_term(self, term: int, at_most: int) -> int | None:
        """The last held index <= ``at_most`` whose term is ``term``, if any."""
        index = min(at_most, self.last_index())
        while index >= self.storage.offset:
            found = self.storage.term(index)
            if found is None or found < term:
                return None
            if found == term:
                return index
            index -= 1
        return None

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self._snapshot_floor())

    def next_committed(self, bytes_max: int) -> list[Entry]:
        low = max(self.applied, self._snapshot_floor()) + 1
        if low > self.committed:
            return []
        return self.storage.slice(low, self.committed + 1, bytes_max)

    def _snapshot_floor(self) -> int:
        return self.pending_snapshot.meta.index if self.pending_snapshot is not None else 0

    # --- writes -----------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        if entries:
            assert entries[0].index > self.committed, (
                f"truncating committed entry {entries[0].index} (committed {self.committed})"
            )
            self.storage.append(entries)

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry that is new or disagrees with ours; 0 if all match."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> tuple[int, int] | None:
        """Append the leader's entries if our log matches at ``prev_index``.

        Returns (last index known to match the leader, first index replaced or
        appended, 0 if none), or None on mismatch.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(list(entries[conflict - prev_index - 1 :]))
        self.commit_to(min(commit, last_new))
        return last_new, conflict

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        assert index <= self.last_index(), f"commit {index} beyond last index {self.last_index()}"
        self.committed = index
        return True

    def applied_to(self, index: int) -> None:
        assert self.applied <= index <= self.committed, f"apply {index} out of order"
        self.applied = index

    def restore(self, snapshot: Snapshot) -> None:
        self.storage.restore(snapshot)
        self.committed = snapshot.meta.index
        self.pending_snapshot = snapshot
