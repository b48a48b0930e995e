"""The leader's view of each follower: how far it matches, and how fast to feed it.

A follower is in one of three states (a table, as etcd's raft has it):

- PROBE: we don't know where its log diverges. One append at a time; wait for
  the answer (or a heartbeat response) before sending the next.
- REPLICATE: its log matches up to ``match``. Appends are pipelined: ``next``
  advances optimistically when an append is sent, bounded by a window of
  ``inflight_count_max`` appends and ``inflight_bytes_max`` bytes.
- SNAPSHOT: the entries it needs are compacted away; a snapshot is streamed to
  it chunk by chunk, no appends meanwhile. Other followers are not affected.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A FIFO of the appends sent but not yet acknowledged: (last index, bytes)."""

    __slots__ = ("count_max", "bytes_max", "_queue", "_bytes")

    def __init__(self, count_max: int, bytes_max: int) -> None:
        assert count_max > 0 and bytes_max > 0
        self.count_max = count_max
        self.bytes_max = bytes_max
        self._queue: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def add(self, last_index: int, size_bytes: int) -> None:
        assert not self.full(), "inflight window overflow"
        assert not self._queue or self._queue[-1][0] < last_index, "inflight indexes must grow"
        self._queue.append((last_index, size_bytes))
        self._bytes += size_bytes

    def free_to(self, index: int) -> None:
        """Forget every append whose last index is <= ``index`` (acknowledged)."""
        while self._queue and self._queue[0][0] <= index:
            self._bytes -= self._queue.popleft()[1]

    def free_first(self) -> None:
        if self._queue:
            self._bytes -= self._queue.popleft()[1]

    def full(self) -> bool:
        return len(self._queue) >= self.count_max or self._bytes >= self.bytes_max

    def count(self) -> int:
        return len(self._queue)

    def size_bytes(self) -> int:
        return self._bytes

    def reset(self) -> None:
        self._queue.clear()
        self._bytes = 0


class Progress:
    __slots__ = (
        "match",
        "next",
        "state",
        "probe_sent",
        "pending_snapshot",
        "snapshot_offset",
        "snapshot_acked",
        "recent_active",
        "is_learner",
        "inflights",
    )

    def __init__(
        self, next_index: int, inflight_count_max: int, inflight_bytes_max: int, is_learner: bool
    ) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0  # index of the snapshot being streamed
        self.snapshot_offset = 0  # next byte the follower expects
        self.snapshot_acked = False  # a chunk was acknowledged since the last heartbeat
        self.recent_active = True  # heard from within the current election timeout
        self.is_learner = is_learner
        self.inflights = Inflights(inflight_count_max, inflight_bytes_max)

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_offset = 0
        self.snapshot_acked = False
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            # Resume after the snapshot: the follower holds at least that much.
            pending = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower matches up to ``index``; False if that is old news."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, last_index: int, size_bytes: int) -> None:
        """An append carrying entries up to ``last_index`` was sent."""
        match self.state:
            case ProgressState.REPLICATE:
                self.next = last_index + 1
                self.inflights.add(last_index, size_bytes)
            case ProgressState.PROBE:
                self.probe_sent = True
            case ProgressState.SNAPSHOT:
                raise AssertionError("no appends while streaming a snapshot")

    def maybe_decrease_to(self, rejected: int, next_hint: int) -> bool:
        """A rejection of the append after ``rejected``; False if it is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # an old append, since overtaken
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not the probe we are waiting for
        self.next = max(min(rejected, next_hint), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        match self.state:
            case ProgressState.PROBE:
                return self.probe_sent
            case ProgressState.REPLICATE:
                return self.inflights.full()
            case ProgressState.SNAPSHOT:
                return True
        raise AssertionError(self.state)

    def describe(self) -> str:
        role = "learner" if self.is_learner else "voter"
        text = f"{self.state.value} match={self.match} next={self.next} {role}"
        if self.state is ProgressState.SNAPSHOT:
            text += f" snapshot={self.pending_snapshot}@{self.snapshot_offset}"
        if self.state is ProgressState.REPLICATE and self.inflights.count():
            text += f" inflight={self.inflights.count()}"
        return text
