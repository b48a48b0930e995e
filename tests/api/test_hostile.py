"""Hostile input of issue 10, driven as the probe did: real HTTP and WebSocket against a
real server (a LocalVenue, a one-node NodeCore under the asyncio shell, behind an ApiServer).

Each request is refused with a structured error that names the parameter; afterwards the
server still answers, a normal order still goes through and nothing else changed."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from deltasync.api.server import ApiServer
from deltasync.client import ApiError, Client

from .harness import CALL, PUT, new_client, raw_post, running

LONE_SURROGATE = "\ud800"  # json.dumps spells it as the escape the probe sent


def _rpc(method: str, params: dict[str, Any], request_id: Any = "p") -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _report(**fields: Any) -> dict[str, Any]:
    return {"source_id": "probe", "underlying": "BTC", "price": 100000, "ts_ns": 1,
            "signature": "00", **fields}


def _basic(client: Client) -> str:
    assert client.client_id is not None and client.client_secret is not None
    return "Basic " + base64.b64encode(
        f"{client.client_id}:{client.client_secret}".encode()).decode()


async def _still_trading(server: ApiServer, client: Client) -> None:
    """The server answers, a normal order goes through, the node is running."""
    status, body = await raw_post(server, "/api/v2", _rpc("public/test", {}))
    assert status == 200 and "version" in body["result"]
    placed = await client.call("private/buy", {"instrument_name": CALL, "amount": "0.1",
                                               "type": "limit", "price": "100"})
    assert placed["order"]["order_state"] == "open"
    assert not server.venue.shell.stopped  # type: ignore[attr-defined]
    assert server.internal_errors == 0


def test_values_the_log_cannot_carry_are_refused_at_the_edge_and_the_node_keeps_serving() -> None:
    """Defect 1: a lone surrogate in ``source_id``/``underlying`` of an oracle report, an
    integer beyond int64 in ``vol_surface`` and in ``order_id`` of ``private/cancel``."""

    async def main() -> None:
        async with running() as server:
            client = await new_client(server)
            try:
                poisons = {
                    "source_id": _report(source_id=LONE_SURROGATE),
                    "underlying": _report(underlying=LONE_SURROGATE),
                    "vol_surface": _report(vol_surface=[[1, 2**70, 3, 4, 5, 6]]),
                }
                for param, params in poisons.items():
                    status, body = await raw_post(
                        server, "/api/v2", _rpc("public/deltasync_oracle_report", params))
                    assert status == 400, (param, body)
                    assert body["error"]["code"] == -32602
                    assert body["error"]["data"]["param"] == param
                with pytest.raises(ApiError) as refused:
                    await client.call("private/cancel", {"order_id": 1180591620717411303424})
                assert refused.value.code == -32602 and refused.value.data["param"] == "order_id"
                await _still_trading(server, client)
            finally:
                await client.close()

    asyncio.run(main())


def test_a_decimal_with_a_huge_exponent_is_refused_at_once_naming_the_parameter() -> None:
    """Defect 2: ``private/create_combo`` with a leg ``"amount":"1e999999"`` blocked the
    event loop for ~26 s (``int()`` of a million-digit number). Every decimal parameter is
    now bounded in digits and exponent before any arithmetic."""

    async def main() -> None:
        async with running() as server:
            client = await new_client(server)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                for amount in ('"1e999999"', "1e999999", '"-1e-999999"', "1" * 41):
                    # the JSON text as the probe wrote it: a string or a bare number
                    legs = [{"instrument_name": CALL, "amount": "AMOUNT", "direction": "buy"},
                            {"instrument_name": PUT, "amount": 1, "direction": "sell"}]
                    body = _rpc("private/create_combo", {"trades": legs}).replace(
                        '"AMOUNT"', amount)
                    status, answer = await raw_post(server, "/api/v2", body,
                                                    {"Authorization": _basic(client)})
                    assert status == 400 and answer["error"]["code"] == -32602, answer
                    assert answer["error"]["data"]["param"] == "trades[0].amount", answer
                for method, params in (
                        ("private/buy", {"instrument_name": CALL, "amount": "1e999999",
                                         "price": "100"}),
                        ("private/buy", {"instrument_name": CALL, "amount": "0.1",
                                         "price": "1e-999999"}),
                        ("private/sell", {"instrument_name": CALL, "contracts": "9e999999",
                                          "price": "100"}),
                        ("private/buy", {"instrument_name": CALL, "amount": 10**4000,
                                         "price": "100"})):
                    with pytest.raises(ApiError) as refused:
                        await client.call(method, params)
                    assert refused.value.code == -32602
                    assert refused.value.data["param"] in params, refused.value.data
                # generous for a shared machine; the defect took ~26 s for one request
                assert loop.time() - started < 5.0
                await _still_trading(server, client)
            finally:
                await client.close()

    asyncio.run(main())
