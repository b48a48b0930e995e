"""The checkers that run at the end of a simulation (some also run as it goes).

1. state roots: every node that reached a height has the same block and root
   there (online, in ``Simulator._on_block``; a node that halts on a root
   mismatch is a violation too); at the end all running nodes agree.
2. no lost acknowledgement: every command acknowledged with success appears in
   the final committed chain exactly once, at the height its answer named, and
   no (session, request) is ever applied twice.
3. linearizability of the funding accounts' client history (``linearizability``).
4. exchange invariants after every applied block on every node (online, via
   ``CheckedExchangeState``), and once more on every running node at the end.
5. liveness: after healing, every client operation completes, the chain grows,
   and every running node catches up; a violation names what was stuck.

Durability itself is checked at every restart: a node on a healthy disk must
recover at least the term, vote and log it had made durable before the crash.
A node whose disk lied (lost fsync, flipped bit) may legitimately forget; Raft
does not tolerate that, so once such amnesia is observed, the safety and
liveness violations of that run are reported as *excused* rather than as
violations (the invariant and durability checks stay strict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deltasync.exchange import invariants
from deltasync.sim.config import CONVERGE_NS, NS_PER_S
from deltasync.sim.linearizability import check_history, partition, shrink

if TYPE_CHECKING:
    from deltasync.sim.simulator import Simulator

STRICT_PREFIXES = ("invariants:", "durability:", "storage:")


def check_chain(sim: Simulator) -> list[str]:
    problems = []
    height = max(sim.chain, default=0)
    missing = [h for h in range(1, height + 1) if h not in sim.chain]
    if missing:
        problems.append(f"acks: the chain has gaps at heights {missing[:10]}")
    applied: dict[tuple[int, int], list[int]] = {}
    for h in range(1, height + 1):
        block = sim.chain.get(h)
        if block is None:
            continue
        for session, request, _origin in block.sessions:
            if session:
                applied.setdefault((session, request), []).append(h)
    for key, heights in sorted(applied.items()):
        if len(heights) > 1:
            problems.append(
                f"acks: request {key} applied {len(heights)} times, at heights {heights}"
            )
    for ack in sim.acks:
        key = (ack.session, ack.request)
        where = applied.get(key)
        if not where:
            problems.append(
                f"acks: request {key} acknowledged by node {ack.node} at height {ack.height}"
                f" (t={(ack.at_ns - sim.start_ns) / NS_PER_S:.3f}s) is not in the committed chain"
            )
        elif ack.height != where[0]:
            problems.append(
                f"acks: request {key} acknowledged at height {ack.height} but applied at {where[0]}"
            )
    return _dedupe(problems)


def check_linearizability(
    sim: Simulator, budget: int = 2_000_000
) -> tuple[list[str], dict[str, int]]:
    problems = []
    stats = {"keys": 0, "inconclusive": 0, "explored": 0}
    history = sim.history + sim.system_operations()
    parts = partition(history)
    for result in check_history(history, budget=budget):
        stats["keys"] += 1
        stats["explored"] += result.explored
        if result.linearizable is None:
            stats["inconclusive"] += 1
        elif result.linearizable is False:
            minimal = shrink(parts[result.key])
            lines = "\n    ".join(op.describe() for op in minimal)
            problems.append(
                f"linearizability: account {result.key}: {result.operations} operations are not"
                f" linearizable; a minimal failing sub-history ({len(minimal)} ops):\n    {lines}"
            )
    return problems, stats


def check_final_state(sim: Simulator) -> list[str]:
    problems = []
    running = {i: n.core for i, n in sim.nodes.items() if n.core is not None}
    for node_id, core in running.items():
        for problem in invariants.check_invariants(core.machine)[:3]:
            problems.append(f"invariants: node {node_id} at the end: {problem}")
    return problems


def check_liveness(sim: Simulator) -> list[str]:
    problems = []
    config = sim.config
    running = {i: n.core for i, n in sim.nodes.items() if n.core is not None}
    status = "; ".join(sim.node_status(i) for i in sim.voters)
    if len(running) < config.quorum:
        startable = [i for i, n in sim.nodes.items() if n.refused is None and n.halted is None]
        problems.append(
            f"liveness: only {len(running)} of {config.nodes} nodes run after healing"
            f" ({len(startable)} could start): {status}"
        )
        return problems
    height = max(sim.chain, default=0)
    if height <= sim.liveness_height:
        leader = sim.leader()
        problems.append(
            f"liveness: no block committed after healing (height stays {height};"
            f" {'no leader' if leader is None else f'leader {leader}'}): {status}"
        )
    first = sim.first_block_after_healing_ns
    if first is not None and first - sim.liveness_start_ns > config.liveness_bound_ns:
        problems.append(
            f"liveness: the first block after healing came {(first - sim.liveness_start_ns) / NS_PER_S:.1f} s"
            f" later (bound {config.liveness_bound_ns / NS_PER_S:.0f} s): {status}"
        )
    heights = {i: core.tip.height for i, core in running.items()}
    behind = sorted(i for i, h in heights.items() if h < sim.converge_height)
    if behind:
        problems.append(
            f"liveness: nodes {behind} did not catch up to height {sim.converge_height}"
            f" within {CONVERGE_NS // NS_PER_S} s: {status}"
        )
    stuck = []
    for client_id, op in sim.liveness_ops:
        client = sim.clients[client_id]
        finished = op.op_id in sim.finished_ops
        if finished and sim.finished_ops[op.op_id] - op.invoke_ns > config.liveness_bound_ns:
            stuck.append(
                f"client {client_id} op {op.op_id} ({op.kind}, session {client.session}"
                f" request {op.request}) took"
                f" {(sim.finished_ops[op.op_id] - op.invoke_ns) / NS_PER_S:.1f} s"
            )
        elif client.op is op:
            stuck.append(
                f"client {client_id} op {op.op_id} ({op.kind}, session {client.session}"
                f" request {op.request}) still pending after {op.attempts} attempts"
            )
        elif not finished:
            stuck.append(
                f"client {client_id} op {op.op_id} ({op.kind}, session {client.session}"
                f" request {op.request}) gave up after {op.attempts} attempts"
                f" (last via node {op.attempt_node})"
            )
    if stuck:
        problems.append(
            f"liveness: {len(stuck)} client operations did not complete within the bound after healing: "
            + "; ".join(stuck[:5])
            + f". Nodes: {status}"
        )
    return problems


def run_checkers(sim: Simulator) -> None:
    found = list(sim.violations)
    found += check_chain(sim)
    lin, lin_stats = check_linearizability(sim)
    found += lin
    found += check_final_state(sim)
    found += check_liveness(sim)
    sim.stats.update({f"linearizability_{k}": v for k, v in lin_stats.items()})
    amnesia = [text for node in sim.nodes.values() for text in node.amnesia]
    violations, excused = [], []
    for text in _dedupe(found):
        if (
            amnesia
            and not text.split(" ", 1)[-1].startswith(STRICT_PREFIXES)
            and not text.startswith(STRICT_PREFIXES)
        ):
            excused.append(text)
        else:
            violations.append(text)
    if amnesia and excused:
        excused.insert(0, "amnesia: " + " | ".join(amnesia))
    sim.violations = violations
    sim.excused = excused


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
