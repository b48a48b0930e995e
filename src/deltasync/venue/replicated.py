"""The ``Venue`` of a replicated node: commands through Raft, reads behind ReadIndex.

``NodeVenue`` is a ``ShellVenue`` over a running ``NodeServer``:

- commands go through the node (any node forwards to the leader), and every
  block the node applies (whoever proposed it) is folded into the read model,
  so order history, trades and subscriptions are the same on every node;
- reads are linearizable by default: the node confirms the read index with
  the leader (Raft ReadIndex, also from followers) before answering;
  ``linearizable=false`` answers from local state at once;
- account ids created here are ``node_id * venue_accounts_per_node + k``:
  nodes never allocate the same id without talking to each other.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from deltasync.core import limits
from deltasync.node.server import NotLeaderError, RequestTimeout
from deltasync.venue.errors import Forbidden, Unavailable
from deltasync.venue.port import Venue
from deltasync.venue.shell import ShellVenue

if TYPE_CHECKING:
    from deltasync.node.server import NodeServer


class NodeVenue(ShellVenue):
    def __init__(self, server: NodeServer, *, vol_ppm_default: int | None = None) -> None:
        super().__init__(server, demo_mode=server.config.demo_mode,
                         vol_ppm_default=vol_ppm_default)
        self.server = server
        self.node_id = server.config.node_id
        self._allocated: set[int] = set()
        self._http: Any = None

    async def close(self) -> None:
        self.end_subscribers()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _allocate_account(self) -> int:
        per_node = limits.venue_accounts_per_node
        if not 1 <= self.node_id < limits.accounts_max // per_node:
            raise Forbidden(reason="account creation needs node ids 1..9")
        base = self.node_id * per_node
        accounts = self.state.accounts
        account_id = base
        while account_id in accounts or account_id in self._allocated:
            account_id += 1
        if account_id >= base + per_node - 1:
            raise Forbidden(reason="this node has no account ids left")
        self._allocated.add(account_id)
        return account_id

    # --- reads ---------------------------------------------------------------------------

    async def _barrier(self, linearizable: bool) -> None:
        if not linearizable:
            return
        try:
            await self.server.read_barrier()
        except (NotLeaderError, RequestTimeout) as exc:
            raise Unavailable(
                reason="no leader confirmed the read; retry, or pass linearizable=false",
                detail=str(exc.fields.get("reason", ""))[:200],
            ) from None

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
                timeout=aiohttp.ClientTimeout(total=limits.venue_peer_timeout_s))
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
        return {
            "mode": "raft",
            "leader": own["leader"],
            "height": own["height"],
            "nodes": nodes,
            "compared_at_height": common,
            "state_roots_agree": len(await self._roots_at(common, reachable)) == 1,
        }

    async def _roots_at(self, height: int, peers: dict[int, str]) -> set[Any]:
        """The state roots at ``height`` of this node and of the peers that answer."""
        roots: set[Any] = set()
        own_root = await self.state_root(height)
        if own_root is not None:
            roots.add(own_root.state_root)
        for url in peers.values():
            try:
                root = await self._peer(url, "deltasync_state_root", f"?height={height}")
                if isinstance(root, dict):
                    roots.add(root.get("state_root"))
            except (TimeoutError, OSError, ValueError, aiohttp.ClientError):
                pass  # an unreachable peer has no say in the comparison
        return roots


def _is_a_venue(venue: NodeVenue) -> Venue:
    return venue  # mypy checks that NodeVenue implements the Venue protocol
