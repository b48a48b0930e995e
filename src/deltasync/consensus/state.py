"""The values the core hands to its caller, and the one it is restarted from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.consensus.messages import (
    NO_NODE,
    ConfState,
    Entry,
    HardState,
    Message,
    Snapshot,
)
from deltasync.consensus.readonly import ReadState
from deltasync.core.errors import LocalError, RemoteError


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the caller may want to observe (not persisted)."""

    leader_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the caller must do after feeding the core some input.

    The caller's contract, in this order:

    1. Persist ``snapshot`` (if any: the core's log now starts after it, so
       drop every stored entry), then ``entries`` (``entries[0].index`` may be
       at or below the last stored index: drop stored entries from there on
       first), then ``hard_state`` (if not None). If ``must_sync``, fsync
       before going on: a vote or an acknowledgement must never outlive a crash
       that lost what it promised.
    2. Only then send ``messages`` (in any order; any may be lost).
       ``early_messages`` (empty unless ``RaftConfig.send_before_persist``) may be
       sent at any time, before or while persisting: they are a leader's appends,
       heartbeats and snapshot chunks.
    3. Restore the state machine from ``snapshot`` (if any), then apply
       ``committed_entries`` in order. Apply nothing else: CONF_CHANGE and NOOP
       entries are for the core (membership is already in effect) and may be
       skipped by the application.
    4. Serve ``read_states``: their index is applied once step 3 is done.
    5. Call ``advance(ready)`` with this same object before asking for the next.
    """

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    messages: tuple[Message, ...]
    committed_entries: tuple[Entry, ...]
    read_states: tuple[ReadState, ...]
    must_sync: bool
    early_messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What durable storage gives back after a restart.

    ``hard_state`` as last persisted; ``snapshot`` the latest persisted
    snapshot (None if never compacted); ``entries`` the persisted log entries,
    contiguous, in index order (entries covered by the snapshot are ignored).
    """

    hard_state: HardState
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]


class RequestRejectReason(Enum):
    """Why the core refused a request: a proposal, a membership change, a transfer, a read."""

    NOT_LEADER = "not leader"
    NO_LEADER = "no known leader"
    TRANSFERRING_LEADERSHIP = "leadership transfer in progress"
    ENTRY_TOO_LARGE = "entry larger than an append"
    UNCOMMITTED_BACKLOG = "too many uncommitted bytes"
    CONF_CHANGE_PENDING = "a membership change is pending"
    INVALID_CONF_CHANGE = "invalid membership change"
    INVALID_TRANSFER = "invalid transfer target"
    READ_QUEUE_FULL = "too many pending reads"
    INVALID_READ = "invalid read context"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request the core refused; ``leader_id`` tells where to retry (NO_NODE if unknown)."""

    reason: RequestRejectReason
    leader_id: int = NO_NODE
    detail: str = ""

    def __str__(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return f"rejected ({self.reason.value}, leader {self.leader_id}){tail}"


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    node_id: int
    match: int
    next: int
    state: str
    is_learner: bool


@dataclass(frozen=True, slots=True)
class Status:
    node_id: int
    role: Role
    term: int
    vote: int
    leader_id: int
    commit_index: int
    applied_index: int
    last_index: int
    snapshot_index: int
    conf_state: ConfState
    progress: tuple[ProgressStatus, ...]  # the leader's view of every member; empty otherwise


class RaftUsageError(LocalError):
    """The caller broke the core's contract (fields: reason, ...)."""


class RecoveryError(RemoteError):
    """A ``RecoveredState`` is inconsistent (fields: reason, ...)."""
