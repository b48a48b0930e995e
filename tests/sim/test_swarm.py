"""The long swarm: many seeds at full length (run with ``pytest -m slow tests/sim``)."""

from __future__ import annotations

import pytest

from deltasync.cli.sim import run_one

SEEDS = range(1, 41)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_swarm_of_seeds_finds_no_violation() -> None:
    failures = []
    for seed in SEEDS:
        result = run_one(seed, None, None)
        if result["violations"]:
            failures.append(f"{result['replay']}: {result['violations'][0][:400]}")
    assert not failures, "\n".join(failures)
