"""Public methods, the response envelope, auth and bad input over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from decimal import Decimal

import pytest

from deltasync.api.auth import hmac_header, sign
from deltasync.api.ratelimit import RateLimit
from deltasync.client import ApiError
from deltasync.core import limits
from deltasync.exchange.genesis import default_genesis

from .harness import CALL, new_client, raw_get, raw_post, running

# Cheap, and the first tests to break when a venue reads the wall-clock date (issue 9).
pytestmark = pytest.mark.dates


def test_public_methods_answer_with_deribit_envelopes() -> None:
    async def main() -> None:
        async with running() as server:
            status, body = await raw_get(server, "/api/v2/public/get_time?id=7")
            assert status == 200 and body["id"] == "7"
            assert abs(body["result"] - time.time() * 1000) < 60_000
            for key in ("jsonrpc", "usIn", "usOut", "usDiff", "testnet"):
                assert key in body
            assert body["usDiff"] == body["usOut"] - body["usIn"] >= 0

            _, body = await raw_get(server, "/api/v2/public/test")
            assert "version" in body["result"]
            _, body = await raw_get(server, "/api/v2/public/status")
            assert body["result"]["locked"] == "false"
            _, body = await raw_get(server, "/api/v2/public/get_currencies")
            assert {c["currency"] for c in body["result"]} == {"BTC", "ETH", "USDC"}

            _, body = await raw_get(server, "/api/v2/public/get_instruments?currency=BTC&kind=option")
            names = [item["instrument_name"] for item in body["result"]]
            expected = [n for n in default_genesis().instruments if n.startswith("BTC")]
            assert names == expected
            item = body["result"][names.index(CALL)]
            assert item["strike"] == 100000 and item["option_type"] == "call"
            assert item["tick_size"] == 1 and item["min_trade_amount"] == Decimal("0.01")
            assert item["settlement_currency"] == "USDC" and item["kind"] == "option"

            _, body = await raw_get(server, f"/api/v2/public/get_instrument?instrument_name={CALL}")
            assert body["result"]["instrument_name"] == CALL
            _, body = await raw_get(server, "/api/v2/public/get_index_price?index_name=btc_usdc")
            assert body["result"]["index_price"] == 100000
            _, body = await raw_get(server, "/api/v2/public/get_index_price?index_name=btc_usd")
            assert body["result"]["index_price"] == 100000

            _, body = await raw_get(server, f"/api/v2/public/get_order_book?instrument_name={CALL}")
            book = body["result"]
            for key in ("mark_price", "mark_iv", "index_price", "greeks", "best_bid_price",
                        "best_ask_price", "bid_iv", "ask_iv", "bids", "asks", "change_id",
                        "underlying_price", "open_interest", "stats", "timestamp", "state"):
                assert key in book, key
            assert book["bids"] == [] and book["index_price"] == 100000

            _, body = await raw_get(server, f"/api/v2/public/ticker?instrument_name={CALL}")
            assert body["result"]["instrument_name"] == CALL
            _, body = await raw_get(
                server, "/api/v2/public/get_book_summary_by_currency?currency=ETH&kind=option")
            assert len(body["result"]) == len([n for n in expected]) and all(
                row["instrument_name"].startswith("ETH") for row in body["result"])
            _, body = await raw_get(
                server, f"/api/v2/public/get_last_trades_by_instrument?instrument_name={CALL}")
            assert body["result"] == {"trades": [], "has_more": False}

            # The same call as a JSON-RPC POST body, and POSTed to the method's URL.
            rpc = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "public/ticker",
                              "params": {"instrument_name": CALL}})
            status, body = await raw_post(server, "/api/v2", rpc)
            assert status == 200 and body["id"] == 3 and body["result"]["instrument_name"] == CALL
            status, body = await raw_post(server, "/api/v2/public/ticker", rpc)
            assert status == 200 and body["result"]["instrument_name"] == CALL

    asyncio.run(main())


def test_private_methods_need_credentials_and_never_leak_data() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server, ws=False)
            client_id, secret = client.client_id, client.client_secret
            assert client_id and secret
            path = "/api/v2/private/get_account_summary?currency=USDC"

            status, body = await raw_get(server, path)
            assert status == 401 and body["error"]["code"] == 13009 and "result" not in body

            basic = base64.b64encode(f"{client_id}:wrong".encode()).decode()
            status, body = await raw_get(server, path, {"Authorization": f"Basic {basic}"})
            assert body["error"]["code"] == 13004 and "result" not in body
            basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            status, body = await raw_get(server, path, {"Authorization": f"Basic {basic}"})
            assert status == 200 and body["result"]["balance"] == 1000000

            now_ms = time.time_ns() // 1_000_000
            header = hmac_header(client_id, secret, "GET", path, "", now_ms, "nonce-1")
            status, body = await raw_get(server, path, {"Authorization": header})
            assert status == 200 and body["result"]["currency"] == "USDC"
            status, body = await raw_get(server, path, {"Authorization": header})  # replayed
            assert body["error"]["code"] == 13004 and body["error"]["data"]["reason"] == (
                "nonce already used")
            stale_ms = now_ms - limits.api_timestamp_window_ms - 5_000
            stale = hmac_header(client_id, secret, "GET", path, "", stale_ms, "nonce-2")
            status, body = await raw_get(server, path, {"Authorization": stale})
            assert body["error"]["code"] == 13004 and "result" not in body
            forged = hmac_header(client_id, "not-the-secret", "GET", path, "", now_ms, "nonce-3")
            status, body = await raw_get(server, path, {"Authorization": forged})
            assert body["error"]["code"] == 13004
            other_uri = hmac_header(client_id, secret, "GET", "/api/v2/private/get_positions", "",
                                    now_ms, "nonce-4")
            status, body = await raw_get(server, path, {"Authorization": other_uri})
            assert body["error"]["code"] == 13004

            # client_credentials and client_signature grants, then bearer tokens
            _, grant = await raw_get(server, "/api/v2/public/auth?grant_type=client_credentials"
                                             f"&client_id={client_id}&client_secret={secret}")
            token = grant["result"]["access_token"]
            assert grant["result"]["token_type"] == "bearer"
            status, body = await raw_get(server, path, {"Authorization": f"Bearer {token}"})
            assert status == 200 and body["result"]["balance"] == 1000000
            status, body = await raw_get(server, path, {"Authorization": "Bearer nonsense"})
            assert body["error"]["code"] == 13009
            signature = sign(secret, now_ms, "n5", "")
            rpc = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": {
                "grant_type": "client_signature", "client_id": client_id, "timestamp": now_ms,
                "nonce": "n5", "data": "", "signature": signature}})
            status, body = await raw_post(server, "/api/v2", rpc)
            assert status == 200 and body["result"]["access_token"]
            status, body = await raw_post(server, "/api/v2", rpc)  # same nonce again
            assert body["error"]["code"] == 13004
            refresh = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "public/auth", "params": {
                "grant_type": "refresh_token", "refresh_token": grant["result"]["refresh_token"]}})
            status, body = await raw_post(server, "/api/v2", refresh)
            assert status == 200 and body["result"]["refresh_token"] != grant["result"][
                "refresh_token"]

            # HMAC over a POST body, through the SDK
            summary = await client.get_account_summary()
            assert summary.balance == Decimal(1000000)
            await client.close()

    asyncio.run(main())


def test_bad_input_is_an_error_and_changes_nothing() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server, ws=False)
            before = (await client.get_account_summary()).raw
            cases = [
                ("{not json", -32700),
                ('{"jsonrpc":"2.0","id":1,"method":"public/no_such_method"}', -32601),
                ('{"jsonrpc":"2.0","id":1,"method":"private/no_such_method"}', -32601),
                ('[{"jsonrpc":"2.0","id":1,"method":"public/test"}]', -32600),
                ('{"jsonrpc":"2.0","id":1,"method":42}', -32600),
                ('{"jsonrpc":"2.0","id":1,"method":"public/get_order_book","params":'
                 '{"instrument_name":7}}', -32602),
                ('{"jsonrpc":"2.0","id":1,"method":"public/get_order_book","params":'
                 '{"instrument_name":"BTC_USDC-25DEC26-100000-C","depth":"deep"}}', -32602),
                ('{"jsonrpc":"2.0","id":1,"method":"public/get_order_book","params":'
                 '{"instrument_name":"NOPE"}}', 10020),
                ('{"jsonrpc":"2.0","id":1,"method":"public/get_index_price","params":[1]}', -32602),
                ('{"jsonrpc":"2.0","id":1,"method":"public/ticker","params":{"instrument_name":'
                 '"BTC_USDC-25DEC26-100000-C","linearizable":"maybe"}}', -32602),
                ('{"jsonrpc":"2.0","id":1,"method":"public/get_time","params":{"x":NaN}}', -32700),
            ]
            for text, code in cases:
                status, body = await raw_post(server, "/api/v2", text)
                assert body["error"]["code"] == code, (text, body)
                assert status >= 400 and "result" not in body

            for params in ({"instrument_name": CALL, "amount": "abc", "price": 2500},
                           {"instrument_name": CALL, "amount": 0.001234567, "price": 2500},
                           {"instrument_name": CALL, "amount": -1, "price": 2500},
                           {"instrument_name": CALL, "amount": 0.1},  # limit without a price
                           {"instrument_name": CALL, "amount": 0.1, "price": 2500,
                            "time_in_force": "forever"},
                           {"instrument_name": CALL, "amount": 0.1, "price": 2500,
                            "label": "x" * 65},
                           {"instrument_name": CALL, "amount": 0.1, "type": "market",
                            "post_only": True}):
                with pytest.raises(ApiError) as refused:
                    await client.call("private/buy", params)
                assert refused.value.code == -32602, params

            huge = '{"jsonrpc":"2.0","id":1,"method":"public/test","params":{"x":"' + (
                "a" * (limits.http_body_bytes_max + 10)) + '"}}'
            status, body = await raw_post(server, "/api/v2", huge)
            assert status >= 400 and body["error"]["code"] == 11050

            after = (await client.get_account_summary()).raw
            assert after == before
            assert await client.get_open_orders() == []
            assert server.internal_errors == 0
            _, body = await raw_get(server, "/api/v2/public/test")  # still serving
            assert "result" in body
            await client.close()

    asyncio.run(main())


def test_too_many_requests_is_10028_per_caller() -> None:
    async def main() -> None:
        rate = RateLimit(credits_max=500, refill_per_s=10, request_credits=100)
        async with running(rate=rate) as server:
            codes = []
            for _ in range(8):
                _, body = await raw_get(server, "/api/v2/public/test")
                codes.append(body.get("error", {}).get("code"))
            assert codes[:5] == [None] * 5 and codes[5:] == [10028] * 3
            status, body = await raw_get(server, "/api/v2/public/test")
            assert status == 429

    asyncio.run(main())


def test_order_book_carries_the_margin_engines_mark_ivs_and_greeks() -> None:
    async def main() -> None:
        async with running() as server:
            maker = await new_client(server, ws=False)
            _, body = await raw_get(server, f"/api/v2/public/ticker?instrument_name={CALL}")
            mark = body["result"]["mark_price"]
            # No smile reported: the margin engine's fallback vol prices the mark.
            margin = next(e for e in server.venue.state.extensions if e.name == "margin")
            expected_iv = Decimal(margin.config.fallback_vol_ppm("BTC")) / 10_000
            assert body["result"]["mark_iv"] == expected_iv and mark > 0
            bid = (mark * Decimal("0.9") / 5).to_integral_value() * 5
            ask = (mark * Decimal("1.1") / 5).to_integral_value() * 5
            await maker.sell(CALL, "0.1", ask, post_only=True)
            await maker.buy(CALL, "0.1", bid, post_only=True)
            _, body = await raw_get(server, f"/api/v2/public/get_order_book?instrument_name={CALL}")
            book = body["result"]
            assert book["mark_price"] == mark and book["index_price"] == 100000
            assert book["bid_iv"] < book["mark_iv"] < book["ask_iv"]
            assert 0.4 < book["greeks"]["delta"] < 0.7 and book["greeks"]["vega"] > 0
            assert book["bids"] == [[bid, Decimal("0.1")]] and book["asks"] == [
                [ask, Decimal("0.1")]]
            _, body = await raw_get(server, "/api/v2/public/get_book_summary_by_currency"
                                            "?currency=BTC")
            row = next(r for r in body["result"] if r["instrument_name"] == CALL)
            assert row["mid_price"] == (bid + ask) / 2 and row["mark_iv"] == expected_iv
            await maker.close()

    asyncio.run(main())


def test_a_failing_handler_is_an_internal_error_not_a_dead_server() -> None:
    async def main() -> None:
        async with running() as server:
            venue = server.venue

            async def broken(*args: object, **kwargs: object) -> None:
                raise RuntimeError("a bug in a read")

            venue.ticker = broken  # type: ignore[method-assign]
            status, body = await raw_get(server, f"/api/v2/public/ticker?instrument_name={CALL}")
            assert status == 500 and body["error"]["code"] == -32603
            assert "a bug" not in json.dumps(body, default=str)  # no internals leak
            assert server.internal_errors == 1
            _, body = await raw_get(server, "/api/v2/public/get_time")
            assert "result" in body

    asyncio.run(main())


def test_an_unencodable_result_is_an_internal_error() -> None:
    async def main() -> None:
        async with running() as server:
            async def weird(*args: object, **kwargs: object) -> object:
                return {"not": "json", "x": object()}

            server.venue.cluster_status = weird  # type: ignore[method-assign]
            status, body = await raw_get(server, "/api/v2/public/deltasync_cluster_status?id=4")
            assert status == 500 and body["error"]["code"] == -32603 and body["id"] == "4"
            assert server.internal_errors == 1

    asyncio.run(main())


def test_the_sdk_renews_a_bearer_token_the_server_forgot() -> None:
    async def main() -> None:
        async with running() as server:
            client = await new_client(server, ws=False, auth_mode="bearer")
            await client.get_account_summary()
            principal = server.auth.bearer(client._token or "")
            server.auth.logout(principal)  # every token of the key is gone
            assert (await client.get_account_summary()).currency == "USDC"
            await client.close()

    asyncio.run(main())
