"""Bugs the simulator found, pinned: the seed that found each, and a minimal reproduction."""

from __future__ import annotations

from typing import Any

from deltasync.consensus import NO_NODE, Entry, EntryType, HardState
from deltasync.exchange.assembly import new_exchange, restore_exchange
from deltasync.sim.config import SimConfig
from deltasync.sim.simulator import Simulator
from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.raft_log import RaftStorage

from .test_fault_seeds import FAST, run_case


def test_raft_log_reopens_after_a_snapshot_replaced_the_log() -> None:
    """Found by ``deltasync sim --seed 2``: a node refused to start with "gap in the log".

    ``install_snapshot`` beyond the log truncates only the entries after the old
    compaction point, so the WAL still holds compacted entries 1..10, then the
    entries after the new snapshot (21..): recovery must not call that a gap.
    """
    fs = MemoryFileSystem()
    storage, _ = RaftStorage.open("/d/raft", fs)
    storage.save(HardState(1, 1, 0), [Entry(i, 1, EntryType.NORMAL, b"x") for i in range(1, 11)])
    storage.save(HardState(1, 1, 10), [])
    storage.compact(10)
    storage.save(None, [Entry(i, 1, EntryType.NORMAL, b"y") for i in range(11, 16)])
    storage.install_snapshot(20, 2)
    storage.save(HardState(2, NO_NODE, 20), [Entry(i, 2, EntryType.NORMAL, b"z") for i in range(21, 24)])
    fs.crash()
    _, recovered = RaftStorage.open("/d/raft", fs)
    assert recovered.snapshot_index == 20
    assert [entry.index for entry in recovered.entries] == [21, 22, 23]


def test_seed_that_found_the_log_gap_passes() -> None:
    sim = run_case(2, 3, {"crash_ppm": 250_000, "torn_write_ppm": 1_000_000})
    assert sim.violations == []
    assert sim.stats["crashes"] > 0


class _Recorder(Simulator):
    """Keeps the decoded commands of every committed block (first node to apply it)."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.blocks: dict[int, tuple[int, tuple[Any, ...]]] = {}

    def _on_block(self, node_id: int, block: Any) -> None:
        self.blocks.setdefault(block.height, (block.time_ns, block.commands))
        super()._on_block(node_id, block)


def test_full_venue_restored_from_a_snapshot_replays_to_the_same_roots() -> None:
    """Found by the simulator: ``simulate(2, steps=500, oracle_sources=3, oracle_jump_ppm=60_000,
    trading_clients=4)`` — node 3 restarts from its snapshot at height 50 and halted at 84 on a
    root mismatch: the continuous replica accepted an ``EditOrder`` through the margin
    engine's cached pre-trade check, the restored one (caches rebuilt lazily) rejected it
    with ``INSUFFICIENT_MARGIN``. Fixed by rebuilding the caches at restore. Replayed here
    without the cluster."""
    config = SimConfig.from_seed(2, steps=500).with_overrides(
        oracle_sources=3,
        oracle_jump_ppm=60_000,
        trading_clients=4,
        **FAST,
    )
    recorder = _Recorder(config)
    recorder.run()
    heights = sorted(recorder.blocks)
    assert heights == list(range(1, len(heights) + 1)) and len(heights) > 120
    continuous = new_exchange(recorder.genesis)
    roots: dict[int, bytes] = {}
    snapshots: dict[int, bytes] = {}
    for height in heights:
        time_ns, commands = recorder.blocks[height]
        roots[height] = continuous.apply_block(height, time_ns, list(commands)).state_root
        if height % 25 == 0:
            snapshots[height] = continuous.snapshot_bytes()
    for base, data in sorted(snapshots.items()):
        restored = restore_exchange(data)
        assert restored.state_root() == roots[base]
        for height in heights[base:]:
            time_ns, commands = recorder.blocks[height]
            root = restored.apply_block(height, time_ns, list(commands)).state_root
            assert root == roots[height], f"restored at {base}, diverged at {height}"
