from __future__ import annotations

from deltasync.core.fixed import Amount
from deltasync.exchange import invariants
from deltasync.exchange.commands import Deposit
from deltasync.node.driver import NodeSettings

from .harness import Cluster


def _deposited(cluster: Cluster, node: int) -> list[tuple[int, int]]:
    return [(a.session, a.request) for a in cluster.answers[node] if a.error is None]


def test_commands_from_any_node_are_applied_once_with_equal_roots() -> None:
    cluster = Cluster(3)
    cluster.until(lambda: cluster.leader() is not None)
    follower = next(i for i in cluster.voters if i != cluster.leader())
    for request in range(1, 21):
        cluster.submit(follower, Deposit(request, Amount.whole(100)), session=77, request=request)
    cluster.until(lambda: len(_deposited(cluster, follower)) == 20)
    cluster.step(30)
    heights = {i: cluster.nodes[i].tip.height for i in cluster.voters}  # type: ignore[union-attr]
    roots = {cluster.nodes[i].tip.state_root for i in cluster.voters}  # type: ignore[union-attr]
    assert len(set(heights.values())) == 1 and len(roots) == 1
    machine = cluster.nodes[1].machine  # type: ignore[union-attr]
    assert machine.deposits_total == 20 * Amount.whole(100).raw
    assert invariants.check_invariants(machine) == []


def test_retry_is_applied_at_most_once() -> None:
    cluster = Cluster(3)
    cluster.until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    cluster.submit(leader, Deposit(5, Amount.whole(1)), session=9, request=1)
    cluster.until(lambda: len(cluster.answers[leader]) == 1)
    # the same (session, request) again, through another node: answered, not re-applied
    other = next(i for i in cluster.voters if i != leader)
    cluster.submit(other, Deposit(5, Amount.whole(1)), session=9, request=1)
    cluster.until(lambda: len(cluster.answers[other]) == 1)
    first, again = cluster.answers[leader][0], cluster.answers[other][0]
    assert again.height == first.height and again.events == first.events
    assert cluster.nodes[other].machine.deposits_total == Amount.whole(1).raw  # type: ignore[union-attr]


def test_leader_crash_loses_no_acknowledged_command_and_restart_catches_up() -> None:
    cluster = Cluster(3, settings=NodeSettings(election_ticks=10, heartbeat_ticks=1, snapshot_every_blocks=5))
    cluster.until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    gateway = next(i for i in cluster.voters if i != leader)
    for request in range(1, 11):
        cluster.submit(gateway, Deposit(request, Amount.whole(10)), session=1, request=request)
        cluster.step(2)
    cluster.crash(leader)
    for request in range(11, 21):
        cluster.submit(gateway, Deposit(request, Amount.whole(10)), session=1, request=request)
    cluster.until(lambda: len(_deposited(cluster, gateway)) == 20, ticks_max=5000)
    assert cluster.nodes[gateway].snapshots.list(), "compaction should have written snapshots"  # type: ignore[union-attr]
    cluster.restart(leader)
    cluster.until(
        lambda: cluster.nodes[leader].tip.height == cluster.nodes[gateway].tip.height,  # type: ignore[union-attr]
        ticks_max=5000,
    )
    cluster.step(20)
    roots = {cluster.nodes[i].tip.state_root for i in cluster.voters}  # type: ignore[union-attr]
    assert len(roots) == 1
    assert cluster.nodes[leader].machine.deposits_total == 20 * Amount.whole(10).raw  # type: ignore[union-attr]


def test_a_diverging_replica_halts_and_names_candidate_keys() -> None:
    cluster = Cluster(3)
    cluster.until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    victim = next(i for i in cluster.voters if i != leader)
    cluster.submit(leader, Deposit(1, Amount.whole(5)), session=3, request=1)
    cluster.until(lambda: len(cluster.answers[leader]) == 1)
    cluster.step(5)
    # corrupt one replica's state behind consensus' back (a non-deterministic bug)
    core = cluster.nodes[victim]
    assert core is not None
    core.machine.accounts[1].cash += 1
    core.machine.dirty_accounts[1] = None
    core.tip.state_root = core.machine.state_root()
    cluster.allow_halt = True
    cluster.submit(leader, Deposit(2, Amount.whole(5)), session=3, request=2)
    cluster.until(lambda: core.halted is not None)
    assert core.halted is not None and core.halted["reason"] == "state root mismatch"
    keys = [c["key"] for c in core.halted["divergent_key_candidates"]]
    assert (b"acct/" + (1).to_bytes(8, "big")).hex() in keys


def test_a_command_the_codec_cannot_encode_is_answered_and_left_out_of_its_block() -> None:
    """Issue 10, defect 1: one unencodable command (a lone surrogate, an integer beyond
    64 bits) submitted with others fails neither the block nor the leader, and a leader
    is still elected after the leader is killed."""
    cluster = Cluster(3)
    cluster.until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    core = cluster.nodes[leader]
    assert core is not None
    good = core.codec.encode(Deposit(5, Amount.whole(1)))
    poisons = [[good[0], "\ud800", 1], [good[0], 2**70, 1], [good[0], object()]]
    assert core.submit_wire(good, 3, 1, cluster.now)
    for request, poison in enumerate(poisons, start=2):
        assert core.submit_wire(poison, 3, request, cluster.now)
    assert core.submit_wire(core.codec.encode(Deposit(6, Amount.whole(2))), 3, 9, cluster.now)
    cluster.until(lambda: len(cluster.answers[leader]) == 5)
    by_request = {a.request: a for a in cluster.answers[leader]}
    assert [by_request[r].error for r in (1, 2, 3, 4, 9)] == [None, "malformed", "malformed",
                                                              "malformed", None]
    assert by_request[1].height == by_request[9].height > 0  # the rest of the block went on
    cluster.step(10)
    assert core.machine.deposits_total == Amount.whole(3).raw
    assert len({cluster.nodes[i].tip.state_root for i in cluster.voters}) == 1  # type: ignore[union-attr]
    cluster.crash(leader)
    cluster.until(lambda: cluster.leader() not in (None, leader))
    survivor = cluster.leader()
    assert survivor is not None
    cluster.submit(survivor, Deposit(7, Amount.whole(1)), session=4, request=1)
    cluster.until(lambda: any(a.session == 4 and a.error is None for a in cluster.answers[survivor]))
