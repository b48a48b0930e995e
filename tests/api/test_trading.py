"""Every private method over a real WebSocket (SDK) and HTTP, against a LocalVenue."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from deltasync.client import ApiError
from deltasync.exchange import queries

from .harness import CALL, CALL_HIGH, PUT, new_client, running


def test_orders_trades_positions_and_account_over_websocket() -> None:
    async def main() -> None:
        async with running() as server:
            maker = await new_client(server)
            taker = await new_client(server, auth_mode="bearer")
            taker_http = await new_client(server, ws=False)

            placed = await maker.sell(CALL, "0.1", "2500", post_only=True, label="q1")
            order = placed.order
            assert order.order_state == "open" and order.price == Decimal(2500)
            assert order.amount == Decimal("0.1") and order.label == "q1" and order.post_only
            assert placed.trades == ()
            book = await maker.get_order_book(CALL)
            assert book.asks == ((Decimal(2500), Decimal("0.1")),) and book.change_id > 0
            assert book.best_ask_price == Decimal(2500)

            fill = await taker.buy(CALL, "0.04", "2600")
            assert fill.order.order_state == "filled"
            assert fill.order.average_price == Decimal(2500)
            assert [(t.price, t.amount, t.direction, t.liquidity) for t in fill.trades] == [
                (Decimal(2500), Decimal("0.04"), "buy", "T")]
            assert fill.trades[0].fee is not None and fill.trades[0].fee > 0

            state = await maker.get_order_state(order.order_id)
            assert state.filled_amount == Decimal("0.04") and state.order_state == "open"
            mine = await maker.get_user_trades(CALL)
            assert [(t.direction, t.liquidity, t.amount) for t in mine] == [
                ("sell", "M", Decimal("0.04"))]
            public = await taker.get_last_trades(CALL)
            assert [(t.price, t.amount, t.direction) for t in public] == [
                (Decimal(2500), Decimal("0.04"), "buy")]
            assert public[0].trade_seq == 1

            positions = await taker.get_positions()
            assert [(p.instrument_name, p.size, p.direction) for p in positions] == [
                (CALL, Decimal("0.04"), "buy")]
            assert (await maker.get_position(CALL)).size == Decimal("-0.04")
            flat = await maker.get_position(PUT)
            assert flat.size == 0 and flat.direction == "zero"
            summary = await taker.get_account_summary()
            paid = Decimal("0.04") * 2500 + fill.trades[0].fee
            assert summary.balance == Decimal(1000000) - paid
            ticker = await taker.ticker(CALL)
            assert ticker["last_price"] == 2500 and ticker["open_interest"] == Decimal("0.04")
            assert ticker["stats"]["volume"] == Decimal("0.04")

            # edit (amount down keeps priority), open orders, cancel
            edited = await maker.edit(order.order_id, "0.08", "2500")
            assert edited.order.amount == Decimal("0.08") and edited.order.order_id == order.order_id
            opens = await maker.get_open_orders()
            assert [(o.order_id, o.amount, o.filled_amount) for o in opens] == [
                (order.order_id, Decimal("0.08"), Decimal("0.04"))]
            assert [o.order_id for o in await maker.get_open_orders(CALL)] == [order.order_id]
            assert await maker.get_open_orders(PUT) == []
            cancelled = await maker.cancel(order.order_id)
            assert cancelled.order_state == "cancelled"
            assert (await maker.get_order_state(order.order_id)).order_state == "cancelled"
            with pytest.raises(ApiError) as gone:
                await maker.cancel(order.order_id)
            assert gone.value.code == 10004

            # a label with characters that need percent-encoding, over signed HTTP GET
            labelled = await taker_http.buy(PUT, "0.01", "1000", post_only=True,
                                            label="a b/c%d+é")
            assert labelled.order.label == "a b/c%d+é"
            assert await taker_http.cancel_by_label("a b/c%d+é") == 1

            # another account's order is invisible and cannot be cancelled
            other = await maker.sell(CALL_HIGH, "0.01", "1500", post_only=True)
            with pytest.raises(ApiError) as hidden:
                await taker.get_order_state(other.order.order_id)
            assert hidden.value.code == 10004
            with pytest.raises(ApiError) as not_yours:
                await taker_http.cancel(other.order.order_id)
            assert not_yours.value.code == 10004

            # cancel_all, cancel_all_by_instrument, cancel_by_label
            await maker.sell(CALL_HIGH, "0.01", "1505", post_only=True, label="grid")
            await maker.sell(PUT, "0.01", "3000", post_only=True, label="grid")
            assert await maker.cancel_by_label("grid") == 2
            assert await maker.cancel_all_by_instrument(CALL_HIGH) == 1
            await maker.buy(PUT, "0.01", "1000", post_only=True)
            await maker.buy(CALL, "0.01", "1000", post_only=True)
            assert await maker.cancel_all() == 2
            assert await maker.get_open_orders() == []

            # contracts instead of amount (0.01 BTC per contract), edit without a price
            by_contracts = await maker.call("private/buy", {
                "instrument_name": PUT, "contracts": 3, "price": 1000, "post_only": True})
            assert by_contracts["order"]["amount"] == Decimal("0.03")
            edited = await maker.call("private/edit", {
                "order_id": by_contracts["order"]["order_id"], "amount": Decimal("0.02")})
            assert edited["order"]["price"] == 1000 and edited["order"]["amount"] == Decimal("0.02")
            # The quote stays post-only: repricing it through the book is refused.
            await taker.sell(PUT, "0.01", "1500", post_only=True)
            with pytest.raises(ApiError) as crossing:
                await maker.call("private/edit", {"order_id": by_contracts["order"]["order_id"],
                                                  "amount": Decimal("0.02"), "price": 1500})
            assert crossing.value.code == 11054
            await taker.cancel_all()
            assert await maker.cancel_all() == 1

            # immediate-or-cancel remainder and a market order
            await maker.sell(CALL, "0.02", "2400", post_only=True)
            ioc = await taker_http.buy(CALL, "0.05", "2400", time_in_force="immediate_or_cancel")
            assert ioc.order.order_state == "cancelled"
            assert ioc.order.filled_amount == Decimal("0.02")
            await maker.sell(CALL, "0.01", "2450", post_only=True)
            market = await taker.buy(CALL, "0.01", type="market")
            assert market.order.order_type == "market" and market.order.order_state == "filled"

            for client in (maker, taker, taker_http):
                await client.close()

    asyncio.run(main())


def test_rejections_map_to_deribit_codes() -> None:
    async def main() -> None:
        async with running() as server:
            poor = await new_client(server, deposit="10")
            rich = await new_client(server)
            await rich.sell(CALL, "0.1", "2500", post_only=True)
            cases = [
                (poor.buy(CALL, "1", "2500"), 10009),  # not enough funds
                (rich.buy(CALL, "0.1", "2600", post_only=True), 11054),  # post-only would cross
                (rich.buy(CALL, "0.1", "2501"), 10043),  # 2501 is off the 5 tick above 1000
                (rich.buy(CALL, "0.015", "2000"), 10021),  # not whole contracts
                (rich.buy("BTC_USDC-25DEC26-100001-C", "0.1", "2000"), 10020),
                (rich.sell(PUT, "0.1", "3000", reduce_only=True), 11030),
            ]
            for call, code in cases:
                with pytest.raises(ApiError) as refused:
                    await call
                assert refused.value.code == code, refused.value
            assert (await poor.get_account_summary()).balance == Decimal(10)
            assert await poor.get_open_orders() == []
            await poor.close()
            await rich.close()

    asyncio.run(main())


def test_combo_created_and_traded_on_both_legs() -> None:
    async def main() -> None:
        async with running() as server:
            maker = await new_client(server)
            taker = await new_client(server)
            over_get = await new_client(server, ws=False)  # arrays as JSON in the query
            combo = await over_get.create_combo([(CALL, "buy", 1), (CALL_HIGH, "sell", 1)])
            await over_get.close()
            name = combo["id"]
            assert combo["legs"] == [{"instrument_name": CALL, "amount": 1},
                                     {"instrument_name": CALL_HIGH, "amount": -1}]
            details = await taker.call("public/get_combo_details", {"combo_id": name})
            assert details["legs"] == combo["legs"]
            await maker.sell(CALL, "0.1", "2500", post_only=True)
            await maker.buy(CALL_HIGH, "0.1", "1000", post_only=True)
            with pytest.raises(ApiError) as gtc:
                await taker.buy(name, "0.1", "1500", time_in_force="good_til_cancelled")
            assert gtc.value.code == 10031
            with pytest.raises(ApiError) as too_cheap:  # net 1500 needed, 1400 offered
                await taker.buy(name, "0.1", "1400", time_in_force="fill_or_kill")
            assert too_cheap.value.code == 11030
            result = await taker.buy(name, "0.1", "1500", time_in_force="fill_or_kill")
            assert result.order.order_state == "filled"
            assert result.order.instrument_name == name
            again = await taker.get_order_state(result.order.order_id)
            assert again.instrument_name == name and again.order_state == "filled"
            assert again.price == Decimal(1500) and again.filled_amount == Decimal("0.1")
            assert details["instrument_id"] == combo["instrument_id"] > 0
            assert sorted((t.instrument_name, t.direction, t.price) for t in result.trades) == [
                (CALL, "buy", Decimal(2500)), (CALL_HIGH, "sell", Decimal(1000))]
            sizes = {p.instrument_name: p.size for p in await taker.get_positions()}
            assert sizes == {CALL: Decimal("0.1"), CALL_HIGH: Decimal("-0.1")}
            await maker.close()
            await taker.close()

    asyncio.run(main())


def test_request_id_makes_a_retried_order_apply_once() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server)
            params = {"instrument_name": CALL, "amount": Decimal("0.01"), "price": 1000,
                      "post_only": True, "request_id": "retry-1"}
            first = await client.call("private/buy", params)
            second = await client.call("private/buy", params)
            assert first["order"]["order_id"] == second["order"]["order_id"]
            assert len(await client.get_open_orders()) == 1
            await client.close()

    asyncio.run(main())


def test_deltasync_methods_state_root_proof_and_status() -> None:
    async def main() -> None:
        from deltasync.commitment.merkle import Proof, verify_proof

        async with running() as server:
            client = await new_client(server, ws=False)
            status = await client.call("public/deltasync_cluster_status")
            assert status["nodes"][0]["role"] == "leader" and status["height"] >= 1
            root = await client.call("public/deltasync_state_root")
            assert len(root["state_root"]) == 64 and root["height"] == status["height"]
            at = await client.call("public/deltasync_state_root", {"height": root["height"]})
            assert at == root
            with pytest.raises(ApiError) as missing:
                await client.call("public/deltasync_state_root", {"height": 10**9})
            assert missing.value.code == 13020
            account_id = (await client.get_account_summary()).raw["id"]
            proof = await client.call("public/deltasync_account_proof", {"account_id": account_id})
            assert proof["included"]
            decoded = Proof.from_bytes(bytes.fromhex(proof["proof"]))
            assert verify_proof(bytes.fromhex(proof["state_root"]), decoded)
            assert proof["record"][0] == 1_000_000 * 10**6  # cash, raw micro-USDC
            await client.close()

    asyncio.run(main())


def test_one_websocket_pipelines_commands_in_order() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server)
            venue = server.venue
            blocks_before = venue.blocks_applied
            # Twenty orders sent back to back on one connection, without waiting.
            placed = await asyncio.gather(*(
                client.buy(CALL, "0.01", str(500 + i), post_only=True) for i in range(20)))
            ids = [int(result.order.order_id) for result in placed]
            assert ids == sorted(ids)  # sequenced in the order they were sent
            assert venue.blocks_applied - blocks_before < 20  # they shared blocks

            # A read sent after commands sees them; a cancel never overtakes an
            # earlier order in the block's cancels-first ordering.
            opens, cancelled, after = await asyncio.gather(
                client.get_open_orders(), client.cancel_all(), client.get_open_orders())
            assert len(opens) == 20 and cancelled == 20 and after == []
            rest, count = await asyncio.gather(client.buy(CALL, "0.01", "700"),
                                               client.cancel_all())
            assert rest.order.order_state == "open" and count == 1
            assert await client.get_open_orders() == []
            await client.close()

    asyncio.run(main())


def test_the_remaining_methods() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server)
            assert "version" in await client.call("public/hello", {"client_name": "t"})
            names = await client.call("public/get_index_price_names")
            assert names == ["btc_usdc", "eth_usdc"]
            summary = await client.call("public/get_book_summary_by_instrument",
                                        {"instrument_name": CALL})
            assert [row["instrument_name"] for row in summary] == [CALL]
            await client.buy(CALL, "0.01", "500", post_only=True)
            await client.buy("ETH_USDC-25DEC26-3000-C", "0.1", "10", post_only=True)
            by_currency = await client.call("private/get_open_orders_by_currency",
                                            {"currency": "ETH"})
            assert [o["instrument_name"] for o in by_currency] == ["ETH_USDC-25DEC26-3000-C"]
            assert await client.call("private/cancel_all_by_currency", {"currency": "BTC"}) == 1
            assert len(await client.get_open_orders()) == 1
            await client.buy(CALL, "0.01", "501", post_only=True, label="L")
            await client.buy(PUT, "0.01", "501", post_only=True, label="L")
            await client.buy("ETH_USDC-25DEC26-3000-P", "0.1", "10", post_only=True, label="L")
            assert await client.call("private/cancel_by_label",
                                     {"label": "L", "currency": "BTC"}) == 2
            assert len(await client.get_open_orders()) == 2
            other = await new_client(server)
            await client.buy(CALL, "0.01", "500", post_only=True)
            await other.sell(CALL, "0.01", "500")
            await other.sell("ETH_USDC-25DEC26-3000-C", "0.1", "10")
            by_btc = await client.call("public/get_last_trades_by_currency", {"currency": "BTC"})
            assert [t["instrument_name"] for t in by_btc["trades"]] == [CALL]
            mine = await client.call("private/get_user_trades_by_currency",
                                     {"currency": "any", "sorting": "asc"})
            assert [(t["instrument_name"], t["liquidity"]) for t in mine["trades"]] == [
                (CALL, "M"), ("ETH_USDC-25DEC26-3000-C", "M")]
            await other.close()
            before = (await client.get_account_summary()).balance
            deposited = await client.call("private/deltasync_deposit", {"amount": 5})
            assert deposited["balance"] == before + 5
            proof = await client.call("private/deltasync_account_proof")
            assert proof["included"] and proof["account_id"] == deposited["id"]
            await client.call("private/logout")
            await asyncio.sleep(0.05)
            assert client._ws is not None and client._ws.closed  # logout ends the session
            await client.close()

    asyncio.run(main())


def test_an_index_drop_liquidates_through_the_book_and_the_api_shows_it() -> None:
    async def main() -> None:
        from deltasync.venue.marks import compute_marks

        async with running(venue_options={"oracle_interval_s": 0.05}) as server:
            venue = server.venue
            maker = await new_client(server, deposit="10000000")
            short = await new_client(server, deposit="20000")
            mark = (await maker.ticker(PUT))["mark_price"]
            price = str(int(mark) // 5 * 5)
            await maker.buy(PUT, "1", price, post_only=True)
            sold = await short.sell(PUT, "1", price)
            assert sold.order.order_state == "filled"
            # Offer the put where the liquidation will buy it back after a 20 % drop.
            instrument = queries.instrument(venue.state, PUT)
            margin = next(e for e in venue.state.extensions if e.name == "margin")
            vol = margin.config.fallback_vol_ppm("BTC")
            after = compute_marks(instrument, 80_000 * 10**6, vol, venue.state.time_ns)
            ask = (after.mark_price_raw * 102 // 100) // 5_000_000 * 5
            await maker.sell(PUT, "1", str(ask), post_only=True)
            venue.set_demo_price("BTC", 80_000 * 10**6)

            async def liquidated() -> bool:
                stats = await maker.call("public/deltasync_stats")
                return stats["events"].get("LiquidationStarted", 0) > 0

            for _ in range(100):
                if await liquidated():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no liquidation after a 20 % index drop")
            trades = await maker.get_last_trades(PUT)
            assert any(t.raw["liquidation"] == "T" for t in trades), trades
            position = await short.get_position(PUT)
            assert Decimal(-1) < position.size <= 0
            for client in (maker, short):
                await client.close()

    asyncio.run(main())


def test_expiry_settles_positions_and_the_api_reports_it() -> None:
    async def main() -> None:
        from deltasync.core.ids import parse_option_name
        from deltasync.core.timeutil import NS_PER_SECOND
        from deltasync.exchange.instruments import expiry_ns_of

        short_dated = "BTC_USDC-27NOV26-95000-C"
        expiry_ns = expiry_ns_of(parse_option_name(short_dated).expiry_days)
        clock = [expiry_ns - 60 * NS_PER_SECOND]
        options = {"clock_ns": lambda: clock[0], "oracle_interval_s": 0.01}
        async with running(venue_options=options) as server:
            venue = server.venue
            buyer = await new_client(server)
            seller = await new_client(server)
            await seller.sell(short_dated, "0.1", "5000", post_only=True)
            await buyer.buy(short_dated, "0.1", "5000")
            assert (await buyer.get_position(short_dated)).size == Decimal("0.1")

            clock[0] = expiry_ns + NS_PER_SECOND  # block time passes the expiry
            venue.set_demo_price("BTC", 100_000 * 10**6)

            async def settled() -> bool:
                return (await buyer.stats())["events"].get("InstrumentSettled", 0) > 0

            for _ in range(100):
                if await settled():
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the expiry never settled")
            ticker = await buyer.ticker(short_dated)
            assert ticker["state"] == "closed" and ticker["settlement_price"] > 0
            expired = await buyer.get_instruments("BTC", expired=True)
            assert short_dated in [item["instrument_name"] for item in expired]
            assert short_dated not in [i["instrument_name"] for i in await buyer.get_instruments("BTC")]
            assert all(p.instrument_name != short_dated for p in await buyer.get_positions())
            with pytest.raises(ApiError) as closed:
                await buyer.buy(short_dated, "0.1", "5000")
            assert closed.value.code == 10010  # already_closed
            for client in (buyer, seller):
                await client.close()

    asyncio.run(main())
