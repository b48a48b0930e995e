"""The demo's auditor: replay a stopped node's committed log offline and count what happened.

``audit_node(node_dir)`` opens the node's Raft log read-only and replays every
committed block through ``node.chain`` (``Replica``: the checks of
``NodeCore._apply_entry`` — height, previous hash, block time, the header's state
root against the replayed one — and the same per-session de-duplication of retried
commands) on a fresh venue built from the node's genesis. Then it

- counts trades, liquidation steps (and the accounts they hit), positions and
  instruments settled at expiry, combos, oracle reports, circuit breaker trips;
- runs ``check_invariants`` every ``check_every`` blocks, and ``check_invariants``
  and ``check_commitment`` on the final state;
- compares the replayed root at the height the demo compared across the nodes
  with what the nodes reported there.

It stops at ``deadline_s`` (reporting how far it got) so the demo stays bounded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from deltasync.exchange import events as xe
from deltasync.exchange import invariants
from deltasync.exchange.liquidation import BackstopTransfer, LiquidationFill, LiquidationStarted
from deltasync.exchange.oracle import (
    CircuitBreakerTripped,
    OracleReportAccepted,
    OracleReportRejected,
)
from deltasync.exchange.settlement import InstrumentSettled, PositionSettled
from deltasync.exchange.state import BlockResult
from deltasync.node import machine
from deltasync.node.chain import ReplayedBlock, Replica, committed_blocks, replay
from deltasync.storage.datadir import DataDir
from deltasync.storage.raft_log import RaftStorage


class EventTally:
    """Counts of what the replayed blocks did, from the state machine's events."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.liquidated: set[int] = set()
        self.settled_instruments: dict[str, str] = {}  # name -> settlement price

    def add(self, block: ReplayedBlock) -> None:
        self.counts["blocks"] += 1
        self.counts["commands"] += len(block.commands)
        for event in _events(block.result):
            self._count(event)

    def _count(self, event: Any) -> None:
        counts = self.counts
        match event:
            case xe.Trade():
                counts["trades"] += 1
            case xe.OrderAccepted():
                counts["orders_accepted"] += 1
            case xe.OrderRejected():
                counts["orders_rejected"] += 1
            case xe.OrderEdited():
                counts["edits"] += 1
            case xe.OrderCancelled():
                counts["cancels"] += 1
            case xe.ComboFilled():
                counts["combos_filled"] += 1
            case LiquidationStarted(account=account):
                counts["liquidations"] += 1
                self.liquidated.add(account)
            case LiquidationFill():
                counts["liquidation_fills"] += 1
            case BackstopTransfer():
                counts["backstop_transfers"] += 1
            case PositionSettled():
                counts["settlements"] += 1
            case InstrumentSettled(instrument=name, settlement_price=price):
                self.settled_instruments[name] = str(price)
            case OracleReportAccepted():
                counts["oracle_reports_accepted"] += 1
            case OracleReportRejected():
                counts["oracle_reports_rejected"] += 1
            case CircuitBreakerTripped():
                counts["breaker_trips"] += 1


def audit_node(node_dir: Path, expected_roots: dict[str, Any] | None = None,
               deadline_s: float = 30.0, check_every: int = 500) -> dict[str, Any]:
    """Replay ``node_dir``'s committed log; the counts, the final root and the problems found."""
    started = time.monotonic()
    config = json.loads((node_dir / "config.json").read_text())
    state = machine.new_machine(machine.genesis_from(config.get("genesis")))
    _, recovered = RaftStorage.open(DataDir(str(node_dir)).raft_dir, read_only=True)
    if recovered.snapshot_index > 0:
        return {"problems": [], "complete": False,
                "skipped": "the log is compacted (a snapshot replaced its start)"}
    replica = Replica(state, machine.command_codec().decode)
    tally = EventTally()
    roots: dict[int, bytes] = {0: replica.tip.state_root}
    problems: list[str] = []
    complete = True
    for block in replay(replica, committed_blocks(recovered.entries, recovered.hard_state.commit)):
        roots[block.height] = block.result.state_root
        tally.add(block)
        if check_every and block.height % check_every == 0:
            found = invariants.check_invariants(state)
            if found:
                problems += [f"after block {block.height}: {p}" for p in found[:10]]
                break
        if time.monotonic() - started > deadline_s:
            complete = False
            break
    if replica.halted is not None:
        problems.append(_divergence(replica.halted))
    if not problems:
        problems += invariants.check_invariants(state) + invariants.check_commitment(state)
    compared = _compare_roots(roots, expected_roots, problems)
    return _report(replica, tally, compared, complete, time.monotonic() - started, problems)


def _divergence(halted: dict[str, Any]) -> str:
    keys = [candidate["key"] for candidate in halted["divergent_key_candidates"][:4]]
    return (f"block {halted['height'] + 1}: the header's state root differs from the replayed "
            f"root (the replay or a replica diverged); keys the block before changed: {keys}")


def _compare_roots(roots: dict[int, bytes], expected_roots: dict[str, Any] | None,
                   problems: list[str]) -> bool | None:
    """Is the replayed root the nodes' root at the height they were compared at?"""
    if not expected_roots or not expected_roots.get("roots"):
        return None
    at = int(expected_roots["height"])
    mine = roots.get(at)
    if mine is None:
        return None
    compared = set(expected_roots["roots"].values()) == {mine.hex()}
    if not compared:
        problems.append(f"the replayed root at height {at} is not the nodes' root")
    return compared


def _report(replica: Replica, tally: EventTally, compared: bool | None, complete: bool,
            elapsed_s: float, problems: list[str]) -> dict[str, Any]:
    counts = tally.counts
    skipped = {
        "stale_blocks_skipped": replica.skipped["stale_block"],
        "malformed_blocks_skipped": replica.skipped["malformed_block"],
        "malformed_commands_skipped": replica.skipped["malformed"],
        "duplicates_answered_from_cache": replica.skipped["duplicate"] + replica.skipped["expired"],
    }
    return {
        **dict(counts),
        **{key: n for key, n in skipped.items() if n},
        "trades": counts["trades"],
        "liquidations": counts["liquidations"],
        "liquidated_accounts": len(tally.liquidated),
        "settlements": counts["settlements"],
        "instruments_settled": len(tally.settled_instruments),
        "settlement_prices": {name.split("_", 1)[0]: price
                              for name, price in sorted(tally.settled_instruments.items())},
        "height": replica.tip.height,
        "state_root": replica.tip.state_root.hex(),
        "root_matches_cluster": compared,
        "complete": complete,
        "elapsed_s": round(elapsed_s, 2),
        "problems": problems,
    }


def _events(result: BlockResult) -> list[Any]:
    out = list(result.start_events)
    for events in result.events:
        out += events
    out += result.end_events
    return out
