"""One account's access to the cluster: an SDK client per node, fail-over between them.

Every call has a timeout; a call that fails because a node is down moves the
account to the next node (its key works on every node), a bounded number of
times. Nothing here spawns tasks per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from deltasync.client import ApiError, Client
from deltasync.demo.metrics import Metrics

RETRYABLE_CODES = {10028, 10047, 13028}  # too many requests, queue full, unavailable


class NodesDown(Exception):
    """Every node refused or timed out for this call, after the allowed retries."""


class Api:
    """One account's access to the cluster: an SDK client per node, fail-over between them."""

    def __init__(self, urls: list[str], home: int, metrics: Metrics, timeout_s: float = 5.0,
                 client_id: str | None = None, client_secret: str | None = None) -> None:
        self.urls = urls
        self.current = home % len(urls)
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.client_secret = client_secret
        self._clients: dict[int, Client] = {}

    def _client(self, index: int) -> Client:
        client = self._clients.get(index)
        if client is None:
            client = Client(self.urls[index], self.client_id, self.client_secret,
                            timeout_s=self.timeout_s)
            self._clients[index] = client
        return client

    async def run(self, action: Callable[[Client], Awaitable[Any]], kind: str | None = None,
                  attempts: int = 4) -> Any:
        """``action(client)`` on the current node; on a dead node or a retryable answer,
        the next node after a short pause. ApiErrors of the venue go to the caller."""
        last: BaseException | None = None
        for attempt in range(attempts):
            client = self._client(self.current)
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(action(client), self.timeout_s + 1)
            except ApiError as exc:
                if exc.code not in RETRYABLE_CODES:
                    self._record(kind, started)
                    raise
                last = exc
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                last = exc
                self.current = (self.current + 1) % len(self.urls)
                self.metrics.failovers += 1
            else:
                self._record(kind, started)
                return result
            await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
        self.metrics.call_failures += 1
        raise NodesDown(repr(last)[:200])

    def _record(self, kind: str | None, started: float) -> None:
        if kind is None:
            return
        self.metrics.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.metrics.order_times.append(time.monotonic())
        self.metrics.requests[kind] += 1

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   kind: str | None = None, post: bool = False) -> Any:
        if post:
            return await self.run(
                lambda c: c.http_call(method, params or {}, http_method="POST"), kind)
        return await self.run(lambda c: c.call(method, params or {}), kind)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
