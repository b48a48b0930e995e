"""A small in-memory cluster of real NodeCores for driver tests (no sockets, no clock)."""

from __future__ import annotations

import random
from typing import Any

from deltasync.exchange.commands import COMMANDS
from deltasync.exchange.events import EVENTS
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.state import ExchangeState
from deltasync.node.driver import Answer, CommandCodec, NodeCore, NodeSettings
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.raft_log import RaftStorage
from deltasync.storage.snapshot import SnapshotStore

TICK_NS = 10_000_000


def open_core(node_id: int, voters: tuple[int, ...], fs: MemoryFileSystem, seed: int,
              settings: NodeSettings) -> NodeCore:
    genesis = default_genesis()
    storage, recovered = RaftStorage.open(f"/n{node_id}/raft", fs)
    snapshots = SnapshotStore(f"/n{node_id}/snapshots", fs)
    return NodeCore(
        node_id, voters, storage, recovered, snapshots,
        machine_factory=lambda: ExchangeState.from_genesis(genesis),
        machine_restore=ExchangeState.restore,
        command_codec=CommandCodec([COMMANDS], [EVENTS]),
        rng=random.Random(seed),
        settings=settings,
    )


class Cluster:
    def __init__(self, n: int = 3, seed: int = 1, settings: NodeSettings | None = None) -> None:
        self.voters = tuple(range(1, n + 1))
        self.settings = settings or NodeSettings(election_ticks=10, heartbeat_ticks=1)
        self.fs = {i: MemoryFileSystem() for i in self.voters}
        for i in self.voters:
            self.fs[i].makedirs(f"/n{i}")
        self.rng = random.Random(seed)
        self.nodes: dict[int, NodeCore | None] = {
            i: open_core(i, self.voters, self.fs[i], seed * 100 + i, self.settings) for i in self.voters
        }
        self.now = default_genesis().genesis_time_ns + 1_000_000_000
        self.inflight: list[tuple[int, int, bytes]] = []
        self.answers: dict[int, list[Answer]] = {i: [] for i in self.voters}
        self.heights: dict[int, dict[int, bytes]] = {i: {} for i in self.voters}
        self.cut: set[int] = set()
        self.allow_halt = False

    def _collect(self, node_id: int) -> None:
        core = self.nodes[node_id]
        assert core is not None
        out = core.process(self.now)
        if out.halted is not None:
            assert self.allow_halt, out.halted
            return
        for peer, payload in out.messages:
            self.inflight.append((node_id, peer, payload))
        self.answers[node_id].extend(out.answers)
        for block in out.blocks:
            self.heights[node_id][block.height] = block.result.state_root

    def step(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += TICK_NS
            for i, core in self.nodes.items():
                if core is not None:
                    core.tick(self.now)
                    self._collect(i)
            self.deliver()

    def deliver(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            if not self.inflight:
                return
            batch, self.inflight = self.inflight, []
            for sender, recipient, payload in batch:
                core = self.nodes.get(recipient)
                if core is None or sender in self.cut or recipient in self.cut:
                    continue
                core.receive(sender, payload, self.now)
                self._collect(recipient)

    def leader(self) -> int | None:
        for i, core in self.nodes.items():
            if core is not None and core.raft.role.value == "leader" and i not in self.cut:
                return i
        return None

    def until(self, predicate: Any, ticks_max: int = 2000) -> None:
        for _ in range(ticks_max):
            if predicate():
                return
            self.step()
        raise AssertionError("condition not reached")

    def submit(self, node_id: int, command: Any, session: int, request: int) -> None:
        core = self.nodes[node_id]
        assert core is not None
        assert core.submit(command, session, request, self.now)
        self._collect(node_id)

    def crash(self, node_id: int) -> None:
        self.nodes[node_id] = None
        self.fs[node_id].crash()

    def restart(self, node_id: int) -> None:
        self.nodes[node_id] = open_core(node_id, self.voters, self.fs[node_id], node_id, self.settings)
