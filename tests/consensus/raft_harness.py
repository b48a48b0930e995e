"""A simulated cluster of Raft cores: network, persistence, crashes, an application.

Each ``SimNode`` plays the caller's part of the ``Ready`` contract: it persists
the snapshot, entries and hard state into its ``Durable`` record, then sends the
messages into the shared network, then applies committed entries to a tiny
state machine (the list of applied entries). ``crash`` throws away the core and
the application; ``restart`` rebuilds both from ``Durable`` alone, so anything
not persisted is lost, as on a real machine.

The ``Cluster`` also runs the safety checkers used by the randomized test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from deltasync.consensus import (
    AppendEntries,
    AppendResponse,
    ConfChangeKind,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RaftConfig,
    RaftNode,
    ReadIndexRequest,
    ReadIndexResponse,
    Ready,
    RecoveredState,
    Rejected,
    Role,
    Snapshot,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_conf_change,
)
from deltasync.core.codec import decode, encode


def describe_entry(entry: Entry) -> str:
    match entry.type:
        case EntryType.NOOP:
            body = "noop"
        case EntryType.CONF_CHANGE:
            change = decode_conf_change(entry.data)
            body = f"{change.kind.name.lower().replace('_', '-')} {change.node_id}"
        case _:
            body = repr(entry.data.decode(errors="replace"))
    return f"{entry.index}/{entry.term} {body}"


def describe_entries(entries: Iterable[Entry]) -> str:
    return "[" + ", ".join(describe_entry(entry) for entry in entries) + "]"


def describe_message(message: Message) -> str:
    head = f"{message.sender}->{message.recipient}"
    match message:
        case AppendEntries():
            text = (
                f"App t{message.term} prev={message.prev_index}/{message.prev_term} "
                f"commit={message.commit}"
            )
            if message.entries:
                text += " " + describe_entries(message.entries)
        case AppendResponse(reject=True):
            text = (
                f"AppResp t{message.term} reject index={message.index} "
                f"hint={message.hint_index}/{message.hint_term}"
            )
        case AppendResponse():
            text = f"AppResp t{message.term} index={message.index}"
        case Heartbeat():
            text = f"Heartbeat t{message.term} commit={message.commit}"
            if message.context:
                text += f" ctx={message.context.decode()}"
        case HeartbeatResponse():
            text = f"HeartbeatResp t{message.term}"
            if message.context:
                text += f" ctx={message.context.decode()}"
        case VoteRequest():
            kind = "PreVote" if message.pre_vote else "Vote"
            text = f"{kind} t{message.term} last={message.last_index}/{message.last_term}"
            if message.leadership_transfer:
                text += " transfer"
        case VoteResponse():
            kind = "PreVoteResp" if message.pre_vote else "VoteResp"
            text = f"{kind} t{message.term} {'rejected' if message.reject else 'granted'}"
        case InstallSnapshot():
            text = (
                f"Snapshot t{message.term} snap={message.meta.index}/{message.meta.term} "
                f"bytes={message.offset}..{message.offset + len(message.data)}/{message.total_bytes}"
            )
            if message.done:
                text += " done"
        case SnapshotResponse():
            text = f"SnapshotResp t{message.term} snap={message.snapshot_index} next={message.next_offset}"
        case TimeoutNow():
            text = f"TimeoutNow t{message.term}"
        case ReadIndexRequest():
            text = f"ReadIndex t{message.term} ctx={message.context.decode()}"
        case ReadIndexResponse():
            text = f"ReadIndexResp t{message.term} index={message.index} ctx={message.context.decode()}"
        case _:
            raise AssertionError(message)
    return f"{head} {text}"


@dataclass
class Durable:
    """What survives a crash: exactly what the node persisted from its Readys."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def recovered(self) -> RecoveredState:
        return RecoveredState(self.hard_state, self.snapshot, tuple(self.entries))


class SafetyViolation(AssertionError):
    pass


