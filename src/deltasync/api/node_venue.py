"""The ``Venue`` of a replicated node: commands through Raft, reads behind ReadIndex.

``NodeVenue`` adapts a running ``deltasync.node.server.NodeServer``:

- ``submit`` puts the exchange command through the node (any node forwards to
  the leader) under a per-account client session, so the node's replicated
  session table applies it at most once; an API ``request_id`` maps to the
  same (session, request) on retries sent to this node.
- every block the node applies (whoever proposed it) is folded into the
  API's read model, so order history, trades and subscriptions are the same
  on every node;
- reads are linearizable by default: the node confirms the read index with
  the leader (Raft ReadIndex, also from followers) before answering;
  ``linearizable=false`` answers from local state at once.
- API keys are derived from the cluster secret (``KeyStore(master=...)``), so
  a key created on one node works on every node and survives failover.
- account ids created here are ``node_id * 1_000_000 + k``: nodes never
  allocate the same id without talking to each other.

``start_api(server)`` is what ``deltasync node`` calls when the config has an
``api_address``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from deltasync.api import errors
from deltasync.api import venue as v
from deltasync.api.auth import KeyStore
from deltasync.api.errors import ApiError
from deltasync.api.readmodel import ReadModel
from deltasync.api.server import ApiServer
from deltasync.api.state_reads import StateReads
from deltasync.core import limits
from deltasync.core.errors import CodecError, DeltasyncError
from deltasync.exchange.state import ExchangeState

if TYPE_CHECKING:
    from deltasync.node.driver import Answer, AppliedBlock
    from deltasync.node.server import NodeServer

log = logging.getLogger(__name__)

RESULTS_KEPT_MAX = 100_000
REQUEST_IDS_KEPT_MAX = 100_000
ACCOUNTS_PER_NODE = 1_000_000
PEER_TIMEOUT_S = 1.0


def api_master_secret(cluster_secret: bytes) -> bytes:
    """The key-derivation secret of a cluster's API keys (never the cluster secret itself)."""
    return hmac.new(cluster_secret, b"deltasync-api-keys", hashlib.sha256).digest()


