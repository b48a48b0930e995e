"""The native client gateway: pipelined msgpack commands over TCP.

The Deribit-compatible API (``deltasync.api``) is what trading clients use;
this gateway is the fast path for tools inside the operator's trust boundary
(benchmarks, load generators, the fault tests): no JSON, no per-request auth,
many requests in flight per connection.

Wire: length-prefixed frames (``net.framing``), each a canonical msgpack list.

1. server -> client: ``["deltasync-gw/1", nonce16]``
2. client -> server: ``HMAC-SHA256(cluster_secret, b"deltasync-gateway" + nonce)``;
   a wrong MAC closes the connection.
3. client -> server: ``[req_id, OP_SUBMIT, session, request, command_wire]``,
   ``[req_id, OP_STATUS]``, ``[req_id, OP_READ]`` (a linearizable read barrier),
   ``[req_id, OP_ROOT, height]`` or ``[req_id, OP_BALANCE, account]``;
   server -> client: ``[req_id, ok, result]`` in completion order.
   A submit answers ``[height, error, [event_wire, ...]]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import secrets
from typing import TYPE_CHECKING, Any

from deltasync.core.codec import decode, encode, encode_trusted
from deltasync.core.errors import DeltasyncError
from deltasync.core.limits import gateway_auth_timeout_s as auth_timeout_s
from deltasync.core.limits import gateway_connections_max as connections_max
from deltasync.core.limits import gateway_frame_bytes_max
from deltasync.core.limits import gateway_inflight_per_connection_max as inflight_per_connection_max
from deltasync.net.framing import FrameDecoder, encode_frame
from deltasync.node.driver import Answer

if TYPE_CHECKING:
    from deltasync.node.server import NodeServer

log = logging.getLogger("deltasync.gateway")

PROTOCOL = "deltasync-gw/1"
OP_SUBMIT = 1
OP_STATUS = 2
OP_READ = 3
OP_ROOT = 4  # [req_id, OP_ROOT, height] -> [height, root, time_ns] or None
OP_BALANCE = 5  # [req_id, OP_BALANCE, account] -> [cash, deposited, withdrawn] or None


def _mac(secret: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, b"deltasync-gateway" + nonce, hashlib.sha256).digest()


class GatewayServer:
    def __init__(self, node: NodeServer, host: str, port: int) -> None:
        self.node = node
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= connections_max:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, DeltasyncError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = secrets.token_bytes(16)
        writer.write(encode_frame(encode([PROTOCOL, nonce])))
        decoder = FrameDecoder(gateway_frame_bytes_max)
        expected = _mac(self.node.config.cluster_secret, nonce)
        proof = await asyncio.wait_for(self._next_frame(reader, decoder), auth_timeout_s)
        if proof is None or not hmac.compare_digest(proof, expected):
            return
        replies = _ReplyBuffer(writer)
        while True:
            if replies.inflight >= inflight_per_connection_max:
                await replies.wait_below(inflight_per_connection_max // 2)
            frame = await self._next_frame(reader, decoder)
            if frame is None:
                return
            self._handle(frame, replies)
            while (frame := decoder.next_frame()) is not None:  # everything already buffered
                self._handle(frame, replies)

    @staticmethod
    async def _next_frame(reader: asyncio.StreamReader, decoder: FrameDecoder) -> bytes | None:
        while True:
            frame = decoder.next_frame()
            if frame is not None:
                return frame
            data = await reader.read(65536)
            if not data:
                return None
            decoder.receive_data(data)

    def _handle(self, frame: bytes, replies: _ReplyBuffer) -> None:
        req_id: Any = None
        try:
            message = decode(frame)
            req_id, op = message[0], message[1]
            if op == OP_SUBMIT:
                _, _, session, request, command_wire = message
                self.node.core.codec.decode(command_wire)  # validate before it enters the log
                codec = self.node.core.codec
                replies.inflight += 1

                def answered(answer: Answer, req_id: Any = req_id) -> None:
                    events = [codec.event_wire(e) for e in answer.events]
                    replies.done(req_id, True, [answer.height, answer.error, events])

                if not self.node.submit_nowait(command_wire, session, request, answered):
                    replies.done(req_id, False, "overloaded: too many pending requests")
                return
            if op == OP_STATUS:
                result: Any = self.node.status()
                result.pop("transport", None)
            elif op == OP_READ:
                replies.inflight += 1
                asyncio.ensure_future(self._read(req_id, replies))
                return
            elif op == OP_ROOT:
                height = message[2]
                found = self.node.core.root_at(height)
                result = None if found is None else [height, found[0], found[1]]
            elif op == OP_BALANCE:
                account = self.node.core.machine.accounts.get(message[2])
                result = None if account is None else [account.cash, account.deposited, account.withdrawn]
            else:
                raise ValueError(f"unknown op {op}")
            replies.inflight += 1
            replies.done(req_id, True, result)
        except (DeltasyncError, ValueError, TypeError, IndexError, KeyError) as exc:
            replies.inflight += 1
            replies.done(req_id if isinstance(req_id, int) else None, False, str(exc)[:500])

    async def _read(self, req_id: Any, replies: _ReplyBuffer) -> None:
        try:
            await self.node.read_barrier()
            replies.done(req_id, True, self.node.core.tip.height)
        except DeltasyncError as exc:
            replies.done(req_id, False, str(exc)[:500])


class _ReplyBuffer:
    """Replies of one connection, written in one batch per event-loop turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.inflight = 0
        self._frames: list[bytes] = []
        self._scheduled = False
        self._below: asyncio.Event = asyncio.Event()
        self._threshold = 0

    def done(self, req_id: Any, ok: bool, result: Any) -> None:
        self.inflight -= 1
        self._frames.append(encode_frame(encode_trusted([req_id, ok, result])))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        if self.inflight <= self._threshold:
            self._below.set()

    def _flush(self) -> None:
        self._scheduled = False
        frames, self._frames = self._frames, []
        if frames and not self.writer.is_closing():
            self.writer.write(b"".join(frames))

    async def wait_below(self, threshold: int) -> None:
        self._threshold = threshold
        self._below.clear()
        if self.inflight > threshold:
            await self._below.wait()


