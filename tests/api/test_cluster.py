"""The API of a real 3-node cluster (separate processes, Raft, WAL), over HTTP and WebSocket.

Keys are derived from the cluster secret, so an account created through one
node trades through another; every node's read model and subscriptions see
the same blocks; reads are linearizable through followers; a killed node's
clients fail over to another node with the same credentials.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from deltasync.client import ApiError, BookTracker, Client
from processes.cluster_util import LocalCluster


async def _nearest_call(client: Client, strike: int = 100_000) -> str:
    """The BTC call at ``strike`` of the nearest live expiry, found as the quickstart
    finds it (``public/get_instruments``): the cluster's genesis lists expiries
    relative to its start, so the name depends on the date the test runs."""
    calls = [i for i in await client.get_instruments("BTC", "option")
             if i["option_type"] == "call" and Decimal(str(i["strike"])) == strike]
    assert calls, "no live BTC call listed"
    return str(min(calls, key=lambda i: int(i["expiration_timestamp"]))["instrument_name"])


async def _wait_api(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with Client(url, timeout_s=2) as probe:
                await probe.call("public/test")
                return
        except Exception as exc:  # not up yet: refused, reset, or an error answer
            if time.monotonic() > deadline:
                raise AssertionError(f"API at {url} never came up: {exc!r}") from None
            await asyncio.sleep(0.1)


async def _until(predicate: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


@pytest.mark.dates
def test_api_of_a_three_node_cluster(tmp_path: Path) -> None:
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
    leader = cluster.wait_leader()
    follower = next(node for node in urls if node != leader)
    other = next(node for node in urls if node not in (leader, follower))
    # Price sources relay signed reports through the API; trading opens with the index.
    feeder = asyncio.create_task(_oracle_feed(list(urls.values())))
    async with Client(urls[leader], timeout_s=10) as probe:
        async def index_known() -> bool:
            return await probe.get_index_price("btc_usdc") is not None

        await _until(index_known)
        option = await _nearest_call(probe)

    # Accounts created through a follower; their keys work on every node.
    maker = Client(urls[follower], timeout_s=10)
    await maker.create_demo_account(Decimal(1_000_000))
    taker = Client(urls[other], timeout_s=10)
    await taker.create_demo_account(Decimal(1_000_000))
    await maker.connect()
    await taker.connect()

    watcher = Client(urls[leader], timeout_s=10)
    await watcher.connect()
    book_sub = await watcher.subscribe(f"book.{option}.raw")
    trades_sub = await watcher.subscribe(f"trades.{option}.raw")
    tracker = BookTracker()
    tracker.apply((await book_sub.next()).data)

    placed = await maker.sell(option, "0.1", "2500", post_only=True, label="cluster")
    assert placed.order.order_state == "open"
    fill = await taker.buy(option, "0.04", "2500")
    assert [(t.price, t.amount) for t in fill.trades] == [(Decimal(2500), Decimal("0.04"))]

    # Linearizable reads on every node, including followers, see the trade at once.
    for url in urls.values():
        async with Client(url, maker.client_id, maker.client_secret, timeout_s=10) as same_key:
            state = await same_key.get_order_state(placed.order.order_id)
            assert state.filled_amount == Decimal("0.04")
            positions = await same_key.get_positions()
            assert [(p.instrument_name, p.size) for p in positions] == [(option, Decimal("-0.04"))]

    # Subscriptions on the leader saw the follower-submitted orders, chained by change_id.
    while tracker.levels()[1] != [(Decimal(2500), Decimal("0.06"))]:
        tracker.apply((await book_sub.next()).data)
    trade_note = await trades_sub.next()
    assert trade_note.data[0]["amount"] == Decimal("0.04")

    # Auth and bad input against a follower: replayed nonces, wrong secrets, garbage.
    await _auth_and_bad_input(urls[follower], maker)
    # A bearer token from one node is good on another (tokens are signed, not stored).
    async with Client(urls[follower], maker.client_id, maker.client_secret, timeout_s=10,
                      auth_mode="bearer") as bearer:
        await bearer.get_account_summary()
        bearer.base_url = urls[leader]  # fail over, keeping the token
        assert (await bearer.get_account_summary()).currency == "USDC"

    status = await watcher.call("public/deltasync_cluster_status")
    assert {node["id"] for node in status["nodes"]} == set(urls)
    assert status["leader"] == leader

    async def roots_agree() -> bool:
        current = await watcher.call("public/deltasync_cluster_status")
        return bool(current["state_roots_agree"]) and all(
            node.get("height", 0) >= 1 for node in current["nodes"])

    await _until(roots_agree)
    account_id = (await maker.get_account_summary()).raw["id"]
    proof = await watcher.call("public/deltasync_account_proof", {"account_id": account_id})
    assert proof["included"]

    # Kill the node the taker uses; the taker fails over to another node with its key.
    await taker.close()
    cluster.kill(other)
    survivor = Client(urls[leader], taker.client_id, taker.client_secret, timeout_s=10)
    await survivor.connect()
    await _until(lambda: _leader_known(survivor))
    again = await survivor.buy(option, "0.02", "2500")
    assert again.order.order_state == "filled"
    assert (await survivor.get_position(option)).size == Decimal("0.06")
    cluster.restart(other)
    await _wait_api(urls[other])

    async def caught_up() -> bool:
        async with Client(urls[other], timeout_s=5) as probe:
            try:
                book = await probe.call("public/get_order_book",
                                        {"instrument_name": option, "linearizable": True})
            except ApiError:
                return False
            return bool(book["asks"] == [[2500, Decimal("0.04")]])

    await _until(caught_up, 30)
    await _until(roots_agree, 30)
    for client in (maker, watcher, survivor):
        await client.close()
    feeder.cancel()


async def _oracle_feed(urls: list[str]) -> None:
    """The demo sources report BTC and ETH every second, through any node that answers."""
    from deltasync.core.fixed import Price
    from deltasync.exchange.assembly import demo_reports

    prices = {"BTC": Price.parse("100000"), "ETH": Price.parse("3500")}
    while True:
        for report in demo_reports(prices, time.time_ns()):
            for url in urls:
                try:
                    async with Client(url, timeout_s=3) as relay:
                        await relay.relay_oracle_report(
                            report.source_id, report.underlying, str(report.price),
                            report.ts_ns, report.signature)
                    break
                except Exception:  # that node is down or busy: try the next one
                    continue
        await asyncio.sleep(1.0)


async def _leader_known(client: Client) -> bool:
    status = await client.call("public/deltasync_node_status")
    return bool(status.get("leader"))


async def _auth_and_bad_input(url: str, owner: Client) -> None:
    import aiohttp

    from deltasync.api.auth import hmac_header

    assert owner.client_id and owner.client_secret
    path = "/api/v2/private/get_account_summary?currency=USDC"
    now_ms = time.time_ns() // 1_000_000
    good = hmac_header(owner.client_id, owner.client_secret, "GET", path, "", now_ms, "c-1")
    wrong = hmac_header(owner.client_id, "wrong-secret", "GET", path, "", now_ms, "c-2")
    async with aiohttp.ClientSession() as http:
        async def get(headers: dict[str, str]) -> dict[str, Any]:
            async with http.get(url + path, headers=headers) as response:
                body: dict[str, Any] = await response.json(content_type=None)
                return body

        assert (await get({"Authorization": good}))["result"]["currency"] == "USDC"
        assert (await get({"Authorization": good}))["error"]["code"] == 13004  # replayed
        assert (await get({"Authorization": wrong}))["error"]["code"] == 13004
        assert (await get({}))["error"]["code"] == 13009
        async with http.post(url + "/api/v2", data="{nope") as response:
            assert (await response.json(content_type=None))["error"]["code"] == -32700
