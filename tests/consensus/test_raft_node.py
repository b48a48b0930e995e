"""Unit behaviour of RaftNode: the Ready contract, limits, backtracking, recovery."""

from __future__ import annotations

import random

import pytest
from raft_harness import Cluster

from deltasync.consensus import (
    AppendEntries,
    AppendResponse,
    ConfChangeKind,
    Entry,
    EntryType,
    HardState,
    HeartbeatResponse,
    RaftConfig,
    RaftNode,
    RaftUsageError,
    RecoveredState,
    RecoveryError,
    Rejected,
    RequestRejectReason,
    Role,
    VoteRequest,
)
from deltasync.core.errors import ConfigError


def elected(count: int = 3, **config: object) -> Cluster:
    cluster = Cluster(seed=7, **config)
    cluster.add_nodes(count)
    cluster.process()
    cluster.raft(1).campaign()
    cluster.stabilize(verbose=False)
    assert cluster.raft(1).role is Role.LEADER
    return cluster


# --- the Ready contract ------------------------------------------------------------


def test_bootstrap_ready_persists_membership_and_must_sync() -> None:
    node = RaftNode(RaftConfig(node_id=1, peers=(1, 2, 3)), None, random.Random(1))
    ready = node.ready()
    assert [e.index for e in ready.entries] == [1, 2, 3]
    assert all(e.type is EntryType.CONF_CHANGE and e.term == 1 for e in ready.entries)
    assert ready.hard_state == HardState(term=1, vote=0, commit=3)
    assert ready.must_sync
    assert [e.index for e in ready.committed_entries] == [1, 2, 3]
    with pytest.raises(RaftUsageError):
        node.ready()  # the previous one was not advanced
    node.advance(ready)
    assert not node.has_ready()
    assert node.status().applied_index == 3
    with pytest.raises(RaftUsageError):
        node.advance(ready)  # advancing twice


def test_vote_is_in_the_hard_state_of_the_ready_that_sends_it() -> None:
    node = RaftNode(RaftConfig(node_id=2, peers=(1, 2, 3)), None, random.Random(1))
    node.advance(node.ready())
    node.step(VoteRequest(1, 2, 2, last_index=3, last_term=1))
    ready = node.ready()
    assert ready.hard_state == HardState(term=2, vote=1, commit=3)
    assert ready.must_sync, "a granted vote must be fsynced before the answer leaves"
    assert len(ready.messages) == 1 and not ready.messages[0].reject  # type: ignore[union-attr]


def test_a_commit_index_change_alone_needs_no_sync() -> None:
    cluster = elected()
    follower = cluster.raft(2)
    leader = cluster.raft(1)
    leader.propose(b"x")
    cluster.process()
    # Deliver the entry, then only the commit index (heartbeat).
    cluster.deliver(verbose=False)  # App -> followers, they persist and ack
    cluster.deliver(verbose=False)  # acks -> leader commits and tells
    assert follower.log.committed < leader.log.committed
    heartbeat = [m for m in cluster.network if m.recipient == 2]
    cluster.network = [m for m in cluster.network if m.recipient != 2]
    for message in heartbeat:
        follower.step(message)
    ready = follower.ready()
    assert ready.hard_state is not None and ready.hard_state.commit == leader.log.committed
    assert not ready.entries and not ready.must_sync
    follower.advance(ready)


def test_follower_refuses_proposals_and_names_the_leader() -> None:
    cluster = elected()
    result = cluster.raft(2).propose(b"x")
    assert result == Rejected(RequestRejectReason.NOT_LEADER, 1)


def test_single_node_commits_on_its_own() -> None:
    cluster = Cluster(seed=1)
    cluster.add_nodes(1)
    cluster.raft(1).campaign()
    cluster.process()
    assert cluster.raft(1).role is Role.LEADER
    index = cluster.raft(1).propose(b"solo")
    cluster.process()
    assert cluster.nodes[1].applied[index].data == b"solo"  # type: ignore[index]
    assert cluster.raft(1).read_index(b"r") is None
    cluster.process()
    assert cluster.nodes[1].read_results == [(b"r", index)]


# --- replication limits ------------------------------------------------------------


def _appends_to(cluster: Cluster, node_id: int) -> list[AppendEntries]:
    return [m for m in cluster.network if isinstance(m, AppendEntries) and m.recipient == node_id]


