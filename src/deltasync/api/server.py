"""The HTTP and WebSocket server (aiohttp), Deribit's transports.

- ``GET  /api/v2/{public|private}/METHOD?param=value``
- ``POST /api/v2/{public|private}/METHOD`` with a JSON-RPC body (or a bare params object)
- ``POST /api/v2`` with a JSON-RPC 2.0 body
- ``GET  /ws/api/v2`` upgraded to a WebSocket carrying JSON-RPC requests and
  ``subscription`` notifications

Every answer carries ``jsonrpc``, ``id``, ``result`` or ``error``, ``usIn``,
``usOut``, ``usDiff`` and ``testnet``. A request can fail, never the server:
parse errors, unknown methods and bad params are JSON-RPC errors; an
exception in a handler is logged and answered with -32603; a handler that
takes longer than ``api_request_timeout_s`` is answered with 13028. Requests
on one WebSocket are pipelined but keep their order: commands are sequenced
in the order they arrived (a ``buy`` then a ``cancel`` stays in that order),
and any other request sees every command sent before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from deltasync.api import errors
from deltasync.api.auth import Authenticator, KeyStore, Principal
from deltasync.api.errors import ApiError
from deltasync.api.jsonio import JsonError, dumps, loads
from deltasync.api.methods import WRITE_METHODS, Call, Methods
from deltasync.api.params import Params
from deltasync.api.ratelimit import CreditBuckets, RateLimit
from deltasync.api.subscriptions import Hub, Session, WritePipeline
from deltasync.core import limits
from deltasync.venue.port import Venue

log = logging.getLogger(__name__)

_HTTP_STATUS = {
    errors.UNAUTHORIZED: 401,
    errors.INVALID_CREDENTIALS: 401,
    errors.TOO_MANY_REQUESTS: 429,
    errors.FORBIDDEN: 403,
    errors.METHOD_NOT_FOUND: 404,
    errors.INTERNAL_ERROR: 500,
    errors.TEMPORARILY_UNAVAILABLE: 503,
}


def _now_us() -> int:
    return time.time_ns() // 1_000


class ApiServer:
    """The API of one venue on ``host:port``. ``start()`` binds, ``stop()`` closes."""

    def __init__(
        self,
        venue: Venue,
        host: str = "127.0.0.1",
        port: int = 0,
        keystore: KeyStore | None = None,
        demo_mode: bool = False,
        *,
        rate: RateLimit | None = None,
        auth: Authenticator | None = None,
        request_timeout_s: float = limits.api_request_timeout_s,
        ws_queue_max: int = limits.api_ws_outbound_messages_max,
        flush_interval_s: float = 0.1,
    ) -> None:
        self.venue = venue
        self.host = host
        self.port = port
        self.keys = keystore if keystore is not None else KeyStore()
        self.demo_mode = demo_mode
        self.auth = auth or Authenticator(self.keys)
        self.buckets = CreditBuckets(rate or RateLimit())
        self.hub = Hub(venue, flush_interval_s=flush_interval_s)
        self.methods = Methods(venue, self.auth, self.keys, self.hub, demo_mode)
        self.request_timeout_s = request_timeout_s
        self.ws_queue_max = ws_queue_max
        self.sessions: set[Session] = set()
        self.internal_errors = 0
        self._session_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._ws_tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=limits.http_body_bytes_max)
        app.router.add_get("/ws/api/v2", self._ws)
        app.router.add_get("/ws/api/v2/", self._ws)
        app.router.add_post("/api/v2", self._post_rpc)
        app.router.add_post("/api/v2/", self._post_rpc)
        app.router.add_get("/api/v2/{scope}/{method}", self._http_method)
        app.router.add_post("/api/v2/{scope}/{method}", self._http_method)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        for session in list(self.sessions):
            session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- one request, any transport ----------------------------------------------

    async def _dispatch(
        self, method: Any, params: Any, principal: Principal | None, session: Session | None,
        caller: str, pipeline: WritePipeline | None = None,
    ) -> Any:
        if type(method) is not str or not method or len(method) > 128:
            raise ApiError(errors.INVALID_REQUEST, {"reason": "method must be a string"})
        bucket = principal.client_id if principal is not None else caller
        if not self.buckets.try_spend(bucket):
            raise ApiError(errors.TOO_MANY_REQUESTS)
        call = Call(method, Params(params), principal, session, pipeline)
        try:
            return await asyncio.wait_for(self.methods.call(call), self.request_timeout_s)
        except ApiError:
            raise
        except TimeoutError:
            raise ApiError(errors.TEMPORARILY_UNAVAILABLE, {"reason": "request timed out"}) from None
        except Exception:
            log.exception("handler for %s failed", method)
            self.internal_errors += 1
            raise ApiError(errors.INTERNAL_ERROR) from None

    def _internal_error(self) -> ApiError:
        """A request failed outside its handler (a bug): logged once, answered -32603."""
        self.internal_errors += 1
        log.exception("request failed")
        return ApiError(errors.INTERNAL_ERROR)

    def _envelope(self, request_id: Any, us_in: int, result: Any = None,
                  error: ApiError | None = None) -> dict[str, Any]:
        if type(request_id) not in (int, str) and request_id is not None:
            request_id = None
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if error is None:
            body["result"] = result
        else:
            body["error"] = error.to_json()
        us_out = _now_us()
        body.update({"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in,
                     "testnet": self.demo_mode})
        return body

    # --- HTTP ---------------------------------------------------------------------------

    def _text(self, body: dict[str, Any]) -> tuple[str, int | None]:
        """The JSON of an answer and its error code (None: a result). A result that
        cannot be encoded is a bug: it is logged and answered with -32603."""
        try:
            return dumps(body), body["error"]["code"] if "error" in body else None
        except (TypeError, ValueError, RecursionError):
            self.internal_errors += 1
            log.exception("answer not encodable")
            error = self._envelope(body.get("id"), body["usIn"],
                                   error=ApiError(errors.INTERNAL_ERROR))
            return dumps(error), errors.INTERNAL_ERROR

    def _reply(self, body: dict[str, Any]) -> web.Response:
        text, code = self._text(body)
        status = 200 if code is None else _HTTP_STATUS.get(code, 400)
        return web.Response(text=text, status=status, content_type="application/json")

    async def _read_body(self, request: web.Request) -> str:
        if (request.content_length or 0) > limits.http_body_bytes_max:
            raise ApiError(errors.BAD_REQUEST, {"reason": "body too large",
                                                "max_bytes": limits.http_body_bytes_max})
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(errors.BAD_REQUEST, {"reason": "body too large",
                                                "max_bytes": limits.http_body_bytes_max}) from None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ApiError(errors.PARSE_ERROR, {"reason": "body is not UTF-8"}) from None

    def _http_principal(self, request: web.Request, body: str) -> Principal | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        # The URI exactly as sent: the client signed its own percent-encoding.
        return self.auth.http_header(header, request.method, request.raw_path, body)

    async def _http_method(self, request: web.Request) -> web.Response:
        us_in = _now_us()
        request_id: Any = None
        try:
            method = f"{request.match_info['scope']}/{request.match_info['method']}"
            body = await self._read_body(request) if request.method == "POST" else ""
            if request.method == "POST" and body.strip():
                payload = _parse(body)
                if isinstance(payload, dict) and "method" in payload:
                    request_id = payload.get("id")
                    if payload["method"] != method:
                        raise ApiError(errors.INVALID_REQUEST,
                                       {"reason": "method in the body differs from the URL"})
                    params = payload.get("params")
                else:
                    params = payload
            else:
                params = {key: _query_value(key, value) for key, value in request.query.items()}
                request_id = params.pop("id", None)
            principal = self._http_principal(request, body)
            result = await self._dispatch(method, params, principal, None, _peer(request))
            return self._reply(self._envelope(request_id, us_in, result))
        except ApiError as error:
            return self._reply(self._envelope(request_id, us_in, error=error))
        except Exception:  # a bug outside the handler: this request fails, not the server
            return self._reply(self._envelope(request_id, us_in, error=self._internal_error()))

    async def _post_rpc(self, request: web.Request) -> web.Response:
        us_in = _now_us()
        request_id: Any = None
        try:
            body = await self._read_body(request)
            payload = _parse(body)
            if not isinstance(payload, dict):
                raise ApiError(errors.INVALID_REQUEST, {"reason": "expected one JSON-RPC object"})
            request_id = payload.get("id")
            principal = self._http_principal(request, body)
            result = await self._dispatch(payload.get("method"), payload.get("params"), principal,
                                          None, _peer(request))
            return self._reply(self._envelope(request_id, us_in, result))
        except ApiError as error:
            return self._reply(self._envelope(request_id, us_in, error=error))
        except Exception:  # a bug outside the handler: this request fails, not the server
            return self._reply(self._envelope(request_id, us_in, error=self._internal_error()))

    # --- WebSocket ----------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if len(self.sessions) >= limits.api_ws_sessions_max:
            return self._reply(self._envelope(None, _now_us(), error=ApiError(
                errors.TEMPORARILY_UNAVAILABLE, {"reason": "too many sessions"})))
        ws = web.WebSocketResponse(max_msg_size=limits.ws_message_bytes_max, heartbeat=30.0)
        await ws.prepare(request)
        session = Session(f"ws:{next(self._session_ids)}", self.ws_queue_max)
        self.sessions.add(session)
        writer = asyncio.create_task(self._ws_writer(ws, session))
        transport = request.transport

        def drop_slow_consumer() -> None:
            # The writer may be stuck in a send to a client that stopped reading:
            # abort the connection instead of waiting for it.
            log.warning("dropping %s: outbound queue full (slow consumer)", session.name)
            writer.cancel()
            if transport is not None:
                transport.abort()

        session.on_overflow = drop_slow_consumer
        inflight = asyncio.Semaphore(limits.api_ws_requests_inflight_max)
        handlers: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            handlers.discard(task)
            inflight.release()

        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    if message.type is WSMsgType.BINARY:
                        session.push(dumps(self._envelope(None, _now_us(), error=ApiError(
                            errors.PARSE_ERROR, {"reason": "text frames only"}))))
                    continue
                if session.closed:
                    break
                await inflight.acquire()  # backpressure: stop reading while too many run
                task = asyncio.create_task(self._ws_request(message.data, session))
                handlers.add(task)
                task.add_done_callback(finished)
        finally:
            for task in list(handlers):
                task.cancel()  # queued commands still apply; only their answers are dropped
            if session.heartbeat is not None:
                session.heartbeat.cancel()
            self.hub.drop_session(session)
            self.sessions.discard(session)
            session.close()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await ws.close()
        return ws

    async def _ws_request(self, text: str, session: Session) -> None:
        """One WebSocket request, pipelined in arrival order.

        Requests take the session's gate in the order they arrived. A trading
        command gives the gate back as soon as the venue has queued it, so the
        next command can be queued behind it while the first one commits; the
        venue first asks the exchange for the command's sequencing class, and a
        command that would overtake an earlier one of a higher class in a shared
        block waits for the earlier ones (``WritePipeline``). Any other request
        keeps the gate and first waits for the session's queued commands to
        finish, so it sees their effects (read-your-writes per connection) and
        runs before anything sent after it.
        """
        us_in = _now_us()
        request_id: Any = None
        await session.gate.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                session.gate.release()

        try:
            payload = _parse(text)
            if not isinstance(payload, dict):
                raise ApiError(errors.INVALID_REQUEST, {"reason": "expected one JSON-RPC object"})
            request_id = payload.get("id")
            result = await self._ws_call(session, payload.get("method"), payload.get("params"),
                                         release)
            session.push(self._text(self._envelope(request_id, us_in, result))[0])
            if session.close_after_reply:
                session.close()
        except ApiError as error:
            session.push(self._text(self._envelope(request_id, us_in, error=error))[0])
        except Exception:  # a bug outside the handler: answered, never a dead task
            internal = self._internal_error()
            session.push(self._text(self._envelope(request_id, us_in, error=internal))[0])
        finally:
            release()

    async def _ws_call(self, session: Session, method: Any, params: Any,
                       release_gate: Callable[[], None]) -> Any:
        if type(method) is not str:  # a list or an object cannot even be looked up
            raise ApiError(errors.INVALID_REQUEST, {"reason": "method must be a string"})
        writes = session.writes
        if method in WRITE_METHODS:
            pipeline = WritePipeline(writes, release_gate)
            writes.begin()
            try:
                return await self._dispatch(method, params, session.principal, session,
                                            session.name, pipeline)
            finally:
                release_gate()
                writes.end(pipeline.admitted)
        await writes.wait_until(lambda: writes.requests == 0)
        if method in ("public/set_heartbeat", "public/disable_heartbeat"):
            self._heartbeat(session, method, params)
            return "ok"
        return await self._dispatch(method, params, session.principal, session, session.name)

    def _heartbeat(self, session: Session, method: str, params: Any) -> None:
        if session.heartbeat is not None:
            session.heartbeat.cancel()
            session.heartbeat = None
        if method == "public/disable_heartbeat":
            return
        interval = Params(params).integer("interval", low=10, high=3600)

        async def beat() -> None:
            while not session.closed:
                await asyncio.sleep(interval)
                session.push(dumps({"jsonrpc": "2.0", "method": "heartbeat",
                                    "params": {"type": "test_request"}}))

        session.heartbeat = asyncio.create_task(beat())

    async def _ws_writer(self, ws: web.WebSocketResponse, session: Session) -> None:
        try:
            while True:
                text = await session.queue.get()
                if text is None or ws.closed:
                    break
                await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            session.close()
        if not ws.closed and not session.overflowed:
            await ws.close()


def _parse(text: str) -> Any:
    try:
        return loads(text)
    except JsonError as exc:
        raise ApiError(errors.PARSE_ERROR, {"reason": str(exc)[:200]}) from None


_JSON_QUERY_PARAMS = frozenset({"trades", "channels", "vol_surface"})


def _query_value(key: str, value: str) -> Any:
    """GET parameters are strings; the array parameters travel as JSON text."""
    return _parse(value) if key in _JSON_QUERY_PARAMS else value


def _peer(request: web.Request) -> str:
    return f"ip:{request.remote or '?'}"
