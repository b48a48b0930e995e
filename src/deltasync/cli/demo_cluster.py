"""`deltasync demo`: a real 3-node cluster on loopback running a real market scenario.

What happens (times as fractions of ``--duration``, measured from the moment
trading starts; see docs/demo.md):

- setup: a genesis with a short-dated expiry (``21NOV26``) next to the default
  BTC/ETH expiries, an oracle of four demo sources, block time running
  ``rate`` x faster than the wall clock (anchored so the short expiry comes at
  ~75 %); N node processes, each with its API, started on free ports;
- oracle publishers for BTC and ETH from the start (noise, latency, outliers,
  source ``demo-c`` silent from 20 % to 35 %), with SVI smiles;
- market makers quoting post-only around mark (labels, edits, cancel by
  label), takers trading, levered put sellers loading up from 5 % to 28 %,
  combo trades at 15 % and 60 %, a WebSocket subscriber keeping one book
  from ``book.*.raw`` (checked against the REST book at the end);
- 30 %: the leader is SIGKILLed; 45 %: it is started again and catches up;
- 50 %: the index drops ~20 % within a few seconds: the levered accounts are
  liquidated;
- ~75 %: block time passes the short expiry, which settles at the index TWAP;
- end: agents stop, the cluster settles down, every node's state root is
  compared at a common height, halt reports are looked for, the committed log
  of one node is replayed offline (the auditor: exact counts of trades,
  liquidations and settlements, every invariant checked, the replayed root
  compared with the cluster's), and the cluster is torn down.

Exit status: 0 when the roots agree, no node halted and no invariant broke
(missing milestones are warnings); 1 otherwise; 2 for bad arguments; 130 on
Ctrl-C or SIGTERM (after teardown).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

HELP = "start a local cluster and run a market scenario against it (the main demo)"

NS = 1_000_000_000
SHORT_EXPIRY = "21NOV26"
WEEK_EXPIRY = "27NOV26"
DURATION_DEFAULT_S = 60.0
CATCHING_UP_BLOCKS = 100  # a node this far behind is catching up: left out of live root checks
SETUP_ESTIMATE_S = 8.0  # node start-up to first trade, used to place the expiry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option (``python -m deltasync.cli.demo_cluster``)."""
    parser.add_argument("--duration", type=float, default=DURATION_DEFAULT_S, metavar="SECONDS",
                        help="length of the trading phase (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="scenario seed (default 1)")
    add_cluster_arguments(parser)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``deltasync demo`` adds to its own ``--duration`` and ``--seed``."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the cluster's files here (default: a temporary dir, removed)")
    parser.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    parser.add_argument("--rate", type=int, default=60,
                        help="block time runs this many times faster than the wall clock")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


@dataclass(frozen=True)
class Plan:
    """The scenario's schedule in seconds after the trading start."""

    duration_s: float

    def at(self, fraction: float) -> float:
        return self.duration_s * fraction

    @property
    def kill_s(self) -> float:
        return self.at(0.30)

    @property
    def restart_s(self) -> float:
        return self.at(0.45)

    @property
    def crash_s(self) -> float:
        return self.at(0.50)

    @property
    def crash_len_s(self) -> float:
        return max(1.5, self.at(0.04))

    @property
    def expiry_s(self) -> float:
        return self.at(0.75)

    @property
    def outage(self) -> tuple[float, float]:
        return self.at(0.20), self.at(0.35)


# --- cluster set-up ---------------------------------------------------------------------


def free_base_port(nodes: int) -> int:
    from deltasync.cli.cluster import free_base_port as pick

    return pick(nodes)


def instrument_names() -> dict[str, list[str]]:
    """The instruments the agents use, by role."""
    btc_short = [f"BTC_USDC-{SHORT_EXPIRY}-{k}-{t}" for k in (95000, 100000, 105000) for t in "CP"]
    eth_short = [f"ETH_USDC-{SHORT_EXPIRY}-{k}-{t}" for k in (3250, 3500, 3750) for t in "CP"]
    btc_week = [f"BTC_USDC-{WEEK_EXPIRY}-{k}-{t}"
                for k in (90000, 95000, 100000, 105000, 110000) for t in "CP"]
    eth_week = [f"ETH_USDC-{WEEK_EXPIRY}-{k}-{t}"
                for k in (3000, 3250, 3500, 3750, 4000) for t in "CP"]
    return {
        "quoted": btc_short + eth_short + btc_week + eth_week,
        "short": btc_short + eth_short,
        "levered_puts": [f"BTC_USDC-{WEEK_EXPIRY}-100000-P", f"BTC_USDC-{WEEK_EXPIRY}-95000-P",
                         f"ETH_USDC-{WEEK_EXPIRY}-3500-P", f"ETH_USDC-{WEEK_EXPIRY}-3250-P"],
    }


