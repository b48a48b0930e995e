"""The node driver: a Raft core, durable storage and the exchange, wired together.

``NodeCore`` is deterministic given its inputs and does no network I/O and no
clock reads: the caller passes ``now_ns`` in and sends the messages it hands
back. The asyncio shell (``node.server``) drives it with real sockets, disks
and clocks; the simulator (``sim``) drives the very same class with simulated
ones. Storage is written through the ``FileSystem`` the storage objects were
opened with.

Per input the caller follows one loop::

    core.receive(peer, payload) / core.tick(now) / core.submit(...) / core.read(...)
    out = core.process(now)     # persists (fsync) *before* returning messages
    send out.messages; answer out.responses; publish out.blocks; serve out.reads

The sequencer: the leader batches client commands and proposes one block at a
time, only when everything in its log is applied, so the block header can
carry the state root after the previous block and the block time can be
stamped never to go backwards. Commands from clients of other nodes arrive
forwarded; a gateway re-forwards unanswered commands (same session and request
id, so they apply at most once) until they are answered or time out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltasync.consensus import (
    NO_NODE,
    RAFT_MESSAGES,
    ConfState,
    Entry,
    EntryType,
    RaftConfig,
    RaftNode,
    RandomSource,
    Ready,
    RecoveredState,
    Rejected,
    Role,
    Snapshot,
    SnapshotMeta,
)
from deltasync.core import limits
from deltasync.core.codec import Registry, decode, encode, encode_trusted
from deltasync.core.errors import CodecError, DeltasyncError, LocalError
from deltasync.core.limits import forward_batch_max, pending_requests_max, unforwarded_max
from deltasync.exchange.state import BlockResult, ExchangeState
from deltasync.node.block import Block, BlockHeader, ClientCommand, Noop, block_hash
from deltasync.node.chain import ChainTip, Verdict, check_block, divergence_report
from deltasync.node.sessions import Outcome, SessionTable
from deltasync.storage.raft_log import RaftStorage, RecoveredLog
from deltasync.storage.snapshot import SnapshotStore, StoredSnapshot

# What msgpack raises for a value it cannot encode: an integer beyond 64 bits
# (OverflowError), a lone surrogate (UnicodeEncodeError, a ValueError), an unknown type.
_UNENCODABLE = (OverflowError, TypeError, ValueError)

# Node-to-node envelope kinds (first byte of every transport payload).
KIND_RAFT = 1
KIND_FORWARD = 2


@dataclass(frozen=True, slots=True)
class Answer:
    """What one client command did: the events of its block, or why it has none."""

    session: int
    request: int
    height: int  # 0 if not applied
    events: tuple[Any, ...]  # the exchange's event objects
    error: str | None = None  # "expired", "timeout", "malformed", "stale_block"; the shell: "stopped"


@dataclass(frozen=True, slots=True)
class AppliedBlock:
    """One applied block: every client command it carried, with what it did.

    A fresh command's events are ``result.events[i]`` for ``commands[i]``; a
    command applied before (a retry under the same session and request) is in
    ``retried`` with its original height and events, from the session table.
    Commands that did nothing (expired, malformed) are answered, not listed."""

    height: int
    time_ns: int
    commands: tuple[Any, ...]  # decoded exchange commands applied by this block, in block order
    result: BlockResult
    sessions: tuple[tuple[int, int, int], ...]  # (session, request, origin) per command
    retried: tuple[Answer, ...] = ()


@dataclass(slots=True)
class Output:
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    blocks: list[AppliedBlock] = field(default_factory=list)
    reads: list[bytes] = field(default_factory=list)  # contexts of reads now linearizable
    halted: dict[str, Any] | None = None


@dataclass(slots=True)
class _Admitted:
    """A block's client commands as the session table sorted them (see ``NodeCore._admit``)."""

    commands: list[Any] = field(default_factory=list)  # decoded, to apply, in block order
    positions: list[int] = field(default_factory=list)  # their positions in the block
    answered: dict[int, Answer] = field(default_factory=dict)  # by position: no work to do
    retried: list[Answer] = field(default_factory=list)  # applied before: original answers


@dataclass(slots=True)
class _Pending:
    command: ClientCommand
    submitted_ns: int
    forwarded_ns: int
    deadline_ns: int


