"""`deltasync demo` in short form: a real 3-node cluster, a market, a crash, a kill, an expiry.

Runs the demo as a subprocess (as `make demo` does) and checks its JSON
summary: every node holds the same state root at a common height, the offline
replay of the log reproduces that root with every invariant intact, and the
scenario's milestones happened (trades, a combo, liquidations, the settlement
of the short expiry, a node killed and restarted and caught up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deltasync.node.server", reason="the node is not here yet")


@pytest.mark.dates
@pytest.mark.timeout(120)
def test_demo_runs_a_cluster_through_the_scenario(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    completed = subprocess.run(
        [sys.executable, "-m", "deltasync.cli.main", "demo", "--duration", "20", "--json",
         "--data-dir", str(data_dir), "--seed", "3"],
        capture_output=True, text=True, timeout=110,
    )
    assert completed.stdout.strip(), completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    detail = json.dumps(summary, indent=1)[:6000] + completed.stderr[-2000:]
    assert completed.returncode == 0, detail
    assert summary["ok"] is True and summary["problems"] == [], detail
    # every node, same root, same height; the replay reproduces it
    assert summary["roots_agree"] is True, detail
    assert summary["final_roots"]["nodes_compared"] == 3, detail
    assert len(set(summary["final_roots"]["roots"].values())) == 1, detail
    assert summary["root_disagreements"] == [] and summary["halts"] == [], detail
    audit = summary["audit"]
    assert audit["problems"] == [] and audit["complete"] is True, detail
    assert audit["root_matches_cluster"] is True, detail
    # the market happened
    assert summary["orders"] > 100 and summary["trades"] > 0, detail
    assert summary["latency_ms"]["p50"] is not None, detail
    assert summary["liquidations"] > 0 and audit["liquidated_accounts"] > 0, detail
    assert summary["settlements"] > 0 and audit["instruments_settled"] > 0, detail
    assert summary["combo_fills"] > 0 and audit["combos_filled"] > 0, detail
    # a WebSocket subscriber kept a book that matches the REST book at the end
    assert summary["subscription"]["notifications"] > 0, detail
    assert summary["subscription"]["book_matches_rest"] is not False, detail
    # a node was killed, restarted, and caught up
    assert summary["node_killed"] is not None and summary["node_restarted"] is True, detail
    assert summary["restarted_node_caught_up"] is True, detail
    # the demo cleaned up after itself: no node process left
    from deltasync.node.status import pid_alive, read_pid

    for node in (1, 2, 3):
        pid = read_pid(data_dir / f"node{node}")
        assert pid is None or not pid_alive(pid), f"node {node} still running"


def test_demo_refuses_bad_arguments() -> None:
    import argparse

    from deltasync.cli.demo import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--nodes", "2"])) == 2
    assert run(parser.parse_args(["--duration", "3"])) == 2


def test_demo_leaves_an_existing_cluster_alone(tmp_path: Path) -> None:
    import argparse

    from deltasync.cli.demo import add_arguments, run

    (tmp_path / "cluster.json").write_text("{}")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--data-dir", str(tmp_path)])) == 2
    assert (tmp_path / "cluster.json").read_text() == "{}"


def test_plan_places_the_milestones_in_order() -> None:
    from deltasync.demo.scenario import Plan

    for duration in (20.0, 60.0, 300.0):
        plan = Plan(duration)
        start, end = plan.outage
        assert 0 < start < plan.kill_s < end < plan.restart_s < plan.crash_s
        assert plan.crash_s + plan.crash_len_s < plan.expiry_s < duration


def _good_summary() -> dict[str, object]:
    return {
        "roots_agree": True, "root_disagreements": [], "halts": [], "problems": [],
        "node_restarted": True, "restarted_node_caught_up": True, "combo_fills": 1,
        "trades_client_view": 5,
        "audit": {"problems": [], "complete": True, "trades": 9, "liquidations": 2,
                  "settlements": 3},
    }


def test_verdict_fails_the_run_on_divergence_halts_and_broken_invariants() -> None:
    from deltasync.demo.summary import verdict

    good = verdict(_good_summary())
    assert good["ok"] is True and good["problems"] == [] and good["warnings"] == []
    assert (good["trades"], good["liquidations"], good["settlements"]) == (9, 2, 3)

    for change in (
        {"roots_agree": False},
        {"root_disagreements": [{"height": 7, "roots": {"1": "aa", "2": "bb"}}]},
        {"halts": ["node2/reports/halt-7.json.json"]},
        {"audit": {"problems": ["accounts: sum of balances != deposits"], "complete": True}},
    ):
        summary = {**_good_summary(), **change}
        assert verdict(summary)["ok"] is False, change
        assert summary["problems"], change

    quiet = verdict({**_good_summary(), "audit": {"problems": [], "complete": False}})
    assert quiet["ok"] is True
    assert "no liquidation happened" in quiet["warnings"]
    assert "the short expiry did not settle" in quiet["warnings"]


def test_watch_finds_halt_reports(tmp_path: Path) -> None:
    from deltasync.cli import cluster
    from deltasync.demo.cluster import Watch

    watch = Watch(tmp_path, {}, cluster)
    assert watch.halts() == []
    reports = tmp_path / "node2" / "reports"
    reports.mkdir(parents=True)
    (reports / "halt-41.json.json").write_text("{}")
    assert watch.halts() == [str(reports / "halt-41.json.json")]
    watch.rows = [{"id": 3, "halted": {"reason": "state root mismatch"}}]
    assert len(watch.halts()) == 2
