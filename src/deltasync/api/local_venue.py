"""A single-process venue: the full exchange behind a sequencer loop, no replication.

Used by the API tests and by a one-node development mode. Submitted commands
wait in a bounded queue; the sequencer collects them for up to
``block_interval_s`` (at most ``block_commands_max`` per block), stamps the
block with a time that never goes backwards (the wall clock: this is an I/O
layer), applies the block and wakes each submitter with its command's result
(``StateReads.fold_block`` turns the block into views and subscription
updates). Retried commands with the same ``(account, request_id)`` get the
original answer and are applied once.

The machine is ``exchange.assembly.new_exchange`` (oracle, margin, settlement,
liquidation). With ``demo_oracle`` the venue itself relays signed reports of
the public demo price sources every ``oracle_interval_s`` (prices from
``set_demo_price``), so trading is open when ``start()`` returns; without it,
prices come from ``public/deltasync_oracle_report`` like on a cluster.

The replicated node's venue is ``node_venue.NodeVenue``: the same reads, with
consensus between the queue and ``apply_block``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from deltasync.api import errors
from deltasync.api import venue as v
from deltasync.api.errors import ApiError
from deltasync.api.readmodel import ReadModel
from deltasync.api.state_reads import StateReads
from deltasync.core import limits
from deltasync.core.errors import DeltasyncError
from deltasync.core.fixed import Price
from deltasync.exchange import commands as xc
from deltasync.exchange.assembly import demo_reports, new_exchange
from deltasync.exchange.genesis import GenesisConfig, default_genesis
from deltasync.exchange.state import BlockResult, ExchangeState

log = logging.getLogger(__name__)

QUEUE_COMMANDS_MAX = 16 * limits.block_commands_max
ROOTS_KEPT_MAX = 10_000
REQUEST_IDS_KEPT_MAX = 100_000


class _Pending:
    __slots__ = ("account", "api_command", "command", "future", "key")

    def __init__(self, account: int, api_command: v.VenueCommand | None, command: xc.Command,
                 future: asyncio.Future[v.CommandResult], key: tuple[int, str] | None) -> None:
        self.account = account
        self.api_command = api_command
        self.command = command
        self.future = future
        self.key = key


class LocalVenue(StateReads):
    """``Venue`` over an in-process ``ExchangeState``."""

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
        super().__init__(vol_ppm_default)
        self._state = state if state is not None else new_exchange(genesis or default_genesis())
        self.demo_mode = demo_mode
        # The demo oracle: the public demo sources of ``exchange.assembly`` report
        # ``demo_prices`` (initially the genesis reference prices) every interval.
        self.demo_oracle = demo_oracle and any(
            extension.name == "oracle" for extension in self._state.extensions)
        self.oracle_interval_s = oracle_interval_s
        self.demo_prices: dict[str, int] = dict(self._state.reference_prices)
        self._oracle_fed_ns = 0
        self.block_interval_s = block_interval_s
        self._clock_ns = clock_ns
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._roots: OrderedDict[int, v.StateRootView] = OrderedDict()
        self._answers: OrderedDict[tuple[int, str], asyncio.Future[v.CommandResult]] = OrderedDict()
        self._next_account = max(max(self.state.accounts, default=0) + 1, first_account_id)
        self.blocks_applied = 0
        root = self.state.state_root()
        self._remember_root(self.state.height, root, self.state.time_ns)

    @property
    def state(self) -> ExchangeState:
        return self._state

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        assert self._task is None, "already started"
        if self.demo_oracle and self._oracle_due():
            # Reports in one block, the index they form at the start of the next:
            # the venue opens for trading before start() returns.
            self._apply([])
            self._apply([])
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._sequencer(), name="local-venue-sequencer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(ApiError(errors.TEMPORARILY_UNAVAILABLE,
                                                      {"reason": "venue stopped"}))
        self.end_subscribers()

    # --- the sequencer ---------------------------------------------------------------

    def set_demo_price(self, underlying: str, price_raw: int) -> None:
        """Move the demo oracle's price; reported at the next block."""
        assert price_raw > 0 and underlying in self.demo_prices
        self.demo_prices[underlying] = price_raw
        self._oracle_fed_ns = 0
        self._wake.set()

    async def _sequencer(self) -> None:
        while True:
            if self.demo_oracle:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.oracle_interval_s)
                except TimeoutError:
                    pass  # time to report prices again, orders or not
            else:
                await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.block_interval_s)  # the batching window
            first = True
            while self._queue or first:
                first = False
                batch = [self._queue.popleft()
                         for _ in range(min(len(self._queue), limits.block_commands_max))]
                if not batch and not self._oracle_due():
                    break
                try:
                    self._apply(batch)
                except Exception as exc:  # a bug in the state machine: fail loudly, keep serving reads
                    log.exception("block application failed; the venue stops sequencing")
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(
                                ApiError(errors.INTERNAL_ERROR, {"reason": "block failed"}))
                    raise exc

    def _oracle_due(self) -> bool:
        if not self.demo_oracle:
            return False
        return self._clock_ns() - self._oracle_fed_ns >= int(self.oracle_interval_s * 1e9)

    def _apply(self, batch: list[_Pending]) -> None:
        height = self.state.height + 1
        time_ns = max(self.state.time_ns, self._clock_ns())
        reports: list[Any] = []
        if self._oracle_due():
            self._oracle_fed_ns = time_ns
            prices = {name: Price(raw) for name, raw in self.demo_prices.items()}
            reports = list(demo_reports(prices, time_ns))
        commands = reports + [pending.command for pending in batch]
        result: BlockResult = self.state.apply_block(height, time_ns, commands)
        self.blocks_applied += 1
        self._remember_root(height, result.state_root, time_ns)
        results = self.fold_block(
            height, time_ns,
            [(None, report) for report in reports]
            + [(pending.api_command, pending.command) for pending in batch],
            result.events,
            list(result.start_events) + list(result.end_events),
        )
        for pending, command_result in zip(batch, results[len(reports):], strict=True):
            if not pending.future.done():
                pending.future.set_result(command_result)

    def _remember_root(self, height: int, root: bytes, time_ns: int) -> None:
        self._roots[height] = v.StateRootView(height, root.hex(), time_ns)
        while len(self._roots) > ROOTS_KEPT_MAX:
            self._roots.popitem(last=False)

    # --- commands -------------------------------------------------------------------

    async def _enqueue(self, account_id: int, api_command: v.VenueCommand | None,
                       command: xc.Command, request_id: str | None,
                       on_queued: Callable[[], None] | None = None) -> v.CommandResult:
        if self._task is None or self._task.done():
            raise ApiError(errors.TEMPORARILY_UNAVAILABLE, {"reason": "venue not running"})
        key = (account_id, request_id) if request_id else None
        if key is not None:
            earlier = self._answers.get(key)
            if earlier is not None:
                if on_queued is not None:
                    on_queued()
                return await asyncio.shield(earlier)
        if len(self._queue) >= QUEUE_COMMANDS_MAX:
            raise ApiError(errors.MATCHING_ENGINE_QUEUE_FULL)
        future: asyncio.Future[v.CommandResult] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._answers[key] = future
            while len(self._answers) > REQUEST_IDS_KEPT_MAX:
                self._answers.popitem(last=False)
        self._queue.append(_Pending(account_id, api_command, command, future, key))
        self._wake.set()
        if on_queued is not None:
            on_queued()
        return await asyncio.shield(future)

    async def submit(self, account_id: int, command: v.VenueCommand,
                     request_id: str | None = None,
                     on_queued: Callable[[], None] | None = None) -> v.CommandResult:
        try:
            exchange_command = ReadModel.to_exchange(account_id, command, self.state.time_ns)
        except DeltasyncError as exc:
            raise ApiError(errors.INVALID_PARAMS, {key: str(value) for key, value
                                                   in exc.fields.items()}) from None
        return await self._enqueue(account_id, command, exchange_command, request_id, on_queued)

    async def create_account(self, deposit_raw: int) -> int:
        account_id = self._next_account
        self._next_account += 1
        return await self._fund(account_id, deposit_raw)

    async def deposit(self, account_id: int, amount_raw: int) -> v.CommandResult:
        command = self.deposit_command(account_id, amount_raw)
        return await self._enqueue(account_id, None, command, None)

    # --- reads (all local: one process is always linearizable) --------------------------
    # --- deltasync's own reads ------------------------------------------------------------

    async def node_status(self) -> dict[str, Any]:
        root = self._roots[next(reversed(self._roots))]
        return {"id": "local", "role": "leader", "leader": "local", "height": root.height,
                "commit_index": root.height, "state_root": root.state_root,
                "block_time_ns": root.time_ns,
                "healthy": self._task is not None and not self._task.done()}

    async def cluster_status(self) -> dict[str, Any]:
        node = await self.node_status()
        return {"mode": "local", "leader": "local", "height": node["height"], "nodes": [node],
                "state_roots_agree": True}

    async def state_root(self, height: int | None = None) -> v.StateRootView | None:
        if height is None:
            return self._roots[next(reversed(self._roots))]
        return self._roots.get(height)


def _is_a_venue(venue: LocalVenue) -> v.Venue:
    return venue  # mypy checks that LocalVenue implements the Venue protocol