def demo_genesis(rate: int) -> dict[str, Any]:
    from deltasync.cli.demo_market import SOURCE_IDS, source_seed
    from deltasync.exchange.genesis import default_genesis_dict
    from deltasync.exchange.oracle import public_key_of

    genesis = default_genesis_dict()
    genesis["listings"].append({"underlying": "BTC", "expiry": SHORT_EXPIRY,
                                "strikes": [str(k) for k in range(90000, 110001, 5000)]})
    genesis["listings"].append({"underlying": "ETH", "expiry": SHORT_EXPIRY,
                                "strikes": [str(k) for k in range(3000, 4001, 250)]})
    genesis["oracle"] = {
        "sources": [{"id": source, "public_key": public_key_of(source_seed(source)).hex(),
                     "underlyings": ["BTC", "ETH"]} for source in SOURCE_IDS],
        "min_sources": 2,
        "staleness_ns": 5 * rate * NS,  # five wall seconds
        "clamp_band_ppm": 20_000,
        "max_report_skew_ns": 5 * rate * NS,
        "jump_bound_ppm": 150_000,
        "jump_confirm_sources": 2,
    }
    genesis["margin"] = {"mark_refresh_ns": rate * NS}  # marks age at most one wall second
    return genesis


def expiry_ns_of(expiry: str) -> int:
    from deltasync.exchange.genesis import parse_expiry
    from deltasync.exchange.instruments import expiry_ns_of as of_days

    return of_days(parse_expiry(expiry, "expiry"))


# --- watching the cluster ---------------------------------------------------------------


