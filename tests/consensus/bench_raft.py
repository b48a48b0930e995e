"""Throughput of the Raft core alone (no disk, no sockets): `python tests/consensus/bench_raft.py`.

Three in-process nodes; the leader proposes 100-byte entries in batches, messages
are delivered in rounds (with the wire codec on every message), every node applies.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from deltasync.consensus import RAFT_MESSAGES, RaftConfig, RaftNode, Role  # noqa: E402


def run(entries_total: int, batch: int, codec: bool) -> float:
    nodes = {
        i: RaftNode(RaftConfig(node_id=i, peers=(1, 2, 3)), None, random.Random(i)) for i in (1, 2, 3)
    }
    network: list = []
    applied = {i: 0 for i in nodes}

    def pump() -> None:
        for node_id, node in nodes.items():
            while node.has_ready():
                ready = node.ready()
                network.extend(ready.messages)
                applied[node_id] += len(ready.committed_entries)
                node.advance(ready)

    nodes[1].campaign()
    pump()
    while network:
        batch_messages, network[:] = list(network), []
        for message in batch_messages:
            nodes[message.recipient].step(message)
        pump()
    assert nodes[1].role is Role.LEADER
    payload = b"x" * 100
    start = time.perf_counter()
    base = dict(applied)
    proposed = 0
    while proposed < entries_total:
        for _ in range(batch):
            nodes[1].propose(payload)
        proposed += batch
        pump()
        while network:
            batch_messages, network[:] = list(network), []
            for message in batch_messages:
                if codec:
                    message = RAFT_MESSAGES.decode(RAFT_MESSAGES.encode(message))
                nodes[message.recipient].step(message)
            pump()
    elapsed = time.perf_counter() - start
    assert all(applied[i] - base[i] == proposed for i in nodes), (applied, base, proposed)
    return proposed / elapsed


if __name__ == "__main__":
    for batch in (1, 16, 256):
        for codec in (False, True):
            rate = run(20_000, batch, codec)
            print(f"batch={batch:4d} codec={codec!s:5} {rate:10,.0f} entries/s committed and applied on 3 nodes")
