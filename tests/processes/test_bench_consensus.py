"""`deltasync bench consensus` trades a live instrument on any date and says so in its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from deltasync.core.ids import parse_option_name
from deltasync.exchange.instruments import expiry_ns_of


@pytest.mark.dates
def test_bench_consensus_orders_are_accepted_by_the_venue() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deltasync.cli.main", "bench", "consensus", "--json",
         "--seconds", "0.3"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["orders_accepted_by_the_venue"] is True, result
    assert result["probe_orders"] == ["accepted", "accepted"] and result["roots_agree"] is True
    assert expiry_ns_of(parse_option_name(result["instrument"]).expiry_days) > time.time_ns()