def test_appends_are_batched_within_count_and_byte_limits() -> None:
    cluster = elected(entries_per_append_max=8, append_bytes_max=1000, inflight_appends_max=1000)
    leader = cluster.raft(1)
    cluster.network = []
    for i in range(50):
        leader.propose(b"%03d" % i)
    leader.propose(b"x" * 600)
    leader.propose(b"y" * 600)
    cluster.process()
    cluster.network = []
    # Make the leader resend everything to node 2: one probe, then (once the probe
    # is acknowledged) the rest pipelined.
    leader.progress[2].become_probe()
    leader.step(HeartbeatResponse(2, 1, leader.term))
    cluster.process()
    probe = _appends_to(cluster, 2)
    assert len(probe) == 1
    leader.step(AppendResponse(2, 1, leader.term, index=probe[0].entries[-1].index))
    cluster.process()
    sent = _appends_to(cluster, 2)
    assert len(sent) > 5
    for message in sent:
        assert len(message.entries) <= 8
        size = sum(len(e.data) for e in message.entries)
        assert size <= 1000 or len(message.entries) == 1
    shipped = [e.index for m in sent for e in m.entries]
    assert shipped == list(range(shipped[0], leader.log.last_index() + 1)), "contiguous, no gap"


def test_inflight_window_bounds_unacknowledged_appends() -> None:
    cluster = elected(entries_per_append_max=1, inflight_appends_max=4)
    leader = cluster.raft(1)
    cluster.network = []
    for i in range(20):
        leader.propose(b"e%d" % i)
    cluster.process()
    assert len(_appends_to(cluster, 2)) == 4, "pipelined up to the window, then paused"
    cluster.stabilize(verbose=False)
    assert cluster.raft(2).log.committed == leader.log.last_index()


def test_uncommitted_backlog_is_bounded() -> None:
    cluster = elected(uncommitted_bytes_max=1000)
    cluster.partition([{1}, {2, 3}])
    leader = cluster.raft(1)
    results = [leader.propose(b"z" * 100) for _ in range(12)]
    assert all(isinstance(r, int) for r in results[:10])
    assert results[-1] == Rejected(RequestRejectReason.UNCOMMITTED_BACKLOG, 1)
    assert leader.propose(b"z" * (10**7)) == Rejected(
        RequestRejectReason.ENTRY_TOO_LARGE, 1, f"{10**7} bytes"
    )


def test_fast_backtracking_skips_a_whole_divergent_term() -> None:
    """A follower holding 200 entries of a stale term needs a couple of round trips, not 200."""
    cluster = elected(check_quorum=False, pre_vote=False)  # no lease: 2 may campaign at once
    cluster.partition([{1}, {2, 3}])
    for i in range(200):
        cluster.raft(1).propose(b"stale %d" % i)
    cluster.process()
    cluster.network = []
    # Node 2 wins a later term with node 3, commits a few entries of its own.
    cluster.raft(2).campaign()
    cluster.stabilize(verbose=False)
    assert cluster.raft(2).role is Role.LEADER
    for i in range(3):
        cluster.raft(2).propose(b"fresh %d" % i)
    cluster.stabilize(verbose=False)
    cluster.heal()
    cluster.raft(2).tick()
    cluster.tick(2, cluster.raft(2).config.heartbeat_interval_ticks)
    rejections = 0
    for _ in range(50):
        if not cluster.network:
            break
        rejections += sum(
            1
            for m in cluster.network
            if isinstance(m, AppendResponse) and m.reject and m.sender == 1
        )
        cluster.deliver(verbose=False)
    assert cluster.raft(1).log.last_index() == cluster.raft(2).log.last_index()
    assert cluster.raft(1).log.term(cluster.raft(1).log.last_index()) == cluster.raft(2).term
    assert rejections <= 3, f"{rejections} rejections to skip one divergent term"


# --- membership -------------------------------------------------------------------