@dataclass
class Watch:
    """What the demo knows about the nodes (status files) and their state roots (API)."""

    data_dir: Path
    urls: dict[int, str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    leader: int | None = None
    root_checks: int = 0
    root_disagreements: list[dict[str, Any]] = field(default_factory=list)
    last_root_check: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> None:
        from deltasync.cli.cluster import collect_status

        self.rows = collect_status(self.data_dir)
        leaders = [row["id"] for row in self.rows if row["role"] == "leader"]
        self.leader = leaders[0] if leaders else None

    def heights(self) -> dict[int, int]:
        return {row["id"]: row["height"] for row in self.rows
                if row["alive"] and isinstance(row["height"], int)}

    async def compare_roots(self, height: int | None = None) -> dict[str, Any]:
        """Every reachable node's state root at one height (the lowest height they all have)."""
        from deltasync.client import ApiError, Client

        heights = self.heights()
        if height is None:
            if not heights:
                return {}
            # The lowest height of the nodes that are not far behind: a node replaying its
            # log after a restart has no root there yet and is left out of this check.
            top = max(heights.values())
            height = min(h for h in heights.values() if h >= top - CATCHING_UP_BLOCKS)
        roots: dict[int, str] = {}

        async def ask(node: int, url: str) -> None:
            try:
                async with Client(url, timeout_s=2.0) as client:
                    result = await client.call("public/deltasync_state_root", {"height": height})
                roots[node] = str(result["state_root"])
            except (ApiError, OSError, TimeoutError, ValueError, KeyError, Exception):
                return

        await asyncio.gather(*(ask(node, url) for node, url in sorted(self.urls.items())))
        check = {"height": height, "roots": {str(k): v for k, v in sorted(roots.items())},
                 "agree": len(set(roots.values())) <= 1, "nodes_compared": len(roots)}
        if roots:
            self.root_checks += 1
            self.last_root_check = check
            if not check["agree"]:
                self.root_disagreements.append(check)
        return check

    def halts(self) -> list[str]:
        """Halt reports a node wrote (its root differed from the leader's), and halted nodes."""
        found = sorted(str(p) for p in self.data_dir.glob("node*/reports/halt-*.json"))
        found += [f"node {row['id']} reports halted: {row['halted']}"[:300]
                  for row in self.rows if row.get("halted")]
        return found


# --- the run ----------------------------------------------------------------------------


class Demo:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        from deltasync.cli.demo_market import Metrics

        self.args = args
        self.data_dir = data_dir
        self.plan = Plan(float(args.duration))
        self.metrics = Metrics()
        self.stop = asyncio.Event()
        self.phase = "starting"
        self.started_at = time.monotonic()
        self.trading_started: float | None = None
        self.killed: int | None = None
        self.restarted = False
        self.caught_up = False
        self.restart_target_height = 0
        self.milestones: dict[str, float] = {}
        self.problems: list[str] = []
        self.observed: dict[str, Any] = {}

    # -- set-up --

    def write_cluster(self) -> dict[str, Any]:
        from deltasync.cli.cluster import write_configs
        from deltasync.exchange.genesis import GENESIS_TIME_NS_DEFAULT

        wall_anchor_ns = time.time_ns()
        self.expiry_ns = expiry_ns_of(SHORT_EXPIRY)
        reach_s = SETUP_ESTIMATE_S + self.plan.expiry_s
        # Block time starts after genesis: a long run gets a slower block clock.
        rate_max = int((self.expiry_ns - GENESIS_TIME_NS_DEFAULT) / (reach_s * NS))
        rate = max(1, min(int(self.args.rate), rate_max, 10_000))
        self.rate = rate
        block_anchor_ns = self.expiry_ns - int(reach_s * rate * NS)
        from deltasync.cli.demo_market import BlockClock

        self.clock = BlockClock(rate, block_anchor_ns, wall_anchor_ns)
        extra = {
            "genesis": demo_genesis(rate),
            "block_time_rate": rate,
            "block_anchor_ns": block_anchor_ns,
            "wall_anchor_ns": wall_anchor_ns,
            "snapshot_every_blocks": 1_000_000,  # keep the whole log for the offline audit
        }
        base = free_base_port(int(self.args.nodes))
        self.cluster = write_configs(self.data_dir, int(self.args.nodes), base, True, extra)
        self.urls = {int(k): v for k, v in self.cluster["api"].items()}
        self.watch = Watch(self.data_dir, self.urls)
        return self.cluster

    async def start_nodes(self) -> None:
        from deltasync.cli.cluster import start_node
        from deltasync.client import Client

        for node in self.cluster["nodes"]:
            start_node(self.data_dir, node)
        deadline = time.monotonic() + 40
        while True:
            self.watch.refresh()
            if self.watch.leader is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader within 40 s; see {self.data_dir}/node*/node.log")
            await asyncio.sleep(0.1)
        for url in self.urls.values():
            while True:
                try:
                    async with Client(url, timeout_s=2.0) as probe:
                        await probe.call("public/test")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the API at {url} never answered") from None
                    await asyncio.sleep(0.1)

    # -- the scenario --

    async def run(self, display: Any) -> dict[str, Any]:
        from deltasync.cli import demo_market as dm

        self.write_cluster()
        self.phase = "starting nodes"
        display.refresh(self)
        await self.start_nodes()
        urls = [self.urls[k] for k in sorted(self.urls)]
        names = instrument_names()
        seed = int(self.args.seed)
        crash = dm.Crash(self.plan.crash_s, self.plan.crash_len_s, {"BTC": 0.20, "ETH": 0.22})
        path = dm.PricePath({"BTC": 100_000.0, "ETH": 3_500.0}, seed, crash)
        self.path = path
        expiries = sorted({expiry_ns_of(e) for e in (SHORT_EXPIRY, WEEK_EXPIRY, "25DEC26",
                                                     "29JAN27")})
        tasks: list[asyncio.Task[Any]] = []
        relays: list[dm.Api] = []
        watcher_task: asyncio.Task[Any] | None = None
        watcher_stop = asyncio.Event()
        completed = False
        try:
            # Oracle first: trading opens with the first index.
            self.phase = "oracle warming up"
            for k, source_id in enumerate(dm.SOURCE_IDS):
                for j, underlying in enumerate(("BTC", "ETH")):
                    source = dm.OracleSource(
                        source_id, underlying, noise=0.0005 * (1 + k % 2),
                        latency_s=(0.02, 0.05 + 0.1 * k), interval_s=0.5,
                        outlier_probability=0.02 if source_id == "demo-d" else 0.0,
                        outage=self.plan.outage if source_id == "demo-c" else None)
                    relay = dm.Api(urls, k + j, self.metrics, timeout_s=3.0)
                    relays.append(relay)
                    tasks.append(asyncio.create_task(dm.run_source(
                        source, path, self.clock, expiries, relay, self.metrics,
                        seed * 1000 + 10 * k + j, self.stop)))
            board_api = dm.Api(urls, 0, self.metrics, timeout_s=3.0)
            relays.append(board_api)
            board = dm.MarkBoard(board_api)
            board.sample_name = f"BTC_USDC-{WEEK_EXPIRY}-100000-P"
            self.board = board
            await self._until_index(board)
            tasks.append(asyncio.create_task(board.run(self.stop)))

            self.phase = "opening accounts"
            display.refresh(self)
            accounts = await self._accounts(urls)
            quoted = names["quoted"]
            makers = [dm.MarketMaker(accounts[f"maker{i}"], quoted[i::3], board, seed + i,
                                     spread=0.03 + 0.01 * i, size_lots=20) for i in range(3)]
            takers = [dm.Taker(accounts[f"taker{i}"], quoted, board, seed + 10 + i,
                               pause_s=(0.05, 0.25)) for i in range(3)]
            combo = dm.ComboTrader(accounts["spreads"], [
                (f"BTC_USDC-{WEEK_EXPIRY}-100000-C", f"BTC_USDC-{WEEK_EXPIRY}-105000-C"),
                (f"ETH_USDC-{WEEK_EXPIRY}-3500-C", f"ETH_USDC-{WEEK_EXPIRY}-3750-C"),
                (f"BTC_USDC-{WEEK_EXPIRY}-100000-P", f"BTC_USDC-{WEEK_EXPIRY}-95000-P"),
            ], board, seed + 20)
            levered = [dm.LeveredShort(accounts[f"levered{i}"], names["levered_puts"], board,
                                       seed + 30 + i) for i in range(3)]
            self.accounts = accounts

            # Start trading so that block time reaches the short expiry at 75 % of the run
            # (when the set-up took less than its estimate; otherwise at once).
            self.phase = "oracle warming up"
            display.refresh(self)
            start_wall_s = self.clock.wall_of(self.expiry_ns) - self.plan.expiry_s
            while time.time() < start_wall_s:
                display.refresh(self)
                await asyncio.sleep(min(0.25, max(0.0, start_wall_s - time.time())))
            self.phase = "trading"
            self.trading_started = time.monotonic()
            path.start_trading()
            tasks += [asyncio.create_task(m.run(self.stop)) for m in makers]
            tasks += [asyncio.create_task(t.run(self.stop)) for t in takers]
            tasks.append(asyncio.create_task(combo.run(
                self.stop, [self.plan.at(0.15), self.plan.at(0.6)], path)))
            tasks += [asyncio.create_task(lev.run(self.stop, self.plan.at(0.05),
                                                  self.plan.at(0.28), path)) for lev in levered]
            self.watcher = dm.BookWatcher(urls, 1, f"BTC_USDC-{WEEK_EXPIRY}-100000-P")
            watcher_task = asyncio.create_task(self.watcher.run(watcher_stop))
            await self._timeline(display, accounts)
            completed = True
        finally:
            self.phase = "stopping"
            self.stop.set()
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=8)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        self.problems.append(f"agent crashed: {task.exception()!r}"[:300])
            if watcher_task is not None:
                if completed:  # the agents are done: the book must now be still
                    self.phase = "checking the subscribed book"
                    self.observed["book_matches_rest"] = await self.watcher.compare_with_rest()
                watcher_stop.set()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(watcher_task, 5)
            for relay in relays:
                await relay.close()
            for account in getattr(self, "accounts", {}).values():
                await account.api.close()
        return await self._finish(display)

    async def _until_index(self, board: Any) -> None:
        from deltasync.cli.demo_market import NodesDown
        from deltasync.client import ApiError

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(ApiError, NodesDown):
                await board.refresh()
                if all(board.index.get(c) for c in ("BTC", "ETH")) and board.quotes:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError("no index price within 30 s: the oracle reports were not accepted")

    async def _accounts(self, urls: list[str]) -> dict[str, Any]:
        from deltasync.cli.demo_market import create_account

        wanted = [(f"maker{i}", Decimal(5_000_000)) for i in range(3)]
        wanted += [(f"taker{i}", Decimal(500_000)) for i in range(3)]
        wanted += [("spreads", Decimal(500_000))]
        wanted += [(f"levered{i}", Decimal(8_000 + 2_000 * i)) for i in range(3)]
        made = await asyncio.gather(*(
            create_account(name, urls, k, deposit, self.metrics)
            for k, (name, deposit) in enumerate(wanted)))
        return {account.name: account for account in made}

    async def _timeline(self, display: Any, accounts: dict[str, Any]) -> None:
        from deltasync.cli.cluster import _signal, start_node
        from deltasync.node.status import pid_alive, read_pid

        plan = self.plan
        assert self.trading_started is not None
        last_roots = 0.0
        crash_noted = False
        while True:
            now = time.monotonic()
            t = now - self.trading_started
            if t >= plan.duration_s:
                break
            self.watch.refresh()
            self.path.step()
            if self.killed is None and t >= plan.kill_s:
                victim = self.watch.leader or 1
                _signal(self.data_dir, victim, signal.SIGKILL)
                self.killed = victim
                self.milestones["killed"] = t
                self.metrics.note(f"node {victim} (the leader) SIGKILLed")
            if self.killed is not None and not self.restarted and t >= plan.restart_s:
                directory = self.data_dir / f"node{self.killed}"
                pid = read_pid(directory)
                if pid is None or not pid_alive(pid):
                    start_node(self.data_dir, self.killed)
                    self.restarted = True
                    self.milestones["restarted"] = t
                    self.restart_target_height = max(self.watch.heights().values(), default=0)
                    self.metrics.note(f"node {self.killed} restarted")
            if self.restarted and not self.caught_up:
                height = self.watch.heights().get(self.killed or 0)
                if height is not None and height >= self.restart_target_height > 0:
                    self.caught_up = True
                    self.milestones["caught_up"] = t
                    self.metrics.note(f"node {self.killed} caught up (height {height})")
            if "outage" not in self.milestones and t >= plan.outage[0]:
                self.milestones["outage"] = t
                self.metrics.note("oracle source demo-c goes silent (outage)")
            if "outage_end" not in self.milestones and t >= plan.outage[1]:
                self.milestones["outage_end"] = t
                self.metrics.note("oracle source demo-c reports again")
            if not crash_noted and t >= plan.crash_s:
                crash_noted = True
                self.milestones["crash"] = t
                self.metrics.note("index crash: BTC -20 %, ETH -22 %")
                self.observed["levered_before_crash"] = await self._levered_sizes(accounts)
                self.observed["index_before_crash"] = {
                    k: str(v) for k, v in self.board.index.items()}
            if crash_noted and "index_after_crash" not in self.observed and (
                    t >= plan.crash_s + plan.crash_len_s + 2):
                self.observed["index_after_crash"] = {
                    k: str(v) for k, v in self.board.index.items()}
            if now - last_roots >= 2.0:
                last_roots = now
                await self.watch.compare_roots()
            self.phase = self._phase_name(t)
            display.refresh(self)
            await asyncio.sleep(0.25)

    def _phase_name(self, t: float) -> str:
        plan = self.plan
        if self.killed is not None and not self.restarted:
            return f"node {self.killed} down"
        if plan.crash_s <= t < plan.crash_s + plan.crash_len_s + 2:
            return "crash: liquidations"
        if self.clock.now_ns() >= self.expiry_ns and t < plan.expiry_s + 5:
            return f"{SHORT_EXPIRY} expired: settlement"
        return "trading"

    async def _levered_sizes(self, accounts: dict[str, Any]) -> dict[str, str]:
        from deltasync.cli.demo_market import NodesDown
        from deltasync.client import ApiError

        sizes: dict[str, str] = {}
        for name, account in accounts.items():
            if not name.startswith("levered"):
                continue
            try:
                positions = await account.api.run(lambda c: c.get_positions())
            except (ApiError, NodesDown):
                continue
            sizes[name] = str(sum((abs(p.size) for p in positions), Decimal(0)))
        return sizes

    # -- the end --

    async def _finish(self, display: Any) -> dict[str, Any]:
        self.phase = "waiting for the expiry"
        display.refresh(self)
        deadline = time.monotonic() + 10
        while self.clock.now_ns() < self.expiry_ns + 2 * self.rate * NS and time.monotonic() < deadline:
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
        while time.monotonic() < deadline:
            self.watch.refresh()
            heights = self.watch.heights()
            if self.restarted and not self.caught_up and self.killed in heights and (
                    heights[self.killed] >= self.restart_target_height > 0):
                self.caught_up = True
                self.milestones["caught_up"] = time.monotonic() - (self.trading_started or 0.0)
                self.metrics.note(f"node {self.killed} caught up (height {heights[self.killed]})")
            if len(heights) == len(self.urls) and max(heights.values()) - min(heights.values()) <= 8:
                check = await self.watch.compare_roots(min(heights.values()))
                if check.get("nodes_compared") == len(self.urls):
                    break
            await asyncio.sleep(0.3)
        return check