class GatewayError(DeltasyncError):
    pass


class GatewayClient:
    """A pipelined client for the native gateway (benchmarks and tests)."""

    def __init__(self, host: str, port: int, secret: bytes) -> None:
        self.host, self.port, self.secret = host, port, secret
        self._ids = itertools.count(1)
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, timeout_s: float = 5.0) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout_s
        )
        decoder = FrameDecoder(gateway_frame_bytes_max)
        hello = await asyncio.wait_for(GatewayServer._next_frame(reader, decoder), timeout_s)
        if hello is None:
            raise GatewayError(reason="gateway closed during hello")
        protocol, nonce = decode(hello)
        if protocol != PROTOCOL:
            raise GatewayError(reason="unknown gateway protocol", got=protocol)
        writer.write(encode_frame(_mac(self.secret, nonce)))
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read(reader, decoder))

    async def _read(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> None:
        try:
            while True:
                frame = await GatewayServer._next_frame(reader, decoder)
                if frame is None:
                    break
                req_id, ok, result = decode(frame)
                future = self._futures.pop(req_id, None)
                if future is not None and not future.done():
                    if ok:
                        future.set_result(result)
                    else:
                        future.set_exception(GatewayError(reason=result))
        finally:
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(GatewayError(reason="connection closed"))
            self._futures.clear()

    def _send(self, message: list[Any]) -> asyncio.Future[Any]:
        if self._writer is None or self._writer.is_closing():
            raise GatewayError(reason="not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[message[0]] = future
        self._writer.write(encode_frame(encode(message)))
        return future

    async def submit(self, command_wire: list[Any], session: int, request: int) -> Any:
        return await self._send([next(self._ids), OP_SUBMIT, session, request, command_wire])

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._send([next(self._ids), OP_STATUS])
        return result

    async def read_barrier(self) -> int:
        height: int = await self._send([next(self._ids), OP_READ])
        return height

    async def root_at(self, height: int) -> tuple[int, bytes, int] | None:
        result = await self._send([next(self._ids), OP_ROOT, height])
        return None if result is None else (result[0], result[1], result[2])

    async def balance(self, account: int) -> tuple[int, int, int] | None:
        result = await self._send([next(self._ids), OP_BALANCE, account])
        return None if result is None else (result[0], result[1], result[2])

    async def drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
