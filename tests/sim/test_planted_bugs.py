"""Proof that each checker can fail: a planted bug must be caught within a few seeds."""

from __future__ import annotations

from typing import Any

import pytest

from deltasync.sim.simulator import SimHooks, SimResult, simulate

from . import doubles
from .test_fault_seeds import FAST

SHORT = 300  # safety-phase ticks per seed: a few simulated seconds


def first_catch(
    hooks: SimHooks, prefix: str, seeds: range, **overrides: Any
) -> tuple[int, SimResult]:
    for seed in seeds:
        result = simulate(seed, steps=SHORT, hooks=hooks, **{**FAST, **overrides})
        hits = [
            v
            for v in result.violations
            if v.split(" ", 1)[-1].startswith(prefix) or v.startswith(prefix)
        ]
        if hits:
            return seed, result
    pytest.fail(f"no seed in {seeds} caught the planted bug ({prefix})")


def test_state_root_checker_catches_non_determinism() -> None:
    seed, result = first_catch(
        SimHooks(machine_class=doubles.NonDeterministicState), "state root", range(1, 4)
    )
    assert any("state root" in v for v in result.violations)


def test_invariant_checker_catches_money_from_nowhere() -> None:
    _, result = first_catch(
        SimHooks(machine_class=doubles.LeakyDepositState), "invariants", range(1, 6)
    )
    assert any("money not conserved" in v for v in result.violations)


def test_durability_and_ack_checkers_catch_ack_before_fsync() -> None:
    first_catch(
        SimHooks(wrap_storage=doubles.AckBeforeFsync), "durability", range(1, 10), crash_ppm=300_000
    )


def test_ack_checker_catches_answers_without_applying() -> None:
    _, result = first_catch(SimHooks(core_class=doubles.PhantomAckCore), "acks", range(1, 6))
    assert any("is not in the committed chain" in v for v in result.violations)


def test_linearizability_checker_catches_local_reads() -> None:
    _, result = first_catch(
        SimHooks(core_class=doubles.LocalReadCore), "linearizability", range(1, 12)
    )
    text = next(v for v in result.violations if "linearizability" in v)
    assert "minimal failing sub-history" in text and "read" in text


def test_liveness_checker_names_a_stalled_sequencer() -> None:
    _, result = first_catch(
        SimHooks(core_class=doubles.StalledSequencerCore), "liveness", range(1, 8)
    )
    text = next(v for v in result.violations if "liveness" in v)
    assert "leader" in text and "node 1" in text


def test_block_time_checker_catches_a_fast_sequencer_clock() -> None:
    first_catch(SimHooks(core_class=doubles.FutureClockCore), "block time", range(1, 3))