# --- display ----------------------------------------------------------------------------


class Quiet:
    def refresh(self, demo: Demo) -> None:
        pass


class LinePrinter:
    """Progress as plain lines every few seconds (output that is not a terminal: CI, pipes)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.last = 0.0
        self.phase = ""
        self.events = 0

    def refresh(self, demo: Demo) -> None:
        now = time.monotonic()
        events = demo.metrics.events
        for _, text in events[self.events:]:
            print(f"  * {text}", flush=True)
        self.events = len(events)
        if now - self.last < self.every_s and demo.phase == self.phase:
            return
        self.last, self.phase = now, demo.phase
        m = demo.metrics
        watch = getattr(demo, "watch", None)
        heights = " ".join(f"{k}:{v}" for k, v in sorted(watch.heights().items())) if watch else ""
        check = watch.last_root_check if watch else {}
        roots = "-" if not check else (
            f"agree@{check['height']}" if check["agree"] else f"DISAGREE@{check['height']}")
        p50, p99 = m.percentile_ms(0.5), m.percentile_ms(0.99)
        elapsed = 0.0 if demo.trading_started is None else now - demo.trading_started
        latency = "-" if p50 is None else f"{p50:.0f}/{p99:.0f}ms"
        print(f"t={elapsed:5.1f}s [{demo.phase}] heights {heights or '-'} leader "
              f"{watch.leader if watch else '-'} orders/s {m.orders_per_s():.0f} "
              f"p50/p99 {latency} trades {m.trades} roots {roots}", flush=True)


class LiveView:
    """The rich live panel: nodes, load, latency, leader and root agreement."""

    def __init__(self, live: Any) -> None:
        self.live = live
        self.last = 0.0

    def refresh(self, demo: Demo) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        self.live.update(render(demo))


def render(demo: Demo) -> Any:
    from rich.console import Group
    from rich.table import Table

    m = demo.metrics
    elapsed = 0.0 if demo.trading_started is None else time.monotonic() - demo.trading_started
    nodes = Table(title=f"deltasync demo  [{demo.phase}]  t={elapsed:5.1f}s / {demo.plan.duration_s:.0f}s")
    for column in ("node", "role", "term", "height", "lag", "state root"):
        nodes.add_column(column)
    watch = getattr(demo, "watch", None)
    for row in (watch.rows if watch else []):
        role = row["role"]
        style = {"leader": "bold green", "down": "red", "stale": "yellow"}.get(role, "")
        nodes.add_row(str(row["id"]), f"[{style}]{role}[/]" if style else role,
                      str(row["term"] or ""), str(row["height"] or ""), str(row["lag"] or 0),
                      (row["state_root"] or "")[:16])
    p50, p99 = m.percentile_ms(0.5), m.percentile_ms(0.99)
    agree = "-"
    if watch and watch.last_root_check:
        check = watch.last_root_check
        agree = (f"[green]agree[/] at {check['height']} ({check['nodes_compared']} nodes)"
                 if check["agree"] else f"[red]DISAGREE at {check['height']}[/]")
    index = "-"
    board = getattr(demo, "board", None)
    if board is not None and board.index:
        index = "  ".join(f"{k} {v:,.2f}" for k, v in sorted(board.index.items()) if v)
    block_clock = "-"
    clock = getattr(demo, "clock", None)
    if clock is not None:
        now_ns = clock.now_ns()
        left_s = (demo.expiry_ns - now_ns) / NS
        block_clock = time.strftime("%d%b%y %H:%M:%S", time.gmtime(now_ns // NS)).upper() + (
            f"   ({SHORT_EXPIRY} expiry in {left_s / 60:.1f} min of block time)" if left_s > 0
            else f"   ({SHORT_EXPIRY} expired)")
    sample = "-"
    if board is not None and board.sample:
        t = board.sample
        greeks = t.get("greeks") or {}
        sample = (f"{board.sample_name}: mark {t.get('mark_price')}  iv {t.get('mark_iv')}  "
                  f"delta {greeks.get('delta')}  bid {t.get('best_bid_price')}  "
                  f"ask {t.get('best_ask_price')}")
    stats = Table(show_header=False, box=None)
    stats.add_column()
    stats.add_column()
    stats.add_row("orders / s", f"{m.orders_per_s():.0f}   (total {m.orders()})")
    stats.add_row("latency p50 / p99", "-" if p50 is None else f"{p50:.1f} / {p99:.1f} ms")
    stats.add_row("trades (client view)", f"{m.trades}   combos {m.combo_fills}")
    stats.add_row("index (cluster)", index)
    stats.add_row("block time", block_clock)
    stats.add_row("option", sample)
    stats.add_row("oracle reports", f"{m.oracle_reports} relayed, {m.oracle_outliers} outliers")
    watcher = getattr(demo, "watcher", None)
    if watcher is not None:
        stats.add_row("ws subscription", f"{watcher.notifications} notifications, "
                      f"{watcher.trades_seen} trades, {watcher.gaps} gaps, "
                      f"{watcher.reconnects} reconnects  ({watcher.instrument})")
    stats.add_row("leader", str(watch.leader if watch else "-"))
    stats.add_row("state roots", agree)
    events = [text for _, text in m.events[-4:]]
    return Group(nodes, stats, *events)


# --- entry point ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from deltasync.cli.cluster import down

    if getattr(args, "duration", None) is None:
        args.duration = DURATION_DEFAULT_S
    if args.nodes < 3:
        print("the demo needs at least 3 nodes (one is killed mid-run)", file=sys.stderr)
        return 2
    if args.duration < 10:
        print("--duration must be at least 10 seconds", file=sys.stderr)
        return 2
    if args.data_dir is not None and (args.data_dir / "cluster.json").exists():
        print(f"{args.data_dir} already holds a cluster: give the demo a new or empty directory",
              file=sys.stderr)
        return 2
    # SIGTERM stops the demo like Ctrl-C does: agents stop, nodes are torn down.
    previous_term = signal.signal(signal.SIGTERM,
                                  lambda *_: os.kill(os.getpid(), signal.SIGINT))
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="deltasync-demo-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    demo: Demo | None = None
    summary: dict[str, Any] = {}
    interrupted = False
    try:
        demo = Demo(args, data_dir)
        if args.json:
            summary = asyncio.run(_run(demo, Quiet()))
        elif not sys.stdout.isatty():
            summary = asyncio.run(_run(demo, LinePrinter()))
        else:
            from rich.live import Live

            with Live(render(demo), refresh_per_second=4, transient=False) as live:
                summary = asyncio.run(_run(demo, LiveView(live)))
    except KeyboardInterrupt:
        interrupted = True
    except RuntimeError as exc:
        summary = {"ok": False, "problems": [str(exc)]}
    except Exception as exc:  # a bug of the demo itself: still tear the cluster down
        import traceback

        traceback.print_exc()
        summary = {"ok": False, "problems": [f"the demo failed: {exc!r}"]}
    finally:
        if (data_dir / "cluster.json").exists():
            down(data_dir)
        signal.signal(signal.SIGTERM, previous_term)
    if demo is not None and summary.get("audit_pending"):
        summary = finish_summary(demo, summary)
    if temporary and (interrupted or summary.get("ok")):
        shutil.rmtree(data_dir, ignore_errors=True)
    elif temporary:  # a failed run: keep the nodes' logs and data for a post-mortem
        summary["data_dir"] = str(data_dir)
        print(f"the cluster's files are kept in {data_dir} (node logs: node*/node.log)",
              file=sys.stderr)
    if interrupted:
        print("interrupted: cluster stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    else:
        print_summary(summary)
    return 0 if summary.get("ok") else 1


async def _run(demo: Demo, display: Any) -> dict[str, Any]:
    final = await demo.run(display)
    return build_summary(demo, final)


def build_summary(demo: Demo, final: dict[str, Any]) -> dict[str, Any]:
    m = demo.metrics
    halts = demo.watch.halts()
    heights = demo.watch.heights()
    summary: dict[str, Any] = {
        "duration_s": demo.plan.duration_s,
        "nodes": len(demo.urls),
        "seed": demo.args.seed,
        "block_time_rate": demo.rate,
        "orders": m.orders(),
        "orders_accepted": sum(m.accepted[k] for k in m.accepted),
        "orders_rejected": sum(m.rejected.values()),
        "rejections": dict(m.rejected.most_common(10)),
        "orders_per_s": round(m.orders() / demo.plan.duration_s, 1),
        "latency_ms": {"p50": _round(m.percentile_ms(0.5)), "p99": _round(m.percentile_ms(0.99))},
        "trades_client_view": m.trades,
        "combo_fills": m.combo_fills,
        "oracle_reports": m.oracle_reports,
        "oracle_rejected": m.oracle_rejected,
        "failovers": m.failovers,
        "node_killed": demo.killed,
        "node_restarted": demo.restarted,
        "restarted_node_caught_up": demo.caught_up,
        "milestones_s": {k: round(v, 1) for k, v in demo.milestones.items()},
        "heights": {str(k): v for k, v in sorted(heights.items())},
        "final_roots": final,
        "roots_agree": bool(final.get("agree")) and final.get("nodes_compared") == len(demo.urls),
        "root_checks": demo.watch.root_checks,
        "root_disagreements": demo.watch.root_disagreements[:5],
        "halts": halts,
        "levered_before_crash": demo.observed.get("levered_before_crash"),
        "index_before_crash": demo.observed.get("index_before_crash"),
        "subscription": _subscription(demo),
        "index_after_crash": demo.observed.get("index_after_crash"),
        "problems": list(demo.problems),
        "audit_pending": True,
    }
    return summary


def finish_summary(demo: Demo, summary: dict[str, Any]) -> dict[str, Any]:
    """After the nodes stopped: replay a never-killed node's log offline, then decide."""
    from deltasync.cli.demo_audit import audit_node

    summary.pop("audit_pending", None)
    survivor = next((n for n in sorted(demo.urls) if n != demo.killed), 1)
    try:
        audit = audit_node(demo.data_dir / f"node{survivor}",
                           expected_roots=summary.get("final_roots") or {},
                           deadline_s=max(15.0, demo.plan.duration_s / 4))
    except Exception as exc:  # a damaged log is a finding, not a crash of the demo
        audit = {"problems": [f"the replay failed: {exc!r}"[:300]], "complete": False}
    audit["node"] = survivor
    summary["audit"] = audit
    return verdict(summary)


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """Fill in the counts from the audit, ``problems`` (fail the run), ``warnings`` and ``ok``."""
    audit = summary.get("audit") or {}
    summary["trades"] = audit.get("trades", summary.get("trades_client_view", 0))
    summary["liquidations"] = audit.get("liquidations", 0)
    summary["settlements"] = audit.get("settlements", 0)
    problems = summary.setdefault("problems", [])
    if not summary.get("roots_agree"):
        problems.append("the nodes' state roots were not all compared equal at a common height")
    if summary.get("root_disagreements"):
        problems.append("state roots disagreed during the run")
    if summary.get("halts"):
        problems.append(f"{len(summary['halts'])} node(s) halted: {summary['halts'][:3]}")
    problems += [f"audit: {p}" for p in audit.get("problems", [])]
    warnings = []
    if not audit.get("complete"):
        warnings.append("the audit did not replay the whole log in time")
    if not summary.get("node_restarted"):
        warnings.append("no node was restarted")
    elif not summary.get("restarted_node_caught_up"):
        warnings.append("the restarted node did not catch up during the run")
    if summary["liquidations"] == 0:
        warnings.append("no liquidation happened")
    if summary["settlements"] == 0:
        warnings.append("the short expiry did not settle")
    if summary["trades"] == 0:
        warnings.append("no trade happened")
    if not summary.get("combo_fills"):
        warnings.append("no combo filled")
    subscription = summary.get("subscription") or {}
    if subscription.get("book_matches_rest") is False:
        warnings.append("the book kept from the WebSocket subscription differs from "
                        "public/get_order_book")
    summary["warnings"] = warnings
    summary["ok"] = not problems
    return summary


