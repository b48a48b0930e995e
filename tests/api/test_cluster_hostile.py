"""Issue 10, defect 1 on a real 3-node cluster (separate processes, Raft, WAL), as the probe
drove it: one unauthenticated request to the leader disabled failover. Now the poison is
refused at the edge, the leader keeps leading and writing, and after killing leaders one
after the other (a killed one restarted with ``cluster restart`` in between) a leader is
still elected and writes still go through."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from deltasync.client import ApiError, Client
from processes.cluster_util import LocalCluster

from .test_cluster import _wait_api

POISONS = [
    {"source_id": "\ud800", "underlying": "BTC", "price": 100000, "ts_ns": 1, "signature": "00"},
    {"source_id": "x", "underlying": "\ud800", "price": 100000, "ts_ns": 1, "signature": "00"},
    {"source_id": "x", "underlying": "BTC", "price": 100000, "ts_ns": 1, "signature": "00",
     "vol_surface": [[1, 2**70, 1, 1, 1, 1]]},
]


async def _poison(url: str, owner: Client) -> None:
    """The probe's requests; each refused at once with -32602 (it was 13028 after 10 s)."""
    async with aiohttp.ClientSession() as http:
        for params in POISONS:
            body = json.dumps({"jsonrpc": "2.0", "id": "p",
                               "method": "public/deltasync_oracle_report", "params": params})
            started = time.monotonic()
            async with http.post(url + "/api/v2", data=body) as response:
                answer: dict[str, Any] = await response.json(content_type=None)
            assert answer["error"]["code"] == -32602, answer
            assert time.monotonic() - started < 3.0
    try:
        await owner.call("private/cancel", {"order_id": 1180591620717411303424})
        raise AssertionError("a cancel beyond int64 was accepted")
    except ApiError as refused:
        assert refused.code == -32602 and refused.data["param"] == "order_id"


async def _write_through(url: str) -> None:
    async with Client(url, timeout_s=10) as client:
        await client.create_demo_account(Decimal(1_000))
        summary = await client.get_account_summary()
        assert summary.raw["balance"] == 1000


def test_poison_requests_leave_failover_working(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=3)
    cluster.up()
    try:
        asyncio.run(_scenario(cluster))
    finally:
        cluster.down()


async def _scenario(cluster: LocalCluster) -> None:
    urls = {int(k): v for k, v in cluster.info["api"].items()}
    for url in urls.values():
        await _wait_api(url)
    first = cluster.wait_leader()
    owner = Client(urls[first], timeout_s=10)
    await owner.create_demo_account(Decimal(1_000))
    try:
        await _poison(urls[first], owner)
    finally:
        await owner.close()
    await _write_through(urls[first])
    assert cluster.leader() == first  # no leadership change: nothing failed

    cluster.kill(first)
    second = cluster.wait_leader(timeout_s=15, exclude=first)
    second_owner = Client(urls[second], timeout_s=10)
    await second_owner.create_demo_account(Decimal(1_000))
    try:
        await _poison(urls[second], second_owner)
    finally:
        await second_owner.close()
    cluster.restart(first)
    await _wait_api(urls[first])
    await _write_through(urls[first])  # the restarted node serves again (forwarding a write)

    cluster.kill(second)  # the probe saw no leader after this for 12 and 20 s
    third = cluster.wait_leader(timeout_s=15, exclude=second)
    await _write_through(urls[third])