class CommandCodec:
    """Commands and events to and from their wire form, with whichever registry owns the type.

    Extensions (oracle, margin) keep their own registries with their own tag
    ranges; the node decodes with the first registry that knows the tag.
    """

    def __init__(self, commands: list[Registry], events: list[Registry]) -> None:
        self.commands = commands
        self.events = events

    @staticmethod
    def _decode(registries: list[Registry], wire: Any) -> Any:
        if type(wire) is not list or not wire or type(wire[0]) is not int:
            raise CodecError(reason="expected [tag, fields...]")
        for registry in registries:
            if wire[0] in registry._by_tag:
                return registry.from_wire(wire)
        raise CodecError(reason="unknown tag", tag=wire[0])

    @staticmethod
    def _encode(registries: list[Registry], value: Any) -> list[Any]:
        for registry in registries:
            if type(value) in registry._tag_of:
                return registry.to_wire(value)
        raise CodecError(reason="unregistered type", type=type(value).__name__)

    def decode(self, wire: Any) -> Any:
        return self._decode(self.commands, wire)

    def encode(self, command: Any) -> list[Any]:
        return self._encode(self.commands, command)

    def event_wire(self, event: Any) -> list[Any]:
        return self._encode(self.events, event)

    def event_from_wire(self, wire: Any) -> Any:
        return self._decode(self.events, wire)




@dataclass(frozen=True, slots=True)
class NodeSettings:
    election_ticks: int = 20
    heartbeat_ticks: int = 2
    block_commands_max: int = 2048
    snapshot_every_blocks: int = 2000
    idle_block_ns: int = 250_000_000  # an empty block this often keeps block time moving
    forward_retry_ns: int = 300_000_000
    request_timeout_ns: int = 10_000_000_000
    # Block time = block_anchor_ns + (now_ns - wall_anchor_ns) * block_time_rate.
    # Rate 1 with zero anchors is the wall clock; a demo runs block time faster so
    # that an expiry comes within a minute (every node uses the same anchors).
    block_time_rate: int = 1
    block_anchor_ns: int = 0
    wall_anchor_ns: int = 0

    def block_time(self, now_ns: int) -> int:
        return self.block_anchor_ns + (now_ns - self.wall_anchor_ns) * self.block_time_rate


