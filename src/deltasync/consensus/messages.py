"""Raft values and wire messages: frozen slotted dataclasses in one codec registry.

Everything the core exchanges with its peers is one of the message classes
below, registered in ``RAFT_MESSAGES`` so the node shell can put it on the wire
with ``RAFT_MESSAGES.encode(message)`` and read it back with
``RAFT_MESSAGES.decode(data)``. Every message names its ``sender``, its
``recipient`` and the sender's ``term``.

Durable values (``Entry``, ``HardState``, ``SnapshotMeta``) are registered too,
so the storage layer can persist them with the same canonical codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.core.codec import Registry

RAFT_MESSAGES = Registry("raft")

NO_NODE = 0  # node ids are positive; 0 means "nobody" (no vote, no known leader)


class EntryType(Enum):
    NORMAL = 0  # an application payload, opaque to the core
    CONF_CHANGE = 1  # data is an encoded ``ConfChange``
    NOOP = 2  # appended by a new leader to commit entries of earlier terms


class ConfChangeKind(Enum):
    ADD_VOTER = 0  # add a voter, or promote a learner to voter
    ADD_LEARNER = 1  # add a non-voting member that receives the log
    REMOVE_NODE = 2  # remove a voter or a learner


@RAFT_MESSAGES.register(1)
@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    type: EntryType
    data: bytes

    def __post_init__(self) -> None:
        assert self.index > 0 and self.term > 0, f"bad entry position {self.index}/{self.term}"


@RAFT_MESSAGES.register(2)
@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a vote is granted or an entry acknowledged."""

    term: int = 0
    vote: int = NO_NODE
    commit: int = 0


@RAFT_MESSAGES.register(3)
@dataclass(frozen=True, slots=True)
class ConfState:
    """A membership: sorted voter ids and sorted learner ids (disjoint)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        assert list(self.voters) == sorted(set(self.voters)), f"voters not sorted: {self.voters}"
        assert list(self.learners) == sorted(set(self.learners)), "learners not sorted"
        assert not set(self.voters) & set(self.learners), "a node is voter and learner"

    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.voters + self.learners))


@RAFT_MESSAGES.register(4)
@dataclass(frozen=True, slots=True)
class ConfChange:
    """The payload of a CONF_CHANGE entry: one single-server membership change."""

    kind: ConfChangeKind
    node_id: int

    def __post_init__(self) -> None:
        assert self.node_id > 0, "node ids are positive"


@RAFT_MESSAGES.register(5)
@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: the log up to ``index`` (of ``term``) and its membership."""

    index: int
    term: int
    conf_state: ConfState


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Snapshot metadata plus the application's state bytes (opaque to the core)."""

    meta: SnapshotMeta
    data: bytes


# --- messages ----------------------------------------------------------------


@RAFT_MESSAGES.register(10)
@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term), and the leader's commit."""

    sender: int
    recipient: int
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@RAFT_MESSAGES.register(11)
@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Follower -> leader.

    Accepted: ``index`` is the follower's last index known to match the leader.
    Rejected: ``index`` is the rejected ``prev_index``; the hint helps the leader
    skip back a whole term at a time: ``hint_term`` is the follower's term at
    the conflicting position (0 if its log is too short) and ``hint_index`` the
    first index the follower holds of that term (or its last index + 1).
    """

    sender: int
    recipient: int
    term: int
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@RAFT_MESSAGES.register(12)
@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> follower: liveness, commit (bounded by what the follower holds), read context."""

    sender: int
    recipient: int
    term: int
    commit: int
    context: bytes = b""


@RAFT_MESSAGES.register(13)
@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    sender: int
    recipient: int
    term: int
    context: bytes = b""


@RAFT_MESSAGES.register(14)
@dataclass(frozen=True, slots=True)
class VoteRequest:
    """Candidate -> voter. A pre-vote asks "would you vote for me at ``term``?" without
    anyone changing term; ``leadership_transfer`` overrides the leader lease."""

    sender: int
    recipient: int
    term: int
    last_index: int
    last_term: int
    pre_vote: bool = False
    leadership_transfer: bool = False


@RAFT_MESSAGES.register(15)
@dataclass(frozen=True, slots=True)
class VoteResponse:
    sender: int
    recipient: int
    term: int
    reject: bool
    pre_vote: bool = False


@RAFT_MESSAGES.register(16)
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower: one chunk of a snapshot's data, starting at ``offset``."""

    sender: int
    recipient: int
    term: int
    meta: SnapshotMeta
    offset: int
    total_bytes: int
    data: bytes
    done: bool


@RAFT_MESSAGES.register(17)
@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    """Follower -> leader: the next offset the follower expects for that snapshot.

    The final chunk is answered with an ``AppendResponse`` instead."""

    sender: int
    recipient: int
    term: int
    snapshot_index: int
    next_offset: int


@RAFT_MESSAGES.register(18)
@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> chosen successor: campaign now (leadership transfer)."""

    sender: int
    recipient: int
    term: int


@RAFT_MESSAGES.register(19)
@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Follower -> leader: a linearizable read on behalf of a follower's client."""

    sender: int
    recipient: int
    term: int
    context: bytes


@RAFT_MESSAGES.register(20)
@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """Leader -> follower: the read may be served once the follower applied ``index``."""

    sender: int
    recipient: int
    term: int
    index: int
    context: bytes


Message = (
    AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | VoteRequest
    | VoteResponse
    | InstallSnapshot
    | SnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)

MESSAGE_TYPES: tuple[type, ...] = (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    VoteRequest,
    VoteResponse,
    InstallSnapshot,
    SnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
)


def encode_conf_change(change: ConfChange) -> bytes:
    return RAFT_MESSAGES.encode(change)


def decode_conf_change(data: bytes) -> ConfChange:
    value = RAFT_MESSAGES.decode(data)
    assert isinstance(value, ConfChange), f"conf-change entry holds {type(value).__name__}"
    return value
