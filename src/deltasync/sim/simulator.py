"""The simulator: a whole cluster of real ``NodeCore``s in one thread, driven by one seed.

A discrete-event loop over a heap of ``(true_ns, seq, kind, a, b, payload)``:
node ticks (each node on its own skewed, drifting clock), message deliveries
(through ``SimNetwork``), client wake-ups and answers, and nemesis draws
(crashes, restarts, partitions, disk faults). Nothing here opens a socket or
reads the wall clock; every random choice comes from a ``random.Random``
stream derived from the seed, so a seed replays exactly. ``trace_hash`` is a
SHA-256 over every event in the order it was processed.

Two phases, as in TigerBeetle's VOPR: a safety phase with faults, then a
liveness phase: partitions heal, message faults stop, every node that can
start is restarted, and the cluster must answer every new client operation
within ``liveness_bound_ns``. At the end every checker runs (``checkers``).

Planted bugs and alternative implementations come in through ``SimHooks``:
the classes of the node core and the state machine, and a wrapper around each
node's durable log.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltasync.consensus import Role
from deltasync.core import limits
from deltasync.core.errors import DeltasyncError
from deltasync.core.fixed import Price
from deltasync.core.timeutil import days_from_civil
from deltasync.exchange import invariants
from deltasync.exchange.assembly import COMMAND_REGISTRIES, EVENT_REGISTRIES
from deltasync.exchange.assembly import _engines as venue_engines
from deltasync.exchange.commands import Deposit
from deltasync.exchange.events import Deposited, Withdrawn, WithdrawRejected
from deltasync.exchange.genesis import GenesisConfig, default_genesis_dict
from deltasync.exchange.instruments import expiry_ns_of
from deltasync.exchange.liquidation import LiquidationStarted, SocializedLoss
from deltasync.exchange.margin import MarginModeChanged
from deltasync.exchange.oracle import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    IndexPriceUpdated,
    OracleReport,
    OracleReportAccepted,
    OracleReportRejected,
    public_key_of,
    sign_report,
)
from deltasync.exchange.settlement import InstrumentSettled
from deltasync.exchange.state import BlockResult, ExchangeState
from deltasync.node.driver import Answer, CommandCodec, NodeCore, NodeSettings, Output
from deltasync.sim.clock import NodeClock
from deltasync.sim.config import CONVERGE_NS, NS_PER_S, PPM, SimConfig, stream
from deltasync.sim.disk import SimDisk
from deltasync.sim.linearizability import REJECTED, Operation
from deltasync.sim.network import SimNetwork
from deltasync.sim.workload import (
    EXPIRIES,
    FUNDING_ACCOUNT_BASE,
    SESSION_BASE,
    STRIKES,
    TRADING_ACCOUNT_BASE,
    UNDERLYING,
    PendingOp,
    WorkloadClient,
    instruments,
)
from deltasync.storage.errors import StorageError
from deltasync.storage.raft_log import RaftStorage, RecoveredLog
from deltasync.storage.snapshot import SnapshotStore

# event kinds (ints: cheap to hash and compare)
EV_TICK = 1
EV_DELIVER = 2
EV_CLIENT_WAKE = 3
EV_CLIENT_ANSWER = 4
EV_CLIENT_TIMEOUT = 5
EV_NEMESIS = 6
EV_LIVENESS = 7
EV_STOP_WORKLOAD = 8
EV_END = 9
EV_CLIENT_ARRIVE = 10
EV_CONVERGE = 11

_EVENT = struct.Struct("<qqBqq")

CLIENT_LINK_NS = 300_000  # client <-> gateway one-way latency

STAT_NAMES = (
    "crashes",
    "restarts",
    "partitions",
    "heals",
    "lost_fsyncs",
    "bit_flips",
    "torn_crashes",
    "refused_starts",
    "ops_ok",
    "ops_indeterminate",
    "retries",
    "reads",
    "blocks_applied",
    "expiries",
    "snapshots_installed",
    "amnesia",
    "disk_errors",
    "disk_error_stops",
    "clock_steps",
    "pauses",
    "transfers",
    "market_jumps",
    "oracle_pauses",
    "index_updates",
    "breaker_trips",
    "breaker_resets",
    "reports_rejected",
    "reports_accepted",
    "liquidations",
    "socialized_losses",
    "settlements",
    "margin_mode_changes",
)


class CheckedExchangeState(ExchangeState):
    """The exchange with its invariants checked after every applied block."""

    observer: Callable[[ExchangeState, BlockResult], None] | None = None
    pre_observer: Callable[[ExchangeState, int], None] | None = None

    def apply_block(self, height: int, time_ns: int, commands: Any) -> BlockResult:
        if self.pre_observer is not None:
            self.pre_observer(self, height)
        result = super().apply_block(height, time_ns, commands)
        if self.observer is not None:
            self.observer(self, result)
        return result


@dataclass
class SimHooks:
    """Seams for planted bugs (tests) and alternative implementations."""

    core_class: type[NodeCore] = NodeCore
    machine_class: type[ExchangeState] = CheckedExchangeState
    wrap_storage: Callable[[Any], Any] | None = None  # RaftStorage -> something with its API


@dataclass
class SimNode:
    node_id: int
    clock: NodeClock
    disk: SimDisk
    core: NodeCore | None = None
    incarnation: int = 0
    refused: str | None = None  # the reason it refuses to start (detected corruption)
    halted: dict[str, Any] | None = None
    durable: tuple[int, int, int] | None = None  # (term, vote, last index) promised at crash
    faults: list[str] = field(default_factory=list)  # storage faults injected since last start
    amnesia: list[str] = field(default_factory=list)  # durable state lost (only on faulty disks)
    paused_until_ns: int = 0  # a frozen process (GC pause, SIGSTOP, a VM migrating) wakes then


@dataclass(frozen=True, slots=True)
class ChainBlock:
    height: int
    time_ns: int
    sessions: tuple[tuple[int, int, int], ...]
    root: bytes
    node: int  # the first node seen applying it


@dataclass
class Ack:
    session: int
    request: int
    height: int
    node: int
    at_ns: int


@dataclass
class SimResult:
    seed: int
    config: SimConfig
    trace_hash: str
    state_root: str
    height: int
    violations: list[str]
    excused: list[str]  # what a lying disk explains (amnesia on a faulty disk)
    simulated_ns: int
    events: int
    stats: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "nodes": self.config.nodes,
            "trace_hash": self.trace_hash,
            "state_root": self.state_root,
            "height": self.height,
            "violations": list(self.violations),
            "excused": list(self.excused),
            "simulated_seconds": self.simulated_ns / NS_PER_S,
            "events": self.events,
            "stats": self.stats,
        }


def sim_genesis(
    config: SimConfig, start_ns: int, oracle: dict[str, Any] | None = None
) -> GenesisConfig:
    raw = default_genesis_dict()
    if oracle is not None:
        raw["oracle"] = oracle
    raw["listings"] = [
        {"underlying": UNDERLYING, "expiry": expiry, "strikes": list(STRIKES)}
        for expiry in EXPIRIES
    ]
    raw["genesis_time_ns"] = start_ns
    return GenesisConfig.from_dict(raw)


def oracle_dict(keys: dict[str, bytes], staleness_ns: int) -> dict[str, Any]:
    return {
        "sources": [
            {"id": name, "public_key": public_key_of(key).hex(), "underlyings": [UNDERLYING]}
            for name, key in sorted(keys.items())
        ],
        "min_sources": 2,
        "staleness_ns": staleness_ns,
        "clamp_band_ppm": 20_000,
        "max_report_skew_ns": 5 * NS_PER_S,
        "jump_bound_ppm": 50_000,
        "jump_confirm_sources": 2,
    }


def first_expiry_ns() -> int:
    return expiry_ns_of(days_from_civil(2026, 11, 27))


def node_settings(config: SimConfig) -> NodeSettings:
    return NodeSettings(
        election_ticks=config.election_ticks,
        heartbeat_ticks=config.heartbeat_ticks,
        snapshot_every_blocks=config.snapshot_every_blocks,
        idle_block_ns=config.idle_block_ns,
        forward_retry_ns=config.forward_retry_ns,
        request_timeout_ns=config.request_timeout_ns,
    )


def oracle_keys(config: SimConfig) -> dict[str, bytes]:
    """Each oracle source's signing key, by source id (none without oracle sources)."""
    if not config.oracle_sources:
        return {}
    key_rng = stream(config.seed, "oracle/keys")
    return {f"src{i}": key_rng.randbytes(32) for i in range(config.oracle_sources)}


