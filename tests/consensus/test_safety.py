"""Randomized safety test: a cluster under drops, duplicates, reordering,
partitions, crashes, compaction and membership changes never breaks Raft's
safety properties, and once healed it makes progress again.

Checked continuously (see ``raft_harness.Cluster``): election safety (one
leader per term), log matching, leader completeness (every committed entry is
in every later leader's log), state machine safety (no two nodes apply
different entries at one index) and read linearizability (a ReadIndex read
observes every entry committed before it started). Each failure names the seed that replays it.
"""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster, SafetyViolation

from deltasync.consensus import ConfChangeKind


def chaos(seed: int, steps: int, node_count: int) -> Cluster:
    rng = random.Random(seed)
    cluster = Cluster(
        seed=seed,
        election_timeout_ticks=6,
        snapshot_chunk_bytes=64,
        inflight_appends_max=4,
        entries_per_append_max=rng.choice([1, 2, 4]),
        pre_vote=rng.random() < 0.7,
        check_quorum=rng.random() < 0.7,
        send_before_persist=rng.random() < 0.5,
    )
    cluster.add_nodes(node_count)
    cluster.process()
    spare_ids = list(range(node_count + 1, node_count + 3))
    drop_rate = rng.choice([0.05, 0.2, 0.4])
    proposals = 0
    for _ in range(steps):
        roll = rng.random()
        alive = cluster.alive()
        if roll < 0.25:
            cluster.tick_all(1)
        elif roll < 0.55 and cluster.network:
            # Deliver a random subset in random order; lose or duplicate a few.
            batch = rng.sample(cluster.network, k=rng.randint(1, len(cluster.network)))
            for message in batch:
                cluster.network.remove(message)
            for message in batch:
                if rng.random() < drop_rate:
                    continue
                cluster.deliver_one(message, verbose=False)
                if rng.random() < 0.05:
                    cluster.deliver_one(message, verbose=False)
            cluster.process()
        elif roll < 0.68 and alive:
            node = rng.choice(alive)
            proposals += 1
            cluster.raft(node).propose(f"p{proposals}".encode())
            cluster.process()
        elif roll < 0.71 and len(cluster.nodes) > 1:
            members = sorted(cluster.nodes)
            rng.shuffle(members)
            cut = rng.randint(1, len(members) - 1)
            cluster.partition([set(members[:cut]), set(members[cut:])])
        elif roll < 0.75:
            cluster.heal()
        elif roll < 0.78 and len(alive) > 1:
            leader = cluster.leader()
            victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(alive)
            if rng.random() < 0.5:
                cluster.crash(victim)
            else:  # mid-Ready: its early messages are out, nothing of it is on disk
                cluster.crash_during_persist.add(victim)
                cluster.process([victim])
                cluster.crash_during_persist.discard(victim)
        elif roll < 0.83:
            down = [n for n in sorted(cluster.nodes) if not cluster.nodes[n].alive]
            if down:
                cluster.restart(rng.choice(down))
                cluster.process()
        elif roll < 0.87 and alive:
            node = cluster.nodes[rng.choice(alive)]
            raft = cluster.raft(node.node_id)
            if raft.log.applied > raft.log.storage.offset:
                node.compact(rng.randint(raft.log.storage.offset + 1, raft.log.applied))
        elif roll < 0.90:
            leader = cluster.leader()
            if leader is not None:
                target = rng.choice(sorted(cluster.nodes) + spare_ids)
                kind = rng.choice(list(ConfChangeKind))
                if kind is not ConfChangeKind.REMOVE_NODE:
                    cluster.start_joining(target)
                cluster.conf_change(leader, kind, target)
                cluster.process()
        elif roll < 0.93 and alive:
            node = rng.choice(alive)
            cluster.read_index(node, f"{node}:{rng.randrange(10**6)}".encode())
            cluster.process()
        elif roll < 0.95 and alive:
            # Leader churn without waiting for timeouts: a random node campaigns now.
            cluster.raft(rng.choice(alive)).campaign()
            cluster.process()
        elif roll < 0.97:
            leader = cluster.leader()
            if leader is not None:
                cluster.raft(leader).transfer_leadership(rng.choice(sorted(cluster.nodes)))
                cluster.process()
        cluster.check_log_matching()
    return cluster


def heal_and_converge(cluster: Cluster) -> None:
    """Liveness once faults stop: a leader commits a new entry and every member applies it."""
    cluster.heal()
    for node_id in sorted(cluster.nodes):
        if not cluster.nodes[node_id].alive:
            cluster.restart(node_id)
    cluster.process()
    final: tuple[int, int] | None = None  # (index, term) of the last proposal
    for _ in range(400):
        cluster.tick_all(1)
        cluster.stabilize(verbose=False)
        leader = cluster.leader()
        if leader is None:
            continue
        raft = cluster.raft(leader)
        if final is None or raft.log.term(final[0]) != final[1]:
            result = raft.propose(b"final")
            final = (result, raft.term) if isinstance(result, int) else None
            continue
        final_index = final[0]
        members = raft.conf_state().members()
        if all(cluster.nodes[n].applied_index >= final_index for n in members):
            applied = {cluster.nodes[n].applied[final_index].data for n in members}
            assert applied == {b"final"}, applied
            return
    states = {n: cluster.raft(n).status() for n in cluster.alive()}
    raise AssertionError(f"no progress after healing: {states}")


def run_seed(seed: int, steps: int) -> None:
    node_count = 3 if seed % 2 else 5
    try:
        cluster = chaos(seed, steps, node_count)
        cluster.check_log_matching()
        heal_and_converge(cluster)
        cluster.check_log_matching()
    except (SafetyViolation, AssertionError) as exc:
        raise AssertionError(f"seed {seed} ({node_count} nodes, {steps} steps): {exc}") from exc


@pytest.mark.parametrize("seed", range(12))
def test_safety_under_chaos(seed: int) -> None:
    run_seed(seed, steps=400)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 300))
def test_safety_under_chaos_long(seed: int) -> None:
    run_seed(seed, steps=2000)
