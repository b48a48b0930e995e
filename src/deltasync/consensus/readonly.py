"""Linearizable reads without writing to the log (ReadIndex, Raft dissertation 6.4).

The leader records its commit index when a read arrives, then proves it is
still the leader by a round of heartbeats carrying the read's context. Once a
majority of voters answered a heartbeat with that context (or a later one), every
read queued up to it may be served as soon as the state machine has applied the
recorded index. Reads are queued in arrival order and acknowledged in that order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read that may be served once ``index`` is applied (the context is the caller's)."""

    index: int
    context: bytes


@dataclass(slots=True)
class PendingRead:
    index: int
    context: bytes
    requester: int  # the node whose client asked: the leader itself or a follower
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("pending_max", "_by_context", "_queue")

    def __init__(self, pending_max: int) -> None:
        self.pending_max = pending_max
        self._by_context: dict[bytes, PendingRead] = {}
        self._queue: deque[bytes] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def full(self) -> bool:
        return len(self._queue) >= self.pending_max

    def contains(self, context: bytes) -> bool:
        return context in self._by_context

    def add(self, index: int, context: bytes, requester: int, self_id: int) -> None:
        assert context not in self._by_context and not self.full()
        self._by_context[context] = PendingRead(index, context, requester, {self_id})
        self._queue.append(context)

    def ack(self, context: bytes, voter: int) -> set[int] | None:
        """Record a heartbeat answer; the voters that acknowledged ``context`` so far."""
        pending = self._by_context.get(context)
        if pending is None:
            return None
        pending.acks.add(voter)
        return pending.acks

    def release_through(self, context: bytes) -> list[PendingRead]:
        """Pop every read queued up to and including ``context``."""
        if context not in self._by_context:
            return []
        released: list[PendingRead] = []
        while self._queue:
            head = self._queue.popleft()
            released.append(self._by_context.pop(head))
            if head == context:
                break
        return released

    def last_context(self) -> bytes:
        return self._queue[-1] if self._queue else b""

    def clear(self) -> None:
        self._by_context.clear()
        self._queue.clear()
