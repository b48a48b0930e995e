"""The asyncio transport: opaque byte payloads between node ids over TCP.

Links. Each node dials every peer and uses that connection only to *send*;
it receives on the connections its peers dialed to it. So there is exactly one
logical link per ordered pair (a -> b is a's dialed connection to b), no
simultaneous-open tie-break is needed, and a reconnect of a -> b replaces b's
old inbound connection from a. The acceptor never sends after the handshake;
the dialer treats any such byte as a protocol violation and watches its socket
for EOF, so it notices a closed peer without waiting for a write to fail.

Wire format (see ``auth`` for the handshake and record MAC)::

    frame   = length u32 (big-endian) | body           length <= frame_bytes_max
    handshake frames: HELLO / PROOF                    length <= handshake_frame_bytes_max
    then, dialer -> acceptor only, one record per frame:
    record  = tag[16] | message*                       tag = HMAC(key, seq || messages)[:16]
    message = length u32 | payload                      payload <= peer_payload_bytes_max

Delivery is at most once and in order per link: a payload queued for a peer is
written on the current connection or a later one; payloads inside a write that
died with its connection are lost (Raft retries on its own). ``on_message`` is
called in order, on the event loop, for every payload of every authenticated
record; an exception it raises is logged and counted, and delivery goes on.

Bounds. ``send`` never blocks and never grows memory without bound: each peer
has a queue of at most ``queue_frames_max`` payloads and ``queue_bytes_max``
bytes, and a payload that does not fit is dropped (``send`` returns False and
``drops_queue_full`` counts it; the default byte bound fits two largest
payloads, a smaller configured one drops anything bigger than itself). The writer seals every queued payload up to
``write_batch_bytes_max`` into one record and hands it to the socket in one
call; when the socket's buffer passes ``write_buffer_bytes_high`` it waits for
it to drain, at most ``drain_timeout_s`` (then the peer is stalled: the
connection is dropped and redialed). Connects, handshakes and closes are bounded
by their timeouts; redials back off exponentially with jitter from the caller's
seeded ``random.Random``. Before authenticating, a peer may send frames of at
most ``handshake_frame_bytes_max`` bytes, and at most ``pending_handshakes_max``
such connections are open at once. It listens on loopback only unless the
config says ``allow_non_loopback`` (then run it on a trusted network: the MACs
protect integrity and membership, not confidentiality).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from deltasync.core import limits
from deltasync.core.errors import ConfigError, RemoteError
from deltasync.net.auth import (
    Handshake,
    HandshakeRole,
    RecordOpener,
    RecordSealer,
    check_cluster_id,
    check_secret,
)
from deltasync.net.framing import (
    HEADER,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
    split_frames,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]
OnMessage = Callable[[int, bytes], None]

LOOPBACK = "127.0.0.1"

_pack_header = HEADER.pack


class ProtocolViolation(RemoteError):
    """A peer sent something the protocol does not allow here (fields: reason, ...)."""


@dataclass(frozen=True, slots=True)
class TransportConfig:
    cluster_id: str = "deltasync"
    queue_frames_max: int = limits.peer_queue_frames_max
    queue_bytes_max: int = limits.peer_queue_bytes_max
    write_batch_bytes_max: int = limits.write_batch_bytes_max
    write_buffer_bytes_high: int = 4 * limits.write_batch_bytes_max
    pending_handshakes_max: int = limits.pending_handshakes_max
    connect_timeout_s: float = 2.0
    handshake_timeout_s: float = 2.0
    drain_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    allow_non_loopback: bool = False  # listening beyond 127.0.0.1 / ::1 is an explicit choice

    def __post_init__(self) -> None:
        check_cluster_id(self.cluster_id)
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("cluster_id", "allow_non_loopback"):
                continue
            if not value > 0:
                raise ConfigError(key=item.name, reason="must be positive", value=value)
        if self.write_batch_bytes_max > limits.peer_payload_bytes_max:
            raise ConfigError(key="write_batch_bytes_max", reason="a batch must fit one frame")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ConfigError(key="backoff_initial_s", reason="exceeds backoff_max_s")


@dataclass(slots=True)
class TransportMetrics:
    """Counters since ``start``. ``frames`` are payloads, ``records`` are sealed writes."""

    frames_sent: int = 0
    bytes_sent: int = 0  # payload bytes
    records_sent: int = 0
    wire_bytes_sent: int = 0  # including headers and tags
    frames_received: int = 0
    bytes_received: int = 0
    records_received: int = 0
    wire_bytes_received: int = 0
    drops_queue_full: int = 0
    drops_unknown_peer: int = 0
    drops_not_running: int = 0
    frames_discarded: int = 0  # queued for a peer that was removed
    connects: int = 0  # outbound sessions established
    reconnects: int = 0  # ... after the first one of a link
    connect_failures: int = 0
    inbound_sessions: int = 0
    inbound_refused: int = 0  # too many pending handshakes
    auth_failures: int = 0
    frame_errors: int = 0
    protocol_errors: int = 0
    write_stalls: int = 0  # drain timeouts
    deliver_errors: int = 0  # on_message raised

    def as_dict(self) -> dict[str, int]:
        out = {item.name: getattr(self, item.name) for item in fields(self)}
        out["drops"] = self.drops_queue_full + self.drops_unknown_peer + self.drops_not_running
        return out


def backoff_delay_s(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    assert failures >= 1 and 0 < initial_s <= max_s
    ceiling = min(max_s, initial_s * 2.0 ** min(failures - 1, 32))
    return ceiling / 2 + rng.random() * ceiling / 2


def _check_listen_host(host: str, allow_non_loopback: bool) -> None:
    if allow_non_loopback or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            key="listen_host", reason="not loopback (set allow_non_loopback)", value=host
        )


def _check_peers(node_id: int, peers: Mapping[int, Address]) -> dict[int, Address]:
    checked: dict[int, Address] = {}
    for peer_id, address in peers.items():
        if type(peer_id) is not int or peer_id < 0 or peer_id == node_id:
            raise ConfigError(key="peers", reason="ids are ints >= 0, not our own", value=peer_id)
        host, port = address
        if not isinstance(host, str) or type(port) is not int or not 0 < port < 65536:
            raise ConfigError(key="peers", reason="address is (host, port)", value=address)
        checked[peer_id] = (host, port)
    return checked


class _Connection(asyncio.Protocol):
    """One TCP connection: handshake, then records (adapter around the sans-I/O parts)."""

    def __init__(self, owner: Transport, handshake: Handshake) -> None:
        loop = asyncio.get_running_loop()
        self._owner = owner
        self._handshake = handshake
        self.role = handshake.role
        self._decoder = FrameDecoder(limits.handshake_frame_bytes_max)
        self._opener: RecordOpener | None = None
        self.sealer: RecordSealer | None = None
        self.peer_id: int | None = None
        self.transport: asyncio.Transport | None = None
        self.authenticated: asyncio.Future[None] | None = (
            loop.create_future() if self.role is HandshakeRole.DIALER else None
        )
        self.closed: asyncio.Future[None] = loop.create_future()
        self._writable = asyncio.Event()
        self._writable.set()
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio callbacks ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._owner._register(self):
            transport.abort()
            return
        high = self._owner.config.write_buffer_bytes_high
        transport.set_write_buffer_limits(high=high, low=high // 4)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(
            self._owner.config.handshake_timeout_s, self._handshake_expired
        )
        self._write_frames(self._handshake.start())

    def data_received(self, data: bytes) -> None:
        self._owner._metrics.wire_bytes_received += len(data)
        try:
            if self._opener is None:
                self._receive_handshake(data)
            else:
                self._receive_records(self._decoder.feed(data))
        except RemoteError as error:
            metrics = self._owner._metrics
            match error:
                case FrameError():
                    metrics.frame_errors += 1
                case ProtocolViolation():
                    metrics.protocol_errors += 1
                case _:
                    metrics.auth_failures += 1
            self.fail(error)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._writable.set()
        if self.authenticated is not None and not self.authenticated.done():
            self.authenticated.set_exception(
                ConnectionError(f"connection closed during handshake: {exc}")
            )
        if not self.closed.done():
            self.closed.set_result(None)
        self._owner._unregister(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- our side ---

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def wait_writable(self) -> None:
        await self._writable.wait()

    @property
    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        """Close after flushing what is buffered (``stop`` bounds the wait)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: Exception) -> None:
        log.warning(
            "node %s: dropping %s connection (peer %s): %s",
            self._owner.node_id,
            self.role.name.lower(),
            self.peer_id,
            error,
        )
        if self.authenticated is not None and not self.authenticated.done():
            self.authenticated.set_exception(error)
        self.abort()

    def _handshake_expired(self) -> None:
        self._owner._metrics.auth_failures += 1
        self.fail(TimeoutError("handshake timed out"))

    def _write_frames(self, bodies: list[bytes]) -> None:
        assert self.transport is not None
        for body in bodies:
            self.transport.write(encode_frame(body, limits.handshake_frame_bytes_max))

    def _receive_handshake(self, data: bytes) -> None:
        decoder = self._decoder
        decoder.receive_data(data)
        while (frame := decoder.next_frame()) is not None:
            self._write_frames(self._handshake.receive(frame))
            if self._handshake.done:
                self._authenticated()
                self._receive_records(decoder.frames())
                return

    def _authenticated(self) -> None:
        session = self._handshake.session
        assert session is not None
        if self._timer is not None:
            self._timer.cancel()
        # only an acceptor receives records: a dialer keeps its tiny handshake limit
        if self.role is HandshakeRole.ACCEPTOR:
            self._decoder.set_frame_bytes_max(limits.frame_bytes_max)
        self.peer_id = session.peer_id
        self._opener = session.opener()
        self.sealer = session.sealer()
        if self.role is HandshakeRole.ACCEPTOR:
            self._owner._inbound_session(self)
        elif self.authenticated is not None and not self.authenticated.done():
            self.authenticated.set_result(None)

    def _receive_records(self, records: list[bytes]) -> None:
        if not records:
            return
        if self.role is HandshakeRole.DIALER:
            raise ProtocolViolation(reason="acceptor sent data after the handshake")
        opener = self._opener
        assert opener is not None and self.peer_id is not None
        owner = self._owner
        for record in records:
            if self.is_closing:
                return  # replaced or removed while delivering
            body = opener.open(record)
            payloads = split_frames(body, limits.peer_payload_bytes_max)
            if not payloads:
                raise ProtocolViolation(reason="empty record")
            owner._deliver(self.peer_id, payloads)


