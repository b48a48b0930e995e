"""An asyncio client for deltasync's (and Deribit's) JSON-RPC v2 API.

    async with Client("http://127.0.0.1:8080", client_id, client_secret) as api:
        await api.connect()                       # WebSocket (optional: HTTP otherwise)
        result = await api.buy("BTC_USDC-27DEC26-100000-C", "0.1", price="2500")
        async for note in api.subscribe("book.BTC_USDC-27DEC26-100000-C.raw"):
            ...

Over HTTP, requests are authenticated with the ``deri-hmac-sha256`` header
(``auth_mode="hmac"``, the default) or a bearer token from ``public/auth``
(``auth_mode="bearer"``). Over the WebSocket the connection authenticates once
with ``client_signature``. Amounts and prices may be ``Decimal``, ``int`` or
decimal strings and travel as exact JSON numbers; results come back as
``Decimal``. Every request has an id and a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl

from deltasync.client.types import (
    AccountSummary,
    ApiError,
    Notification,
    Order,
    OrderBook,
    OrderResult,
    Position,
    Trade,
)

Number = Decimal | int | str


def _sign(secret: str, timestamp_ms: int, nonce: str, data: str) -> str:
    message = f"{timestamp_ms}\n{nonce}\n{data}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _number(value: Number) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError("amounts and prices are Decimal, int or str, never float")
    return value if isinstance(value, Decimal) else Decimal(str(value))


class _Encoder:
    """JSON with exact decimals (json.dumps would need floats for numbers)."""

    @staticmethod
    def dumps(value: Any) -> str:
        if isinstance(value, Decimal):
            return format(value.normalize() if value else Decimal(0), "f")
        if isinstance(value, dict):
            return "{" + ",".join(
                json.dumps(str(key)) + ":" + _Encoder.dumps(item) for key, item in value.items()
            ) + "}"
        if isinstance(value, list | tuple):
            return "[" + ",".join(_Encoder.dumps(item) for item in value) + "]"
        return json.dumps(value)


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


class Subscription:
    """Notifications of some channels, as an async iterator (bounded buffer)."""

    def __init__(self, client: Client, channels: list[str], buffer_max: int) -> None:
        self.client = client
        self.channels = channels
        self.queue: asyncio.Queue[Notification | None] = asyncio.Queue(maxsize=buffer_max)
        self.overflowed = False

    def _put(self, note: Notification | None) -> None:
        try:
            self.queue.put_nowait(note)
        except asyncio.QueueFull:
            self.overflowed = True  # the consumer is too slow; it learns on its next read

    def __aiter__(self) -> AsyncIterator[Notification]:
        return self

    async def __anext__(self) -> Notification:
        if self.overflowed:
            raise ApiError(-1, "subscription buffer overflowed: notifications were lost")
        note = await self.queue.get()
        if note is None:
            raise StopAsyncIteration
        return note

    async def next(self, timeout_s: float | None = None) -> Notification:
        return await asyncio.wait_for(self.__anext__(), timeout_s or self.client.timeout_s)

    async def close(self) -> None:
        await self.client.unsubscribe(self)


class Client:
    def __init__(
        self,
        base_url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        timeout_s: float = 10.0,
        auth_mode: str = "hmac",
        subscription_buffer_max: int = 10_000,
    ) -> None:
        assert auth_mode in ("hmac", "bearer")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout_s = timeout_s
        self.auth_mode = auth_mode
        self.subscription_buffer_max = subscription_buffer_max
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._token: str | None = None
        self._token_expires_s = 0.0

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._http

    async def connect(self, authenticate: bool = True) -> None:
        """Open the WebSocket; later calls go over it. Authenticates if credentials are set."""
        ws_url = self.base_url.replace("http://", "ws://").replace("https://", "wss://")
        self._ws = await self._session().ws_connect(f"{ws_url}/ws/api/v2", autoping=True)
        self._reader = asyncio.create_task(self._read_loop(self._ws))
        if authenticate and self.client_id and self.client_secret:
            await self.auth_signature()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- transport ---------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC call over the WebSocket if connected, else over HTTP."""
        if self._ws is not None and not self._ws.closed:
            return await self._ws_call(method, params or {})
        return await self.http_call(method, params or {})

    async def _ws_call(self, method: str, params: dict[str, Any]) -> Any:
        assert self._ws is not None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send_str(_Encoder.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
            return await asyncio.wait_for(future, self.timeout_s)
        finally:
            self._pending.pop(request_id, None)

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                payload = _loads(message.data)
                if payload.get("method") == "subscription":
                    params = payload["params"]
                    note = Notification(params["channel"], params["data"])
                    for sub in self._subscriptions.get(note.channel, ()):
                        sub._put(note)
                elif payload.get("method") == "heartbeat":
                    asyncio.create_task(self._ws_call("public/test", {}))
                else:
                    future = self._pending.get(payload.get("id"))
                    if future is not None and not future.done():
                        if "error" in payload:
                            error = payload["error"]
                            future.set_exception(
                                ApiError(error["code"], error["message"], error.get("data")))
                        else:
                            future.set_result(payload.get("result"))
        finally:
            closed = ApiError(-2, "websocket closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(closed)
            for subs in self._subscriptions.values():
                for sub in subs:
                    sub._put(None)

    async def http_call(self, method: str, params: dict[str, Any] | None = None,
                        *, http_method: str = "GET", authenticate: bool | None = None,
                        _retry: bool = True) -> Any:
        params = params or {}
        if authenticate is None:
            authenticate = method.startswith("private/")
        if http_method == "GET":
            query = urlencode({key: _query_value(value) for key, value in params.items()})
            uri = f"/api/v2/{method}" + (f"?{query}" if query else "")
            body = ""
        else:
            uri = "/api/v2"
            body = _Encoder.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                                   "params": params})
        headers = {"Content-Type": "application/json"} if body else {}
        if authenticate:
            headers["Authorization"] = await self._authorization(http_method, uri, body)
        # encoded=True: the URI goes out byte for byte as signed (no re-quoting).
        url = yarl.URL(self.base_url + uri, encoded=True)
        async with self._session().request(http_method, url, data=body or None,
                                           headers=headers) as response:
            payload = _loads(await response.text())
        if "error" in payload:
            error = payload["error"]
            if (error["code"] == 13009 and authenticate and self.auth_mode == "bearer"
                    and _retry):
                # The token is gone (a restarted dev venue, a logout): get a new one, once.
                self._token = None
                return await self.http_call(method, params, http_method=http_method,
                                            authenticate=True, _retry=False)
            raise ApiError(error["code"], error["message"], error.get("data"))
        return payload["result"]

    async def _authorization(self, http_method: str, uri: str, body: str) -> str:
        if not self.client_id or not self.client_secret:
            raise ApiError(13009, "unauthorized", {"reason": "no credentials configured"})
        if self.auth_mode == "bearer":
            if self._token is None or time.monotonic() > self._token_expires_s:
                grant = await self.http_call("public/auth", {
                    "grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self.client_secret}, authenticate=False)
                self._token = grant["access_token"]
                self._token_expires_s = time.monotonic() + int(grant["expires_in"]) * 0.9
            return f"Bearer {self._token}"
        timestamp_ms = time.time_ns() // 1_000_000
        nonce = secrets.token_hex(8)
        data = f"{http_method.upper()}\n{uri}\n{body}\n"
        signature = _sign(self.client_secret, timestamp_ms, nonce, data)
        return f"deri-hmac-sha256 id={self.client_id},ts={timestamp_ms},sig={signature},nonce={nonce}"

    # --- auth --------------------------------------------------------------------------------

    async def auth_credentials(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("public/auth", {
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self.client_secret})
        return result

    async def auth_signature(self, data: str = "") -> dict[str, Any]:
        assert self.client_id and self.client_secret, "credentials needed"
        timestamp_ms = time.time_ns() // 1_000_000
        nonce = secrets.token_hex(8)
        result: dict[str, Any] = await self.call("public/auth", {
            "grant_type": "client_signature", "client_id": self.client_id,
            "timestamp": timestamp_ms, "nonce": nonce, "data": data,
            "signature": _sign(self.client_secret, timestamp_ms, nonce, data)})
        return result

    # --- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, *channels: str) -> Subscription:
        if self._ws is None:
            raise ApiError(10030, "must_be_websocket_request")
        sub = Subscription(self, list(channels), self.subscription_buffer_max)
        for channel in channels:  # registered first: the snapshot may arrive before the reply
            self._subscriptions.setdefault(channel, []).append(sub)
        private = any(channel.startswith("user.") for channel in channels)
        try:
            await self.call("private/subscribe" if private else "public/subscribe",
                            {"channels": list(channels)})
        except BaseException:
            self._forget(sub)
            raise
        return sub

    def _forget(self, sub: Subscription) -> list[str]:
        unused = []
        for channel in sub.channels:
            subs = self._subscriptions.get(channel, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subscriptions.pop(channel, None)
                unused.append(channel)
        return unused

    async def unsubscribe(self, sub: Subscription) -> None:
        unused = self._forget(sub)
        sub._put(None)
        if unused and self._ws is not None and not self._ws.closed:
            await self.call("public/unsubscribe", {"channels": unused})

    # --- typed methods -----------------------------------------------------------------------

    async def get_time(self) -> int:
        return int(await self.call("public/get_time"))

    async def get_instruments(self, currency: str = "any", kind: str = "option",
                              expired: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(
            "public/get_instruments", {"currency": currency, "kind": kind, "expired": expired})
        return result

    async def get_order_book(self, instrument_name: str, depth: int = 10) -> OrderBook:
        return OrderBook.from_json(await self.call(
            "public/get_order_book", {"instrument_name": instrument_name, "depth": depth}))

    async def ticker(self, instrument_name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("public/ticker",
                                                 {"instrument_name": instrument_name})
        return result

    async def get_index_price(self, index_name: str) -> Decimal | None:
        result = await self.call("public/get_index_price", {"index_name": index_name})
        value = result["index_price"]
        return None if value is None else Decimal(str(value))

    async def get_last_trades(self, instrument_name: str, count: int = 10) -> list[Trade]:
        result = await self.call("public/get_last_trades_by_instrument",
                                 {"instrument_name": instrument_name, "count": count})
        return [Trade.from_json(trade) for trade in result["trades"]]

    async def _order(self, method: str, instrument_name: str, amount: Number,
                     price: Number | None, order_type: str, **flags: Any) -> OrderResult:
        params: dict[str, Any] = {"instrument_name": instrument_name, "amount": _number(amount),
                                  "type": order_type}
        if price is not None:
            params["price"] = _number(price)
        params.update({key: value for key, value in flags.items() if value is not None})
        return OrderResult.from_json(await self.call(method, params))

    async def buy(self, instrument_name: str, amount: Number, price: Number | None = None, *,
                  type: str = "limit", time_in_force: str | None = None,
                  post_only: bool | None = None, reduce_only: bool | None = None,
                  label: str | None = None) -> OrderResult:
        return await self._order("private/buy", instrument_name, amount, price, type,
                                 time_in_force=time_in_force, post_only=post_only,
                                 reduce_only=reduce_only, label=label)

    async def sell(self, instrument_name: str, amount: Number, price: Number | None = None, *,
                   type: str = "limit", time_in_force: str | None = None,
                   post_only: bool | None = None, reduce_only: bool | None = None,
                   label: str | None = None) -> OrderResult:
        return await self._order("private/sell", instrument_name, amount, price, type,
                                 time_in_force=time_in_force, post_only=post_only,
                                 reduce_only=reduce_only, label=label)

    async def edit(self, order_id: str, amount: Number, price: Number) -> OrderResult:
        return OrderResult.from_json(await self.call("private/edit", {
            "order_id": order_id, "amount": _number(amount), "price": _number(price)}))

    async def cancel(self, order_id: str) -> Order:
        return Order.from_json(await self.call("private/cancel", {"order_id": order_id}))

    async def cancel_all(self) -> int:
        return int(await self.call("private/cancel_all"))

    async def cancel_all_by_instrument(self, instrument_name: str) -> int:
        return int(await self.call("private/cancel_all_by_instrument",
                                   {"instrument_name": instrument_name}))

    async def cancel_by_label(self, label: str) -> int:
        return int(await self.call("private/cancel_by_label", {"label": label}))

    async def get_open_orders(self, instrument_name: str | None = None) -> list[Order]:
        if instrument_name is None:
            result = await self.call("private/get_open_orders")
        else:
            result = await self.call("private/get_open_orders_by_instrument",
                                     {"instrument_name": instrument_name})
        return [Order.from_json(order) for order in result]

    async def get_order_state(self, order_id: str) -> Order:
        return Order.from_json(await self.call("private/get_order_state", {"order_id": order_id}))

    async def get_user_trades(self, instrument_name: str, count: int = 10) -> list[Trade]:
        result = await self.call("private/get_user_trades_by_instrument",
                                 {"instrument_name": instrument_name, "count": count})
        return [Trade.from_json(trade) for trade in result["trades"]]

    async def get_positions(self, currency: str = "any") -> list[Position]:
        result = await self.call("private/get_positions", {"currency": currency})
        return [Position.from_json(item) for item in result]

    async def get_position(self, instrument_name: str) -> Position:
        return Position.from_json(await self.call("private/get_position",
                                                  {"instrument_name": instrument_name}))

    async def get_account_summary(self, currency: str = "USDC") -> AccountSummary:
        return AccountSummary.from_json(await self.call("private/get_account_summary",
                                                        {"currency": currency}))

    async def create_combo(self, legs: list[tuple[str, str, Number]]) -> dict[str, Any]:
        """``legs``: (instrument_name, "buy"|"sell", ratio amount)."""
        result: dict[str, Any] = await self.call("private/create_combo", {"trades": [
            {"instrument_name": name, "direction": direction, "amount": _number(amount)}
            for name, direction, amount in legs]})
        return result

    # --- deltasync's own methods ---------------------------------------------------------

    async def cluster_status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("public/deltasync_cluster_status")
        return result

    async def state_root(self, height: int | None = None) -> dict[str, Any]:
        params = {} if height is None else {"height": height}
        result: dict[str, Any] = await self.call("public/deltasync_state_root", params)
        return result

    async def account_proof(self, account_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("public/deltasync_account_proof",
                                                 {"account_id": account_id})
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("public/deltasync_stats")
        return result

    async def relay_oracle_report(self, source_id: str, underlying: str, price: Number,
                                  ts_ns: int, signature: bytes | str,
                                  vol_surface: list[list[int]] | None = None) -> dict[str, Any]:
        """Put a price source's signed report into the log (the venue verifies it)."""
        params: dict[str, Any] = {
            "source_id": source_id, "underlying": underlying, "price": _number(price),
            "ts_ns": ts_ns,
            "signature": signature.hex() if isinstance(signature, bytes) else signature,
        }
        if vol_surface is not None:
            params["vol_surface"] = vol_surface
        result: dict[str, Any] = await self.call("public/deltasync_oracle_report", params)
        return result

    async def create_demo_account(self, deposit: Number) -> dict[str, Any]:
        """``public/deltasync_create_account`` (demo clusters only); adopts the new key."""
        result: dict[str, Any] = await self.call("public/deltasync_create_account",
                                                 {"deposit": _number(deposit)})
        self.client_id = result["client_id"]
        self.client_secret = result["client_secret"]
        return result


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize() if value else Decimal(0), "f")
    if isinstance(value, list | dict):
        return _Encoder.dumps(value)
    return str(value)