class NodeVenue(StateReads):
    def __init__(self, server: NodeServer, *, vol_ppm_default: int | None = None) -> None:
        super().__init__(vol_ppm_default)
        self.server = server
        self.node_id = server.config.node_id
        self.demo_mode = server.config.demo_mode
        self._results: OrderedDict[tuple[int, int], v.CommandResult] = OrderedDict()
        self._sessions: dict[int, list[int]] = {}  # account -> [session, last request]
        self._request_ids: OrderedDict[tuple[int, str], tuple[int, int]] = OrderedDict()
        self._allocated: set[int] = set()
        self._http: Any = None
        server.add_block_listener(self._on_block)

    @property
    def state(self) -> ExchangeState:
        machine: ExchangeState = self.server.core.machine  # replaced when a snapshot is installed
        return machine

    async def close(self) -> None:
        self.end_subscribers()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- blocks from the node --------------------------------------------------------

    def _on_block(self, block: AppliedBlock) -> None:
        result = block.result
        pairs: list[tuple[v.VenueCommand | None, Any]] = [(None, c) for c in block.commands]
        results = self.fold_block(block.height, block.time_ns, pairs, result.events,
                                  list(result.start_events) + list(result.end_events))
        for (session, request, origin), command_result in zip(block.sessions, results,
                                                                strict=True):
            if origin == self.node_id:
                self._results[(session, request)] = command_result
        while len(self._results) > RESULTS_KEPT_MAX:
            self._results.popitem(last=False)

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
            while len(self._request_ids) > REQUEST_IDS_KEPT_MAX:
                self._request_ids.popitem(last=False)
        return pair

    async def _submit(self, account_id: int, command: Any, request_id: str | None,
                      on_queued: Callable[[], None] | None = None) -> v.CommandResult:
        session, request = self._session_request(account_id, request_id)
        try:
            wire = self.server.core.codec.encode(command)
        except CodecError:  # e.g. an oracle report on a node whose machine has no oracle
            raise ApiError(errors.NOT_IMPLEMENTED, {
                "reason": f"this cluster does not take {type(command).__name__} commands"}
            ) from None
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def done(answer: Answer) -> None:
            if not future.done():
                future.set_result(answer)

        if not self.server.submit_nowait(wire, session, request, done):
            raise ApiError(errors.MATCHING_ENGINE_QUEUE_FULL)
        if on_queued is not None:
            on_queued()
        answer = await asyncio.shield(future)
        if answer.error == "timeout":
            raise ApiError(errors.TEMPORARILY_UNAVAILABLE,
                           {"reason": "not committed in time; retry with the same request_id"})
        if answer.error is not None:
            raise ApiError(errors.TEMPORARILY_UNAVAILABLE, {"reason": answer.error})
        known = self._results.get((session, request))
        if known is not None:
            return known
        return self._result_from_answer(answer)

    def _result_from_answer(self, answer: Answer) -> v.CommandResult:
        """A retried command's original answer, from its events (the block is long folded)."""
        rejection = None
        order = None
        for event in answer.events:
            code = getattr(getattr(event, "reason", None), "code", None)
            if rejection is None and type(code) is str and type(event).__name__.endswith(
                    "Rejected"):
                rejection = v.Rejection(code)
            order_id = getattr(event, "order_id", None)
            if order is None and type(order_id) is int:
                order = self.read.orders.get(order_id)
        return v.CommandResult(height=answer.height, rejection=rejection, order=order)

    async def submit(self, account_id: int, command: v.VenueCommand,
                     request_id: str | None = None,
                     on_queued: Callable[[], None] | None = None) -> v.CommandResult:
        try:
            exchange_command = ReadModel.to_exchange(account_id, command, self.state.time_ns)
        except DeltasyncError as exc:
            raise ApiError(errors.INVALID_PARAMS,
                           {key: str(value) for key, value in exc.fields.items()}) from None
        return await self._submit(account_id, exchange_command, request_id, on_queued)

    async def create_account(self, deposit_raw: int) -> int:
        if not 1 <= self.node_id < limits.accounts_max // ACCOUNTS_PER_NODE:
            raise ApiError(errors.FORBIDDEN, {"reason": "account creation needs node ids 1..9"})
        base = self.node_id * ACCOUNTS_PER_NODE
        accounts = self.state.accounts
        account_id = base
        while account_id in accounts or account_id in self._allocated:
            account_id += 1
        if account_id >= base + ACCOUNTS_PER_NODE - 1:
            raise ApiError(errors.FORBIDDEN, {"reason": "this node has no account ids left"})
        self._allocated.add(account_id)
        return await self._fund(account_id, deposit_raw)

    async def deposit(self, account_id: int, amount_raw: int) -> v.CommandResult:
        command = self.deposit_command(account_id, amount_raw)
        return await self._submit(account_id, command, None)

    # --- reads ---------------------------------------------------------------------------

    async def _barrier(self, linearizable: bool) -> None:
        if not linearizable:
            return
        from deltasync.node.server import NotLeaderError, RequestTimeout

        try:
            await self.server.read_barrier()
        except (NotLeaderError, RequestTimeout) as exc:
            raise ApiError(errors.TEMPORARILY_UNAVAILABLE, {
                "reason": "no leader confirmed the read; retry, or pass linearizable=false",
                "detail": str(exc.fields.get("reason", ""))[:200],
            }) from None

    async def node_status(self) -> dict[str, Any]:
        status = self.server.core.status()
        return {
            "id": status["id"],
            "role": status["role"],
            "term": status["term"],
            "leader": status["leader"],
            "commit_index": status["commit_index"],
            "applied_index": status["applied_index"],
            "height": status["height"],
            "state_root": status["state_root"],
            "block_time_ns": status["block_time_ns"],
            "halted": status["halted"],
            "api": self.server.config.api_peers.get(self.node_id),
        }

    async def _peer(self, url: str, method: str, params: str = "") -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S))
        async with self._http.get(f"{url}/api/v2/public/{method}{params}") as response:
            body = await response.json(content_type=None)
        return body.get("result")

    async def cluster_status(self) -> dict[str, Any]:
        own = await self.node_status()
        peers = {pid: url for pid, url in self.server.config.api_peers.items()
                 if pid != self.node_id}
        nodes: list[dict[str, Any]] = [own]
        reachable: dict[int, str] = {}

        async def ask(pid: int, url: str) -> dict[str, Any]:
            try:
                status = await self._peer(url, "deltasync_node_status")
                if isinstance(status, dict):
                    reachable[pid] = url
                    return status
            except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as exc:
                return {"id": pid, "api": url, "reachable": False, "error": repr(exc)[:120]}
            return {"id": pid, "api": url, "reachable": False}

        nodes += await asyncio.gather(*(ask(pid, url) for pid, url in sorted(peers.items())))
        heights = [node["height"] for node in nodes if "height" in node]
        common = min(heights) if heights else 0
        roots: set[Any] = set()
        own_root = await self.state_root(common)
        if own_root is not None:
            roots.add(own_root.state_root)
        for url in reachable.values():
            try:
                root = await self._peer(url, "deltasync_state_root", f"?height={common}")
                if isinstance(root, dict):
                    roots.add(root.get("state_root"))
            except (TimeoutError, OSError, ValueError, aiohttp.ClientError):
                pass
        return {
            "mode": "raft",
            "leader": own["leader"],
            "height": own["height"],
            "nodes": nodes,
            "compared_at_height": common,
            "state_roots_agree": len(roots) == 1,
        }

    async def state_root(self, height: int | None = None) -> v.StateRootView | None:
        tip = self.server.core.tip
        if height is None or height == tip.height:
            return v.StateRootView(tip.height, tip.state_root.hex(), tip.time_ns)
        known = self.server.core.root_at(height)
        if known is None:
            return None
        root, time_ns = known
        return v.StateRootView(height, root.hex(), time_ns)


class NodeApi:
    """The API attached to a node process: ``await stop()`` closes both halves."""

    def __init__(self, server: ApiServer, venue: NodeVenue) -> None:
        self.server = server
        self.venue = venue

    async def stop(self) -> None:
        await self.server.stop()
        await self.venue.close()


async def start_api(node: NodeServer, *, vol_ppm_default: int | None = None) -> NodeApi:
    """Serve the API of ``node`` on its configured ``api_address``."""
    assert node.config.api_address is not None, "the node config has no api_address"
    venue = NodeVenue(node, vol_ppm_default=vol_ppm_default)
    keys = KeyStore(master=api_master_secret(node.config.cluster_secret))
    host, port = node.config.api_address
    server = ApiServer(venue, host, port, keys, demo_mode=node.config.demo_mode)
    await server.start()
    log.info("API on http://%s:%d (demo mode %s)", host, server.port, node.config.demo_mode)
    return NodeApi(server, venue)


def _is_a_venue(venue: NodeVenue) -> v.Venue:
    return venue  # mypy checks that NodeVenue implements the Venue protocol
