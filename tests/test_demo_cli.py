"""`deltasync demo` in short form: it trades, prints a summary, and checks invariants."""

from __future__ import annotations

import pytest

from deltasync.cli.main import main


def test_demo_short_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--in-process", "--duration", "20", "--blocks", "15", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "invariants" in out and "OK" in out
    assert "state root" in out and "trades" in out


def test_demo_is_deterministic_for_a_seed() -> None:
    from deltasync.demo.in_process import run_scenario

    first = run_scenario(seed=3, blocks_max=10)
    second = run_scenario(seed=3, blocks_max=10)
    other = run_scenario(seed=4, blocks_max=10)
    assert first.state_root == second.state_root != other.state_root
    assert first.stats.trades > 0 and first.problems == []
