"""A fixed set of seeds, each forcing one kind of fault, that must pass every checker.

Each case turns one fault up (the rest stay as the seed drew them) and asserts
both that the fault really happened and that no checker found a violation.
CI runs these; ``deltasync sim --seeds A..B`` runs the open-ended swarm.
"""

from __future__ import annotations

from typing import Any

import pytest

from deltasync.sim.config import SimConfig
from deltasync.sim.simulator import Simulator

STEPS = 300
# A shorter liveness phase than the CLI's (15 s bound + 5 s settle) keeps CI fast.
FAST: dict[str, Any] = {"liveness_bound_ns": 6_000_000_000, "settle_ns": 3_000_000_000}

CASES: dict[str, tuple[int, int, dict[str, Any], str]] = {
    # name: (seed, nodes, overrides, stat that must be > 0)
    "crashes with torn writes": (
        3,
        3,
        {"crash_ppm": 250_000, "torn_write_ppm": 1_000_000},
        "torn_crashes",
    ),
    "partitions incl. one-way": (5, 3, {"partition_ppm": 400_000}, "partitions"),
    "drops and duplicates": (
        3,
        3,
        {"drop_ppm": 100_000, "duplicate_ppm": 100_000},
        "messages_duplicated",
    ),
    "lying disk (lost fsync)": (
        9,
        3,
        {
            "faulty_disks": (1,),
            "lost_fsync_ppm": 400_000,
            "crash_ppm": 300_000,
            "restart_ppm": 600_000,
            "partition_ppm": 0,
            "bit_flip_ppm": 0,
            "snapshot_every_blocks": 100_000,
        },
        "amnesia",
    ),
    "bit rot refused at restart": (
        1,
        3,
        {
            "faulty_disks": (2,),
            "lost_fsync_ppm": 0,
            "crash_ppm": 250_000,
            "restart_ppm": 600_000,
            "bit_flip_ppm": 300_000,
        },
        "refused_starts",
    ),
    "I/O errors (EIO) fail-stop": (5, 3, {"disk_error_ppm": 300_000}, "disk_error_stops"),
    "snapshots installed": (
        5,
        3,
        {"snapshot_every_blocks": 20, "crash_ppm": 200_000},
        "snapshots_installed",
    ),
    "five nodes": (7, 5, {"crash_ppm": 150_000, "partition_ppm": 150_000}, "crashes"),
    "expiry and skewed clocks": (
        3,
        3,
        {
            "expiry_in_ns": 4_000_000_000,
            "clock_offset_ns": (1_500_000_000, -1_500_000_000, 0),
            "clock_drift_ppm": (500, -500, 0),
        },
        "expiries",
    ),
    "frozen processes (GC pause, SIGSTOP)": (3, 3, {"pause_ppm": 300_000}, "pauses"),
    "clock steps and leadership transfers": (
        5,
        3,
        {"clock_step_ppm": 300_000, "transfer_ppm": 300_000},
        "transfers",
    ),
    "oracle: stale, outlying, jumping and silent sources": (
        3,
        3,
        {
            "oracle_sources": 3,
            "oracle_pause_ppm": 150_000,
            "oracle_outlier_ppm": 100_000,
            "oracle_stale_ppm": 100_000,
            "oracle_jump_ppm": 50_000,
        },
        "breaker_trips",
    ),
}


def run_case(seed: int, nodes: int, overrides: dict[str, Any]) -> Simulator:
    config = SimConfig.from_seed(seed, nodes=nodes, steps=STEPS).with_overrides(
        **{**FAST, **overrides}
    )
    simulator = Simulator(config)
    simulator.run()
    return simulator


@pytest.mark.parametrize("name", sorted(CASES))
def test_fault_seed_passes_every_checker(name: str) -> None:
    seed, nodes, overrides, stat = CASES[name]
    sim = run_case(seed, nodes, overrides)
    replay = f"seed {seed}, nodes {nodes}, steps {STEPS}, overrides {overrides}"
    assert sim.violations == [], f"{name} ({replay}):\n" + "\n".join(sim.violations)
    assert sim.stats[stat] > 0, f"{name}: the fault did not happen ({stat} = 0; {replay})"
    assert sim.stats["ops_ok"] > 20 and max(sim.chain) > 20
    if stat == "amnesia":
        assert sim.excused and sim.excused[0].startswith("amnesia:")
    if name.startswith("clock steps"):
        assert sim.stats["clock_steps"] > 0
    if name.startswith("oracle"):
        assert sim.stats["index_updates"] > 0 and sim.stats["reports_rejected"] > 0
        assert sim.stats["breaker_resets"] > 0
    if name.startswith("partitions"):
        assert any("one-way" in line for line in sim.log)
