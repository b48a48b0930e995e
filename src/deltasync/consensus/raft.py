"""The Raft state machine of one node, sans I/O.

Inputs: ``step(message)`` for every message from a peer, ``tick()`` at a fixed
logical interval, and the local requests ``propose``, ``propose_conf_change``,
``read_index``, ``transfer_leadership`` and ``compact``. Output: a ``Ready``
(see its docstring for the caller's contract), then ``advance(ready)``.
Nothing here reads a clock, touches a disk or a socket, or draws randomness
except from the ``rng`` object the caller injects (a seeded ``random.Random``).

What is implemented (Raft paper + dissertation, shaped like etcd's raft):
elections with randomized timeouts, PreVote, CheckQuorum with a leader lease,
leadership transfer (TimeoutNow), pipelined and batched replication with per
follower flow control, fast backtracking by conflicting term, the commit rule
for earlier terms (only current-term entries are committed by counting),
snapshots streamed in chunks, single-server membership changes with learners,
and ReadIndex reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar, cast

from deltasync.consensus.confchange import ConfHistory, check_change
from deltasync.consensus.config import RaftConfig, RandomSource
from deltasync.consensus.log import RaftLog
from deltasync.consensus.log_storage import EMPTY_SNAPSHOT, MemoryStorage
from deltasync.consensus.messages import (
    NO_NODE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    Snapshot,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    encode_conf_change,
)
from deltasync.consensus.progress import Progress, ProgressState
from deltasync.consensus.quorum import VoteResult, committed_index, has_quorum, vote_result
from deltasync.consensus.readonly import PendingRead, ReadOnly, ReadState
from deltasync.consensus.state import (
    ProgressStatus,
    RaftUsageError,
    Ready,
    RecoveredState,
    RecoveryError,
    Rejected,
    RequestRejectReason,
    Role,
    SoftState,
    Status,
)
from deltasync.core import limits

# What a leader sends: safe to send before its own Ready is persisted, because the
# leader's term and vote are already durable and it counts its own log only once
# persisted. Everything else (votes, acknowledgements) must wait for the disk.
_LEADER_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _fail_stop(method: _Method) -> _Method:
    """A core that failed an internal check refuses all later input (h11's rule): its
    state may be half updated, so the caller must rebuild it from durable storage."""

    @functools.wraps(method)
    def guarded(self: RaftNode, *args: Any, **kwargs: Any) -> Any:
        if self._failure is not None:
            raise RaftUsageError(reason="the core failed earlier; restart it", failure=self._failure)
        try:
            return method(self, *args, **kwargs)
        except RaftUsageError:
            raise  # refused before any change
        except Exception as exc:
            self._failure = repr(exc)
            raise

    return cast(_Method, guarded)


class _Campaign(Enum):
    PRE_ELECTION = "pre-election"
    ELECTION = "election"
    TRANSFER = "transfer"


class _IncomingSnapshot:
    __slots__ = ("meta", "buffer")

    def __init__(self, meta: SnapshotMeta) -> None:
        self.meta = meta
        self.buffer = bytearray()


class RaftNode:
    """One Raft participant. Not thread-safe; drive it from one task."""

    def __init__(
        self, config: RaftConfig, storage_view: RecoveredState | None, rng: RandomSource
    ) -> None:
        self.config = config
        self.id = config.node_id
        self._rng = rng
        self.term = 0
        self.vote = NO_NODE
        self.leader_id = NO_NODE
        self.role = Role.FOLLOWER
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.progress: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._messages: list[Message] = []
        self._read_states: list[ReadState] = []
        self._read_only = ReadOnly(config.read_index_pending_max)
        self._reads_before_commit: list[tuple[bytes, int]] = []
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = config.election_timeout_ticks
        self._lead_transferee = NO_NODE
        self._uncommitted_bytes = 0
        # Appends owed to every follower (new entries or a new commit index), sent when the
        # caller next asks for a Ready: proposals and acks arriving in between share them.
        self._broadcast_pending = False
        self._incoming_snapshot: _IncomingSnapshot | None = None
        self._outstanding: Ready | None = None
        self._failure: str | None = None  # set once an internal check failed

        if storage_view is None:
            self.log = RaftLog(MemoryStorage(), 0, 0)
            self._conf = ConfHistory(0, ConfState())
            self._persisted = HardState()
            self._bootstrap()
        else:
            self.log, self._conf = self._recover(storage_view)
            hard = storage_view.hard_state
            self.term, self.vote = hard.term, hard.vote
            self._persisted = HardState(hard.term, hard.vote, self.log.committed)
        self._apply_conf()
        self._become_follower(self.term, NO_NODE)
        self._soft = self._soft_state()

    def _bootstrap(self) -> None:
        """A new cluster's first entries: one committed change per initial member, term 1."""
        changes = [ConfChange(ConfChangeKind.ADD_VOTER, peer) for peer in sorted(self.config.peers)]
        changes += [ConfChange(ConfChangeKind.ADD_LEARNER, node) for node in sorted(self.config.learners)]
        if not changes:
            return  # joining an existing cluster: wait for the leader
        entries = [
            Entry(index, 1, EntryType.CONF_CHANGE, encode_conf_change(change))
            for index, change in enumerate(changes, start=1)
        ]
        self.term = 1
        self.log.append(entries)
        self._conf.observe(entries)
        self.log.commit_to(len(entries))

    def _recover(self, state: RecoveredState) -> tuple[RaftLog, ConfHistory]:
        snapshot = state.snapshot or EMPTY_SNAPSHOT
        try:
            storage = MemoryStorage(snapshot, state.entries)
        except AssertionError as exc:
            raise RecoveryError(reason="entries are not contiguous", detail=str(exc)) from None
        if state.entries and storage.last_index() < state.entries[-1].index:
            raise RecoveryError(reason="entries do not follow the snapshot")
        commit = max(state.hard_state.commit, snapshot.meta.index)
        if commit > storage.last_index():
            raise RecoveryError(
                reason="commit index beyond the last entry",
                commit=commit,
                last_index=storage.last_index(),
            )
        applied = max(snapshot.meta.index, min(self.config.applied_index, commit))
        log = RaftLog(storage, commit, applied)
        conf = ConfHistory(snapshot.meta.index, snapshot.meta.conf_state)
        conf.observe(storage.entries)
        return log, conf

    # --- public inputs ------------------------------------------------------

    @_fail_stop
    def tick(self) -> None:
        """Advance the logical clock by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    @_fail_stop
    def step(self, message: Message) -> None:
        """Feed one message received from a peer."""
        if message.recipient != self.id:
            raise RaftUsageError(reason="message for another node", recipient=message.recipient)
        if message.term > self.term:
            if not self._accept_higher_term(message):
                return
        elif message.term < self.term:
            self._answer_stale(message)
            return
        match message:
            case VoteRequest():
                self._handle_vote_request(message)
            case _:
                if self.role is Role.LEADER:
                    self._step_leader(message)
                elif self.role is Role.FOLLOWER:
                    self._step_follower(message)
                else:
                    self._step_candidate(message)

    @_fail_stop
    def campaign(self) -> None:
        """Start an election now instead of waiting for the timeout (pre-vote first if enabled)."""
        if self.role is not Role.LEADER:
            self._campaign(_Campaign.PRE_ELECTION if self.config.pre_vote else _Campaign.ELECTION)

    @_fail_stop
    def propose(self, data: bytes) -> int | Rejected:
        """Append an application entry; its log index, or why it was refused."""
        return self._propose(EntryType.NORMAL, data)

    @_fail_stop
    def propose_conf_change(self, kind: ConfChangeKind, node_id: int) -> int | Rejected:
        """Propose one single-server membership change (see ``confchange``)."""
        if self.role is not Role.LEADER:
            return Rejected(RequestRejectReason.NOT_LEADER, self.leader_id)
        if self._conf.latest_index() > self.log.committed:
            return Rejected(
                RequestRejectReason.CONF_CHANGE_PENDING,
                self.id,
                f"change at {self._conf.latest_index()} not committed",
            )
        if not self._committed_current_term():
            return Rejected(
                RequestRejectReason.CONF_CHANGE_PENDING, self.id, "no entry of this term committed yet"
            )
        change = ConfChange(kind, node_id)
        reason = check_change(self._conf.latest(), change)
        if reason is not None:
            return Rejected(RequestRejectReason.INVALID_CONF_CHANGE, self.id, reason)
        return self._propose(EntryType.CONF_CHANGE, encode_conf_change(change))

    @_fail_stop
    def read_index(self, context: bytes) -> Rejected | None:
        """Start a linearizable read; its ``ReadState`` comes out in a later ``Ready``.

        ``context`` identifies the read and must be unique cluster-wide among pending
        reads (prefix it with the node id). A read is answered at most once: one that
        was lost (message loss, a change of leader) never produces a ``ReadState``, so
        the caller retries after a timeout of its own.
        """
        if not context or len(context) > limits.raft_read_context_bytes_max:
            return Rejected(
                RequestRejectReason.INVALID_READ,
                self.leader_id,
                f"context must be 1..{limits.raft_read_context_bytes_max} bytes",
            )
        if self.role is Role.LEADER:
            return self._leader_read(context, self.id)
        if self.leader_id == NO_NODE:
            return Rejected(RequestRejectReason.NO_LEADER)
        self._send(ReadIndexRequest(self.id, self.leader_id, self.term, context))
        return None

    @_fail_stop
    def transfer_leadership(self, to: int) -> Rejected | None:
        """Hand leadership to voter ``to`` once its log is caught up."""
        if self.role is not Role.LEADER:
            return Rejected(RequestRejectReason.NOT_LEADER, self.leader_id)
        if to not in self.voters:
            return Rejected(RequestRejectReason.INVALID_TRANSFER, self.id, f"node {to} is not a voter")
        if to == self.id or to == self._lead_transferee:
            return None
        self._lead_transferee = to
        self._election_elapsed = 0  # the transfer must finish within an election timeout
        if self.progress[to].match == self.log.last_index():
            self._send(TimeoutNow(self.id, to, self.term))
        else:
            self._maybe_send_append(to, send_if_empty=True)
        return None

    @_fail_stop
    def compact(self, index: int, data: bytes) -> SnapshotMeta:
        """Replace the log up to ``index`` by the application's snapshot ``data``.

        ``data`` must be the state machine after applying exactly ``index``.
        Returns the snapshot's metadata (term and membership at ``index``): the
        caller stores it with ``data`` and drops its own log entries up to ``index``.
        """
        if index > self.log.applied:
            raise RaftUsageError(reason="compact beyond applied", index=index, applied=self.log.applied)
        if index <= self.log.storage.offset:
            raise RaftUsageError(
                reason="already compacted", index=index, snapshot_index=self.log.storage.offset
            )
        term = self.log.term(index)
        assert term is not None
        meta = SnapshotMeta(index=index, term=term, conf_state=self._conf.at(index))
        self.log.storage.compact(Snapshot(meta, data))
        self._conf.compact_to(index)
        return meta

    def conf_state_at(self, index: int) -> ConfState:
        """The membership in force at ``index`` (at or after the snapshot)."""
        return self._conf.at(index)

    # --- output ---------------------------------------------------------------

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        return bool(
            self._broadcast_pending
            or self._soft_state() != self._soft
            or self._hard_state() != self._persisted
            or self.log.storage.stable_index < self.log.last_index()
            or self.log.pending_snapshot is not None
            or self._messages
            or self.log.has_next_committed()
            or self._releasable_reads(max(self.log.applied, self.log.committed))
        )

    @_fail_stop
    def ready(self) -> Ready:
        """Collect what the caller must persist, send and apply (see ``Ready``)."""
        if self._outstanding is not None:
            raise RaftUsageError(reason="ready() called again before advance()")
        self._flush_broadcast()
        soft = self._soft_state()
        hard = self._hard_state()
        entries = tuple(self.log.storage.unstable())
        committed = tuple(self.log.next_committed(self.config.apply_bytes_per_ready_max))
        snapshot = self.log.pending_snapshot
        applied_after = max(self.log.applied, snapshot.meta.index if snapshot else 0)
        if committed:
            applied_after = committed[-1].index
        reads = self._releasable_reads(applied_after)
        self._read_states = [read for read in self._read_states if read.index > applied_after]
        vote_changed = hard.term != self._persisted.term or hard.vote != self._persisted.vote
        early: tuple[Message, ...] = ()
        late: tuple[Message, ...] = tuple(self._messages)
        if self.config.send_before_persist:
            early = tuple(m for m in late if isinstance(m, _LEADER_MESSAGES))
            late = tuple(m for m in late if not isinstance(m, _LEADER_MESSAGES))
        ready = Ready(
            soft_state=soft if soft != self._soft else None,
            hard_state=hard if hard != self._persisted else None,
            entries=entries,
            snapshot=snapshot,
            messages=late,
            committed_entries=committed,
            read_states=tuple(reads),
            must_sync=bool(entries) or snapshot is not None or vote_changed,
            early_messages=early,
        )
        self._soft = soft
        self._messages = []
        self._outstanding = ready
        return ready

    @_fail_stop
    def advance(self, ready: Ready) -> None:
        """The caller finished acting on ``ready``."""
        if ready is not self._outstanding:
            raise RaftUsageError(reason="advance() with a Ready that is not the outstanding one")
        self._outstanding = None
        if ready.hard_state is not None:
            self._persisted = ready.hard_state
        if ready.snapshot is not None:
            if self.log.pending_snapshot is ready.snapshot:
                self.log.pending_snapshot = None
            if ready.snapshot.meta.index > self.log.applied:
                self.log.applied = ready.snapshot.meta.index
        if ready.entries:
            last = ready.entries[-1]
            self.log.storage.stable_to(last.index, last.term)
            self._count_own_persisted()
        if ready.committed_entries:
            self.log.applied_to(max(self.log.applied, ready.committed_entries[-1].index))

    def _count_own_persisted(self) -> None:
        own = self.progress.get(self.id) if self.role is Role.LEADER else None
        if own is not None and own.maybe_update(self.log.storage.stable_index):
            if self._maybe_commit() and self.role is Role.LEADER:
                self._broadcast_pending = True

    def status(self) -> Status:
        progress: tuple[ProgressStatus, ...] = ()
        if self.role is Role.LEADER:
            progress = tuple(
                ProgressStatus(node, pr.match, pr.next, pr.state.value, pr.is_learner)
                for node, pr in sorted(self.progress.items())
            )
        return Status(
            node_id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader_id=self.leader_id,
            commit_index=self.log.committed,
            applied_index=self.log.applied,
            last_index=self.log.last_index(),
            snapshot_index=self.log.storage.offset,
            conf_state=self._conf.latest(),
            progress=progress,
        )

    def conf_state(self) -> ConfState:
        return self._conf.latest()

    def _soft_state(self) -> SoftState:
        return SoftState(self.leader_id, self.role)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _releasable_reads(self, applied_index: int) -> list[ReadState]:
        return [read for read in self._read_states if read.index <= applied_index]

    def _send(self, message: Message) -> None:
        self._messages.append(message)

    # --- roles ------------------------------------------------------------------

    def _promotable(self) -> bool:
        """May this node campaign? Voters may; so may a voter whose removal is not committed
        yet: it may hold the only copy of that change and be needed to elect a leader of the
        new configuration (dissertation 4.2.2). Its own vote then does not count."""
        if self.id in self.voters:
            return True
        if self._conf.latest_index() <= self.log.committed:
            return False
        return self.id in self._conf.at(self.log.committed).voters

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.leader_id = NO_NODE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = self._rng.randrange(
            self.config.election_timeout_ticks, 2 * self.config.election_timeout_ticks
        )
        self._lead_transferee = NO_NODE
        self._votes = {}
        self.progress = {}
        self._broadcast_pending = False
        self._read_only.clear()
        self._reads_before_commit = []

    def _become_follower(self, term: int, leader_id: int) -> None:
        self._reset(term)
        self.leader_id = leader_id
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER
        # No reset: term and vote stay; a pre-candidate changes nothing durable.
        self.role = Role.PRE_CANDIDATE
        self._votes = {}
        self.leader_id = NO_NODE

    def _become_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self._reset(self.term)
        self.leader_id = self.id
        self.role = Role.LEADER
        last = self.log.last_index()
        for member in self._conf.latest().members():
            self.progress[member] = self._new_progress(member, last + 1)
        if self.id in self.progress:
            own = self.progress[self.id]
            own.maybe_update(self.log.storage.stable_index)
            own.become_replicate()
        self._uncommitted_bytes = 0
        # A no-op of the new term lets entries of earlier terms commit (Figure 8).
        self._append_entries([Entry(last + 1, self.term, EntryType.NOOP, b"")])
        self._broadcast_append()

    def _new_progress(self, node: int, next_index: int) -> Progress:
        return Progress(
            next_index,
            self.config.inflight_appends_max,
            self.config.inflight_bytes_max,
            is_learner=node in self.learners,
        )

    def _campaign(self, kind: _Campaign) -> None:
        if not self._promotable():
            return
        if kind is _Campaign.PRE_ELECTION:
            self._become_pre_candidate()
            vote_term = self.term + 1
        else:
            self._become_candidate()
            vote_term = self.term
        pre_vote = kind is _Campaign.PRE_ELECTION
        self._votes[self.id] = True
        if vote_result(self.voters, self._votes) is VoteResult.WON:
            self._won_election(pre_vote)
            return
        for voter in self.voters:
            if voter != self.id:
                self._send(
                    VoteRequest(
                        self.id,
                        voter,
                        vote_term,
                        self.log.last_index(),
                        self.log.last_term(),
                        pre_vote=pre_vote,
                        leadership_transfer=kind is _Campaign.TRANSFER,
                    )
                )

    def _won_election(self, pre_vote: bool) -> None:
        if pre_vote:
            self._campaign(_Campaign.ELECTION)
        else:
            self._become_leader()

    # --- ticks --------------------------------------------------------------------

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_election_timeout:
            self._election_elapsed = 0
            self._campaign(_Campaign.PRE_ELECTION if self.config.pre_vote else _Campaign.ELECTION)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_timeout_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                self._become_follower(self.term, NO_NODE)
                return
            self._lead_transferee = NO_NODE  # a transfer that did not finish in time is abandoned
        if self._heartbeat_elapsed >= self.config.heartbeat_interval_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(self._read_only.last_context())

    def _quorum_active(self) -> bool:
        """Did a majority talk to us in the last election timeout? Resets the record."""
        active = [self.id]
        for node, pr in self.progress.items():
            if node != self.id and pr.recent_active:
                active.append(node)
            pr.recent_active = node == self.id
        return has_quorum(self.voters, active)

    # --- message handling -------------------------------------------------------

    def _accept_higher_term(self, message: Message) -> bool:
        """A message from a later term; False if it must be ignored."""
        if isinstance(message, VoteRequest):
            # The leader lease: we heard from a live leader within an election timeout, so
            # we do not help anyone disrupt it. Pre-votes always honour it (thesis 9.6);
            # real votes only with CheckQuorum, which makes leaders honour it too.
            in_lease = (
                self.leader_id != NO_NODE
                and self._election_elapsed < self.config.election_timeout_ticks
                and not message.leadership_transfer
            )
            if in_lease and (message.pre_vote or self.config.check_quorum):
                return False
            if message.pre_vote:
                return True  # a pre-vote never changes our term
        if isinstance(message, VoteResponse) and message.pre_vote and not message.reject:
            return True  # the term is bumped when the real election starts
        if isinstance(message, AppendEntries | Heartbeat | InstallSnapshot):
            self._become_follower(message.term, message.sender)
        else:
            self._become_follower(message.term, NO_NODE)
        return True

    def _answer_stale(self, message: Message) -> None:
        """A message from an earlier term: tell a stale leader or pre-candidate our term."""
        if isinstance(message, AppendEntries | Heartbeat | InstallSnapshot):
            self._send(AppendResponse(self.id, message.sender, self.term, index=0))
        elif isinstance(message, VoteRequest) and message.pre_vote:
            self._send(VoteResponse(self.id, message.sender, self.term, reject=True, pre_vote=True))

    def _handle_vote_request(self, message: VoteRequest) -> None:
        can_vote = (
            self.vote == message.sender
            or (self.vote == NO_NODE and self.leader_id == NO_NODE)
            or (message.pre_vote and message.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(message.last_index, message.last_term):
            self._send(
                VoteResponse(self.id, message.sender, message.term, reject=False, pre_vote=message.pre_vote)
            )
            if not message.pre_vote:
                self._election_elapsed = 0
                self.vote = message.sender
        else:
            self._send(
                VoteResponse(self.id, message.sender, self.term, reject=True, pre_vote=message.pre_vote)
            )

    def _step_follower(self, message: Message) -> None:
        match message:
            case AppendEntries():
                self._heard_from_leader(message.sender)
                self._handle_append(message)
            case Heartbeat():
                self._heard_from_leader(message.sender)
                self.log.commit_to(message.commit)
                self._send(HeartbeatResponse(self.id, message.sender, self.term, message.context))
            case InstallSnapshot():
                self._heard_from_leader(message.sender)
                self._handle_snapshot_chunk(message)
            case TimeoutNow():
                self._campaign(_Campaign.TRANSFER)
            case ReadIndexResponse():
                self._read_states.append(ReadState(message.index, message.context))
            case _:
                pass  # responses meant for a leader or candidate we no longer are

    def _heard_from_leader(self, leader: int) -> None:
        self._election_elapsed = 0
        self.leader_id = leader

    def _step_candidate(self, message: Message) -> None:
        match message:
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                # Someone won this term: follow it.
                self._become_follower(message.term, message.sender)
                self._step_follower(message)
            case VoteResponse():
                if message.pre_vote != (self.role is Role.PRE_CANDIDATE):
                    return
                self._votes[message.sender] = not message.reject
                result = vote_result(self.voters, self._votes)
                if result is VoteResult.WON:
                    self._won_election(message.pre_vote)
                elif result is VoteResult.LOST:
                    self._become_follower(self.term, NO_NODE)
            case _:
                pass

    def _step_leader(self, message: Message) -> None:
        if isinstance(message, ReadIndexRequest):
            if not self._read_only.contains(message.context):
                self._leader_read(message.context, message.sender)
            return
        pr = self.progress.get(message.sender)
        if pr is None:
            return  # not a member (any more)
        match message:
            case AppendResponse():
                pr.recent_active = True
                self._handle_append_response(message, pr)
            case HeartbeatResponse():
                pr.recent_active = True
                self._handle_heartbeat_response(message, pr)
            case SnapshotResponse():
                pr.recent_active = True
                self._handle_snapshot_response(message, pr)
            case _:
                pass

    # --- replication: follower side ---------------------------------------------

    def _handle_append(self, message: AppendEntries) -> None:
        if message.prev_index < self.log.committed:
            self._send(AppendResponse(self.id, message.sender, self.term, index=self.log.committed))
            return
        result = self.log.maybe_append(
            message.prev_index, message.prev_term, message.commit, message.entries
        )
        if result is not None:
            last_new, first_changed = result
            if first_changed:
                truncated = self._conf.truncate_from(first_changed)
                added = self._conf.observe(message.entries[first_changed - message.prev_index - 1 :])
                if truncated or added:
                    self._apply_conf()
            self._send(AppendResponse(self.id, message.sender, self.term, index=last_new))
            return
        hint_index, hint_term = self._reject_hint(message.prev_index)
        self._send(
            AppendResponse(
                self.id,
                message.sender,
                self.term,
                index=message.prev_index,
                reject=True,
                hint_index=hint_index,
                hint_term=hint_term,
            )
        )

    def _reject_hint(self, prev_index: int) -> tuple[int, int]:
        """(first index of our conflicting term, that term), or (last + 1, 0) if we are short."""
        if prev_index > self.log.last_index():
            return self.log.last_index() + 1, 0
        term = self.log.term(prev_index)
        assert term is not None  # prev_index >= committed >= snapshot index
        return self.log.first_index_of_term_at(prev_index), term

    def _handle_snapshot_chunk(self, message: InstallSnapshot) -> None:
        incoming = self._incoming_snapshot
        same = incoming is not None and incoming.meta == message.meta
        if message.total_bytes > self.config.snapshot_bytes_max:
            self._incoming_snapshot = None
            return  # refuse a snapshot we would not hold; the leader retries later
        if message.meta.index <= self.log.committed:
            # Already covered (e.g. the answer to the last chunk was lost): say so at once.
            self._incoming_snapshot = None
            self._send(AppendResponse(self.id, message.sender, self.term, index=self.log.committed))
            return
        if message.offset == 0 and not (same and incoming is not None and incoming.buffer):
            incoming = self._incoming_snapshot = _IncomingSnapshot(message.meta)
        elif incoming is None or not same or message.offset != len(incoming.buffer):
            expected = len(incoming.buffer) if incoming is not None and same else 0
            self._send(
                SnapshotResponse(self.id, message.sender, self.term, message.meta.index, expected)
            )
            return
        if len(incoming.buffer) + len(message.data) > message.total_bytes:
            self._incoming_snapshot = None
            self._send(SnapshotResponse(self.id, message.sender, self.term, message.meta.index, 0))
            return
        incoming.buffer += message.data
        if not message.done:
            self._send(
                SnapshotResponse(
                    self.id, message.sender, self.term, message.meta.index, len(incoming.buffer)
                )
            )
            return
        self._incoming_snapshot = None
        if len(incoming.buffer) != message.total_bytes:
            self._send(SnapshotResponse(self.id, message.sender, self.term, message.meta.index, 0))
            return
        self._restore(Snapshot(message.meta, bytes(incoming.buffer)))
        # Only the committed prefix is known to match the leader's log (entries after it,
        # kept when our log already agreed at the snapshot index, may not).
        self._send(AppendResponse(self.id, message.sender, self.term, index=self.log.committed))

    def _restore(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        if meta.index <= self.log.committed:
            return  # we already have it all
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # our log agrees: just move the commit index
            return
        self.log.restore(snapshot)
        self._conf.reset(meta.index, meta.conf_state)
        self._apply_conf()

    # --- replication: leader side -----------------------------------------------

    def _propose(self, entry_type: EntryType, data: bytes) -> int | Rejected:
        if self.role is not Role.LEADER:
            return Rejected(RequestRejectReason.NOT_LEADER, self.leader_id)
        if self._lead_transferee != NO_NODE:
            return Rejected(RequestRejectReason.TRANSFERRING_LEADERSHIP, self.id)
        size = len(data)
        if size > self.config.append_bytes_max:
            return Rejected(RequestRejectReason.ENTRY_TOO_LARGE, self.id, f"{size} bytes")
        if self._uncommitted_bytes > 0 and self._uncommitted_bytes + size > self.config.uncommitted_bytes_max:
            return Rejected(RequestRejectReason.UNCOMMITTED_BACKLOG, self.id)
        index = self.log.last_index() + 1
        self._append_entries([Entry(index, self.term, entry_type, data)])
        self._broadcast_pending = True
        return index

    def _append_entries(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._uncommitted_bytes += sum(len(entry.data) for entry in entries)
        if self._conf.observe(entries):
            self._apply_conf()
        # The leader counts its own copy once it is on disk (see advance), never before.

    def _maybe_commit(self) -> bool:
        """Commit what a majority holds, but only by counting entries of our own term."""
        match_of = {node: pr.match for node, pr in self.progress.items()}
        index = committed_index(self.voters, match_of)
        if index <= self.log.committed or self.log.term(index) != self.term:
            return False
        first_new = self.log.committed + 1
        had_current_term = self._committed_current_term()
        self.log.commit_to(index)
        for entry in self.log.storage.slice(first_new, index + 1):
            self._uncommitted_bytes -= len(entry.data)
        self._uncommitted_bytes = max(self._uncommitted_bytes, 0)
        if not had_current_term:
            self._release_reads_before_commit()
        self._prune_removed()
        if self.id not in self._conf.latest().voters and self._conf.latest_index() <= index:
            # Our own removal is committed: tell the others, then step down.
            self._broadcast_append()
            self._become_follower(self.term, NO_NODE)
        return True

    def _committed_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _flush_broadcast(self) -> None:
        if self._broadcast_pending:
            self._broadcast_pending = False
            if self.role is Role.LEADER:
                self._broadcast_append()

    def _broadcast_append(self) -> None:
        """Send every follower what it lacks, filling its window (or one empty append)."""
        for node in sorted(self.progress):
            if node != self.id and self._maybe_send_append(node, send_if_empty=True):
                while self._maybe_send_append(node, send_if_empty=False):
                    pass

    def _broadcast_heartbeat(self, context: bytes) -> None:
        for node in sorted(self.progress):
            if node != self.id:
                commit = min(self.progress[node].match, self.log.committed)
                self._send(Heartbeat(self.id, node, self.term, commit, context))

    def _maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        pr = self.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            return self._start_snapshot(to, pr)
        entries: list[Entry] = []
        if pr.next <= self.log.last_index():
            entries = self.log.entries_from(
                pr.next, self.config.entries_per_append_max, self.config.append_bytes_max
            )
        if not entries and not send_if_empty:
            return False
        self._send(
            AppendEntries(
                self.id, to, self.term, prev_index, prev_term, tuple(entries), self.log.committed
            )
        )
        if entries:
            pr.sent_entries(entries[-1].index, sum(len(entry.data) for entry in entries))
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _handle_append_response(self, message: AppendResponse, pr: Progress) -> None:
        if message.reject:
            if pr.state is ProgressState.SNAPSHOT:
                return  # answers to appends sent before the snapshot started
            next_hint = message.hint_index
            if message.hint_term > 0:
                ours = self.log.last_index_of_term(message.hint_term, message.index)
                if ours is not None:
                    next_hint = ours + 1
            if pr.maybe_decrease_to(message.index, next_hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(message.sender, send_if_empty=True)
            return
        was_paused = pr.is_paused()
        updated = pr.maybe_update(message.index)
        if pr.state is ProgressState.SNAPSHOT:
            if pr.match < pr.pending_snapshot:
                return  # an old acknowledgement; the snapshot is still streaming
            pr.become_probe()
            pr.become_replicate()
            updated = True
        elif updated and pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_to(message.index)
        if not updated:
            return
        if self._maybe_commit():
            if self.role is not Role.LEADER:
                return
            self._broadcast_pending = True
        elif was_paused and not self._broadcast_pending:
            self._maybe_send_append(message.sender, send_if_empty=True)
        # Pipelining: keep the follower's window full.
        while message.sender in self.progress and self._maybe_send_append(message.sender, False):
            pass
        if message.sender == self._lead_transferee and pr.match == self.log.last_index():
            self._send(TimeoutNow(self.id, message.sender, self.term))

    def _handle_heartbeat_response(self, message: HeartbeatResponse, pr: Progress) -> None:
        pr.probe_sent = False
        if pr.state is ProgressState.SNAPSHOT:
            if not pr.snapshot_acked:
                self._send_snapshot_chunk(message.sender, pr)  # the last chunk may be lost
            pr.snapshot_acked = False
        else:
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()  # let one append through to detect lost ones
            if pr.match < self.log.last_index():
                self._maybe_send_append(message.sender, send_if_empty=True)
        if message.context:
            acks = self._read_only.ack(message.context, message.sender)
            if acks is not None and has_quorum(self.voters, acks):
                for read in self._read_only.release_through(message.context):
                    self._answer_read(read)

    # --- snapshots: leader side --------------------------------------------------

    def _start_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # do not stream megabytes to a node that may be down
        snapshot = self.log.storage.snapshot
        assert snapshot.meta.index > 0, "entries missing without a snapshot"
        pr.become_snapshot(snapshot.meta.index)
        self._send_snapshot_chunk(to, pr)
        return True

    def _send_snapshot_chunk(self, to: int, pr: Progress) -> None:
        snapshot = self.log.storage.snapshot
        if snapshot.meta.index != pr.pending_snapshot:
            pr.become_snapshot(snapshot.meta.index)  # compacted again meanwhile: send the new one
        data = snapshot.data
        offset = min(pr.snapshot_offset, len(data))
        chunk = data[offset : offset + self.config.snapshot_chunk_bytes]
        done = offset + len(chunk) >= len(data)
        self._send(
            InstallSnapshot(self.id, to, self.term, snapshot.meta, offset, len(data), chunk, done)
        )

    def _handle_snapshot_response(self, message: SnapshotResponse, pr: Progress) -> None:
        if pr.state is not ProgressState.SNAPSHOT or message.snapshot_index != pr.pending_snapshot:
            return
        if message.next_offset == pr.snapshot_offset:
            return  # a duplicate; the chunk in flight will be answered
        pr.snapshot_offset = max(0, min(message.next_offset, len(self.log.storage.snapshot.data)))
        pr.snapshot_acked = True
        self._send_snapshot_chunk(message.sender, pr)

    # --- reads -------------------------------------------------------------------

    def _leader_read(self, context: bytes, requester: int) -> Rejected | None:
        if self._read_only.contains(context) or any(
            waiting == context for waiting, _ in self._reads_before_commit
        ):
            return Rejected(RequestRejectReason.INVALID_READ, self.id, "context already pending")
        if len(self._read_only) + len(self._reads_before_commit) >= self.config.read_index_pending_max:
            return Rejected(RequestRejectReason.READ_QUEUE_FULL, self.id)
        if not self._committed_current_term():
            # Our commit index may lag the true one until our no-op commits.
            self._reads_before_commit.append((context, requester))
            return None
        if self.voters == (self.id,):
            self._answer_read(PendingRead(self.log.committed, context, requester))
            return None
        self._read_only.add(self.log.committed, context, requester, self.id)
        self._broadcast_heartbeat(context)
        return None

    def _release_reads_before_commit(self) -> None:
        waiting, self._reads_before_commit = self._reads_before_commit, []
        for context, requester in waiting:
            self._leader_read(context, requester)

    def _answer_read(self, read: PendingRead) -> None:
        if read.requester == self.id:
            self._read_states.append(ReadState(read.index, read.context))
        else:
            self._send(ReadIndexResponse(self.id, read.requester, self.term, read.index, read.context))

    # --- membership ---------------------------------------------------------------

    def _apply_conf(self) -> None:
        """Bring voters, learners and the leader's progress in line with the latest change."""
        conf = self._conf.latest()
        self.voters = conf.voters
        self.learners = conf.learners
        if self.role is not Role.LEADER:
            return
        members = conf.members()
        for node in members:
            if node not in self.progress:
                pr = self._new_progress(node, self.log.last_index() + 1)
                if node == self.id:
                    pr.maybe_update(self.log.storage.stable_index)
                    pr.become_replicate()
                self.progress[node] = pr
            self.progress[node].is_learner = node in conf.learners
        if self._lead_transferee != NO_NODE and self._lead_transferee not in conf.voters:
            self._lead_transferee = NO_NODE
        # A removed node keeps receiving the log until its removal commits, so it learns
        # that it was removed and stops campaigning; see _prune_removed.
        self._prune_removed()

    def _prune_removed(self) -> None:
        if self._conf.latest_index() > self.log.committed:
            return
        members = self._conf.latest().members()
        for node in [node for node in self.progress if node not in members]:
            pr = self.progress.pop(node)
            if node != self.id:
                # Last word to the removed node: the commit index covering its removal.
                commit = min(pr.match, self.log.committed)
                self._send(Heartbeat(self.id, node, self.term, commit))