def workload_clients(config: SimConfig) -> list[WorkloadClient]:
    """The funding clients, then the trading clients (client ids from 0)."""
    clients = []
    for index in range(config.funding_clients + config.trading_clients):
        trading = index >= config.funding_clients
        account = TRADING_ACCOUNT_BASE + index if trading else FUNDING_ACCOUNT_BASE
        client_rng = stream(config.seed, f"client/{index}")
        client = WorkloadClient(index, SESSION_BASE + index, account, trading, client_rng)
        if trading and config.oracle_sources:
            # the full venue margins positions: small accounts can be liquidated
            client.deposit_whole = client_rng.choice((10_000_000, 20_000, 3_000))
            client.margin_modes = True
        clients.append(client)
    return clients


def oracle_feeders(config: SimConfig, sources: list[str]) -> list[WorkloadClient]:
    """One client per oracle source, numbered after the workload's clients."""
    first = config.funding_clients + config.trading_clients
    feeders = []
    for index, source in enumerate(sources, start=first):
        feeder = WorkloadClient(
            index, SESSION_BASE + index, 0, False, stream(config.seed, f"client/{index}")
        )
        feeder.oracle_source = source
        feeders.append(feeder)
    return feeders


class Simulator:
    def __init__(self, config: SimConfig, hooks: SimHooks | None = None) -> None:
        self.config = config
        self.hooks = hooks or SimHooks()
        seed = config.seed
        self.rng_net = stream(seed, "network")
        self._nemesis_rngs: dict[str, random.Random] = {}  # one stream per nemesis action
        self.rng_disk = stream(seed, "disk")
        self.rng_clients = stream(seed, "clients")
        self.start_ns = first_expiry_ns() - config.expiry_in_ns
        self.codec = CommandCodec(list(COMMAND_REGISTRIES), list(EVENT_REGISTRIES))
        self.network = SimNetwork(config, self.rng_net)
        self.voters = tuple(range(1, config.nodes + 1))
        self.nodes = {node_id: self._new_node(node_id) for node_id in self.voters}
        self.settings = node_settings(config)
        self.names = instruments()
        # the event loop
        self.now = self.start_ns
        self._heap: list[tuple[int, int, int, int, int, Any]] = []
        self._seq = 0
        self._trace = hashlib.sha256()
        self.events = 0
        self.phase = "safety"
        self.workload_on = True
        self.liveness_start_ns = self.start_ns + config.safety_ns
        self.end_ns = self.liveness_start_ns + config.liveness_bound_ns + config.settle_ns
        # observations for the checkers
        self.violations: list[str] = []
        self.excused: list[str] = []
        self.chain: dict[int, ChainBlock] = {}
        self.acks: list[Ack] = []
        self.history: list[Operation] = []
        self.adjustments: dict[int, list[tuple[int, int]]] = {}  # height -> [(account, delta)]
        self.first_apply_ns: dict[int, int] = {}  # height -> when some node first applied it
        self._funding_accounts = [FUNDING_ACCOUNT_BASE + i for i in range(config.funding_accounts)]
        self.liveness_ops: list[tuple[int, PendingOp]] = []  # (client, op) invoked after healing
        self.liveness_height = 0
        self.converge_height = 0
        self.finished_ops: dict[int, int] = {}  # op id -> when it completed with a known outcome
        self.first_block_after_healing_ns: int | None = None
        self.log: list[str] = []  # nemesis and notable events, for the summary
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        # With oracle sources the nodes run the full venue (oracle, margin, settlement,
        # liquidation: ``exchange.assembly``); without, the trading core alone.
        self.oracle_keys = oracle_keys(config)
        self.oracle: dict[str, Any] | None = None
        if self.oracle_keys:
            self.oracle = oracle_dict(self.oracle_keys, config.oracle_staleness_ns)
        self.genesis = sim_genesis(config, self.start_ns - NS_PER_S, self.oracle)
        self.market_raw = Price.whole(100_000).raw  # the "true" BTC price the sources observe
        self.oracle_paused_until_ns = 0
        # the workload's clients, then one feeder per oracle source
        self.clients = workload_clients(config) + oracle_feeders(config, list(self.oracle_keys))
        self._client_of_session = {c.session: c for c in self.clients}
        self._op_ids = 0
        self._tokens = 0  # attempt tokens, unique over the run (stale timers must not match)
        self._read_tokens: dict[bytes, tuple[int, int]] = {}

    def _new_node(self, node_id: int) -> SimNode:
        config = self.config
        clock = NodeClock(
            self.start_ns, config.clock_offset_ns[node_id - 1], config.clock_drift_ppm[node_id - 1]
        )
        return SimNode(node_id, clock, SimDisk())

    # --- the event loop ----------------------------------------------------------------

    def _push(self, at_ns: int, kind: int, a: int = 0, b: int = 0, payload: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ns, self._seq, kind, a, b, payload))

    def run(self) -> SimResult:
        for node_id in self.voters:
            self._start(node_id)
        for client in self.clients:
            self._push(
                self.start_ns + self.rng_clients.randrange(1, 200_000_000),
                EV_CLIENT_WAKE,
                client.client_id,
            )
        self._push(self.start_ns + self.config.nemesis_interval_ns, EV_NEMESIS)
        self._push(self.liveness_start_ns, EV_LIVENESS)
        self._push(self.end_ns - self.config.settle_ns, EV_STOP_WORKLOAD)
        self._push(self.end_ns - CONVERGE_NS, EV_CONVERGE)
        self._push(self.end_ns, EV_END)
        heap = self._heap
        trace = self._trace
        pack = _EVENT.pack
        while heap:
            at_ns, _, kind, a, b, payload = heapq.heappop(heap)
            self.now = at_ns
            self.events += 1
            trace.update(pack(at_ns, self.events, kind, a, b))
            if kind == EV_TICK:
                self._on_tick(a, b)
            elif kind == EV_DELIVER:
                self._on_deliver(a, b, payload)
            elif kind == EV_CLIENT_WAKE:
                self._on_client_wake(a)
            elif kind == EV_CLIENT_ARRIVE:
                self._on_client_arrive(a, b, payload)
            elif kind == EV_CLIENT_ANSWER:
                self._on_client_answer(a, b, payload)
            elif kind == EV_CLIENT_TIMEOUT:
                self._on_client_timeout(a, b)
            elif kind == EV_NEMESIS:
                self._on_nemesis()
            elif kind == EV_LIVENESS:
                self._on_liveness()
            elif kind == EV_CONVERGE:
                self.converge_height = max(self.chain, default=0)
            elif kind == EV_STOP_WORKLOAD:
                self.workload_on = False
            elif kind == EV_END:
                break
        from deltasync.sim.checkers import run_checkers

        self.stats.update(
            messages_sent=self.network.sent,
            messages_dropped=self.network.dropped,
            messages_duplicated=self.network.duplicated,
            acks=len(self.acks),
            history_ops=len(self.history),
        )
        run_checkers(self)
        return self._result()

    def _note(self, text: str) -> None:
        self.log.append(f"{(self.now - self.start_ns) / NS_PER_S:9.3f}s {text}")
        self._trace.update(text.encode())

    # --- nodes ---------------------------------------------------------------------------

    def _local(self, node: SimNode) -> int:
        return node.clock.local(self.now)

    def _machine_factory(self, node_id: int) -> Callable[[], ExchangeState]:
        def build() -> ExchangeState:
            risk, extensions = self._engines()
            machine = self.hooks.machine_class.from_genesis(
                self.genesis, risk=risk, extensions=extensions
            )
            self._observe_machine(machine, node_id)
            return machine

        return build

    def _machine_restore(self, node_id: int) -> Callable[[bytes], ExchangeState]:
        def restore(data: bytes) -> ExchangeState:
            risk, extensions = self._engines()
            machine = self.hooks.machine_class.restore(data, risk=risk, extensions=extensions)
            self._observe_machine(machine, node_id)
            return machine

        return restore

    def _engines(self) -> tuple[Any, list[Any]]:
        if self.oracle is None:
            return None, []
        return venue_engines(self.genesis)

    def _observe_machine(self, machine: ExchangeState, node_id: int) -> None:
        if isinstance(machine, CheckedExchangeState):
            before: dict[int, int] = {}

            def pre_observer(state: ExchangeState, height: int) -> None:
                if self.oracle is not None and height not in self.adjustments:
                    for account in self._funding_accounts:
                        holder = state.accounts.get(account)
                        before[account] = 0 if holder is None else holder.cash

            def observer(state: ExchangeState, result: BlockResult) -> None:
                if before:
                    self._record_adjustments(state, result, before)
                    before.clear()
                if not (result.events or result.start_events or result.end_events):
                    return  # an empty block moves only height and time: nothing to re-check
                problems = invariants.check_invariants(state)
                if problems:
                    self._violation(
                        f"invariants: node {node_id} after block {result.height}: "
                        + "; ".join(problems[:3])
                    )

            machine.observer = observer
            machine.pre_observer = pre_observer

    def _record_adjustments(
        self, state: ExchangeState, result: BlockResult, before: dict[int, int]
    ) -> None:
        """Balance changes of funding accounts that no client made (a socialized loss)."""
        moved = dict.fromkeys(before, 0)
        for events in result.events:
            for event in events:
                match event:
                    case Deposited(account=account, amount=amount) if account in moved:
                        moved[account] += amount.raw
                    case Withdrawn(account=account, amount=amount) if account in moved:
                        moved[account] -= amount.raw
        changes = []
        for account, cash_before in before.items():
            holder = state.accounts.get(account)
            residual = (0 if holder is None else holder.cash) - cash_before - moved[account]
            if residual:
                changes.append((account, residual))
        self.adjustments[result.height] = changes

    def _start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        node.incarnation += 1
        base = f"/n{node_id}"
        try:
            node.disk.makedirs(base)
            storage, recovered = RaftStorage.open(f"{base}/raft", node.disk)
            if node.durable is not None:
                self._check_durable(node, recovered)
            snapshots = SnapshotStore(f"{base}/snapshots", node.disk)
            wrapped = self.hooks.wrap_storage(storage) if self.hooks.wrap_storage else storage
            core = self.hooks.core_class(
                node_id,
                self.voters,
                wrapped,
                recovered,
                snapshots,
                machine_factory=self._machine_factory(node_id),
                machine_restore=self._machine_restore(node_id),
                command_codec=self.codec,
                rng=stream(self.config.seed, f"raft/{node_id}/{node.incarnation}"),
                settings=self.settings,
            )
        except DeltasyncError as error:
            node.refused = f"{type(error).__name__}: {error}"
            self.stats["refused_starts"] += 1
            self._note(f"node {node_id} refuses to start: {node.refused}")
            if not node.faults:
                self._violation(
                    f"storage: node {node_id} refuses to start on a healthy disk: {node.refused}"
                )
            return
        node.core = core
        node.faults = []
        node.durable = None
        self._note(f"node {node_id} up (incarnation {node.incarnation}, height {core.tip.height})")
        self._push(
            self.now + node.clock.true_period(self.config.tick_ns),
            EV_TICK,
            node_id,
            node.incarnation,
        )

    def _check_durable(self, node: SimNode, recovered: RecoveredLog) -> None:
        assert node.durable is not None
        term, vote, last_index = node.durable
        hard = recovered.hard_state
        lost = []
        if hard.term < term or (hard.term == term and hard.vote != vote):
            lost.append(f"term/vote {term}/{vote} -> {hard.term}/{hard.vote}")
        if recovered.last_index < last_index:
            lost.append(f"last index {last_index} -> {recovered.last_index}")
        if not lost:
            return
        text = f"node {node.node_id} lost durable state across a crash: " + ", ".join(lost)
        if node.faults:
            node.amnesia.append(text + f" (its disk lied: {', '.join(node.faults)})")
            self.stats["amnesia"] += 1
            self._note("amnesia: " + text)
        else:
            self._violation("durability: " + text)

    def _crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        core = node.core
        if core is None:
            return
        storage = core.storage
        hard = storage.hard_state
        node.durable = (hard.term, hard.vote, storage.last_index())
        node.core = None
        torn = self.rng_disk.randrange(PPM) < self.config.torn_write_ppm
        self.stats["torn_crashes"] += int(torn)
        lied = node.disk.crash(self.rng_disk, torn)
        if lied:
            node.faults.append("lost fsync")
        self.stats["crashes"] += 1
        self._note(
            f"crash node {node_id}{' (torn writes)' if torn else ''}{' (after a lost fsync)' if lied else ''}"
        )

    def _on_tick(self, node_id: int, incarnation: int) -> None:
        node = self.nodes[node_id]
        core = node.core
        if core is None or node.incarnation != incarnation:
            return
        if node.paused_until_ns > self.now:  # frozen: the tick fires when it wakes
            self._push(node.paused_until_ns, EV_TICK, node_id, incarnation)
            return
        now = self._local(node)
        if not self._guard(node, core.tick, now):
            return
        self._drain(node, core, now)
        if node.core is core:
            self._push(
                self.now + node.clock.true_period(self.config.tick_ns),
                EV_TICK,
                node_id,
                incarnation,
            )

    def _on_deliver(self, recipient: int, sender: int, payload: bytes) -> None:
        node = self.nodes[recipient]
        core = node.core
        if core is None or not self.network.can_deliver(sender, recipient):
            return
        if node.paused_until_ns > self.now:  # frozen: the message waits in its socket buffer
            self._push(node.paused_until_ns, EV_DELIVER, recipient, sender, payload)
            return
        self._trace.update(payload)
        now = self._local(node)
        if not self._guard(node, core.receive, sender, payload, now):
            return
        self._drain(node, core, now)

    def _guard(self, node: SimNode, function: Callable[..., Any], *args: Any) -> Any:
        """Call one input of a node's core; a core that fails stops its node (fail-stop).

        Returns None when the core failed, True when the call returned None, else its result.
        """
        try:
            result = function(*args)
        except (DeltasyncError, AssertionError, OSError) as error:
            self._fail(node, error)
            return None
        return True if result is None else result

    def _fail(self, node: SimNode, error: BaseException) -> None:
        if node.disk.error_armed and isinstance(error, OSError | StorageError):
            # fail-stop on an injected I/O error: the node stops and is restarted later,
            # recovering from what is really on disk (no promise was made for the failed write)
            self.stats["disk_error_stops"] += 1
            self._note(f"node {node.node_id} stops on a disk error: {type(error).__name__}")
            self._crash(node.node_id)
            node.durable = None
            return
        self._violation(f"node {node.node_id} failed: {type(error).__name__}: {error}")
        node.core = None
        node.halted = {"reason": f"{type(error).__name__}: {error}"}

    def _drain(self, node: SimNode, core: NodeCore, now: int) -> None:
        height_before = core.tip.height
        try:
            out = core.process(now)
        except (DeltasyncError, AssertionError, OSError) as error:
            # a node that finds itself broken stops; that is a finding, not a crash of the simulator
            self._fail(node, error)
            return
        if core.tip.height > height_before + len(out.blocks):
            self.stats["snapshots_installed"] += 1
            self._note(f"node {node.node_id} installed a snapshot at height {core.tip.height}")
        self._route(node, out)

    def _route(self, node: SimNode, out: Output) -> None:
        node_id = node.node_id
        for block in out.blocks:
            self._on_block(node_id, block)
        if out.halted is not None:
            node.halted = out.halted
            node.core = None
            self._violation(f"state root: node {node_id} halted: {out.halted}")
            return
        for recipient, payload in out.messages:
            if recipient not in self.nodes:
                continue
            for delay in self.network.delays(node_id, recipient):
                self._push(self.now + delay, EV_DELIVER, recipient, node_id, payload)
        for answer in out.answers:
            client = self._client_of_session.get(answer.session)
            if client is not None:
                self._push(
                    self.now + CLIENT_LINK_NS, EV_CLIENT_ANSWER, client.client_id, node_id, answer
                )
        for context in out.reads:
            token = self._read_tokens.pop(context, None)
            if token is None:
                continue
            client_id, account = token
            core = node.core
            assert core is not None
            holder = core.machine.accounts.get(account)
            balance = 0 if holder is None else holder.cash
            self._push(
                self.now + CLIENT_LINK_NS, EV_CLIENT_ANSWER, client_id, node_id, (context, balance)
            )

    def _on_block(self, node_id: int, block: Any) -> None:
        self.stats["blocks_applied"] += 1
        root = block.result.state_root
        self._trace.update(struct.pack("<qq", node_id, block.height) + root)
        if any(type(e).__name__ == "InstrumentExpired" for e in block.result.start_events):
            self.stats["expiries"] += 1
        seen = self.chain.get(block.height)
        if seen is None and self.oracle is not None:
            self._count_oracle_events(block.result)
        mine = ChainBlock(block.height, block.time_ns, block.sessions, root, node_id)
        if seen is None:
            self.chain[block.height] = mine
            self.first_apply_ns[block.height] = self.now
            ahead_ns = block.time_ns - self.now
            if ahead_ns > self.config.clock_skew_bound_ns:
                self._violation(
                    f"block time: height {block.height} is stamped {ahead_ns / NS_PER_S:.3f} s ahead of"
                    f" true time, beyond any node's clock skew ({self.config.clock_skew_bound_ns / NS_PER_S:.3f} s)"
                )
            if self.phase == "liveness" and self.first_block_after_healing_ns is None:
                self.first_block_after_healing_ns = self.now
            return
        if (seen.root, seen.sessions, seen.time_ns) != (mine.root, mine.sessions, mine.time_ns):
            what = "state root" if seen.root != mine.root else "block content"
            self._violation(
                f"state root: height {block.height}: node {node_id} {what} differs from node {seen.node}"
                f" (roots {mine.root.hex()[:16]} vs {seen.root.hex()[:16]})"
            )

    def _count_oracle_events(self, result: BlockResult) -> None:
        stats = self.stats
        events = list(result.start_events) + [e for per in result.events for e in per]
        events += result.end_events
        for event in events:
            match event:
                case IndexPriceUpdated():
                    stats["index_updates"] += 1
                case CircuitBreakerTripped():
                    stats["breaker_trips"] += 1
                case CircuitBreakerReset():
                    stats["breaker_resets"] += 1
                case OracleReportRejected():
                    stats["reports_rejected"] += 1
                case OracleReportAccepted():
                    stats["reports_accepted"] += 1
                case LiquidationStarted():
                    stats["liquidations"] += 1
                case SocializedLoss():
                    stats["socialized_losses"] += 1
                case InstrumentSettled():
                    stats["settlements"] += 1
                case MarginModeChanged():
                    stats["margin_mode_changes"] += 1

    def _violation(self, text: str) -> None:
        full = f"t={(self.now - self.start_ns) / NS_PER_S:.3f}s {text}"
        if full not in self.violations and len(self.violations) < limits.sim_violations_max:
            self.violations.append(full)
            self._trace.update(text.encode())

    # --- the nemesis ----------------------------------------------------------------------

    def _chance(self, action: str, ppm: int) -> random.Random | None:
        """Draw whether a nemesis action fires now; its stream if so.

        Each action has its own stream, drawn once per nemesis tick, so adding an
        action (or changing another's rate) does not reshuffle this one's choices.
        """
        rng = self._nemesis_rngs.get(action)
        if rng is None:
            rng = self._nemesis_rngs[action] = stream(self.config.seed, f"nemesis/{action}")
        return rng if rng.randrange(PPM) < ppm else None

    def _on_nemesis(self) -> None:
        if self.phase != "safety":
            return
        config = self.config
        up = [i for i in self.voters if self.nodes[i].core is not None]
        down = [
            i
            for i in self.voters
            if self.nodes[i].core is None
            and self.nodes[i].refused is None
            and self.nodes[i].halted is None
        ]
        if (rng := self._chance("crash", config.crash_ppm)) and up:
            self._crash(rng.choice(up))
        if (rng := self._chance("restart", config.restart_ppm)) and down:
            self.stats["restarts"] += 1
            self._start(rng.choice(down))
        if (rng := self._chance("clock_step", config.clock_step_ppm)) and up:
            node = self.nodes[rng.choice(up)]
            # a step re-sets the offset around the node's original one (steps do not accumulate)
            step_ns = rng.randrange(-limits.sim_clock_step_ns_max, limits.sim_clock_step_ns_max + 1)
            offset_ns = config.clock_offset_ns[node.node_id - 1] + step_ns
            node.clock = NodeClock(node.clock.origin_ns, offset_ns, node.clock.drift_ppm)
            self.stats["clock_steps"] += 1
            self._note(f"node {node.node_id}: clock steps to offset {offset_ns / NS_PER_S:+.3f} s")
        if (rng := self._chance("pause", config.pause_ppm)) and up:
            node = self.nodes[rng.choice(up)]
            pause_ns = rng.randrange(100, 4000) * 1_000_000
            node.paused_until_ns = max(node.paused_until_ns, self.now + pause_ns)
            self.stats["pauses"] += 1
            self._note(f"node {node.node_id} freezes for {pause_ns / NS_PER_S:.3f} s")
        if rng := self._chance("transfer", config.transfer_ppm):
            self._transfer(rng)
        if rng := self._chance("partition", config.partition_ppm):
            self.stats["partitions"] += 1
            self._note("partition: " + self.network.partition(list(self.voters), rng))
        if (rng := self._chance("heal", config.heal_ppm)) and self.network.blocked:
            self.stats["heals"] += 1
            self.network.heal()
            self._note("heal")
        if (
            rng := self._chance("oracle_pause", config.oracle_pause_ppm)
        ) and self.oracle is not None:
            pause_ns = config.oracle_staleness_ns + rng.randrange(1, 5) * NS_PER_S
            self.oracle_paused_until_ns = self.now + pause_ns
            self.stats["oracle_pauses"] += 1
            self._note(f"oracle sources go quiet for {pause_ns / NS_PER_S:.1f} s")
        if (rng := self._chance("disk_error", config.disk_error_ppm)) and up:
            node = self.nodes[rng.choice(up)]
            operation = rng.choice(("write", "sync", "sync_dir"))
            node.disk.inject_error(operation)
            self.stats["disk_errors"] += 1
            self._note(f"node {node.node_id}: the next {operation} fails with EIO")
        for node_id in config.faulty_disks:
            self._disk_faults(self.nodes[node_id])
        self._push(self.now + config.nemesis_interval_ns, EV_NEMESIS)

    def _transfer(self, rng: random.Random) -> None:
        leader = self.leader()
        if leader is None or self.nodes[leader].paused_until_ns > self.now:
            return  # no leader, or a frozen one (it does nothing, transfers included)
        target = rng.choice([i for i in self.voters if i != leader])
        node = self.nodes[leader]
        core = node.core
        assert core is not None
        if self._guard(node, core.raft.transfer_leadership, target) is True:
            self.stats["transfers"] += 1
            self._note(f"leader {leader} transfers leadership to {target}")
            if node.core is core:
                self._drain(node, core, self._local(node))

    def _disk_faults(self, node: SimNode) -> None:
        config, node_id = self.config, node.node_id
        lie = self._chance(f"lost_fsync/{node_id}", config.lost_fsync_ppm)
        rot = self._chance(f"bit_flip/{node_id}", config.bit_flip_ppm)
        if node.core is None:
            return
        if lie:
            node.disk.syncs_to_lose += lie.randrange(5, 200)  # a write cache that lies for a while
            self.stats["lost_fsyncs"] += 1
            self._note(f"node {node_id}: the disk will lie about its next fsyncs")
        if rot:
            where = node.disk.flip_bit_in_wal(f"/n{node_id}/raft/wal", rot)
            if where is not None:
                node.faults.append(f"bit flip {where}")
                self.stats["bit_flips"] += 1
                self._note(f"node {node_id}: bit flip at {where}")

    def _on_liveness(self) -> None:
        self.phase = "liveness"
        self.oracle_paused_until_ns = 0
        self.network.heal()
        self.network.faults_on = False
        for node in self.nodes.values():
            node.disk.syncs_to_lose = 0
            node.disk.disarm_errors()
            node.paused_until_ns = min(node.paused_until_ns, self.now)
        for node_id in self.voters:
            node = self.nodes[node_id]
            if node.core is None and node.refused is None and node.halted is None:
                self.stats["restarts"] += 1
                self._start(node_id)
        self._note("liveness phase: network healed, faults off, nodes restarted")
        self.liveness_height = max((b for b in self.chain), default=0)

    def _next_token(self) -> int:
        self._tokens += 1
        return self._tokens

    # --- clients ---------------------------------------------------------------------------

    def _on_client_wake(self, client_id: int) -> None:
        client = self.clients[client_id]
        if client.op is not None or not self.workload_on:
            return
        if client.oracle_source:
            if self.now < self.oracle_paused_until_ns:
                self._push(self.oracle_paused_until_ns, EV_CLIENT_WAKE, client_id)
                return
            kind, command, account, amount = "oracle", self._report(client), 0, 0
        else:
            kind, command, account, amount = client.next_command(
                self.names, self.config.funding_accounts
            )
        self._op_ids += 1
        request = client.next_request
        if kind != "read":
            client.next_request += 1
        op = PendingOp(self._op_ids, request, kind, command, account, amount, self.now)
        client.op = op
        if self.phase == "liveness":
            self.liveness_ops.append((client_id, op))
        self._attempt(client)

    def _report(self, client: WorkloadClient) -> OracleReport:
        """A signed report of the market as this source sees it (sometimes stale or wrong)."""
        config, rng = self.config, client.rng
        if rng.randrange(PPM) < config.oracle_jump_ppm:
            self.stats["market_jumps"] += 1
            self.market_raw += self.market_raw * rng.choice((-1, 1)) * rng.randrange(5, 31) // 100
        else:
            self.market_raw += self.market_raw * rng.randrange(-10, 11) // 10_000
        price = self.market_raw
        ts_ns = self.now - rng.randrange(0, 50_000_000)
        if rng.randrange(PPM) < config.oracle_outlier_ppm:
            price = price * rng.choice((70, 130)) // 100
        if rng.randrange(PPM) < config.oracle_stale_ppm:
            ts_ns -= rng.randrange(1, 20) * NS_PER_S
        price = max(Price.whole(1).raw, price - price % Price.whole(1).raw)
        key = self.oracle_keys[client.oracle_source]
        return sign_report(key, client.oracle_source, UNDERLYING, Price(price), ts_ns)

    def _attempt(self, client: WorkloadClient) -> None:
        op = client.op
        assert op is not None
        op.attempts += 1
        if op.attempts > 1:
            self.stats["retries"] += 1
        op.token = self._next_token()
        op.attempt_node = self.rng_clients.choice(self.voters)
        op.deadline_ns = self.now + self.config.client_timeout_ns
        self._push(
            self.now + CLIENT_LINK_NS, EV_CLIENT_ARRIVE, client.client_id, op.attempt_node, op.token
        )
        self._push(op.deadline_ns, EV_CLIENT_TIMEOUT, client.client_id, op.token)

    def _on_client_arrive(self, client_id: int, node_id: int, token: int) -> None:
        client = self.clients[client_id]
        op = client.op
        if op is None or op.token != token:
            return
        node = self.nodes[node_id]
        core = node.core
        if core is not None and node.paused_until_ns > self.now:
            self._push(node.paused_until_ns, EV_CLIENT_ARRIVE, client_id, node_id, token)
            return
        if core is None:
            # connection refused: the client learns at once and tries another node
            op.token = self._next_token()
            self._push(
                self.now + CLIENT_LINK_NS + 50_000_000, EV_CLIENT_TIMEOUT, client_id, op.token
            )
            op.attempts -= 1
            return
        now = self._local(node)
        if op.kind == "read":
            context = f"r/{client_id}/{op.op_id}/{op.token}".encode()
            if self._guard(node, core.read, context) is not True:
                return  # rejected (no leader known) or the node failed: the timeout retries
            self._read_tokens[context] = (client_id, op.key)
        elif (
            self._guard(node, core.submit, op.command, client.session, op.request, now) is not True
        ):
            return
        self._drain(node, core, now)

    def _on_client_timeout(self, client_id: int, token: int) -> None:
        client = self.clients[client_id]
        op = client.op
        if op is None or op.token != token:
            return
        self._retry_or_give_up(client)

    def _retry_or_give_up(self, client: WorkloadClient) -> None:
        op = client.op
        assert op is not None
        if op.attempts < self.config.client_attempts_max:
            self._attempt(client)
            return
        self._finish(client, None, None)

    def _on_client_answer(self, client_id: int, node_id: int, payload: Any) -> None:
        client = self.clients[client_id]
        if isinstance(payload, tuple):  # a read: (context, balance)
            context, balance = payload
            op = client.op
            if (
                op is None
                or op.kind != "read"
                or context != f"r/{client_id}/{op.op_id}/{op.token}".encode()
            ):
                return
            self.stats["reads"] += 1
            self._finish(client, balance, ())
            return
        answer: Answer = payload
        self._trace.update(struct.pack("<qqq", answer.session, answer.request, answer.height))
        if answer.error is None:
            self.acks.append(Ack(answer.session, answer.request, answer.height, node_id, self.now))
        op = client.op
        if op is None or op.kind == "read" or answer.request != op.request:
            return
        if answer.error is None:
            self._finish(client, _output_of(op, answer.events), answer.events)
        elif answer.error in ("timeout", "stale_block"):
            self._retry_or_give_up(client)  # not applied (yet): try again, same request id
        else:
            self._finish(client, None, None)  # "expired": applied, answer unknown

    def _finish(self, client: WorkloadClient, output: int | None, events: tuple[Any, ...] | None) -> None:
        op = client.op
        assert op is not None
        client.op = None
        done = events is not None
        if done:
            self.finished_ops[op.op_id] = self.now
        self.stats["ops_ok" if done else "ops_indeterminate"] += 1
        if op.kind == "oracle":
            pass
        elif op.kind == "trade":
            if done:
                assert events is not None
                if isinstance(op.command, Deposit):
                    client.funded = True
                client.observe(events)
        else:
            self.history.append(
                Operation(
                    op.op_id,
                    client.client_id,
                    op.key,
                    op.kind,
                    op.amount,
                    op.invoke_ns,
                    self.now if done else None,
                    output if done else None,
                )
            )
        if self.workload_on:
            think_ns = self.config.think_ns_max
            if client.oracle_source:
                think_ns = self.config.oracle_interval_ns
            self._push(
                self.now + 1 + self.rng_clients.randrange(think_ns),
                EV_CLIENT_WAKE,
                client.client_id,
            )

    # --- the result -----------------------------------------------------------------------

    def _result(self) -> SimResult:
        height = max(self.chain, default=0)
        root = self.chain[height].root.hex() if height else ""
        stats: dict[str, Any] = dict(self.stats)
        return SimResult(
            seed=self.config.seed,
            config=self.config,
            trace_hash=self._trace.hexdigest(),
            state_root=root,
            height=height,
            violations=list(self.violations),
            excused=list(self.excused),
            simulated_ns=self.now - self.start_ns,
            events=self.events,
            stats=stats,
        )

    # --- observation for checkers and reports -------------------------------------------------

    def system_operations(self) -> list[Operation]:
        """Funding-account balance changes made by the exchange itself, as history operations.

        Block h takes effect between the first application of block h - 1 (its
        proposer had applied h - 1) and the first application of block h.
        """
        ops = []
        for height, changes in sorted(self.adjustments.items()):
            if height not in self.first_apply_ns:
                continue
            start = self.first_apply_ns.get(height - 1, self.start_ns)
            for index, (account, delta) in enumerate(changes):
                ops.append(
                    Operation(
                        -(height * 16 + index) - 1,
                        -1,
                        account,
                        "adjust",
                        delta,
                        start,
                        self.first_apply_ns[height],
                        None,
                    )
                )
        return ops

    def node_status(self, node_id: int) -> str:
        node = self.nodes[node_id]
        if node.refused:
            return f"node {node_id}: refused to start ({node.refused})"
        if node.halted:
            return f"node {node_id}: halted"
        if node.core is None:
            return f"node {node_id}: down"
        s = node.core.status()
        return (
            f"node {node_id}: {s['role']} term {s['term']} leader {s['leader']} height {s['height']}"
            f" commit {s['commit_index']} applied {s['applied_index']} pending {s['pending_requests']}"
        )

    def leader(self) -> int | None:
        for node_id in self.voters:
            core = self.nodes[node_id].core
            if core is not None and core.raft.role is Role.LEADER:
                return node_id
        return None


def _output_of(op: PendingOp, events: tuple[Any, ...]) -> int | None:
    for event in events:
        match event:
            case Deposited(balance=balance) | Withdrawn(balance=balance):
                return int(balance.raw)
            case WithdrawRejected():
                return REJECTED
    return None


def simulate(
    seed: int,
    nodes: int | None = None,
    steps: int | None = None,
    hooks: SimHooks | None = None,
    **overrides: Any,
) -> SimResult:
    """Run one seed (``overrides`` replace drawn config fields, e.g. ``crash_ppm=0``)."""
    config = SimConfig.from_seed(seed, nodes=nodes, steps=steps)
    if overrides:
        config = config.with_overrides(**overrides)
    return Simulator(config, hooks).run()
