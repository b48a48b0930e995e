"""One seed, one trace: across runs, processes and PYTHONHASHSEED values."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

from deltasync.sim.simulator import SimResult, simulate

STEPS = 150


SHORT = {"liveness_bound_ns": 4_000_000_000, "settle_ns": 3_000_000_000}
SCRIPT = """
import json, sys
from deltasync.sim.simulator import SimResult, simulate
result = simulate(int(sys.argv[1]), steps=int(sys.argv[2]), **json.loads(sys.argv[3]))
print(json.dumps(result.to_dict()))
"""


@functools.cache
def _run(seed: int) -> SimResult:
    return simulate(seed, steps=STEPS, **SHORT)


def _run_in_subprocess(seed: int, hash_seed: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(seed), str(STEPS), json.dumps(SHORT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def test_same_seed_same_trace_in_process() -> None:
    first = _run(3)
    second = simulate(3, steps=STEPS, **SHORT)
    assert first.trace_hash == second.trace_hash
    assert (first.height, first.state_root, first.violations) == (
        second.height,
        second.state_root,
        second.violations,
    )
    assert first.events > 1000 and first.height > 10


def test_different_seeds_differ() -> None:
    assert _run(3).trace_hash != _run(4).trace_hash


def test_same_seed_same_trace_under_different_hash_seeds() -> None:
    a = _run_in_subprocess(4, "1")  # 5 nodes, oracle, a faulty disk, I/O errors
    b = _run_in_subprocess(4, "4242")
    assert a["trace_hash"] == b["trace_hash"]
    assert (a["state_root"], a["height"], a["violations"]) == (
        b["state_root"],
        b["height"],
        b["violations"],
    )
    assert a["trace_hash"] == _run(4).trace_hash  # and the same as in this process


def test_cli_json_has_the_documented_keys() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deltasync.cli.main",
            "sim",
            "--seed",
            "3",
            "--steps",
            "50",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads(out.stdout)
    for key in (
        "seed",
        "trace_hash",
        "state_root",
        "height",
        "violations",
        "simulated_seconds",
        "sim_speed",
    ):
        assert key in summary
    assert out.returncode == (1 if summary["violations"] else 0)
