"""Subscriptions over a real WebSocket: book change_id chains, trades, ticker, user channels."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from deltasync.api.subscriptions import Session
from deltasync.client import ApiError, BookGap, BookTracker, Client, Subscription

from .harness import CALL, CALL_HIGH, new_client, raw_get, running, venue_now_ns


async def _drain(sub: Subscription, quiet_s: float = 0.3) -> list[Any]:
    """Notifications until none arrives for ``quiet_s``."""
    out = []
    while True:
        try:
            out.append(await sub.next(quiet_s))
        except (TimeoutError, StopAsyncIteration):
            return out


def test_book_channels_chain_change_ids_and_rebuild_the_book() -> None:
    async def main() -> None:
        async with running() as server:
            maker = await new_client(server)
            taker = await new_client(server)
            await maker.sell(CALL, "0.1", "2500", post_only=True)
            watcher = Client(server.url, timeout_s=5)
            await watcher.connect()
            raw = await watcher.subscribe(f"book.{CALL}.raw")
            agg = await watcher.subscribe(f"book.{CALL}.100ms")
            first = await raw.next()
            assert first.data["type"] == "snapshot"
            assert first.data["change_id"] == (await watcher.get_order_book(CALL)).change_id
            assert first.data["asks"] == [["new", 2500, Decimal("0.1")]]

            order = await maker.sell(CALL, "0.2", "2600", post_only=True)
            await maker.buy(CALL, "0.3", "2000", post_only=True)
            await taker.buy(CALL, "0.05", "2500")
            await maker.edit(order.order.order_id, "0.1", "2600")
            await maker.cancel(order.order.order_id)
            await taker.sell(CALL, "0.1", "2000")

            tracker = BookTracker()
            tracker.apply(first.data)
            notes = await _drain(raw)
            assert len(notes) == 6  # one change per block that touched the book
            previous = first.data["change_id"]
            for note in notes:
                assert note.data["type"] == "change"
                assert note.data["prev_change_id"] == previous
                assert note.data["change_id"] > previous
                previous = note.data["change_id"]
                tracker.apply(note.data)
            book = await watcher.get_order_book(CALL, depth=100)
            assert book.change_id == tracker.change_id
            assert tracker.levels() == (list(book.bids), list(book.asks))

            aggregated = BookTracker()
            for note in [await agg.next()] + await _drain(agg):
                aggregated.apply(note.data)
            assert aggregated.change_id == book.change_id
            assert aggregated.levels() == tracker.levels()

            # A lost message breaks the chain and the tracker says so.
            replay = BookTracker()
            replay.apply(first.data)
            with pytest.raises(BookGap):
                replay.apply(notes[1].data)

            await raw.close()
            assert (await _drain(raw, 0.05)) == []
            for client in (maker, taker, watcher):
                await client.close()

    asyncio.run(main())


def test_trades_ticker_and_user_channels() -> None:
    async def main() -> None:
        async with running() as server:
            maker = await new_client(server)
            taker = await new_client(server)
            trades = await taker.subscribe(f"trades.{CALL}.raw")
            ticker = await taker.subscribe(f"ticker.{CALL}.100ms")
            index = await taker.subscribe("deribit_price_index.btc_usdc")
            orders = await maker.subscribe(f"user.orders.{CALL}.raw")
            any_orders = await maker.subscribe("user.orders.option.any.raw")
            fills = await maker.subscribe(f"user.trades.{CALL}.raw")
            portfolio = await maker.subscribe("user.portfolio.usdc")

            placed = await maker.sell(CALL, "0.1", "2500", post_only=True, label="m")
            await maker.sell(CALL_HIGH, "0.1", "1500", post_only=True)
            await taker.buy(CALL, "0.04", "2500")

            public = await _drain(trades)
            assert [(t["price"], t["amount"], t["direction"]) for note in public
                    for t in note.data] == [(2500, Decimal("0.04"), "buy")]
            tick = (await _drain(ticker))[-1].data
            assert tick["last_price"] == 2500 and "mark_price" in tick and "greeks" in tick
            mine = [note.data for note in await _drain(orders)]
            assert [(o["order_id"], o["order_state"], o["filled_amount"]) for o in mine] == [
                (placed.order.order_id, "open", 0),
                (placed.order.order_id, "open", Decimal("0.04"))]
            everywhere = [note.data["instrument_name"] for note in await _drain(any_orders)]
            assert everywhere == [CALL, CALL_HIGH, CALL]
            my_fills = [t for note in await _drain(fills) for t in note.data]
            assert [(t["direction"], t["liquidity"], t["amount"]) for t in my_fills] == [
                ("sell", "M", Decimal("0.04"))]
            summaries = [note.data for note in await _drain(portfolio)]
            assert summaries and summaries[-1]["balance"] == (
                await maker.get_account_summary()).balance
            assert await _drain(index, 0.05) == []  # no oracle in a LocalVenue: no index moves

            # The taker's channels never carry the maker's private data.
            spy = await taker.subscribe(f"user.orders.{CALL}.raw")
            await maker.cancel(placed.order.order_id)
            assert await _drain(spy, 0.2) == []
            for client in (maker, taker):
                await client.close()

    asyncio.run(main())


def test_subscription_errors_and_limits() -> None:
    async def main() -> None:
        async with running() as server:
            anonymous = Client(server.url, timeout_s=5)
            await anonymous.connect()
            with pytest.raises(ApiError) as private:
                await anonymous.call("public/subscribe", {"channels": ["user.portfolio.usdc"]})
            assert private.value.code == 13009
            with pytest.raises(ApiError) as unknown:
                await anonymous.call("public/subscribe", {"channels": ["weather.today"]})
            assert unknown.value.code == -32602
            with pytest.raises(ApiError) as bad_instrument:
                await anonymous.call("public/subscribe", {"channels": ["book.NOPE.raw"]})
            assert bad_instrument.value.code == 10020
            with pytest.raises(ApiError) as mixed:  # one bad channel: none subscribed
                await anonymous.call("public/subscribe", {"channels": [
                    f"trades.{CALL}.raw", "ticker.NOPE.100ms"]})
            assert mixed.value.code == 10020
            assert await anonymous.call("public/unsubscribe",
                                        {"channels": [f"trades.{CALL}.raw"]}) == []
            too_many = [f"trades.X{i}.raw" for i in range(300)]
            with pytest.raises(ApiError) as limit:
                await anonymous.call("public/subscribe", {"channels": too_many})
            assert limit.value.code == -32602
            subscribed = await anonymous.call("public/subscribe",
                                              {"channels": [f"trades.{CALL}.raw"]})
            assert subscribed == [f"trades.{CALL}.raw"]
            assert await anonymous.call("public/unsubscribe",
                                        {"channels": [f"trades.{CALL}.raw"]}) == [
                f"trades.{CALL}.raw"]
            assert await anonymous.call("public/set_heartbeat", {"interval": 10}) == "ok"
            _, body = await raw_get(server, "/api/v2/public/subscribe?channels=%5B%22trades."
                                            f"{CALL}.raw%22%5D")
            assert body["error"]["code"] == 10030  # subscriptions need a WebSocket
            await anonymous.close()

    asyncio.run(main())


def test_a_slow_consumer_is_cut_off_not_buffered() -> None:
    async def main() -> None:
        dropped = []
        session = Session("test", queue_max=3)
        session.on_overflow = lambda: dropped.append(True)
        assert all(session.push(f"m{i}") for i in range(3))
        assert not session.push("m3")
        assert session.closed and session.overflowed and dropped == [True]
        assert not session.push("m4")
        assert session.queue.qsize() == 3

    asyncio.run(main())


def test_websocket_bad_frames_and_oversized_messages() -> None:
    async def main() -> None:
        import aiohttp

        from deltasync.core import limits

        async with running() as server, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.url.replace("http", "ws") + "/ws/api/v2")
            await ws.send_str("{oops")
            reply = await ws.receive_json()
            assert reply["error"]["code"] == -32700
            await ws.send_str('{"jsonrpc":"2.0","id":9,"method":"public/nothing"}')
            reply = await ws.receive_json()
            assert reply["error"]["code"] == -32601 and reply["id"] == 9
            await ws.send_str('{"jsonrpc":"2.0","id":10,"method":"private/get_positions"}')
            reply = await ws.receive_json()
            assert reply["error"]["code"] == 13009 and "result" not in reply
            await ws.send_str("x" * (limits.ws_message_bytes_max + 1))
            closing = await ws.receive()
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING)
            await ws.close()
            _, body = await raw_get(server, "/api/v2/public/test")
            assert "result" in body and server.internal_errors == 0

    asyncio.run(main())


def test_a_burst_beyond_the_outbound_queue_disconnects_that_client_only() -> None:
    async def main() -> None:
        async with running(venue_options={"block_interval_s": 0.05}, ws_queue_max=8) as server:
            trader = await new_client(server, ws=False)  # HTTP: the orders run concurrently
            listener = Client(server.url, trader.client_id, trader.client_secret, timeout_s=5)
            await listener.connect()
            await listener.subscribe("user.orders.any.raw")
            # Twenty orders in one block: twenty notifications pushed at once.
            await asyncio.gather(*(trader.buy(CALL, "0.01", str(500 + i), post_only=True)
                                   for i in range(20)))
            await asyncio.sleep(0.2)
            assert listener._ws is not None and listener._ws.closed
            assert not server.sessions  # dropped; the HTTP trader is unaffected
            assert len(await trader.get_open_orders()) == 20
            await listener.close()
            await trader.close()

    asyncio.run(main())


def test_index_channel_and_relayed_oracle_reports() -> None:
    async def main() -> None:
        from deltasync.core.fixed import Price
        from deltasync.exchange.assembly import DEMO_ORACLE_SEEDS
        from deltasync.exchange.oracle import sign_report

        async with running(venue_options={"oracle_interval_s": 0.05}) as server:
            client = Client(server.url, timeout_s=5)
            await client.connect()
            index = await client.subscribe("deribit_price_index.btc_usdc")
            server.venue.set_demo_price("BTC", 101_000 * 10**6)
            note = await index.next()
            assert note.data["index_name"] == "btc_usdc" and note.data["price"] == 101000
            assert await client.get_index_price("btc_usdc") == Decimal(101000)

            # A source's signed report relayed through the API (the machine checks it).
            now_ns = venue_now_ns()
            report = sign_report(DEMO_ORACLE_SEEDS["demo-a"], "demo-a", "ETH",
                                 Price.parse("3600"), now_ns)
            params = {"source_id": "demo-a", "underlying": "ETH", "price": Decimal(3600),
                      "ts_ns": now_ns, "signature": report.signature.hex()}
            accepted = await client.call("public/deltasync_oracle_report", params)
            assert accepted["accepted"] and accepted["height"] > 0
            forged = dict(params, ts_ns=now_ns + 1)  # the signature no longer matches
            with pytest.raises(ApiError) as bad:
                await client.call("public/deltasync_oracle_report", forged)
            assert bad.value.code == 13004 and bad.value.data["reason"] == "bad_signature"
            with pytest.raises(ApiError) as malformed:
                await client.call("public/deltasync_oracle_report",
                                  dict(params, signature="zz"))
            assert malformed.value.code == -32602
            await client.close()

    asyncio.run(main())


def test_a_hub_that_falls_behind_resends_book_snapshots() -> None:
    async def main() -> None:
        async with running() as server:
            venue = server.venue
            maker = await new_client(server)
            watcher = Client(server.url, timeout_s=5)
            await watcher.connect()
            book = await watcher.subscribe(f"book.{CALL}.raw")
            assert (await book.next()).data["type"] == "snapshot"
            await maker.sell(CALL, "0.1", "2500", post_only=True)
            assert (await book.next()).data["type"] == "change"
            # The venue ends a block stream whose reader fell too far behind
            # (_BlockSubscriber.offer on a full queue); here we end it directly.
            (hub_stream,) = venue._subscribers
            hub_stream.end()
            note = await book.next()
            assert note.data["type"] == "snapshot"  # resynchronised, not silently gapped
            assert note.data["asks"] == [["new", 2500, Decimal("0.1")]]
            await maker.sell(CALL, "0.1", "2600", post_only=True)  # and the stream resumed
            change = await book.next()
            assert change.data["prev_change_id"] == note.data["change_id"]
            for client in (maker, watcher):
                await client.close()

    asyncio.run(main())


def test_skipped_blocks_restart_book_subscriptions_from_snapshots() -> None:
    async def main() -> None:
        async with running() as server:
            venue = server.venue
            maker = await new_client(server)
            watcher = Client(server.url, timeout_s=5)
            await watcher.connect()
            book = await watcher.subscribe(f"book.{CALL}.raw")
            assert (await book.next()).data["type"] == "snapshot"
            # As a follower that installed a snapshot: the next block it folds is not
            # the one after the last (simulated by moving the read model back).
            venue.read.height -= 5
            await maker.sell(CALL, "0.1", "2500", post_only=True)
            note = await book.next()
            assert note.data["type"] == "snapshot"
            assert note.data["asks"] == [["new", 2500, Decimal("0.1")]]
            for client in (maker, watcher):
                await client.close()

    asyncio.run(main())


def test_orders_changed_in_skipped_blocks_are_reconciled_with_the_state() -> None:
    async def main() -> None:
        from deltasync.exchange.commands import CancelOrder

        async with running() as server:
            venue = server.venue
            client = await new_client(server)
            placed = await client.buy(CALL, "0.01", "600", post_only=True)
            account_id = (await client.get_account_summary()).raw["id"]
            # A block the read model never sees (as during a snapshot install).
            venue.shell.remove_block_listener(venue._on_block)
            await venue.shell.submit(CancelOrder(account_id, int(placed.order.order_id)))
            venue.shell.add_block_listener(venue._on_block)
            await client.buy(CALL, "0.01", "601", post_only=True)  # the next folded block
            again = await client.get_order_state(placed.order.order_id)
            assert again.order_state == "cancelled"
            assert [o.price for o in await client.get_open_orders()] == [Decimal(601)]
            await client.close()

    asyncio.run(main())
