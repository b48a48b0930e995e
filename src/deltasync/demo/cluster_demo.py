"""The cluster demo's run: set-up, the scenario's timeline, and the end.

What happens (times as fractions of the trading phase; see docs/demo.md):

- set-up: a genesis with a short-dated expiry (``21NOV26``) next to the default
  BTC/ETH expiries, an oracle of four demo sources, block time running ``rate`` x
  faster than the wall clock (anchored so that the short expiry comes at ~75 %);
  N node processes, each with its API, started on free ports;
- the oracle publishers from the start (``demo.oracle``), a ``MarkBoard``, then
  accounts; trading starts so that block time reaches the short expiry at 75 %;
- market makers, takers, levered put sellers from 5 % to 28 %, combo trades at
  15 % and 60 %, a WebSocket subscriber keeping one book (``demo.agents``,
  ``demo.subscriber``);
- 20 %–35 %: source ``demo-c`` is silent; 30 %: the leader is SIGKILLed; 45 %: it is
  started again and catches up; 50 %: the true prices crash (liquidations);
  ~75 %: block time passes the short expiry, which settles at the index TWAP;
- end: agents stop, the subscribed book is compared with the REST book, the demo
  waits for the expiry and for the nodes to converge, and compares their state roots
  at a common height. The offline audit and the verdict follow once the nodes are
  stopped (``demo.runner``, ``demo.summary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from deltasync.client import ApiError, Client
from deltasync.demo.agents import (
    ComboTrader,
    LeveredShort,
    MarketMaker,
    Taker,
    TraderAccount,
    create_account,
)
from deltasync.demo.api import Api, NodesDown
from deltasync.demo.board import MarkBoard
from deltasync.demo.clock import NS_PER_S, BlockClock, TradingClock
from deltasync.demo.cluster import NodeProcesses, Watch, kill_node, node_running
from deltasync.demo.metrics import Metrics
from deltasync.demo.oracle import OUTAGE_SOURCE, scenario_oracle, schedule, start_publishers
from deltasync.demo.scenario import (
    CRASH_DROP,
    SHORT_EXPIRY,
    WATCHED,
    Plan,
    combo_spreads,
    demo_genesis,
    expiry_ns_of,
    instrument_names,
)
from deltasync.demo.subscriber import BookWatcher
from deltasync.exchange.genesis import GENESIS_TIME_NS_DEFAULT
from deltasync.node.demo_oracle import DemoOracle

DURATION_DEFAULT_S = 60.0
DURATION_MIN_S = 10.0
NODES_MIN = 3  # one is killed mid-run
SETUP_ESTIMATE_S = 8.0  # node start-up to first trade, used to place the expiry
START_TIMEOUT_S = 40.0  # for a leader and every API
INDEX_TIMEOUT_S = 30.0  # for the first index price


@dataclass(frozen=True)
class ClusterDemoOptions:
    duration_s: float = DURATION_DEFAULT_S  # the trading phase
    seed: int = 1  # prices and the agents' choices
    nodes: int = 3
    rate: int = 60  # block time runs this many times faster than the wall clock
    data_dir: Path | None = None  # None: a temporary directory, removed after a good run
    json: bool = False  # no live view; one JSON object at the end

    def problem(self) -> str | None:
        """Why these options cannot run, or None."""
        if self.nodes < NODES_MIN:
            return f"the demo needs at least {NODES_MIN} nodes (one is killed mid-run)"
        if self.duration_s < DURATION_MIN_S:
            return f"--duration must be at least {DURATION_MIN_S:.0f} seconds"
        if self.data_dir is not None and (self.data_dir / "cluster.json").exists():
            return (f"{self.data_dir} already holds a cluster: give the demo a new or empty "
                    "directory")
        return None


class Display(Protocol):
    def refresh(self, demo: ClusterDemo) -> None: ...


@dataclass
class ClusterSetup:
    """The cluster as written to disk: its block clock, its APIs and the watch over it."""

    rate: int
    clock: BlockClock
    expiry_ns: int  # of the short expiry
    urls: dict[int, str]
    watch: Watch


@dataclass
class Agents:
    makers: list[MarketMaker]
    takers: list[Taker]
    combo: ComboTrader
    levered: list[LeveredShort]

    def start(self, stop: asyncio.Event, plan: Plan, trading: TradingClock) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(m.run(stop)) for m in self.makers]
        tasks += [asyncio.create_task(t.run(stop)) for t in self.takers]
        tasks.append(asyncio.create_task(
            self.combo.run(stop, [plan.at(0.15), plan.at(0.6)], trading)))
        tasks += [asyncio.create_task(lev.run(stop, plan.at(0.05), plan.at(0.28), trading))
                  for lev in self.levered]
        return tasks


@dataclass
class _Running:
    """What runs during the scenario, to be stopped and closed at its end."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clients: list[Api] = field(default_factory=list)
    watcher_task: asyncio.Task[None] | None = None
    watcher_stop: asyncio.Event = field(default_factory=asyncio.Event)


