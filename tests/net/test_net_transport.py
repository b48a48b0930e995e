"""The transport on real loopback sockets (each test runs its own event loop, bounded in time)."""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import struct
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from deltasync.core import limits
from deltasync.core.errors import ConfigError
from deltasync.net.auth import Handshake, HandshakeRole
from deltasync.net.bench import measure_throughput
from deltasync.net.framing import FrameDecoder, FrameTooLarge, encode_frame, encode_frames
from deltasync.net.transport import (
    LOOPBACK,
    Transport,
    TransportConfig,
    backoff_delay_s,
)

pytestmark = pytest.mark.timeout(30)

SECRET = b"cluster-secret-for-tests-0123456789"
FAST = TransportConfig(
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
    connect_timeout_s=1.0,
    handshake_timeout_s=1.0,
    close_timeout_s=0.5,
)


def run(main: Callable[[], Coroutine[Any, Any, None]], timeout_s: float = 15.0) -> None:
    """Run a test coroutine on a fresh loop; fail if it leaves tasks or sockets behind."""

    async def bounded() -> None:
        async with asyncio.timeout(timeout_s):
            await main()
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"tasks left pending: {leftover}"

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(bounded())
        gc.collect()


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range: a dial to an ephemeral port that
    nobody listens on can connect the socket to itself (TCP simultaneous open) and then
    hold the very port a restarted listener needs."""
    for _ in range(1000):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class Node:
    """A transport plus what it received, per sender, in arrival order."""

    def __init__(self, node_id: int, port: int = 0, config: TransportConfig = FAST,
                 secret: bytes = SECRET, peers: dict[int, tuple[str, int]] | None = None) -> None:
        self.inbox: dict[int, list[bytes]] = {}
        self.transport = Transport(
            node_id, LOOPBACK, port, peers or {}, secret, self._on_message,
            rng=random.Random(node_id), config=config,
        )

    def _on_message(self, peer_id: int, payload: bytes) -> None:
        self.inbox.setdefault(peer_id, []).append(payload)

    def count(self, peer_id: int) -> int:
        return len(self.inbox.get(peer_id, []))


async def cluster(size: int, config: TransportConfig = FAST) -> list[Node]:
    nodes = [Node(node_id, config=config) for node_id in range(1, size + 1)]
    for node in nodes:
        await node.transport.start()
    addresses = {node.transport.node_id: node.transport.listen_address for node in nodes}
    for node in nodes:
        me = node.transport.node_id
        node.transport.update_peers({i: a for i, a in addresses.items() if i != me})
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.transport.stop()


def test_three_transports_exchange_messages_in_order() -> None:
    async def main() -> None:
        nodes = await cluster(3)
        per_pair = 500
        for number in range(per_pair):
            for node in nodes:
                for peer in nodes:
                    if peer is not node:
                        payload = f"{node.transport.node_id}->{peer.transport.node_id}:{number}"
                        assert node.transport.send(peer.transport.node_id, payload.encode())
            if number % 100 == 0:
                await asyncio.sleep(0)  # let the writers interleave with the producers
        await eventually(lambda: all(n.count(p) == per_pair for n in nodes for p in n.inbox)
                         and all(len(n.inbox) == 2 for n in nodes))
        for node in nodes:
            me = node.transport.node_id
            for sender, payloads in node.inbox.items():
                assert payloads == [f"{sender}->{me}:{i}".encode() for i in range(per_pair)]
            metrics = node.transport.metrics()
            assert metrics["frames_sent"] == metrics["frames_received"] == 2 * per_pair
            assert metrics["drops"] == 0 and metrics["auth_failures"] == 0
            assert metrics["records_sent"] < metrics["frames_sent"]  # writes were batched
            assert metrics["inbound_sessions"] == 2 and metrics["connects"] == 2
        await stop_all(nodes)

    run(main)


def test_a_peer_that_is_down_is_dialed_again_until_it_starts() -> None:
    async def main() -> None:
        port = free_port()
        sender = Node(1, peers={2: (LOOPBACK, port)})
        await sender.transport.start()
        assert sender.transport.send(2, b"queued while the peer is down")
        await eventually(lambda: sender.transport.metrics()["connect_failures"] >= 3)
        receiver = Node(2, port=port, peers={1: sender.transport.listen_address})
        await receiver.transport.start()
        await eventually(lambda: receiver.count(1) == 1)
        assert receiver.inbox[1] == [b"queued while the peer is down"]
        # the peer restarts: the link notices, redials, and later payloads flow again
        await receiver.transport.stop()
        await eventually(lambda: not sender.transport.peer_status()[2]["connected"])
        again = Node(2, port=port, peers={1: sender.transport.listen_address})
        await again.transport.start()
        await eventually(lambda: sender.transport.peer_status()[2]["connected"])
        assert sender.transport.send(2, b"after the restart")
        await eventually(lambda: again.count(1) == 1)
        assert again.inbox[1] == [b"after the restart"]
        assert sender.transport.metrics()["reconnects"] >= 1
        await again.transport.stop()
        await sender.transport.stop()

    run(main)


def test_delivery_is_at_most_once_and_in_order_across_restarts() -> None:
    async def main() -> None:
        port = free_port()
        sender = Node(1, peers={2: (LOOPBACK, port)})
        await sender.transport.start()
        received: list[int] = []
        stop_producing = asyncio.Event()

        async def produce() -> None:
            number = 0
            while not stop_producing.is_set():
                if sender.transport.send(2, number.to_bytes(4, "big")):
                    number += 1
                await asyncio.sleep(0.0002)

        producer = asyncio.create_task(produce())
        for _ in range(3):  # the receiver comes up, takes some traffic, goes down
            receiver = Node(2, port=port, peers={1: sender.transport.listen_address})
            await receiver.transport.start()
            await eventually(lambda r=receiver: r.count(1) >= 50)
            await receiver.transport.stop()
            received += [int.from_bytes(payload, "big") for payload in receiver.inbox[1]]
        stop_producing.set()
        await producer
        await sender.transport.stop()
        assert received == sorted(set(received)), "duplicated or reordered"
        assert sender.transport.metrics()["reconnects"] >= 2

    run(main)


def test_backoff_grows_is_capped_and_is_jittered_by_the_injected_rng() -> None:
    rng = random.Random(7)
    delays = [backoff_delay_s(failures, 0.1, 1.0, rng) for failures in range(1, 9)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    replay = random.Random(7)
    assert delays == [backoff_delay_s(failures, 0.1, 1.0, replay) for failures in range(1, 9)]
    assert len(set(delays[4:])) == 4  # jittered, not lockstep


def test_a_full_queue_drops_instead_of_blocking() -> None:
    async def main() -> None:
        config = TransportConfig(queue_frames_max=8, queue_bytes_max=1000, backoff_initial_s=1.0)
        node = Node(1, config=config, peers={2: (LOOPBACK, free_port())})  # nobody listens
        await node.transport.start()
        accepted = [node.transport.send(2, b"x" * 10) for _ in range(20)]
        assert accepted == [True] * 8 + [False] * 12
        assert node.transport.metrics()["drops_queue_full"] == 12
        assert node.transport.peer_status()[2]["queued_frames"] == 8
        # the byte bound holds too
        other = Node(3, config=config, peers={2: (LOOPBACK, free_port())})
        await other.transport.start()
        assert other.transport.send(2, b"y" * 600)
        assert not other.transport.send(2, b"y" * 600)
        assert other.transport.send(2, b"y" * 400)
        assert not other.transport.send(9, b"to nobody")  # unknown peer
        metrics = other.transport.metrics()
        assert (metrics["drops_queue_full"], metrics["drops_unknown_peer"]) == (1, 1)
        await node.transport.stop()
        await other.transport.stop()
        assert not node.transport.send(2, b"after stop")
        assert node.transport.metrics()["drops_not_running"] == 1

    run(main)


def test_frames_at_the_limit_pass_and_over_it_fail() -> None:
    async def main() -> None:
        a, b = await cluster(2)
        payload_max = limits.peer_payload_bytes_max
        big = bytes(range(256)) * (payload_max // 256) + b"\x07" * (payload_max % 256)
        assert len(big) == payload_max
        assert a.transport.send(2, b"small before")
        assert a.transport.send(2, big)
        assert a.transport.send(2, b"small after")
        with pytest.raises(FrameTooLarge):
            a.transport.send(2, big + b"!")
        await eventually(lambda: b.count(1) == 3, timeout_s=10)
        assert b.inbox[1][0] == b"small before" and b.inbox[1][2] == b"small after"
        assert b.inbox[1][1] == big
        await stop_all([a, b])

    run(main)


async def raw_authenticated_dialer(
    target: Transport, node_id: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Handshake]:
    """A hand-driven peer that completes a real handshake with ``target``."""
    host, port = target.listen_address
    reader, writer = await asyncio.open_connection(host, port)
    handshake = Handshake(HandshakeRole.DIALER, cluster_id="deltasync", node_id=node_id, secret=SECRET,
                          known_peer_ids=(target.node_id,))
    decoder = FrameDecoder(256)
    for body in handshake.start():
        writer.write(encode_frame(body))
    while not handshake.done:
        for frame in decoder.feed(await reader.read(4096)):
            for body in handshake.receive(frame):
                writer.write(encode_frame(body))
    await writer.drain()
    return reader, writer, handshake


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(3):
        return await reader.read(1) == b""


def test_oversize_and_forged_records_close_the_connection() -> None:
    async def main() -> None:
        (server,) = [Node(2)]
        await server.transport.start()
        server.transport.update_peers({1: (LOOPBACK, free_port())})
        # an authenticated peer announces a frame over the limit: refused at the header
        reader, writer, _ = await raw_authenticated_dialer(server.transport, 1)
        writer.write(struct.pack(">I", limits.frame_bytes_max + 1))
        assert await closed_by_peer(reader)
        writer.close()
        # a record with a wrong tag: refused, nothing delivered
        reader, writer, handshake = await raw_authenticated_dialer(server.transport, 1)
        writer.write(encode_frame(b"\x00" * 16 + encode_frames([b"forged"])))
        assert await closed_by_peer(reader)
        writer.close()
        # a correctly sealed record is delivered (the raw peer is a faithful client)
        reader, writer, handshake = await raw_authenticated_dialer(server.transport, 1)
        assert handshake.session is not None
        writer.write(encode_frame(handshake.session.sealer().seal(encode_frames([b"real"]))))
        await eventually(lambda: server.count(1) == 1)
        writer.close()
        metrics = server.transport.metrics()
        assert server.inbox[1] == [b"real"]
        assert (metrics["frame_errors"], metrics["auth_failures"]) == (1, 1)
        await server.transport.stop()

    run(main)


def test_strangers_are_refused() -> None:
    async def main() -> None:
        a, b = await cluster(2)
        outsider = Node(1, secret=b"another-secret-entirely-0123456789",
                        peers={2: b.transport.listen_address})
        stranger = Node(9, peers={2: b.transport.listen_address})  # right secret, unknown id
        await outsider.transport.start()
        await stranger.transport.start()
        outsider.transport.send(2, b"let me in")
        stranger.transport.send(2, b"me too")
        # the outsider cannot verify b's proof; b refuses the stranger's id at its HELLO
        await eventually(lambda: outsider.transport.metrics()["auth_failures"] >= 2)
        await eventually(lambda: b.transport.metrics()["auth_failures"] >= 2)
        assert outsider.transport.metrics()["connects"] == 0
        assert stranger.transport.metrics()["connects"] == 0
        # garbage and silence are refused too (silence after the handshake timeout)
        reader, writer = await asyncio.open_connection(*b.transport.listen_address)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await closed_by_peer(reader)
        writer.close()
        await outsider.transport.stop()
        await stranger.transport.stop()
        assert b.inbox == {}
        await stop_all([a, b])

    run(main)


def test_a_silent_connection_is_dropped_after_the_handshake_timeout() -> None:
    async def main() -> None:
        config = TransportConfig(handshake_timeout_s=0.2, pending_handshakes_max=2)
        node = Node(1, config=config)
        await node.transport.start()
        opened = [await asyncio.open_connection(*node.transport.listen_address) for _ in range(3)]
        assert await closed_by_peer(opened[2][0])  # over the pending bound: refused at once
        assert await closed_by_peer(opened[0][0])  # silent: dropped by the timer
        for _, writer in opened:
            writer.close()
        metrics = node.transport.metrics()
        assert metrics["inbound_refused"] == 1 and metrics["auth_failures"] >= 1
        await node.transport.stop()

    run(main)


def test_a_stalled_peer_is_dropped_and_redialed() -> None:
    async def main() -> None:
        stalled, release = asyncio.Event(), asyncio.Event()
        handlers: list[asyncio.Task[Any] | None] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # act as acceptor 2, then never read again
            handshake = Handshake(HandshakeRole.ACCEPTOR, cluster_id="deltasync", node_id=2,
                                  secret=SECRET, known_peer_ids=(1,))
            handshake.start()
            decoder = FrameDecoder(256)
            handlers.append(asyncio.current_task())
            while not handshake.done:
                data = await reader.read(256)
                if not data:
                    break
                for frame in decoder.feed(data):
                    for body in handshake.receive(frame):
                        writer.write(encode_frame(body))
            stalled.set()
            await release.wait()
            writer.close()

        server = await asyncio.start_server(handle, LOOPBACK, 0, limit=1024)
        for sock in server.sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        config = TransportConfig(drain_timeout_s=0.2, write_buffer_bytes_high=64 * 1024,
                                 backoff_initial_s=0.05)
        port = server.sockets[0].getsockname()[1]
        node = Node(1, config=config, peers={2: (LOOPBACK, port)})
        await node.transport.start()
        await stalled.wait()
        chunk = b"z" * (1024 * 1024)
        sent = 0
        while node.transport.metrics()["write_stalls"] == 0:
            if node.transport.send(2, chunk):
                sent += 1
            await asyncio.sleep(0.001)
        assert sent < 64  # the kernel buffers filled, then we gave up on the peer
        await node.transport.stop()
        release.set()
        server.close()
        await asyncio.gather(*[task for task in handlers if task is not None])
        await server.wait_closed()

    run(main, timeout_s=20)


def test_update_peers_adds_and_removes_links() -> None:
    async def main() -> None:
        a, b, c = await cluster(3)
        a.transport.update_peers({2: b.transport.listen_address})  # drop 3
        assert not a.transport.send(3, b"gone")
        assert a.transport.metrics()["drops_unknown_peer"] == 1
        await eventually(lambda: 3 not in a.transport.peer_status())
        assert c.transport.send(1, b"from a removed member")
        await eventually(lambda: a.transport.metrics()["auth_failures"] >= 1)
        assert 3 not in a.inbox
        a.transport.update_peers({2: b.transport.listen_address, 3: c.transport.listen_address})
        assert a.transport.send(3, b"welcome back")
        await eventually(lambda: c.count(1) == 1)
        await stop_all([a, b, c])

    run(main)


def test_an_exception_in_on_message_is_counted_and_delivery_goes_on() -> None:
    async def main() -> None:
        a, b = await cluster(2)
        seen: list[bytes] = []

        def picky(peer_id: int, payload: bytes) -> None:
            if payload == b"bad":
                raise ValueError("node layer bug")
            seen.append(payload)

        b.transport._on_message = picky
        for payload in (b"one", b"bad", b"two"):
            a.transport.send(2, payload)
        await eventually(lambda: len(seen) == 2)
        assert seen == [b"one", b"two"]
        assert b.transport.metrics()["deliver_errors"] == 1
        await stop_all([a, b])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("deltasync.net.transport.log.exception", lambda *args, **kwargs: None)
        run(main)


def test_stop_closes_everything() -> None:
    async def main() -> None:
        nodes = await cluster(3)
        for node in nodes:
            for peer in range(1, 4):
                if peer != node.transport.node_id:
                    node.transport.send(peer, b"hello")
        await eventually(lambda: all(node.count(p) == 1 for node in nodes for p in node.inbox)
                         and all(len(node.inbox) == 2 for node in nodes))
        ports = [node.transport.listen_address[1] for node in nodes]
        await stop_all(nodes)
        for node in nodes:
            assert node.transport._connections == set()
            assert not node.transport.running
        for port in ports:
            with pytest.raises(OSError):
                await asyncio.open_connection(LOOPBACK, port)
        await nodes[0].transport.stop()  # idempotent

    run(main)  # run() also fails on pending tasks and unclosed sockets


def test_measure_throughput_reports_a_rate() -> None:
    result: dict[str, Any] = {}

    async def main() -> None:
        result.update(await measure_throughput(5_000, 100))

    run(main)
    assert result["frames"] == 5_000 and result["frames_per_s"] > 0
    assert result["frames_per_record"] > 1


def test_configuration_is_checked() -> None:
    def make(**overrides: Any) -> Transport:
        arguments: dict[str, Any] = {
            "node_id": 1, "listen_host": LOOPBACK, "listen_port": 0, "peers": {},
            "cluster_secret": SECRET, "on_message": lambda peer_id, payload: None,
            "rng": random.Random(1),
        }
        arguments.update(overrides)
        return Transport(**arguments)

    make(listen_host="::1")
    make(listen_host="0.0.0.0", config=TransportConfig(allow_non_loopback=True))
    for bad in [
        {"listen_host": "0.0.0.0"},  # loopback only unless asked
        {"listen_host": "10.1.2.3"},
        {"cluster_secret": b"short"},
        {"peers": {1: (LOOPBACK, 9000)}},  # ourselves
        {"peers": {2: (LOOPBACK, 0)}},
        {"peers": {"2": (LOOPBACK, 9000)}},
        {"node_id": -1},
    ]:
        with pytest.raises(ConfigError):
            make(**bad)
    with pytest.raises(ConfigError):
        TransportConfig(queue_frames_max=0)
    with pytest.raises(ConfigError):
        TransportConfig(backoff_initial_s=5.0, backoff_max_s=1.0)
    with pytest.raises(ConfigError):
        TransportConfig(write_batch_bytes_max=limits.peer_payload_bytes_max + 1)
