"""A single-process venue: a one-node ``NodeCore`` on in-memory storage.

Used by the API tests and by a one-node development mode. It is the
replicated venue without the transport: the same ``NodeCore`` (block
headers, session table, sequencer) under the same ``NodeShell``, with one
voter and a ``MemoryFileSystem`` for its log and snapshots, as the simulator
builds its nodes. Commands submitted together wait ``block_interval_s`` and
share a block (at most ``block_commands_max``); block time comes from
``clock_ns`` and never goes backwards. Retried commands with the same
``(account, request_id)`` get the original answer and are applied once.

The machine is ``exchange.assembly.new_exchange`` (oracle, margin, settlement,
liquidation). With ``demo_oracle`` the venue relays signed reports of the
public demo price sources through the log every ``oracle_interval_s``
(prices from ``set_demo_price``), so trading is open when ``start()``
returns; without it, prices come from ``public/deltasync_oracle_report`` like
on a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from deltasync.consensus import Role
from deltasync.core import limits
from deltasync.exchange.assembly import new_exchange
from deltasync.exchange.genesis import GenesisConfig, default_genesis, live_genesis_dict
from deltasync.exchange.state import ExchangeState
from deltasync.node import machine
from deltasync.node.block import Noop
from deltasync.node.demo_oracle import DemoOracle
from deltasync.node.driver import NodeCore, NodeSettings
from deltasync.node.server import NodeShell, RequestTimeout
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.raft_log import RaftStorage
from deltasync.storage.snapshot import SnapshotStore
from deltasync.venue.port import Venue
from deltasync.venue.shell import ShellVenue

log = logging.getLogger(__name__)

NODE_ID = 1
ELECTION_TICKS_MAX = 100  # a lone voter wins its first election within a few ticks


def _one_node_core(state: ExchangeState, block_commands_max: int) -> NodeCore:
    fs = MemoryFileSystem()
    fs.makedirs("/local")
    storage, recovered = RaftStorage.open("/local/raft", fs)
    settings = NodeSettings(
        election_ticks=2, heartbeat_ticks=1, block_commands_max=block_commands_max,
        # No idle blocks: block time moves with commands and the demo oracle's reports.
        idle_block_ns=2**63 - 1,
    )
    return NodeCore(
        NODE_ID, (NODE_ID,), storage, recovered, SnapshotStore("/local/snapshots", fs),
        machine_factory=lambda: state, machine_restore=machine.restore_machine,
        command_codec=machine.command_codec(), rng=random.Random(NODE_ID), settings=settings,
    )


def live_genesis(now_ns: int) -> GenesisConfig:
    """The default venue with Friday expiries after ``now_ns`` (``live_genesis_dict``),
    for a wall-clock venue that must have live options on any date."""
    return GenesisConfig.from_dict(live_genesis_dict(now_ns))


class LocalVenue(ShellVenue):
    """``Venue`` over a one-node ``NodeCore`` in this process."""

    def __init__(
        self,
        genesis: GenesisConfig | None = None,
        *,
        state: ExchangeState | None = None,
        demo_mode: bool = True,
        block_interval_s: float = 0.002,
        first_account_id: int = 1_000,
        clock_ns: Callable[[], int] = time.time_ns,
        vol_ppm_default: int | None = None,
        demo_oracle: bool = True,
        oracle_interval_s: float = 2.0,
    ) -> None:
        state = state if state is not None else new_exchange(genesis or default_genesis())
        core = _one_node_core(state, limits.block_commands_max)
        shell = NodeShell(core, clock_ns=clock_ns, batch_window_s=block_interval_s)
        super().__init__(shell, demo_mode=demo_mode, vol_ppm_default=vol_ppm_default)
        self.block_interval_s = block_interval_s
        self._next_account = max(max(state.accounts, default=0) + 1, first_account_id)
        self._started = False
        # The one demo oracle (``node.demo_oracle``): the public demo sources report its
        # prices (initially the genesis reference prices, no walk) every interval.
        self.demo_oracle = demo_oracle and any(
            extension.name == "oracle" for extension in state.extensions)
        self.oracle_interval_s = oracle_interval_s
        self._oracle = DemoOracle(random.Random(0), dict(state.reference_prices))
        self._oracle_fed_ns = 0
        self._oracle_wake = asyncio.Event()
        self._oracle_task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        assert not self._started, "already started"
        self._started = True
        for _ in range(ELECTION_TICKS_MAX):
            if self.shell.core.raft.role is Role.LEADER:
                break
            self.shell.tick()
        assert self.shell.core.raft.role is Role.LEADER, "a lone voter must lead"
        self.shell.start_ticker()
        if self.demo_oracle:
            # Reports in one block, the index they form at the start of the next:
            # the venue opens for trading before start() returns.
            await self._report_prices()
            await self.shell.submit(Noop(b""))
            self._oracle_wake = asyncio.Event()
            self._oracle_task = self.shell.supervise(self._oracle_loop(), "demo-oracle")

    async def stop(self) -> None:
        if self._oracle_task is not None:
            self._oracle_task.cancel()
            await asyncio.gather(self._oracle_task, return_exceptions=True)
            self._oracle_task = None
        await self.shell.stop()
        self.end_subscribers()

    def _accepting(self) -> bool:
        return self._started and not self.shell.stopped

    def _allocate_account(self) -> int:
        account_id = self._next_account
        self._next_account += 1
        return account_id

    # --- the demo oracle ---------------------------------------------------------------

    def set_demo_price(self, underlying: str, price_raw: int) -> None:
        """Move the demo oracle's price; reported at once, through the log."""
        assert price_raw > 0 and underlying in self._oracle.underlyings
        self._oracle.set_price(underlying, price_raw)
        self._oracle_fed_ns = 0
        self._oracle_wake.set()

    def _oracle_due(self) -> bool:
        return self.shell.clock_ns() - self._oracle_fed_ns >= int(self.oracle_interval_s * 1e9)

    async def _oracle_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._oracle_wake.wait(), self.oracle_interval_s)
            except TimeoutError:
                pass  # time to report prices again, orders or not
            self._oracle_wake.clear()
            if self._oracle_due():
                try:
                    await self._report_prices()
                except RequestTimeout as exc:
                    log.warning("demo oracle reports not committed: %s", exc)

    async def _report_prices(self) -> None:
        core = self.shell.core
        time_ns = max(core.tip.time_ns, core.settings.block_time(self.shell.clock_ns()))
        self._oracle_fed_ns = time_ns
        await asyncio.gather(*(self.shell.submit(report)
                               for report in self._oracle.reports(time_ns)))

    # --- deltasync's own reads (all local: one process is always linearizable) -----------

    async def node_status(self) -> dict[str, Any]:
        tip = self.shell.core.tip
        return {"id": "local", "role": "leader", "leader": "local", "height": tip.height,
                "commit_index": tip.height, "state_root": tip.state_root.hex(),
                "block_time_ns": tip.time_ns, "healthy": self._accepting()}

    async def cluster_status(self) -> dict[str, Any]:
        node = await self.node_status()
        return {"mode": "local", "leader": "local", "height": node["height"], "nodes": [node],
                "state_roots_agree": True}


def _is_a_venue(venue: LocalVenue) -> Venue:
    return venue  # mypy checks that LocalVenue implements the Venue protocol