def test_one_membership_change_at_a_time() -> None:
    cluster = elected()
    leader = cluster.raft(1)
    cluster.start_joining(4)
    assert isinstance(leader.propose_conf_change(ConfChangeKind.ADD_LEARNER, 4), int)
    second = leader.propose_conf_change(ConfChangeKind.ADD_VOTER, 4)
    assert isinstance(second, Rejected) and second.reason is RequestRejectReason.CONF_CHANGE_PENDING
    cluster.stabilize(verbose=False)
    assert isinstance(leader.propose_conf_change(ConfChangeKind.ADD_VOTER, 4), int)
    cluster.stabilize(verbose=False)
    assert cluster.raft(4).conf_state().voters == (1, 2, 3, 4)


def test_new_leader_accepts_no_change_before_committing_in_its_term() -> None:
    cluster = elected(check_quorum=False, pre_vote=False)  # no lease: 2 may campaign at once
    cluster.partition([{1}, {2, 3}])
    cluster.raft(2).campaign()
    cluster.process()
    cluster.deliver(verbose=False)  # votes
    cluster.deliver(verbose=False)  # answers -> 2 leads, sends its no-op
    new_leader = cluster.raft(2)
    assert new_leader.role is Role.LEADER
    early = new_leader.propose_conf_change(ConfChangeKind.REMOVE_NODE, 1)
    assert isinstance(early, Rejected) and early.reason is RequestRejectReason.CONF_CHANGE_PENDING
    cluster.stabilize(verbose=False)
    assert isinstance(new_leader.propose_conf_change(ConfChangeKind.REMOVE_NODE, 1), int)


def test_learner_never_campaigns_and_does_not_count_for_commit() -> None:
    cluster = elected()
    cluster.start_joining(4)
    cluster.raft(1).propose_conf_change(ConfChangeKind.ADD_LEARNER, 4)
    cluster.stabilize(verbose=False)
    learner = cluster.raft(4)
    assert learner.conf_state().learners == (4,)
    cluster.crash(1)
    for _ in range(100):
        cluster.tick(4)
    assert learner.role is Role.FOLLOWER and learner.term == cluster.raft(2).term


# --- snapshots and recovery --------------------------------------------------------


def test_compact_returns_the_meta_and_refuses_unapplied_indexes() -> None:
    cluster = elected()
    leader = cluster.raft(1)
    index = leader.propose(b"x")
    cluster.stabilize(verbose=False)
    meta = leader.compact(index, b"state")  # type: ignore[arg-type]
    assert (meta.index, meta.term) == (index, leader.term)
    assert meta.conf_state.voters == (1, 2, 3)
    with pytest.raises(RaftUsageError):
        leader.compact(index + 5, b"state")  # type: ignore[operator]
    with pytest.raises(RaftUsageError):
        leader.compact(index, b"state")  # type: ignore[arg-type]


def test_restart_restores_term_vote_commit_and_log() -> None:
    cluster = elected()
    cluster.raft(1).propose(b"kept")
    cluster.stabilize(verbose=False)
    before = cluster.raft(2).status()
    cluster.crash(2)
    cluster.restart(2)
    after = cluster.raft(2).status()
    assert (after.term, after.vote, after.commit_index, after.last_index) == (
        before.term,
        before.vote,
        before.commit_index,
        before.last_index,
    )
    assert after.role is Role.FOLLOWER
    cluster.process()
    assert cluster.nodes[2].applied_index == before.commit_index


def test_unacknowledged_entries_may_be_lost_but_acknowledged_ones_never() -> None:
    cluster = elected()
    cluster.raft(1).propose(b"e")
    cluster.process()
    appends = [m for m in cluster.network if m.recipient == 2]
    cluster.network = []
    follower = cluster.raft(2)
    for message in appends:
        follower.step(message)
    assert follower.log.last_index() == 5
    cluster.crash(2)  # crashed before its Ready was persisted
    cluster.restart(2)
    assert cluster.raft(2).log.last_index() == 4


