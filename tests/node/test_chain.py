"""node.chain: the block checks every replica makes, and the offline replay of a log."""

from __future__ import annotations

from deltasync.core.fixed import Amount
from deltasync.exchange.commands import COMMANDS, Deposit
from deltasync.exchange.events import EVENTS
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.state import ExchangeState
from deltasync.node.block import GENESIS_HASH, BlockHeader
from deltasync.node.chain import (
    ChainTip,
    Replica,
    Verdict,
    check_block,
    committed_blocks,
    replay,
)
from deltasync.node.driver import CommandCodec
from deltasync.storage.raft_log import RaftStorage

from .harness import Cluster

ROOT = b"r" * 32
TIP = ChainTip(height=7, time_ns=1_000, last_hash=b"h" * 32, state_root=ROOT)


def _header(**changes: object) -> BlockHeader:
    fields: dict[str, object] = {"height": 8, "time_ns": 1_000, "prev_hash": b"h" * 32,
                                 "state_root": ROOT, "proposer": 1}
    fields.update(changes)
    return BlockHeader(**fields)  # type: ignore[arg-type]


def test_a_header_that_follows_the_tip_with_our_root_is_applied() -> None:
    assert check_block(TIP, _header()) is Verdict.APPLY
    assert check_block(TIP, _header(time_ns=2_000)) is Verdict.APPLY


def test_a_header_off_the_tip_is_stale_whatever_its_root() -> None:
    for changes in ({"height": 9}, {"height": 7}, {"prev_hash": b"x" * 32}, {"time_ns": 999},
                    {"height": 9, "state_root": b"other"}):
        assert check_block(TIP, _header(**changes)) is Verdict.STALE, changes


def test_a_header_on_the_tip_with_another_root_is_a_divergence() -> None:
    assert check_block(TIP, _header(state_root=b"other")) is Verdict.DIVERGED
    assert check_block(ChainTip(0, 0, GENESIS_HASH, ROOT), _header(
        height=1, time_ns=0, prev_hash=GENESIS_HASH, state_root=b"other")) is Verdict.DIVERGED


def _run_cluster() -> tuple[Cluster, int]:
    """Deposits through a follower, some retried (applied once, answered from the table)."""
    cluster = Cluster(3)
    cluster.until(lambda: cluster.leader() is not None)
    follower = next(i for i in cluster.voters if i != cluster.leader())
    for request in range(1, 13):
        cluster.submit(follower, Deposit(request, Amount.whole(100)), session=77, request=request)
        cluster.step(1)
    for request in (3, 4):  # retries, through another node
        cluster.submit(cluster.leader() or 1, Deposit(request, Amount.whole(100)), session=77,
                       request=request)
    cluster.until(lambda: sum(a.error is None for a in cluster.answers[follower]) == 12)
    cluster.step(30)
    return cluster, follower


def _replica(cluster: Cluster, node: int) -> tuple[Replica, list[tuple[int, bytes]]]:
    _, recovered = RaftStorage.open(f"/n{node}/raft", cluster.fs[node], read_only=True)
    replica = Replica(ExchangeState.from_genesis(default_genesis()),
                      CommandCodec([COMMANDS], [EVENTS]).decode)
    return replica, list(committed_blocks(recovered.entries, recovered.hard_state.commit))


def test_the_replay_of_a_node_log_reproduces_its_roots_at_every_height() -> None:
    cluster, node = _run_cluster()
    replica, blocks = _replica(cluster, node)
    replayed = {block.height: block.result.state_root for block in replay(replica, blocks)}
    core = cluster.nodes[node]
    assert core is not None
    assert replica.halted is None
    assert replayed == cluster.heights[node] and len(replayed) == core.tip.height
    assert replica.tip.state_root == core.tip.state_root
    assert replica.machine.deposits_total == 12 * Amount.whole(100).raw
    assert replica.skipped["duplicate"] == 2


def test_a_replay_that_diverges_halts_and_names_the_changed_keys() -> None:
    cluster, node = _run_cluster()
    replica, blocks = _replica(cluster, node)
    applied = []
    for block in replay(replica, blocks):
        applied.append(block.height)
        if block.result.events and any(block.result.events):
            # corrupt the replayed state after its first deposit
            replica.machine.accounts[1].cash += 1
            replica.machine.dirty_accounts[1] = None
            replica.tip.state_root = replica.machine.state_root()
    assert replica.halted is not None and replica.halted["reason"] == "state root mismatch"
    assert replica.halted["height"] == applied[-1] < len(blocks)
    keys = [c["key"] for c in replica.halted["divergent_key_candidates"]]
    assert (b"acct/" + (1).to_bytes(8, "big")).hex() in keys
