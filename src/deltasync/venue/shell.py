"""A venue over a node's shell: everything the two venues share but the transport.

``ShellVenue`` adapts a ``deltasync.node.server.NodeShell`` (a replicated
node's, or the single-process venue's one-node shell):

- a write becomes its exchange command once (``venue.commands``), is encoded
  once (its wire form checked against the canonical codec, so the proposer never
  meets a value it cannot encode), takes its sequencing class from the exchange
  (``ExchangeState.priority_of``, which knows the extensions' commands) and
  goes through the log under a per-account client session, so the node's
  replicated session table applies it at most once; an API ``request_id``
  maps to the same (session, request) on retries sent to this node;
- one result channel: every block the node applies (whoever proposed it) is
  folded into the read model, and the fold resolves the waiting client's
  result by (session, request), for fresh commands from their events and for
  retried ones from the original events the session table returned. The
  node's answer is used only for failures that have no block (timeout,
  expired, malformed, stale block, a stopped node).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from deltasync.core import limits
from deltasync.core.codec import encode
from deltasync.core.errors import CodecError
from deltasync.venue import commands
from deltasync.venue import views as v
from deltasync.venue.errors import (
    InvalidRequest,
    NotSupported,
    QueueFull,
    Refused,
    Unavailable,
    VenueError,
)
from deltasync.venue.port import Pipeline
from deltasync.venue.reads import StateReads

if TYPE_CHECKING:
    from deltasync.exchange.state import ExchangeState
    from deltasync.node.driver import Answer, AppliedBlock
    from deltasync.node.server import NodeShell

_ANSWER_ERRORS = {
    "timeout": "not committed in time; retry with the same request_id",
    "stopped": "venue stopped",
}


class ShellVenue(StateReads):
    """Writes through a ``NodeShell``, results from the block fold (see the module docstring)."""

    def __init__(self, shell: NodeShell, *, demo_mode: bool,
                 vol_ppm_default: int | None = None) -> None:
        super().__init__(vol_ppm_default)
        self.shell = shell
        self.demo_mode = demo_mode
        self.blocks_applied = 0  # blocks folded since this venue started serving
        self._waiting: dict[tuple[int, int], asyncio.Future[v.CommandResult]] = {}
        self._sessions: dict[int, list[int]] = {}  # account -> [session, last request]
        self._request_ids: OrderedDict[tuple[int, str], tuple[int, int]] = OrderedDict()
        shell.add_block_listener(self._on_block)

    @property
    def state(self) -> ExchangeState:
        machine: ExchangeState = self.shell.core.machine  # replaced when a snapshot is installed
        return machine

    def _accepting(self) -> bool:
        """Whether commands may be submitted now."""
        return not self.shell.stopped

    # --- the one result channel ------------------------------------------------------

    def _on_block(self, block: AppliedBlock) -> None:
        waiting = self._waiting
        wanted = {index: (session, request)
                  for index, (session, request, _origin) in enumerate(block.sessions)
                  if (session, request) in waiting} if waiting else {}
        result = block.result
        results = self.fold_block(block.height, block.time_ns, block.commands, result.events,
                                  list(result.start_events) + list(result.end_events), wanted)
        self.blocks_applied += 1
        for index, key in wanted.items():
            self._resolve(key, results[index])
        for answer in block.retried:
            key = (answer.session, answer.request)
            if key in self._waiting:
                self._resolve(key, self.read.result_of(answer.height, answer.events))

    def _on_answer(self, answer: Answer) -> None:
        if answer.error is None:
            return  # applied: the block fold resolves it
        reason = _ANSWER_ERRORS.get(answer.error, answer.error)
        self._resolve((answer.session, answer.request), Unavailable(reason=reason))

    def _resolve(self, key: tuple[int, int], outcome: v.CommandResult | VenueError) -> None:
        future = self._waiting.pop(key, None)
        if future is None or future.done():
            return
        if isinstance(outcome, VenueError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    # --- commands ----------------------------------------------------------------------

    def _session_request(self, account_id: int, request_id: str | None) -> tuple[int, int]:
        if request_id:
            known = self._request_ids.get((account_id, request_id))
            if known is not None:
                return known
        session = self._sessions.get(account_id)
        if session is None:
            # Random per process: a restarted node must not reuse (session, request)
            # pairs whose results the replicated session table already holds.
            session = self._sessions[account_id] = [secrets.randbits(62) + 1, 0]
        session[1] += 1
        pair = (session[0], session[1])
        if request_id:
            self._request_ids[(account_id, request_id)] = pair
            while len(self._request_ids) > limits.venue_request_ids_kept_max:
                self._request_ids.popitem(last=False)
        return pair

    async def _submit(self, account_id: int, command: Any, request_id: str | None = None,
                      pipeline: Pipeline | None = None) -> v.CommandResult:
        if not self._accepting():
            raise Unavailable(reason="venue not running")
        try:
            wire = self.shell.core.codec.encode(command)
        except CodecError:  # e.g. an oracle report on a node whose machine has no oracle
            raise NotSupported(
                reason=f"this cluster does not take {type(command).__name__} commands") from None
        try:
            encode(wire)  # the proposer must never meet a value the canonical codec refuses
        except CodecError as exc:
            raise InvalidRequest(**{key: str(value)[:200] for key, value in exc.fields.items()}
                                 ) from None
        if pipeline is not None:
            await pipeline.admit(self.state.priority_of(command))
        key = self._session_request(account_id, request_id)
        future = self._waiting.get(key)
        if future is None:  # else: the same request is already on its way
            if not self.shell.submit_nowait(wire, key[0], key[1], self._on_answer):
                raise QueueFull()
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
        if pipeline is not None:
            pipeline.queued()
        return await asyncio.shield(future)

    async def place_order(
        self, account_id: int, *, instrument_name: str, side: v.Side, amount_raw: int,
        order_type: v.OrderType, price_raw: int | None, time_in_force: v.TimeInForce,
        valid_until_ms: int | None = None, post_only: bool = False,
        reduce_only: bool = False, label: str = "",
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.place_order(
            account_id, instrument_name=instrument_name, side=side, amount_raw=amount_raw,
            order_type=order_type, price_raw=price_raw, time_in_force=time_in_force,
            valid_until_ms=valid_until_ms, post_only=post_only, reduce_only=reduce_only,
            label=label, block_time_ns=self.state.time_ns)
        return await self._submit(account_id, command, request_id, pipeline)

    async def place_combo(
        self, account_id: int, *, legs: tuple[v.ComboLeg, ...], side: v.Side, amount_raw: int,
        price_raw: int, time_in_force: v.TimeInForce, label: str = "",
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.place_combo(account_id, legs=legs, side=side, amount_raw=amount_raw,
                                       price_raw=price_raw, time_in_force=time_in_force,
                                       label=label)
        return await self._submit(account_id, command, request_id, pipeline)

    async def edit_order(
        self, account_id: int, *, order_id: int, amount_raw: int, price_raw: int,
        post_only: bool, request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.edit_order(account_id, order_id=order_id, amount_raw=amount_raw,
                                      price_raw=price_raw, post_only=post_only)
        return await self._submit(account_id, command, request_id, pipeline)

    async def cancel_order(
        self, account_id: int, order_id: int, *, request_id: str | None = None,
        pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.cancel_order(account_id, order_id)
        return await self._submit(account_id, command, request_id, pipeline)

    async def cancel_all(
        self, account_id: int, instrument_name: str | None = None, *,
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.cancel_all(account_id, instrument_name)
        return await self._submit(account_id, command, request_id, pipeline)

    async def cancel_by_label(
        self, account_id: int, label: str, instrument_name: str | None = None, *,
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        command = commands.cancel_by_label(account_id, label, instrument_name)
        return await self._submit(account_id, command, request_id, pipeline)

    async def relay_oracle_report(
        self, *, source_id: str, underlying: str, price_raw: int, ts_ns: int,
        vol_surface: tuple[tuple[int, int, int, int, int, int], ...] | None,
        signature: bytes, pipeline: Pipeline | None = None,
    ) -> v.CommandResult:
        report = commands.oracle_report(source_id=source_id, underlying=underlying,
                                        price_raw=price_raw, ts_ns=ts_ns,
                                        vol_surface=vol_surface, signature=signature)
        return await self._submit(0, report, None, pipeline)

    # --- accounts -------------------------------------------------------------------------

    def _allocate_account(self) -> int:
        """A fresh account id no other client of the venue gets."""
        raise NotImplementedError

    async def create_account(self, deposit_raw: int) -> int:
        account_id = self._allocate_account()
        if deposit_raw > 0:
            result = await self.deposit(account_id, deposit_raw)
            if result.rejection is not None:
                raise Refused(reason=result.rejection.reason)
        return account_id

    async def deposit(self, account_id: int, amount_raw: int) -> v.CommandResult:
        return await self._submit(account_id, commands.deposit(account_id, amount_raw))

    # --- deltasync's own reads ---------------------------------------------------------

    async def state_root(self, height: int | None = None) -> v.StateRootView | None:
        tip = self.shell.core.tip
        if height is None or height == tip.height:
            return v.StateRootView(tip.height, tip.state_root.hex(), tip.time_ns)
        known = self.shell.core.root_at(height)
        if known is None:
            return None
        root, time_ns = known
        return v.StateRootView(height, root.hex(), time_ns)


def _retrieve(future: asyncio.Future[v.CommandResult]) -> None:
    """A client that went away leaves its result unread: no 'never retrieved' noise."""
    if not future.cancelled():
        future.exception()
