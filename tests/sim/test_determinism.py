"""One seed, one trace: across runs, processes and PYTHONHASHSEED values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deltasync.sim.simulator import simulate

STEPS = 250


def _run_in_subprocess(seed: int, hash_seed: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run(
        [sys.executable, "-m", "deltasync.cli.main", "sim", "--seed", str(seed), "--steps", str(STEPS), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def test_same_seed_same_trace_in_process() -> None:
    first = simulate(3, steps=STEPS)
    second = simulate(3, steps=STEPS)
    assert first.trace_hash == second.trace_hash
    assert (first.height, first.state_root, first.violations) == (second.height, second.state_root, second.violations)
    assert first.events > 1000 and first.height > 10


def test_different_seeds_differ() -> None:
    assert simulate(3, steps=STEPS).trace_hash != simulate(4, steps=STEPS).trace_hash


def test_same_seed_same_trace_under_different_hash_seeds() -> None:
    a = _run_in_subprocess(4, "1")  # 5 nodes, oracle, a faulty disk, I/O errors
    b = _run_in_subprocess(4, "4242")
    assert a["trace_hash"] == b["trace_hash"]
    assert (a["state_root"], a["height"], a["violations"]) == (b["state_root"], b["height"], b["violations"])
    for key in ("seed", "trace_hash", "state_root", "height", "violations", "simulated_seconds", "sim_speed"):
        assert key in a
