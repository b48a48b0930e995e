"""The demo's auditor: replay a stopped node's committed log offline and count what happened.

``audit_node(node_dir)`` opens the node's Raft log read-only, applies every
committed block to a fresh venue built from the same genesis, exactly as a
replica does (block chaining, per-session de-duplication of retried
commands, see ``node.driver.NodeCore._apply_entry``), and

- checks each block header's state root (the leader's root before the block)
  against the replayed one: the replay reproduces the cluster's state;
- counts trades, liquidation steps (and the accounts they hit), positions
  and instruments settled at expiry, combos, oracle reports, circuit breaker
  trips;
- runs ``check_invariants`` and ``check_commitment`` on the final state
  (and every ``check_every`` blocks);
- compares the replayed root at the height the demo compared across the
  nodes with what the nodes reported there.

It stops at ``deadline_s`` (reporting how far it got) so the demo stays bounded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any


def audit_node(node_dir: Path, expected_roots: dict[str, Any] | None = None,
               deadline_s: float = 30.0, check_every: int = 500) -> dict[str, Any]:
    from deltasync.consensus.messages import EntryType
    from deltasync.core.errors import CodecError
    from deltasync.exchange import events as xe
    from deltasync.exchange import invariants
    from deltasync.exchange.liquidation import BackstopTransfer, LiquidationFill, LiquidationStarted
    from deltasync.exchange.oracle import (
        CircuitBreakerTripped,
        OracleReportAccepted,
        OracleReportRejected,
    )
    from deltasync.exchange.settlement import InstrumentSettled, PositionSettled
    from deltasync.node import machine
    from deltasync.node.block import GENESIS_HASH, Block, Noop, block_hash
    from deltasync.node.sessions import Outcome, SessionTable
    from deltasync.storage.datadir import DataDir
    from deltasync.storage.raft_log import RaftStorage

    started = time.monotonic()
    config = json.loads((node_dir / "config.json").read_text())
    genesis = machine.genesis_from(config.get("genesis"))
    state = machine.new_machine(genesis)
    codec = machine.command_codec()
    layout = DataDir(str(node_dir))
    _, recovered = RaftStorage.open(layout.raft_dir, read_only=True)
    problems: list[str] = []
    counts: Counter[str] = Counter()
    liquidated: set[int] = set()
    settled_instruments: dict[str, str] = {}
    sessions = SessionTable()
    height, last_hash, time_ns = 0, GENESIS_HASH, state.time_ns
    root = state.state_root()
    roots: dict[int, bytes] = {0: root}
    complete = True
    if recovered.snapshot_index > 0:
        return {"problems": [], "complete": False,
                "skipped": "the log is compacted (a snapshot replaced its start)"}
    for entry in recovered.entries:
        if entry.index > recovered.hard_state.commit:
            break
        if entry.type != EntryType.NORMAL.value:
            continue
        if time.monotonic() - started > deadline_s:
            complete = False
            break
        try:
            block = Block.from_bytes(entry.data)
        except CodecError:
            continue
        header = block.header
        if header.height != height + 1 or header.prev_hash != last_hash or header.time_ns < time_ns:
            counts["stale_blocks_skipped"] += 1
            continue
        if header.state_root != root:
            problems.append(f"block {header.height}: the header's state root differs from the "
                            "replayed root (the replay or a replica diverged)")
            break
        commands: list[Any] = []
        seen: set[tuple[int, int]] = set()
        keys: list[tuple[int, int]] = []
        for command in block.commands:
            key = (command.session, command.request)
            if command.session != 0 and key in seen:
                continue
            seen.add(key)
            outcome, _ = sessions.check(command.session, command.request)
            if outcome is not Outcome.NEW:
                counts["duplicates_answered_from_cache"] += 1
                continue
            try:
                decoded = codec.decode(command.command)
            except CodecError:
                continue
            if isinstance(decoded, Noop):
                sessions.record(command.session, command.request, (header.height, ()),
                                header.time_ns)
                continue
            commands.append(decoded)
            keys.append(key)
        result = state.apply_block(header.height, header.time_ns, commands)
        for slot, (session, request) in enumerate(keys):
            sessions.record(session, request, (header.height, result.events[slot]),
                            header.time_ns)
        sessions.evict_idle(header.time_ns)
        height, time_ns, last_hash = header.height, header.time_ns, block_hash(entry.data)
        root = result.state_root
        roots[height] = root
        counts["blocks"] += 1
        counts["commands"] += len(commands)
        for event in _events(result):
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
                    liquidated.add(account)
                case LiquidationFill():
                    counts["liquidation_fills"] += 1
                case BackstopTransfer():
                    counts["backstop_transfers"] += 1
                case PositionSettled():
                    counts["settlements"] += 1
                case InstrumentSettled(instrument=name, settlement_price=price):
                    settled_instruments[name] = str(price)
                case OracleReportAccepted():
                    counts["oracle_reports_accepted"] += 1
                case OracleReportRejected():
                    counts["oracle_reports_rejected"] += 1
                case CircuitBreakerTripped():
                    counts["breaker_trips"] += 1
        if check_every and height % check_every == 0:
            found = invariants.check_invariants(state)
            if found:
                problems += [f"after block {height}: {p}" for p in found[:10]]
                break
    if not problems:
        problems += invariants.check_invariants(state) + invariants.check_commitment(state)
    compared = None
    if expected_roots and expected_roots.get("roots"):
        at = int(expected_roots["height"])
        mine = roots.get(at)
        if mine is not None:
            theirs = set(expected_roots["roots"].values())
            compared = theirs == {mine.hex()}
            if not compared:
                problems.append(f"the replayed root at height {at} is not the nodes' root")
    return {
        **dict(counts),
        "trades": counts["trades"],
        "liquidations": counts["liquidations"],
        "liquidated_accounts": len(liquidated),
        "settlements": counts["settlements"],
        "instruments_settled": len(settled_instruments),
        "settlement_prices": {name.split("_", 1)[0]: price
                              for name, price in sorted(settled_instruments.items())},
        "height": height,
        "state_root": root.hex(),
        "root_matches_cluster": compared,
        "complete": complete,
        "elapsed_s": round(time.monotonic() - started, 2),
        "problems": problems,
    }


def _events(result: Any) -> list[Any]:
    out = list(result.start_events)
    for events in result.events:
        out += events
    out += result.end_events
    return out
