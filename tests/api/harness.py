"""Start a LocalVenue behind a real ApiServer on 127.0.0.1 for one test."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

pytest.importorskip("deltasync.exchange.state", reason="the exchange state machine is not here yet")

from deltasync.api.server import ApiServer  # noqa: E402
from deltasync.client import Client  # noqa: E402
from deltasync.venue.local import LocalVenue  # noqa: E402

CALL = "BTC_USDC-25DEC26-100000-C"
CALL_HIGH = "BTC_USDC-25DEC26-110000-C"
PUT = "BTC_USDC-25DEC26-90000-P"

# The venue's block clock starts at a fixed day on which the default genesis lists all of its
# expiries, and moves at the rate of the monotonic clock: the tests never depend on today's date.
VENUE_EPOCH_NS = 1_795_176_000_000_000_000  # 2026-11-20 12:00 UTC
_MONOTONIC_START_NS = time.monotonic_ns()


def venue_now_ns() -> int:
    """The venue's block-clock reading now (signed oracle reports use it)."""
    return VENUE_EPOCH_NS + time.monotonic_ns() - _MONOTONIC_START_NS


@asynccontextmanager
async def running(venue_options: dict[str, Any] | None = None,
                  **server_options: Any) -> AsyncIterator[ApiServer]:
    options: dict[str, Any] = {"demo_mode": True, "block_interval_s": 0.001,
                               "clock_ns": venue_now_ns}
    options.update(venue_options or {})
    venue = LocalVenue(**options)
    await venue.start()
    server = ApiServer(venue, "127.0.0.1", 0, demo_mode=True, flush_interval_s=0.02,
                       **server_options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await venue.stop()


async def new_client(server: ApiServer, deposit: str = "1000000", *, ws: bool = True,
                     auth_mode: str = "hmac") -> Client:
    client = Client(server.url, timeout_s=5, auth_mode=auth_mode)
    await client.create_demo_account(Decimal(deposit))
    if ws:
        await client.connect()
    return client


async def raw_get(server: ApiServer, path: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(
            server.url + path, headers=headers or {}) as response:
        return response.status, json.loads(await response.text(), parse_float=Decimal)


async def raw_post(server: ApiServer, path: str, body: str | bytes,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
            server.url + path, data=body, headers=headers or {}) as response:
        return response.status, json.loads(await response.text(), parse_float=Decimal)
