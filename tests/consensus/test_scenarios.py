"""Runs every scripted scenario in scenarios/ and compares its trace.

Set ``DELTASYNC_REWRITE=1`` to rewrite the expected traces on purpose (then
review the diff before committing it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from raft_scenario import run_file

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.txt"))


def test_scenarios_exist() -> None:
    names = {path.stem for path in SCENARIOS}
    required = {
        "election",
        "prevote_checkquorum",
        "partition",
        "figure8",
        "snapshot",
        "membership",
        "transfer",
        "read_index",
    }
    assert required <= names, f"missing scenarios: {sorted(required - names)}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_scenario(path: Path) -> None:
    expected, actual = run_file(path)
    if os.environ.get("DELTASYNC_REWRITE") == "1":
        if actual != expected:
            path.write_text(actual)
        return
    assert actual == expected, (
        f"{path.name}: trace differs (DELTASYNC_REWRITE=1 rewrites it on purpose)"
    )
