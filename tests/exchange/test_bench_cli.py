"""`deltasync bench exchange --json --quick` prints one JSON object with the figures."""

from __future__ import annotations

import json

import pytest

from deltasync.cli.main import main


def test_bench_exchange_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "exchange", "--json", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("matching_ops_per_s", "apply_orders_per_s", "state_root_us_per_key"):
        assert figures[key] > 0, key