def _subscription(demo: Demo) -> dict[str, Any] | None:
    watcher = getattr(demo, "watcher", None)
    if watcher is None:
        return None
    return {"instrument": watcher.instrument, "notifications": watcher.notifications,
            "trades_seen": watcher.trades_seen, "book_gaps": watcher.gaps,
            "reconnects": watcher.reconnects,
            "book_matches_rest": demo.observed.get("book_matches_rest")}


def _fmt_index(index: dict[str, str] | None) -> str:
    if not index:
        return "-"
    return " ".join(f"{k} {Decimal(v):,.0f}" for k, v in sorted(index.items()) if v != "None")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="deltasync demo: summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    latency = summary.get("latency_ms") or {}
    audit = summary.get("audit") or {}
    final = summary.get("final_roots") or {}
    sub = summary.get("subscription") or {}
    rows = [
        ("orders (accepted / rejected)",
         f"{summary.get('orders', 0)} ({summary.get('orders_accepted', 0)} / "
         f"{summary.get('orders_rejected', 0)})"),
        ("orders / s", f"{summary.get('orders_per_s', 0)}"),
        ("latency p50 / p99 (ms)", f"{latency.get('p50')} / {latency.get('p99')}"),
        ("trades", f"{summary.get('trades', 0)}"),
        ("combo fills", f"{summary.get('combo_fills', 0)}"),
        ("liquidations (accounts / steps)",
         f"{audit.get('liquidated_accounts', 0)} / {summary.get('liquidations', 0)}"),
        ("settlements (positions / instruments)",
         f"{summary.get('settlements', 0)} / {audit.get('instruments_settled', 0)}"),
        (f"{SHORT_EXPIRY} settlement prices (TWAP)", _fmt_index(audit.get("settlement_prices"))),
        ("oracle reports relayed", f"{summary.get('oracle_reports', 0)}"),
        ("node killed / restarted / caught up",
         f"{summary.get('node_killed')} / {summary.get('node_restarted')} / "
         f"{summary.get('restarted_node_caught_up')}"),
        ("index before / after the crash",
         f"{_fmt_index(summary.get('index_before_crash'))} -> "
         f"{_fmt_index(summary.get('index_after_crash'))}"),
        ("oracle breaker trips", f"{audit.get('breaker_trips', 0)}"),
        ("ws book (notifications / gaps / = REST)",
         f"{sub.get('notifications', '-')} / {sub.get('book_gaps', '-')} / "
         f"{sub.get('book_matches_rest', '-')}"),
        ("client fail-overs", f"{summary.get('failovers', 0)}"),
        ("blocks replayed by the auditor",
         f"{audit.get('blocks', '-')} in {audit.get('elapsed_s', '-')} s"),
        ("state roots", ("agree" if summary.get("roots_agree") else "DO NOT AGREE")
         + f" at height {final.get('height')} on {final.get('nodes_compared')} nodes"),
        ("invariants", "OK" if not audit.get("problems") else "BROKEN"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}")
    for problem in summary.get("problems", []):
        console.print(f"[red]problem[/]: {problem}")
    console.print("[bold green]OK[/]" if summary.get("ok") else "[bold red]FAILED[/]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="deltasync demo")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