@dataclass
class SimNode:
    node_id: int
    config: RaftConfig
    rng: random.Random
    durable: Durable = field(default_factory=Durable)
    raft: RaftNode | None = None
    # The application: every entry applied so far, by index (NORMAL payloads only matter).
    applied: dict[int, Entry] = field(default_factory=dict)
    applied_index: int = 0
    read_results: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def start(self) -> None:
        has_state = self.durable.hard_state != HardState() or self.durable.entries or self.durable.snapshot
        view = self.durable.recovered() if has_state else None
        self.raft = RaftNode(self.config, view, self.rng)
        self.applied = {}
        self.applied_index = 0
        if self.durable.snapshot is not None:
            self._restore_app(self.durable.snapshot)

    def _restore_app(self, snapshot: Snapshot) -> None:
        self.applied = {}
        for index, term, kind, data in decode(snapshot.data) if snapshot.data else []:
            self.applied[index] = Entry(index, term, EntryType(kind), data)
        self.applied_index = snapshot.meta.index

    def app_snapshot(self, index: int) -> bytes:
        rows = [
            [entry.index, entry.term, entry.type.value, entry.data]
            for i, entry in sorted(self.applied.items())
            if i <= index
        ]
        return encode(rows)

    def handle_ready(self, ready: Ready) -> None:
        """Persist, then (caller sends messages), then apply: the Ready contract."""
        if ready.snapshot is not None:
            self.durable.snapshot = ready.snapshot
            self.durable.entries = []
        if ready.entries:
            first = ready.entries[0].index
            self.durable.entries = [e for e in self.durable.entries if e.index < first]
            self.durable.entries.extend(ready.entries)
        if ready.hard_state is not None:
            self.durable.hard_state = ready.hard_state

    def apply_ready(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            self._restore_app(ready.snapshot)
        for entry in ready.committed_entries:
            assert entry.index == self.applied_index + 1, (
                f"node {self.node_id} applies {entry.index} after {self.applied_index}"
            )
            self.applied[entry.index] = entry
            self.applied_index = entry.index
        for read in ready.read_states:
            assert self.applied_index >= read.index, "read served before its index was applied"
            self.read_results.append((read.context, read.index))

    def compact(self, index: int) -> None:
        assert self.raft is not None
        self.raft.compact(index, self.app_snapshot(index))
        self.durable.snapshot = self.raft.log.storage.snapshot
        self.durable.entries = [e for e in self.durable.entries if e.index > index]


Printer = Callable[[str], None]


class Cluster:
    def __init__(self, seed: int = 0, printer: Printer | None = None, **config: object) -> None:
        self.seed = seed
        self.nodes: dict[int, SimNode] = {}
        self.network: list[Message] = []
        self.groups: list[set[int]] | None = None
        self.config_overrides = config
        self.print: Printer = printer or (lambda line: None)
        # checkers
        self.leaders_by_term: dict[int, int] = {}
        self.applied_by_index: dict[int, tuple[int, bytes]] = {}
        # index -> (entry term, lowest term of a node that saw it committed): the entry was
        # committed at or before that term, so every leader of a later term must hold it.
        self.committed_by_index: dict[int, tuple[int, int]] = {}
        self._roles: dict[int, tuple[Role, int]] = {}
        # read context -> highest index committed anywhere when the read started: a
        # linearizable read must observe at least that much.
        self.read_floors: dict[bytes, int] = {}
        # Nodes to crash in the middle of their next Ready: after its early messages
        # left, before anything was persisted.
        self.crash_during_persist: set[int] = set()

    # --- membership of the simulation ----------------------------------------

    def _config(self, node_id: int, peers: tuple[int, ...]) -> RaftConfig:
        return RaftConfig(node_id=node_id, peers=peers, **self.config_overrides)  # type: ignore[arg-type]

    def add_nodes(self, count: int) -> None:
        peers = tuple(range(1, count + 1))
        for node_id in peers:
            self._add(node_id, peers)

    def start_joining(self, node_id: int) -> None:
        """A new, empty node that will learn its membership from the leader."""
        if node_id not in self.nodes:
            self._add(node_id, ())

    def _add(self, node_id: int, peers: tuple[int, ...]) -> None:
        node = SimNode(node_id, self._config(node_id, peers), random.Random(self.seed * 1000 + node_id))
        self.nodes[node_id] = node
        node.start()
        self._roles[node_id] = (Role.FOLLOWER, 0)

    def raft(self, node_id: int) -> RaftNode:
        raft = self.nodes[node_id].raft
        assert raft is not None, f"node {node_id} is down"
        return raft

    def alive(self) -> list[int]:
        return [node_id for node_id in sorted(self.nodes) if self.nodes[node_id].alive]

    def leader(self) -> int | None:
        leaders = [n for n in self.alive() if self.raft(n).role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: self.raft(n).term)

    # --- faults --------------------------------------------------------------

    def partition(self, groups: list[set[int]]) -> None:
        self.groups = groups

    def heal(self) -> None:
        self.groups = None

    def connected(self, a: int, b: int) -> bool:
        if self.groups is None:
            return True
        return any(a in group and b in group for group in self.groups)

    def crash(self, node_id: int) -> None:
        self.nodes[node_id].raft = None
        self._roles[node_id] = (Role.FOLLOWER, -1)

    def restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        assert not node.alive
        node.start()
        self._note_roles()

    # --- driving ------------------------------------------------------------

    def process(self, node_ids: Iterable[int] | None = None) -> None:
        """Run every live node's Ready loop: persist, send, apply, advance."""
        for node_id in sorted(node_ids) if node_ids is not None else self.alive():
            node = self.nodes[node_id]
            raft = node.raft
            if raft is None:
                continue
            while raft.has_ready():
                ready = raft.ready()
                self.network.extend(ready.early_messages)
                if node_id in self.crash_during_persist:
                    self.crash_during_persist.discard(node_id)
                    self.crash(node_id)
                    break
                node.handle_ready(ready)
                self.network.extend(ready.messages)
                node.apply_ready(ready)
                if ready.snapshot is not None:
                    meta = ready.snapshot.meta
                    self.print(
                        f"{node_id} restored snapshot {meta.index}/{meta.term} "
                        f"voters={list(meta.conf_state.voters)}"
                    )
                if ready.committed_entries:
                    self.print(f"{node_id} applied {describe_entries(ready.committed_entries)}")
                    self._check_applied(node_id, ready.committed_entries)
                for read in ready.read_states:
                    floor = self.read_floors.pop(read.context, 0)
                    if read.index < floor:
                        raise SafetyViolation(
                            f"read {read.context!r} on {node_id} served at {read.index}, "
                            f"but {floor} was committed before it started"
                        )
                    self.print(f"{node_id} read ctx={read.context.decode()} index={read.index}")
                raft.advance(ready)
            if node.raft is not None:
                self._note_commit(node_id)
        self._note_roles()

    def tick(self, node_id: int, count: int = 1) -> None:
        for _ in range(count):
            self.raft(node_id).tick()
            self.process([node_id])

    def tick_all(self, count: int = 1) -> None:
        for _ in range(count):
            for node_id in self.alive():
                self.raft(node_id).tick()
            self.process()

    def deliver(
        self, select: Callable[[Message], bool] | None = None, verbose: bool = True
    ) -> int:
        """Deliver the messages in flight now (those ``select`` picks); returns how many."""
        batch = [m for m in self.network if select is None or select(m)]
        if select is None:
            self.network = []
        else:
            self.network = [m for m in self.network if not select(m)]
        for message in batch:
            self.deliver_one(message, verbose)
        self.process()
        return len(batch)

    def deliver_one(self, message: Message, verbose: bool = True) -> None:
        target = self.nodes.get(message.recipient)
        if target is None or target.raft is None or not self.connected(message.sender, message.recipient):
            if verbose:
                self.print(f"{describe_message(message)} (dropped)")
            return
        if verbose:
            self.print(describe_message(message))
        target.raft.step(message)

    def stabilize(self, verbose: bool = True, rounds_max: int = 200) -> None:
        self.process()
        for _ in range(rounds_max):
            if not self.network:
                return
            self.deliver(verbose=verbose)
        raise AssertionError("cluster did not stabilize")

    # --- checkers -----------------------------------------------------------

    def _note_roles(self) -> None:
        for node_id in self.alive():
            raft = self.raft(node_id)
            now = (raft.role, raft.term)
            if self._roles.get(node_id) != now:
                self._roles[node_id] = now
                self.print(f"{node_id} is {raft.role.value} at term {raft.term}")
            if raft.role is Role.LEADER:
                self._check_leader(node_id, raft)

    def _check_leader(self, node_id: int, raft: RaftNode) -> None:
        other = self.leaders_by_term.setdefault(raft.term, node_id)
        if other != node_id:
            raise SafetyViolation(f"two leaders in term {raft.term}: {other} and {node_id}")
        # Leader completeness: every entry committed anywhere is in the new leader's log.
        offset = raft.log.storage.offset
        for index, (term, commit_term) in self.committed_by_index.items():
            if raft.term > commit_term and index > offset and raft.log.term(index) != term:
                raise SafetyViolation(
                    f"leader {node_id} (term {raft.term}) lacks committed entry {index}/{term}"
                )

    def _note_commit(self, node_id: int) -> None:
        raft = self.raft(node_id)
        low = max(raft.log.storage.offset + 1, 1)
        for index in range(low, raft.log.committed + 1):
            term = raft.log.term(index)
            assert term is not None
            seen = self.committed_by_index.get(index)
            if seen is None or raft.term < seen[1]:
                self.committed_by_index[index] = (term, raft.term)
            if seen is not None and seen[0] != term:
                raise SafetyViolation(f"index {index} committed with terms {seen[0]} and {term}")

    def _check_applied(self, node_id: int, entries: Iterable[Entry]) -> None:
        for entry in entries:
            seen = self.applied_by_index.setdefault(entry.index, (entry.term, entry.data))
            if seen != (entry.term, entry.data):
                raise SafetyViolation(
                    f"node {node_id} applied {describe_entry(entry)} where another applied {seen}"
                )

    def check_log_matching(self) -> None:
        """If two logs hold an entry with the same index and term, they agree up to it."""
        logs = {}
        for node_id in self.alive():
            storage = self.raft(node_id).log.storage
            logs[node_id] = (storage.offset, {e.index: e for e in storage.entries})
        ids = sorted(logs)
        for position, a in enumerate(ids):
            for b in ids[position + 1 :]:
                offset = max(logs[a][0], logs[b][0])
                common = sorted(set(logs[a][1]) & set(logs[b][1]), reverse=True)
                agreed = False
                for index in common:
                    if index <= offset:
                        break
                    ea, eb = logs[a][1][index], logs[b][1][index]
                    if agreed and ea != eb:
                        raise SafetyViolation(
                            f"logs of {a} and {b} match at a later index but differ at {index}"
                        )
                    if ea.term == eb.term:
                        if ea != eb:
                            raise SafetyViolation(f"nodes {a} and {b} differ at {index} in one term")
                        agreed = True

    # --- conveniences for scenarios ------------------------------------------

    def read_index(self, node_id: int, context: bytes) -> Rejected | None:
        self.read_floors[context] = max(self.committed_by_index, default=0)
        return self.raft(node_id).read_index(context)

    def conf_change(self, leader: int, kind: ConfChangeKind, node_id: int) -> int | Rejected:
        return self.raft(leader).propose_conf_change(kind, node_id)