def test_recovery_refuses_inconsistent_state() -> None:
    config = RaftConfig(node_id=1)
    entries = (Entry(1, 1, EntryType.NORMAL, b""), Entry(2, 1, EntryType.NORMAL, b""))
    with pytest.raises(RecoveryError):
        RaftNode(config, RecoveredState(HardState(1, 0, 5), None, entries), random.Random(0))
    gap = (Entry(1, 1, EntryType.NORMAL, b""), Entry(3, 1, EntryType.NORMAL, b""))
    with pytest.raises(RecoveryError):
        RaftNode(config, RecoveredState(HardState(1, 0, 1), None, gap), random.Random(0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"node_id": 0},
        {"node_id": 1, "peers": (1, 1)},
        {"node_id": 1, "peers": (1,), "learners": (1,)},
        {"node_id": 1, "election_timeout_ticks": 1, "heartbeat_interval_ticks": 1},
        {"node_id": 1, "inflight_appends_max": 0},
        {"node_id": 1, "snapshot_chunk_bytes": 10**9},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RaftConfig(**kwargs)  # type: ignore[arg-type]


def test_message_for_another_node_is_a_usage_error() -> None:
    node = RaftNode(RaftConfig(node_id=1, peers=(1, 2, 3)), None, random.Random(0))
    with pytest.raises(RaftUsageError):
        node.step(VoteRequest(2, 3, 5, 0, 0))


def test_same_seed_same_trace() -> None:
    def trace(seed: int) -> list[str]:
        lines: list[str] = []
        cluster = Cluster(seed=seed, printer=lines.append)
        cluster.add_nodes(5)
        for _ in range(60):
            cluster.tick_all(1)
            cluster.stabilize()
        return lines

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_snapshot_answers_claim_only_the_committed_prefix() -> None:
    """A follower whose log agrees at the snapshot index keeps its later entries, but must
    not claim them: they may differ from the leader's."""
    from deltasync.consensus import InstallSnapshot, SnapshotMeta

    cluster = elected()
    leader = cluster.raft(1)
    for i in range(3):
        leader.propose(b"c%d" % i)
    cluster.stabilize(verbose=False)
    follower = cluster.raft(2)
    committed = follower.log.committed
    # Give the follower two uncommitted entries; the snapshot will cover the first only.
    extra = tuple(
        Entry(committed + i, leader.term, EntryType.NORMAL, b"extra") for i in (1, 2)
    )
    follower.step(AppendEntries(1, 2, leader.term, committed, leader.term, extra, committed))
    cluster.process([2])
    cluster.network = []
    meta = SnapshotMeta(committed + 1, leader.term, follower.conf_state())
    follower.step(InstallSnapshot(1, 2, leader.term, meta, 0, 2, b"ss", True))
    cluster.process([2])
    (answer,) = cluster.network
    assert isinstance(answer, AppendResponse) and not answer.reject
    assert follower.log.committed == committed + 1, "the agreeing log was fast-forwarded"
    assert answer.index == committed + 1 < follower.log.last_index()
    # A chunk of a snapshot already covered is answered at once, without buffering.
    cluster.network = []
    follower.step(InstallSnapshot(1, 2, leader.term, meta, 1, 2, b"s", True))
    cluster.process([2])
    (again,) = cluster.network
    assert isinstance(again, AppendResponse) and again.index == follower.log.committed


def test_send_before_persist_splits_only_leader_traffic() -> None:
    node = RaftNode(
        RaftConfig(node_id=1, peers=(1, 2, 3), send_before_persist=True), None, random.Random(0)
    )
    node.advance(node.ready())
    node.campaign()
    ready = node.ready()
    assert ready.early_messages == ()
    assert all(isinstance(m, VoteRequest) for m in ready.messages), "votes wait for the disk"
    node.advance(ready)
    from deltasync.consensus import VoteResponse

    node.step(VoteResponse(2, 1, 2, reject=False, pre_vote=True))
    node.step(VoteResponse(2, 1, 2, reject=False))
    assert node.role is Role.LEADER
    ready = node.ready()
    assert ready.entries and all(isinstance(m, AppendEntries) for m in ready.early_messages)
    assert not any(isinstance(m, AppendEntries) for m in ready.messages)
    # The leader's own no-op is not counted before it is persisted.
    assert node.progress[1].match < node.log.last_index()
    node.advance(ready)
    assert node.progress[1].match == node.log.last_index()


def test_a_core_that_failed_an_internal_check_refuses_further_input() -> None:
    from deltasync.consensus import Heartbeat

    node = RaftNode(RaftConfig(node_id=2, peers=(1, 2, 3)), None, random.Random(0))
    node.advance(node.ready())
    with pytest.raises(AssertionError):
        node.step(Heartbeat(1, 2, 2, commit=100))  # a commit index beyond our log: corrupt peer
    with pytest.raises(RaftUsageError):
        node.tick()
    with pytest.raises(RaftUsageError):
        node.ready()
