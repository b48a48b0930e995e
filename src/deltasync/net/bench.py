"""Loopback throughput of the transport (used by ``deltasync bench consensus``).

Both ends run in this process and on one event loop, so the figure includes
the receiver's work too: it is a floor for two processes on two cores.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time

from deltasync.net.transport import LOOPBACK, Transport

_SENDER = 1
_RECEIVER = 2


async def measure_throughput(
    n_frames: int, payload_bytes: int, *, timeout_s: float = 120.0
) -> dict[str, float | int]:
    """Send ``n_frames`` payloads of ``payload_bytes`` from one transport to another.

    The producer never loses a frame: when the peer queue is full it yields to
    the writer and retries (the backpressure a real sender would apply).
    """
    assert n_frames >= 1 and payload_bytes >= 0
    received = 0
    finished = asyncio.Event()

    def on_message(peer_id: int, payload: bytes) -> None:
        nonlocal received
        received += 1
        if received == n_frames + 1:  # + the warm-up frame
            finished.set()

    secret = secrets.token_bytes(32)
    receiver = Transport(
        _RECEIVER, LOOPBACK, 0, {}, secret, on_message, rng=random.Random(_RECEIVER)
    )
    sender = Transport(
        _SENDER, LOOPBACK, 0, {}, secret, lambda peer_id, payload: None,
        rng=random.Random(_SENDER),
    )
    await receiver.start()
    await sender.start()
    try:
        receiver.update_peers({_SENDER: sender.listen_address})
        sender.update_peers({_RECEIVER: receiver.listen_address})
        async with asyncio.timeout(timeout_s):
            assert sender.send(_RECEIVER, b"warm-up")
            while received < 1:  # the link is up and authenticated
                await asyncio.sleep(0.001)
            payload = bytes(payload_bytes)
            send = sender.send
            started = time.perf_counter()
            sent = 0
            full_waits = 0
            while sent < n_frames:
                if send(_RECEIVER, payload):
                    sent += 1
                else:
                    full_waits += 1
                    await asyncio.sleep(0)
            await finished.wait()
            elapsed_s = time.perf_counter() - started
        metrics = sender.metrics()
    finally:
        await sender.stop()
        await receiver.stop()
    return {
        "frames": n_frames,
        "payload_bytes": payload_bytes,
        "seconds": elapsed_s,
        "frames_per_s": n_frames / elapsed_s,
        "megabytes_per_s": n_frames * payload_bytes / elapsed_s / 1e6,
        "records_sent": metrics["records_sent"],
        "frames_per_record": (metrics["frames_sent"] - 1) / max(1, metrics["records_sent"] - 1),
        "queue_full_waits": full_waits,
    }