class ClusterDemo:
    """One run of the cluster demo: its state, as the live view and the summary read it."""

    def __init__(self, options: ClusterDemoOptions, data_dir: Path,
                 processes: NodeProcesses) -> None:
        self.options = options
        self.data_dir = data_dir
        self.processes = processes
        self.plan = Plan(float(options.duration_s))
        self.metrics = Metrics()
        self.stop = asyncio.Event()
        self.phase = "starting"
        self.trading = TradingClock()
        self.setup: ClusterSetup | None = None
        self.oracle: DemoOracle | None = None
        self.board: MarkBoard | None = None
        self.watcher: BookWatcher | None = None
        self.accounts: dict[str, TraderAccount] = {}
        self.killed: int | None = None
        self.restarted = False
        self.caught_up = False
        self.restart_target_height = 0
        self.milestones: dict[str, float] = {}
        self.problems: list[str] = []
        self.observed: dict[str, Any] = {}

    @property
    def watch(self) -> Watch:
        assert self.setup is not None, "the cluster is not written yet"
        return self.setup.watch

    # -- set-up --

    def write_cluster(self) -> ClusterSetup:
        """Configs for every node: the genesis, and a block clock anchored so that the
        short expiry comes at ``Plan.expiry_s`` after the (estimated) trading start."""
        wall_anchor_ns = time.time_ns()
        expiry_ns = expiry_ns_of(SHORT_EXPIRY)
        reach_s = SETUP_ESTIMATE_S + self.plan.expiry_s
        # Block time starts after genesis: a long run gets a slower block clock.
        rate_max = int((expiry_ns - GENESIS_TIME_NS_DEFAULT) / (reach_s * NS_PER_S))
        rate = max(1, min(int(self.options.rate), rate_max, 10_000))
        block_anchor_ns = expiry_ns - int(reach_s * rate * NS_PER_S)
        extra = {
            "genesis": demo_genesis(rate),
            "block_time_rate": rate,
            "block_anchor_ns": block_anchor_ns,
            "wall_anchor_ns": wall_anchor_ns,
            "snapshot_every_blocks": 1_000_000,  # keep the whole log for the offline audit
        }
        nodes = int(self.options.nodes)
        base = self.processes.free_base_port(nodes)
        cluster = self.processes.write_configs(self.data_dir, nodes, base, True, extra)
        urls = {int(k): v for k, v in cluster["api"].items()}
        self.setup = ClusterSetup(rate, BlockClock(rate, block_anchor_ns, wall_anchor_ns),
                                  expiry_ns, urls, Watch(self.data_dir, urls, self.processes))
        return self.setup

    async def start_nodes(self) -> None:
        for node in sorted(self.watch.urls):
            self.processes.start_node(self.data_dir, node)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self.watch.refresh()
            if self.watch.leader is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader within {START_TIMEOUT_S:.0f} s; "
                                   f"see {self.data_dir}/node*/node.log")
            await asyncio.sleep(0.1)
        for url in self.watch.urls.values():
            while True:
                try:
                    async with Client(url, timeout_s=2.0) as probe:
                        await probe.call("public/test")
                    break
                except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the API at {url} never answered") from None
                    await asyncio.sleep(0.1)

    # -- the scenario --

    async def run(self, display: Display) -> dict[str, Any]:
        """The whole scenario; returns the final root comparison."""
        setup = self.write_cluster()
        self.phase = "starting nodes"
        display.refresh(self)
        await self.start_nodes()
        urls = [setup.urls[k] for k in sorted(setup.urls)]
        running = _Running()
        completed = False
        try:
            await self._open_market(setup, urls, running, display)
            agents = self._agents(self.accounts)
            await self._wait_for_trading_start(setup, display)
            self._start_trading(setup, agents, urls, running)
            await self._timeline(display)
            completed = True
        finally:
            await self._stop_agents(running, completed)
        return await self._finish(display)

    async def _open_market(self, setup: ClusterSetup, urls: list[str], running: _Running,
                           display: Display) -> None:
        """The oracle first (trading opens with the first index), the board, the accounts."""
        self.phase = "oracle warming up"
        seed = int(self.options.seed)
        self.oracle = scenario_oracle(seed, setup.rate)
        tasks, relays = start_publishers(self.oracle, setup.clock, urls, self.metrics, seed,
                                         self.stop)
        running.tasks += tasks
        running.clients += relays
        board_api = Api(urls, 0, self.metrics, timeout_s=3.0)
        running.clients.append(board_api)
        board = MarkBoard(board_api)
        board.sample_name = WATCHED
        self.board = board
        await self._until_index(board)
        running.tasks.append(asyncio.create_task(board.run(self.stop)))
        self.phase = "opening accounts"
        display.refresh(self)
        self.accounts = await self._open_accounts(urls)

    def _agents(self, accounts: dict[str, TraderAccount]) -> Agents:
        assert self.board is not None
        board, seed = self.board, int(self.options.seed)
        names = instrument_names()
        quoted = names["quoted"]
        return Agents(
            makers=[MarketMaker(accounts[f"maker{i}"], quoted[i::3], board, seed + i,
                                spread=0.03 + 0.01 * i, size_lots=20) for i in range(3)],
            takers=[Taker(accounts[f"taker{i}"], quoted, board, seed + 10 + i,
                          pause_s=(0.05, 0.25)) for i in range(3)],
            combo=ComboTrader(accounts["spreads"], combo_spreads(), board, seed + 20),
            levered=[LeveredShort(accounts[f"levered{i}"], names["levered_puts"], board,
                                  seed + 30 + i) for i in range(3)],
        )

    async def _wait_for_trading_start(self, setup: ClusterSetup, display: Display) -> None:
        """Start trading so that block time reaches the short expiry at 75 % of the run
        (when the set-up took less than its estimate; otherwise at once)."""
        self.phase = "oracle warming up"
        display.refresh(self)
        start_wall_s = setup.clock.wall_of(setup.expiry_ns) - self.plan.expiry_s
        while time.time() < start_wall_s:
            display.refresh(self)
            await asyncio.sleep(min(0.25, max(0.0, start_wall_s - time.time())))

    def _start_trading(self, setup: ClusterSetup, agents: Agents, urls: list[str],
                       running: _Running) -> None:
        assert self.oracle is not None
        self.phase = "trading"
        self.trading.start()
        schedule(self.oracle, self.plan, setup.clock, time.time_ns())
        running.tasks += agents.start(self.stop, self.plan, self.trading)
        self.watcher = BookWatcher(urls, 1, WATCHED)
        running.watcher_task = asyncio.create_task(self.watcher.run(running.watcher_stop))

    async def _stop_agents(self, running: _Running, completed: bool) -> None:
        self.phase = "stopping"
        self.stop.set()
        if running.tasks:
            done, pending = await asyncio.wait(running.tasks, timeout=8)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self.problems.append(f"agent crashed: {task.exception()!r}"[:300])
        if running.watcher_task is not None and self.watcher is not None:
            if completed:  # the agents are done: the book must now be still
                self.phase = "checking the subscribed book"
                self.observed["book_matches_rest"] = await self.watcher.compare_with_rest()
            running.watcher_stop.set()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(running.watcher_task, 5)
        for client in running.clients:
            await client.close()
        for account in self.accounts.values():
            await account.api.close()

    async def _until_index(self, board: MarkBoard) -> None:
        deadline = time.monotonic() + INDEX_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(ApiError, NodesDown):
                await board.refresh()
                if all(board.index.get(c) for c in ("BTC", "ETH")) and board.quotes:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"no index price within {INDEX_TIMEOUT_S:.0f} s: "
                           "the oracle reports were not accepted")

    async def _open_accounts(self, urls: list[str]) -> dict[str, TraderAccount]:
        wanted = [(f"maker{i}", Decimal(5_000_000)) for i in range(3)]
        wanted += [(f"taker{i}", Decimal(500_000)) for i in range(3)]
        wanted += [("spreads", Decimal(500_000))]
        wanted += [(f"levered{i}", Decimal(8_000 + 2_000 * i)) for i in range(3)]
        made = await asyncio.gather(*(
            create_account(name, urls, k, deposit, self.metrics)
            for k, (name, deposit) in enumerate(wanted)))
        return {account.name: account for account in made}

    # -- the timeline --

    async def _timeline(self, display: Display) -> None:
        last_roots = 0.0
        while True:
            now = time.monotonic()
            t = self.trading.elapsed_s()
            if t >= self.plan.duration_s:
                break
            self.watch.refresh()
            self._kill_and_restart(t)
            self._check_caught_up(t)
            self._note_outage(t)
            await self._note_crash(t)
            if now - last_roots >= 2.0:
                last_roots = now
                await self.watch.compare_roots()
            self.phase = self._phase_name(t)
            display.refresh(self)
            await asyncio.sleep(0.25)

    def _kill_and_restart(self, t: float) -> None:
        if self.killed is None and t >= self.plan.kill_s:
            victim = self.watch.leader or 1
            kill_node(self.data_dir, victim)
            self.killed = victim
            self.milestones["killed"] = t
            self.metrics.note(f"node {victim} (the leader) SIGKILLed")
        if self.killed is not None and not self.restarted and t >= self.plan.restart_s:
            if not node_running(self.data_dir, self.killed):
                self.processes.start_node(self.data_dir, self.killed)
                self.restarted = True
                self.milestones["restarted"] = t
                self.restart_target_height = max(self.watch.heights().values(), default=0)
                self.metrics.note(f"node {self.killed} restarted")

    def _check_caught_up(self, t: float) -> None:
        """The restarted node caught up once its height reaches the leader's at restart."""
        if not self.restarted or self.caught_up:
            return
        height = self.watch.heights().get(self.killed or 0)
        if height is not None and height >= self.restart_target_height > 0:
            self.caught_up = True
            self.milestones["caught_up"] = t
            self.metrics.note(f"node {self.killed} caught up (height {height})")

    def _note_outage(self, t: float) -> None:
        start, end = self.plan.outage
        if "outage" not in self.milestones and t >= start:
            self.milestones["outage"] = t
            self.metrics.note(f"oracle source {OUTAGE_SOURCE} goes silent (outage)")
        if "outage_end" not in self.milestones and t >= end:
            self.milestones["outage_end"] = t
            self.metrics.note(f"oracle source {OUTAGE_SOURCE} reports again")

    async def _note_crash(self, t: float) -> None:
        assert self.board is not None
        plan = self.plan
        if "crash" not in self.milestones and t >= plan.crash_s:
            self.milestones["crash"] = t
            drops = ", ".join(f"{k} -{round(v * 100)} %" for k, v in sorted(CRASH_DROP.items()))
            self.metrics.note(f"index crash: {drops}")
            self.observed["levered_before_crash"] = await self._levered_sizes()
            self.observed["index_before_crash"] = {
                k: str(v) for k, v in self.board.index.items()}
        if "crash" in self.milestones and "index_after_crash" not in self.observed and (
                t >= plan.crash_s + plan.crash_len_s + 2):
            self.observed["index_after_crash"] = {
                k: str(v) for k, v in self.board.index.items()}

    def _phase_name(self, t: float) -> str:
        plan = self.plan
        if self.killed is not None and not self.restarted:
            return f"node {self.killed} down"
        if plan.crash_s <= t < plan.crash_s + plan.crash_len_s + 2:
            return "crash: liquidations"
        setup = self.setup
        if setup is not None and setup.clock.now_ns() >= setup.expiry_ns and t < plan.expiry_s + 5:
            return f"{SHORT_EXPIRY} expired: settlement"
        return "trading"

    async def _levered_sizes(self) -> dict[str, str]:
        sizes: dict[str, str] = {}
        for name, account in self.accounts.items():
            if not name.startswith("levered"):
                continue
            try:
                positions = await account.api.run(lambda c: c.get_positions())
            except (ApiError, NodesDown):
                continue
            sizes[name] = str(sum((abs(p.size) for p in positions), Decimal(0)))
        return sizes

    # -- the end --

    async def _finish(self, display: Display) -> dict[str, Any]:
        assert self.setup is not None
        clock, expiry_ns, rate = self.setup.clock, self.setup.expiry_ns, self.setup.rate
        self.phase = "waiting for the expiry"
        display.refresh(self)
        deadline = time.monotonic() + 10
        while clock.now_ns() < expiry_ns + 2 * rate * NS_PER_S and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # idle blocks keep block time moving
        self.phase = "converging"
        display.refresh(self)
        final = await self._converge()
        self.phase = "done"
        display.refresh(self)
        return final

    async def _converge(self) -> dict[str, Any]:
        """Wait until every node is at (about) the same height, then compare roots there."""
        deadline = time.monotonic() + 12
        check: dict[str, Any] = {}
        nodes = len(self.watch.urls)
        while time.monotonic() < deadline:
            self.watch.refresh()
            heights = self.watch.heights()
            self._check_caught_up(self.trading.elapsed_s())
            if len(heights) == nodes and max(heights.values()) - min(heights.values()) <= 8:
                check = await self.watch.compare_roots(min(heights.values()))
                if check.get("nodes_compared") == nodes:
                    break
            await asyncio.sleep(0.3)
        return check