class NodeCore:
    def __init__(
        self,
        node_id: int,
        voters: tuple[int, ...],
        storage: RaftStorage,
        recovered: RecoveredLog,
        snapshots: SnapshotStore,
        machine_factory: Callable[[], ExchangeState],
        machine_restore: Callable[[bytes], ExchangeState],
        command_codec: CommandCodec,
        rng: RandomSource,
        settings: NodeSettings = NodeSettings(),
    ) -> None:
        self.id = node_id
        self.settings = settings
        self.storage = storage
        self.snapshots = snapshots
        self._machine_factory = machine_factory
        self._machine_restore = machine_restore
        self.codec = command_codec
        self.sessions = SessionTable()
        self.tip = ChainTip()
        self.halted: dict[str, Any] | None = None
        self._pending: OrderedDict[tuple[int, int], _Pending] = OrderedDict()
        self._retry_order: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._batch: OrderedDict[tuple[int, int], ClientCommand] = OrderedDict()
        self._unforwarded: list[ClientCommand] = []
        self._proposed_index = 0  # raft index of our in-flight block (0: none)
        self._last_block_ns = 0
        self._reads: dict[bytes, int] = {}  # context -> read index, waiting to be applied
        self._compact_at: tuple[int, int] | None = None
        self._roots: OrderedDict[int, tuple[bytes, int]] = OrderedDict()  # height -> (root, time)
        self.applied_index = 0
        self.blocks_since_snapshot = 0
        self._out = Output()  # filled by every input, handed over by ``process``
        # Set by a shell that can write to a peer at once: messages then leave as soon as
        # the core allows (before the leader's own fsync for its appends, right after
        # persisting for everything else) instead of when ``process`` returns.
        self.send_early: Callable[[int, bytes], None] | None = None

        snapshot = snapshots.load_latest(verify_root=self._root_of_snapshot_data)
        if snapshot is not None and snapshot.index < recovered.snapshot_index:
            raise LocalError(
                reason="the log is compacted beyond the newest snapshot",
                snapshot_index=snapshot.index,
                log_compacted_to=recovered.snapshot_index,
            )
        if snapshot is None and recovered.snapshot_index > 0:
            raise LocalError(reason="the log is compacted but no snapshot file exists")
        if snapshot is not None:
            self._restore(snapshot.state)
            conf = RAFT_MESSAGES.decode(snapshot.config)
            consensus_snapshot: Snapshot | None = Snapshot(
                SnapshotMeta(snapshot.index, snapshot.term, conf), snapshot.state
            )
            self.applied_index = snapshot.index
        else:
            self.machine = machine_factory()
            self.tip.state_root = self.machine.state_root()
            self.tip.time_ns = self.machine.time_ns
            consensus_snapshot = None
        self._remember_root()
        fresh = recovered.hard_state.term == 0 and not recovered.entries and snapshot is None
        view = None
        if not fresh:
            # The core skips the entries its snapshot covers (the log may not be compacted yet).
            view = RecoveredState(recovered.hard_state, consensus_snapshot, recovered.entries)
        config = RaftConfig(
            node_id=node_id,
            peers=voters if fresh else (),
            election_timeout_ticks=settings.election_ticks,
            heartbeat_interval_ticks=settings.heartbeat_ticks,
            applied_index=self.applied_index,
            send_before_persist=True,
        )
        self.raft = RaftNode(config, view, rng)

    # --- snapshots of the application -----------------------------------------------

    def _snapshot_data(self) -> bytes:
        return encode(
            [
                1,
                self.tip.height,
                self.tip.time_ns,
                self.tip.last_hash,
                self.sessions.to_wire(self._result_to_wire),
                self.machine.snapshot_bytes(),
            ]
        )

    def _restore(self, data: bytes) -> None:
        version, height, time_ns, last_hash, sessions, machine_bytes = decode(data)
        assert version == 1, f"unknown node snapshot version {version}"
        self.machine = self._machine_restore(machine_bytes)
        self.sessions = SessionTable.from_wire(sessions, self._result_from_wire)
        self.tip = ChainTip(height, time_ns, last_hash, self.machine.state_root())

    def _result_to_wire(self, result: tuple[int, tuple[Any, ...]]) -> list[Any]:
        height, events = result
        return [height, [self.codec.event_wire(e) for e in events]]

    def _result_from_wire(self, wire: list[Any]) -> tuple[int, tuple[Any, ...]]:
        height, events = wire
        return height, tuple(self.codec.event_from_wire(e) for e in events)

    def _root_of_snapshot_data(self, data: bytes) -> bytes:
        _, _, _, _, _, machine_bytes = decode(data)
        return self._machine_restore(machine_bytes).state_root()

    def _remember_root(self) -> None:
        self._roots[self.tip.height] = (self.tip.state_root, self.tip.time_ns)
        while len(self._roots) > 10_000:
            self._roots.popitem(last=False)

    def root_at(self, height: int) -> tuple[bytes, int] | None:
        return self._roots.get(height)

    # --- inputs ---------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        if self.halted:
            return
        self.raft.tick()
        self._retry_forwards(now_ns)
        self._expire_requests(now_ns)
        if (
            self.raft.role is Role.LEADER
            and not self._batch
            and now_ns - self._last_block_ns >= self.settings.idle_block_ns
        ):
            self._propose_block(now_ns, allow_empty=True)

    def receive(self, sender: int, payload: bytes, now_ns: int) -> None:
        """A frame from a peer. Garbage is dropped (counted by the caller), never raised."""
        if self.halted or not payload:
            return
        kind, body = payload[0], payload[1:]
        try:
            if kind == KIND_RAFT:
                message = RAFT_MESSAGES.decode(body)
                if getattr(message, "sender", sender) != sender:
                    return  # a peer may speak only for itself
                self.raft.step(message)
            elif kind == KIND_FORWARD:
                wire = decode(body)
                if type(wire) is not list or len(wire) > forward_batch_max:
                    return
                for item in wire:
                    self._enqueue(ClientCommand.from_wire(item), now_ns)
        except (CodecError, DeltasyncError, AssertionError, TypeError, ValueError):
            return

    def submit(self, command: Any, session: int, request: int, now_ns: int) -> bool:
        """A local client's command. Its answer comes back in ``Output.answers``.

        Returns False (and answers nothing) when too many requests are pending.
        A command already pending under the same (session, request) is not sent twice.
        """
        return self.submit_wire(self.codec.encode(command), session, request, now_ns)

    def submit_wire(self, command_wire: list[Any], session: int, request: int, now_ns: int) -> bool:
        """``submit`` for a command already in wire form (validated by the caller)."""
        key = (session, request)
        if key in self._pending:
            return True
        if len(self._pending) >= pending_requests_max:
            return False
        client_command = ClientCommand(session, request, self.id, command_wire)
        self._pending[key] = _Pending(
            client_command, now_ns, now_ns, now_ns + self.settings.request_timeout_ns
        )
        self._retry_order[key] = now_ns
        self._enqueue(client_command, now_ns)
        return True

    def read(self, context: bytes) -> Rejected | None:
        """Ask for a linearizable read; ``context`` comes back in ``Output.reads``."""
        return self.raft.read_index(context)

    def _enqueue(self, command: ClientCommand, now_ns: int) -> None:
        if self.raft.role is Role.LEADER:
            key = (command.session, command.request)
            if len(self._batch) < limits.block_commands_max * 8 or key in self._batch:
                self._batch[key] = command
        elif self.raft.leader_id not in (NO_NODE, self.id):
            self._forward(self.raft.leader_id, [command])
        elif len(self._unforwarded) < unforwarded_max:
            self._unforwarded.append(command)

    def _forward(self, leader: int, commands: list[ClientCommand]) -> None:
        for start in range(0, len(commands), forward_batch_max):
            chunk = commands[start : start + forward_batch_max]
            payload = bytes((KIND_FORWARD,)) + encode([c.to_wire() for c in chunk])
            self._out.messages.append((leader, payload))

    def _retry_forwards(self, now_ns: int) -> None:
        leader = self.raft.leader_id
        if self._unforwarded and leader != NO_NODE:
            waiting, self._unforwarded = self._unforwarded, []
            for command in waiting:
                self._enqueue(command, now_ns)
        # _retry_order holds pending keys by the time they were last (re)sent, oldest first
        retry_order = self._retry_order
        while retry_order:
            key, sent_ns = next(iter(retry_order.items()))
            if now_ns - sent_ns < self.settings.forward_retry_ns:
                break
            del retry_order[key]
            pending = self._pending.get(key)
            if pending is None:
                continue
            pending.forwarded_ns = now_ns
            retry_order[key] = now_ns
            self._enqueue(pending.command, now_ns)

    def _expire_requests(self, now_ns: int) -> None:
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.deadline_ns > now_ns:
                break
            del self._pending[key]
            self._out.answers.append(Answer(key[0], key[1], 0, (), "timeout"))

    # --- the sequencer ------------------------------------------------------------------

    def _can_propose(self) -> bool:
        if self.raft.role is not Role.LEADER or self.halted:
            return False
        # Everything in our log must be applied: the header needs the current root,
        # and the new leader must have applied every block of earlier terms.
        last_index = self.raft.log.last_index()
        return self.applied_index == last_index and self.raft.log.committed == last_index

    def _propose_block(self, now_ns: int, allow_empty: bool = False) -> None:
        if not (self._batch or allow_empty) or not self._can_propose():
            return
        take = min(len(self._batch), self.settings.block_commands_max)
        commands = []
        for _ in range(take):
            _, command = self._batch.popitem(last=False)
            commands.append(command)
        header = BlockHeader(
            height=self.tip.height + 1,
            time_ns=max(self.settings.block_time(now_ns), self.tip.time_ns),
            prev_hash=self.tip.last_hash,
            state_root=self.tip.state_root,
            proposer=self.id,
        )
        try:
            data = Block(header, tuple(commands)).to_bytes()
        except _UNENCODABLE:
            commands = self._encodable(commands)
            data = Block(header, tuple(commands)).to_bytes()
        result = self.raft.propose(data)
        if isinstance(result, Rejected):
            for command in reversed(commands):  # keep them for the next leader
                self._batch[(command.session, command.request)] = command
                self._batch.move_to_end((command.session, command.request), last=False)
            return
        self._proposed_index = result
        self._last_block_ns = now_ns

    def _encodable(self, commands: list[ClientCommand]) -> list[ClientCommand]:
        """The commands the codec can encode. Each of the others is answered "malformed"
        and left out, so that one command can never fail a block (the gateways check
        every command's wire form; this is the proposer's own guard)."""
        kept = []
        for command in commands:
            try:
                encode_trusted(command.to_wire())
            except _UNENCODABLE:
                self._answer(command, 0, (), "malformed", self._out)
                continue
            kept.append(command)
        return kept

    # --- the output loop -----------------------------------------------------------------

    def process(self, now_ns: int) -> Output:
        """Drain the core: persist, collect messages, apply committed blocks."""
        out = self._out
        try:
            self._drain(out, now_ns)
        finally:
            self._out = Output()
        return out

    def _drain(self, out: Output, now_ns: int) -> None:
        if self.halted:
            out.halted = self.halted
            return
        role_before = self.raft.role
        self._propose_block(now_ns)
        while self.raft.has_ready():
            ready = self.raft.ready()
            self._handle_ready(ready, out, now_ns)
            self.raft.advance(ready)
            if self._compact_at is not None:
                self._compact(*self._compact_at)
                self._compact_at = None
            if self.halted:
                out.halted = self.halted
                return
            self._propose_block(now_ns)
        if self.raft.role is not Role.LEADER and self._batch:
            # lost leadership: hand everything to whoever leads now
            waiting = list(self._batch.values())
            self._batch.clear()
            for command in waiting:
                self._enqueue(command, now_ns)
        if role_before is not Role.LEADER and self.raft.role is Role.LEADER:
            self._last_block_ns = 0

    def _handle_ready(self, ready: Ready, out: Output, now_ns: int) -> None:
        if ready.snapshot is not None:
            self._install_snapshot(ready.snapshot)
        if ready.early_messages:
            # Raft dissertation 10.2.1: the leader's appends go out while it writes its own
            # copy; the core counts the leader's log toward a commit only after advance().
            send = self.send_early
            for message in ready.early_messages:
                payload = bytes((KIND_RAFT,)) + RAFT_MESSAGES.encode(message)
                if send is not None:
                    send(message.recipient, payload)
                else:
                    out.messages.append((message.recipient, payload))
        if ready.entries or ready.hard_state is not None:
            self.storage.save(ready.hard_state, ready.entries, sync=ready.must_sync)
        # Persisted: these may go now. Sending them before applying the committed
        # entries below keeps a follower's acknowledgement from waiting on its own
        # (possibly long) block application.
        send = self.send_early
        for message in ready.messages:
            payload = bytes((KIND_RAFT,)) + RAFT_MESSAGES.encode(message)
            if send is not None:
                send(message.recipient, payload)
            else:
                out.messages.append((message.recipient, payload))
        for entry in ready.committed_entries:
            if entry.index <= self.applied_index:
                continue
            if entry.type is EntryType.NORMAL:
                self._apply_entry(entry, out)
                if self.halted:
                    return
            self.applied_index = entry.index
        for read in ready.read_states:
            self._reads[read.context] = read.index
        if self._reads:
            done = [ctx for ctx, index in self._reads.items() if index <= self.applied_index]
            for ctx in done:
                del self._reads[ctx]
                out.reads.append(ctx)

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        self._restore(snapshot.data)
        self.snapshots.save(
            StoredSnapshot(
                snapshot.meta.index,
                snapshot.meta.term,
                self.tip.state_root,
                RAFT_MESSAGES.encode(snapshot.meta.conf_state),
                snapshot.data,
            )
        )
        self.storage.install_snapshot(snapshot.meta.index, snapshot.meta.term)
        self.applied_index = snapshot.meta.index
        self._remember_root()

    def _compact(self, index: int, term: int) -> None:
        data = self._snapshot_data()
        meta = self.raft.compact(index, data)  # membership as of ``index``, not the newest
        assert meta.term == term, (meta, term)
        conf: ConfState = meta.conf_state
        self.snapshots.save(
            StoredSnapshot(index, term, self.tip.state_root, RAFT_MESSAGES.encode(conf), data)
        )
        self.storage.compact(index)
        self.blocks_since_snapshot = 0

    def _apply_entry(self, entry: Entry, out: Output) -> None:
        try:
            block = Block.from_bytes(entry.data)
        except CodecError:
            return  # every replica skips the same malformed entry
        header = block.header
        verdict = check_block(self.tip, header)
        if verdict is Verdict.STALE:
            # A block proposed on a stale tip (e.g. by a deposed leader): skipped by all.
            for command in block.commands:
                if command.origin == self.id:
                    self._answer(command, 0, (), "stale_block", out)
            return
        if verdict is Verdict.DIVERGED:
            self.halted = divergence_report(self.tip, header, self.machine, entry.index)
            return
        admitted = self._admit(block)
        result = self.machine.apply_block(header.height, header.time_ns, admitted.commands)
        self._record_and_answer(block, admitted, result, out)
        self.sessions.evict_idle(header.time_ns)
        self.tip = ChainTip(header.height, header.time_ns, block_hash(entry.data), result.state_root)
        self._remember_root()
        out.blocks.append(
            AppliedBlock(
                header.height,
                header.time_ns,
                tuple(admitted.commands),
                result,
                tuple(
                    (block.commands[p].session, block.commands[p].request, block.commands[p].origin)
                    for p in admitted.positions
                ),
                tuple(admitted.retried),
            )
        )
        self.blocks_since_snapshot += 1
        if self.blocks_since_snapshot >= self.settings.snapshot_every_blocks:
            self._compact_at = (entry.index, entry.term)

    def _admit(self, block: Block) -> _Admitted:
        """Sort a block's client commands by the session table: fresh ones to apply,
        retries answered with their original events, the rest answered with an error."""
        header = block.header
        admitted = _Admitted()
        seen: set[tuple[int, int]] = set()
        for position, command in enumerate(block.commands):
            key = (command.session, command.request)
            if command.session != 0 and key in seen:
                continue  # the same request twice in one block: the first one answers
            seen.add(key)
            outcome, result = self.sessions.check(command.session, command.request)
            if outcome is Outcome.NEW:
                try:
                    decoded = self.codec.decode(command.command)
                except CodecError:
                    admitted.answered[position] = Answer(
                        command.session, command.request, header.height, (), "malformed"
                    )
                    continue
                if isinstance(decoded, Noop):
                    # replicated and deduplicated like any command, but no exchange work
                    self.sessions.record(command.session, command.request, (header.height, ()), header.time_ns)
                    admitted.answered[position] = Answer(command.session, command.request, header.height, ())
                    continue
                admitted.commands.append(decoded)
                admitted.positions.append(position)
            elif outcome is Outcome.DUPLICATE:
                height, events = result
                answer = Answer(command.session, command.request, height, events)
                admitted.answered[position] = answer
                admitted.retried.append(answer)
            else:
                admitted.answered[position] = Answer(command.session, command.request, 0, (), "expired")
        return admitted

    def _record_and_answer(self, block: Block, admitted: _Admitted, result: BlockResult, out: Output) -> None:
        """Remember each applied command's events in the session table; answer this node's clients."""
        header = block.header
        for slot, position in enumerate(admitted.positions):
            command = block.commands[position]
            events = result.events[slot]
            self.sessions.record(
                command.session,
                command.request,
                (header.height, events),
                header.time_ns,
            )
            if command.origin == self.id:
                self._answer(command, header.height, events, None, out)
        for position, answer in admitted.answered.items():
            if block.commands[position].origin == self.id:
                key = (answer.session, answer.request)
                if self._pending.pop(key, None) is not None:
                    out.answers.append(answer)

    def _answer(
        self, command: ClientCommand, height: int, events: tuple[Any, ...], error: str | None, out: Output
    ) -> None:
        key = (command.session, command.request)
        if self._pending.pop(key, None) is not None:
            out.answers.append(Answer(command.session, command.request, height, tuple(events), error))

    # --- observation -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        status = self.raft.status()
        return {
            "id": self.id,
            "role": status.role.value,
            "term": status.term,
            "leader": status.leader_id,
            "commit_index": status.commit_index,
            "applied_index": self.applied_index,
            "height": self.tip.height,
            "state_root": self.tip.state_root.hex(),
            "block_time_ns": self.tip.time_ns,
            "pending_requests": len(self._pending),
            "batch": len(self._batch),
            "voters": list(status.conf_state.voters),
            "halted": None if self.halted is None else self.halted["reason"],
        }