class _PeerLink:
    """Outbound side of one peer: its bounded queue and the task that dials and writes."""

    __slots__ = ("peer_id", "address", "queue", "queued_bytes", "wake", "task", "connection",
                 "connected_once")

    def __init__(self, peer_id: int, address: Address) -> None:
        self.peer_id = peer_id
        self.address = address
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.connection: _Connection | None = None
        self.connected_once = False


class Transport:
    """Moves opaque payloads between node ids. See the module docstring for guarantees.

    ``rng`` jitters the reconnect backoff; pass a ``random.Random`` seeded by the
    caller. ``listen_port=0`` picks a free port (read ``listen_address`` after
    ``start``). ``peers`` maps every other member's id to the address it listens
    on; it must not contain ``node_id``.
    """

    def __init__(
        self,
        node_id: int,
        listen_host: str,
        listen_port: int,
        peers: Mapping[int, Address],
        cluster_secret: bytes,
        on_message: OnMessage,
        *,
        rng: random.Random,
        config: TransportConfig | None = None,
    ) -> None:
        check_secret(cluster_secret)
        if type(node_id) is not int or node_id < 0:
            raise ConfigError(key="node_id", reason="an int >= 0", value=node_id)
        self.node_id = node_id
        self.config = config if config is not None else TransportConfig()
        _check_listen_host(listen_host, self.config.allow_non_loopback)
        self._listen = (listen_host, listen_port)
        self._peers = _check_peers(node_id, peers)
        self._secret = cluster_secret
        self._on_message = on_message
        self._rng = rng
        self._metrics = TransportMetrics()
        self._links: dict[int, _PeerLink] = {}
        self._inbound: dict[int, _Connection] = {}
        self._pending: set[_Connection] = set()
        self._connections: set[_Connection] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._running = False

    # --- lifecycle ---

    async def start(self) -> None:
        assert self._server is None, "start() called twice"
        loop = asyncio.get_running_loop()
        host, port = self._listen
        self._server = await loop.create_server(self._accept, host, port)
        self._running = True
        for peer_id, address in self._peers.items():
            self._open_link(peer_id, address)

    async def stop(self) -> None:
        """Stop dialing, close every connection (bounded), and wait for all tasks."""
        if not self._running:
            return
        self._running = False
        assert self._server is not None
        self._server.close()
        tasks = [link.task for link in self._links.values() if link.task is not None]
        tasks += list(self._retiring)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._links.clear()
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        await self._wait_closed(connections)
        await self._server.wait_closed()

    async def _wait_closed(self, connections: list[_Connection]) -> None:
        if not connections:
            return
        waiters = [connection.closed for connection in connections]
        _, pending = await asyncio.wait(waiters, timeout=self.config.close_timeout_s)
        if pending:
            for connection in connections:
                connection.abort()
            await asyncio.wait(waiters, timeout=self.config.close_timeout_s)

    @property
    def listen_address(self) -> Address:
        assert self._server is not None and self._server.sockets, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def running(self) -> bool:
        return self._running

    # --- sending ---

    def send(self, peer_id: int, payload: bytes) -> bool:
        """Queue a payload for a peer; False (and a counted drop) if it cannot be queued.

        Never blocks. Raises ``FrameTooLarge`` for a payload over ``limits.peer_payload_bytes_max``:
        that is a bug in the caller, whose messages must be sized to fit.
        """
        size = len(payload)
        if size > limits.peer_payload_bytes_max:
            raise FrameTooLarge(size=size, max=limits.peer_payload_bytes_max)
        link = self._links.get(peer_id)
        if link is None:
            if self._running:
                self._metrics.drops_unknown_peer += 1
            else:
                self._metrics.drops_not_running += 1
            return False
        config = self.config
        if (
            len(link.queue) >= config.queue_frames_max
            or link.queued_bytes + size > config.queue_bytes_max
        ):
            self._metrics.drops_queue_full += 1
            return False
        link.queue.append(payload)
        link.queued_bytes += size
        link.wake.set()
        return True

    # --- membership ---

    def update_peers(self, peers: Mapping[int, Address]) -> None:
        """Replace the peer set: dial new peers, forget removed ones, redial moved ones."""
        checked = _check_peers(self.node_id, peers)
        self._peers = checked
        if not self._running:
            return
        for peer_id in [peer_id for peer_id in self._links if peer_id not in checked]:
            link = self._links.pop(peer_id)
            self._metrics.frames_discarded += len(link.queue)
            link.queue.clear()
            self._retire(link)
            inbound = self._inbound.pop(peer_id, None)
            if inbound is not None:
                inbound.abort()
        for peer_id, address in checked.items():
            existing = self._links.get(peer_id)
            if existing is None:
                self._open_link(peer_id, address)
            elif existing.address != address:
                self._retire(existing)
                existing.address = address
                self._start_link_task(existing)

    def _open_link(self, peer_id: int, address: Address) -> None:
        link = _PeerLink(peer_id, address)
        self._links[peer_id] = link
        self._start_link_task(link)

    def _start_link_task(self, link: _PeerLink) -> None:
        link.task = asyncio.get_running_loop().create_task(
            self._run_link(link), name=f"deltasync-net-{self.node_id}->{link.peer_id}"
        )
        link.task.add_done_callback(self._link_task_done)

    def _link_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("node %s: link task %s died", self.node_id, task.get_name(),
                      exc_info=task.exception())

    def _retire(self, link: _PeerLink) -> None:
        task = link.task
        link.task = None
        if task is not None:
            task.cancel()
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    # --- status ---

    def metrics(self) -> dict[str, int]:
        return self._metrics.as_dict()

    def peer_status(self) -> dict[int, dict[str, int | bool]]:
        return {
            peer_id: {
                "connected": link.connection is not None and not link.connection.is_closing,
                "inbound": peer_id in self._inbound,
                "queued_frames": len(link.queue),
                "queued_bytes": link.queued_bytes,
            }
            for peer_id, link in sorted(self._links.items())
        }

    # --- outbound links ---

    async def _run_link(self, link: _PeerLink) -> None:
        config = self.config
        failures = 0
        while True:
            try:
                connection = await self._dial(link)
            except (OSError, RemoteError) as error:  # TimeoutError is an OSError
                failures += 1
                self._metrics.connect_failures += 1
                log.debug("node %s: dial %s failed: %r", self.node_id, link.peer_id, error)
            else:
                failures = 1  # a link that breaks waits one initial step before redialing
                self._metrics.connects += 1
                self._metrics.reconnects += link.connected_once
                link.connected_once = True
                link.connection = connection
                try:
                    await self._pump(link, connection)
                finally:
                    link.connection = None
                    connection.close()
            delay = backoff_delay_s(failures, config.backoff_initial_s, config.backoff_max_s,
                                    self._rng)
            await asyncio.sleep(delay)

    async def _dial(self, link: _PeerLink) -> _Connection:
        handshake = Handshake(
            HandshakeRole.DIALER,
            cluster_id=self.config.cluster_id,
            node_id=self.node_id,
            secret=self._secret,
            known_peer_ids=(link.peer_id,),
        )
        loop = asyncio.get_running_loop()
        host, port = link.address
        async with asyncio.timeout(self.config.connect_timeout_s):
            _, connection = await loop.create_connection(
                lambda: _Connection(self, handshake), host, port
            )
        assert connection.authenticated is not None
        try:
            await connection.authenticated  # resolved or failed by the handshake timer
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _pump(self, link: _PeerLink, connection: _Connection) -> None:
        """Write queued payloads in batches until the connection ends or stalls."""
        assert connection.transport is not None and connection.sealer is not None
        queue = link.queue
        metrics = self._metrics
        while not connection.is_closing:
            if not queue:
                link.wake.clear()
                await link.wake.wait()
                continue
            self._write_batch(link, connection)
            if not connection.writable:
                try:
                    async with asyncio.timeout(self.config.drain_timeout_s):
                        await connection.wait_writable()
                except TimeoutError:
                    metrics.write_stalls += 1
                    log.warning("node %s: peer %s stalled, redialing", self.node_id, link.peer_id)
                    connection.abort()
                    return

    def _write_batch(self, link: _PeerLink, connection: _Connection) -> None:
        """Write queued payloads (up to one batch) to the connection now; never blocks."""
        transport = connection.transport
        sealer = connection.sealer
        assert transport is not None and sealer is not None
        queue = link.queue
        batch_bytes_max = self.config.write_batch_bytes_max
        metrics = self._metrics
        parts: list[bytes] = []
        size = 0
        while queue and (not parts or size + len(queue[0]) <= batch_bytes_max):
            payload = queue.popleft()
            parts.append(_pack_header(len(payload)))
            parts.append(payload)
            size += len(payload)
        link.queued_bytes -= size
        body = b"".join(parts)
        tag = sealer.tag(body)
        record_bytes = len(tag) + len(body)
        transport.writelines((_pack_header(record_bytes), tag, body))
        metrics.records_sent += 1
        metrics.frames_sent += len(parts) // 2
        metrics.bytes_sent += size
        metrics.wire_bytes_sent += 4 + record_bytes

    def flush(self, peer_id: int) -> None:
        """Hand what is queued for ``peer_id`` to the socket right away, if it can take it.

        Lets a caller start a write before a slow local step (a Raft leader sends its
        appends before its own fsync); otherwise the link task writes at the next turn.
        """
        link = self._links.get(peer_id)
        if link is None or not link.queue:
            return
        connection = link.connection
        if connection is None or connection.is_closing or not connection.writable:
            return
        if connection.transport is None or connection.sealer is None:
            return
        while link.queue and connection.writable:
            self._write_batch(link, connection)

    # --- connection bookkeeping (called by _Connection) ---

    def _accept(self) -> _Connection:
        handshake = Handshake(
            HandshakeRole.ACCEPTOR,
            cluster_id=self.config.cluster_id,
            node_id=self.node_id,
            secret=self._secret,
            known_peer_ids=tuple(self._peers),
        )
        return _Connection(self, handshake)

    def _register(self, connection: _Connection) -> bool:
        if connection.role is HandshakeRole.ACCEPTOR:
            if not self._running or len(self._pending) >= self.config.pending_handshakes_max:
                self._metrics.inbound_refused += 1
                return False
            self._pending.add(connection)
        self._connections.add(connection)
        return True

    def _unregister(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._pending.discard(connection)
        peer_id = connection.peer_id
        if peer_id is None:
            return
        if connection.role is HandshakeRole.ACCEPTOR:
            if self._inbound.get(peer_id) is connection:
                del self._inbound[peer_id]
        else:
            link = self._links.get(peer_id)
            if link is not None and link.connection is connection:
                link.wake.set()  # let the pump see the connection is gone

    def _inbound_session(self, connection: _Connection) -> None:
        self._pending.discard(connection)
        peer_id = connection.peer_id
        assert peer_id is not None
        if peer_id not in self._peers:  # removed while handshaking
            raise ProtocolViolation(reason="peer removed during the handshake", peer_id=peer_id)
        self._metrics.inbound_sessions += 1
        previous = self._inbound.get(peer_id)
        self._inbound[peer_id] = connection
        if previous is not None and previous is not connection:
            previous.abort()  # the peer redialed: its old link is dead or dying

    def _deliver(self, peer_id: int, payloads: list[bytes]) -> None:
        metrics = self._metrics
        metrics.records_received += 1
        metrics.frames_received += len(payloads)
        metrics.bytes_received += sum(map(len, payloads))
        on_message = self._on_message
        for payload in payloads:
            try:
                on_message(peer_id, payload)
            except Exception:
                metrics.deliver_errors += 1
                log.exception("node %s: on_message failed for peer %s", self.node_id, peer_id)
