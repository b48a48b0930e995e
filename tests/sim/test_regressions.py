"""Bugs the simulator found, pinned: the seed that found each, and a minimal reproduction."""

from __future__ import annotations

from deltasync.storage.fs import MemoryFileSystem
from deltasync.storage.raft_log import HardState, LogEntry, RaftStorage

from .test_fault_seeds import run_case


def test_raft_log_reopens_after_a_snapshot_replaced_the_log() -> None:
    """Found by ``deltasync sim --seed 2``: a node refused to start with "gap in the log".

    ``install_snapshot`` beyond the log truncates only the entries after the old
    compaction point, so the WAL still holds compacted entries 1..10, then the
    entries after the new snapshot (21..): recovery must not call that a gap.
    """
    fs = MemoryFileSystem()
    storage, _ = RaftStorage.open("/d/raft", fs)
    storage.save(HardState(1, 1, 0), [LogEntry(i, 1, 0, b"x") for i in range(1, 11)])
    storage.save(HardState(1, 1, 10), [])
    storage.compact(10)
    storage.save(None, [LogEntry(i, 1, 0, b"y") for i in range(11, 16)])
    storage.install_snapshot(20, 2)
    storage.save(HardState(2, None, 20), [LogEntry(i, 2, 0, b"z") for i in range(21, 24)])
    fs.crash()
    _, recovered = RaftStorage.open("/d/raft", fs)
    assert recovered.snapshot_index == 20
    assert [entry.index for entry in recovered.entries] == [21, 22, 23]


def test_seed_that_found_the_log_gap_passes() -> None:
    sim = run_case(2, 3, {"crash_ppm": 250_000, "torn_write_ppm": 1_000_000})
    assert sim.violations == []
    assert sim.stats["crashes"] > 0
