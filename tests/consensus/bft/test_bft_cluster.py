"""Clusters of 4 and 7 BFT cores under a seeded scheduler: faults, Byzantine doubles,
twins, crashes, and planted bugs that the checkers must catch.

Every run checks agreement, certificate chains and honest signers continuously
(``bft_harness.Checker``); ``run_chaos`` also requires progress after healing. A
failure message names the seed that replays it. The default run keeps a handful of
seeds; ``-m slow`` sweeps many more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bft_harness import INVALID_PAYLOAD, Behaviour, CheckFailed, Cluster, run_chaos, run_faulty

from deltasync.consensus.bft import BftNode, QuorumCert

# Liveness bound, stated: once the network heals (no partition, no drops, every process
# restarted), every honest process commits 3 more blocks within HEAL_STEPS steps. A step
# is one tick and one message delay unit (delays are 1..3 steps, a round times out after
# 12 ticks doubling per failed round up to 16x). Observed worst over 88 seeded runs
# (honest, withholding, equivocating, twins, 2 Byzantine of 7): 47 steps, 6 rounds.
HEAL_STEPS = 300


class AcceptsTwoFSignatures(BftNode):
    """Planted bug: certificates of 2f signatures (one short of a quorum)."""

    def _certificate_quorum(self) -> int:
        return self._validators.quorum - 1


class CommitsOnOneChain(BftNode):
    """Planted bug: a block commits as soon as it is certified."""

    def _commit_target(self, qc: QuorumCert) -> tuple[bytes, int, QuorumCert] | None:
        return (qc.block_id, qc.height, qc) if qc.round > 0 else None


def first_failing_seed(run: Callable[[int], object], seeds: range) -> tuple[int, str] | None:
    for seed in seeds:
        try:
            run(seed)
        except CheckFailed as failure:
            return seed, str(failure)
    return None


# --- honest clusters ------------------------------------------------------------


@pytest.mark.parametrize("size", [4, 7])
def test_a_healthy_cluster_commits_one_block_per_round(size: int) -> None:
    cluster = Cluster(seed=1, size=size)
    cluster.run(80)
    heights = cluster.committed_heights()
    assert len(set(heights.values())) <= 2 and min(heights.values()) >= 15
    rounds = [p.core.status().round for p in cluster.processes if p.core]
    # every round produced a certified block: committed height trails the round by 2-3
    assert max(rounds) - min(heights.values()) <= 4


@pytest.mark.parametrize(("seed", "size"), [(0, 4), (1, 7)])
def test_safety_and_liveness_under_drops_delays_and_a_partition(seed: int, size: int) -> None:
    cluster = run_chaos(seed, size, steps=240, heal_steps=HEAL_STEPS)
    assert min(cluster.committed_heights().values()) > 0


def test_crashes_and_restarts_keep_safety_and_progress() -> None:
    cluster = run_chaos(2, 4, steps=240, heal_steps=HEAL_STEPS, crash_rate=0.05)
    assert min(cluster.committed_heights().values()) > 0


# --- Byzantine doubles ----------------------------------------------------------


def test_an_equivocating_double_voting_proposer_is_reported_and_cannot_fork() -> None:
    behaviours = {4: Behaviour(equivocate=True, double_vote=True)}
    cluster = run_chaos(3, 4, steps=240, heal_steps=HEAL_STEPS, behaviours=behaviours)
    kinds = {(e.kind.name, e.validator_id) for e in cluster.checker.evidence}
    assert ("DOUBLE_PROPOSAL", 4) in kinds and ("DOUBLE_VOTE", 4) in kinds
    assert any(len(ids) > 1 for ids in cluster.checker.proposals_seen.values())
    cluster.checker.check_every_equivocation_reported()


def test_f_byzantine_of_seven_withholding_replaying_forging() -> None:
    behaviours = {
        3: Behaviour(equivocate=True, double_vote=True, replay=True),
        6: Behaviour(withhold=True, forge=True),
    }
    cluster = run_chaos(4, 7, steps=200, heal_steps=HEAL_STEPS, behaviours=behaviours)
    assert cluster.refused.get("BAD_CERTIFICATE", 0) > 0  # the forged certificates were seen and refused


def test_a_proposer_of_invalid_payloads_gets_no_votes() -> None:
    cluster = Cluster(seed=5, size=4, behaviours={4: Behaviour(invalid_payloads=True)})
    cluster.run(120)
    honest = cluster.honest()
    assert min(len(p.durable.committed) for p in honest) >= 10
    assert all(c.block.payload != INVALID_PAYLOAD for p in honest for c in p.durable.committed)


def test_twins_sharing_one_key_cannot_fork_the_honest_validators() -> None:
    cluster = Cluster(seed=6, size=4, twins=(4,))
    cluster.partition = [{1, 2, 4}, {3, 5}]  # each twin on one side of a partition
    cluster.run(120)
    cluster.partition = None
    cluster.run(120)
    assert min(cluster.committed_heights().values()) > 0
    assert {e.validator_id for e in cluster.checker.evidence} <= {4}


def test_twins_under_random_faults() -> None:
    run_chaos(7, 4, steps=240, heal_steps=HEAL_STEPS, twins=(4,))


# --- planted bugs the checkers must catch -----------------------------------------


def test_planted_bug_a_quorum_of_2f_is_caught_by_the_certificate_check() -> None:
    failure = first_failing_seed(lambda seed: run_faulty(seed, 4, steps=60, factory=AcceptsTwoFSignatures, twins=(4,)), range(3))
    assert failure is not None and "quorum is 3" in failure[1]


def test_planted_bug_a_quorum_of_2f_lets_twins_fork_the_chain() -> None:
    """With the certificate check off, agreement itself breaks: the Twins scenario."""

    def run(seed: int) -> None:
        cluster = Cluster(seed, 4, twins=(4,), factory=AcceptsTwoFSignatures, check_certificates=False)
        cluster.partition = [{1, 2, 4}, {3, 5}]
        cluster.run(150)

    failure = first_failing_seed(run, range(3))
    assert failure is not None and "committed different blocks" in failure[1]
    # the same scenario with the real quorum stays safe
    correct = Cluster(0, 4, twins=(4,), check_certificates=False)
    correct.partition = [{1, 2, 4}, {3, 5}]
    correct.run(150)


def test_planted_bug_committing_on_a_one_chain_is_caught() -> None:
    failure = first_failing_seed(lambda seed: run_faulty(seed, 4, steps=60, factory=CommitsOnOneChain), range(3))
    assert failure is not None and "one-chain" in failure[1]


BUG_SEEDS = range(10)  # the planted send-before-persist bug is caught within these


def crash_at_every_vote(seed: int, send_before_persist: bool) -> Cluster:
    return run_faulty(
        seed, 4, steps=200,
        behaviours={4: Behaviour(equivocate=True, replay=True)},
        crash_rate=0.2, restart_delay_max=3, send_before_persist=send_before_persist,
    )


def test_planted_bug_sending_the_vote_before_persisting_it_is_caught() -> None:
    failure = first_failing_seed(lambda seed: crash_at_every_vote(seed, True), BUG_SEEDS)
    assert failure is not None and "voted twice" in failure[1], failure


def test_persisting_before_sending_survives_the_same_crashes() -> None:
    for seed in range(3):
        crash_at_every_vote(seed, False)


# --- long sweeps ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", [4, 7])
def test_sweep_chaos(size: int) -> None:
    for seed in range(40 if size == 4 else 15):
        run_chaos(seed, size, heal_steps=HEAL_STEPS, crash_rate=0.02)


@pytest.mark.slow
@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(equivocate=True, double_vote=True),
        Behaviour(withhold=True),
        Behaviour(replay=True, forge=True),
        Behaviour(invalid_payloads=True),
    ],
    ids=["equivocate", "withhold", "replay-forge", "invalid-payload"],
)
def test_sweep_one_byzantine_of_four(behaviour: Behaviour) -> None:
    for seed in range(25):
        run_chaos(seed, 4, heal_steps=HEAL_STEPS, behaviours={4: behaviour}, crash_rate=0.02)


@pytest.mark.slow
def test_sweep_two_byzantine_of_seven() -> None:
    behaviours = {
        2: Behaviour(equivocate=True, double_vote=True, replay=True),
        5: Behaviour(withhold=True, forge=True),
    }
    for seed in range(12):
        run_chaos(seed, 7, steps=300, heal_steps=HEAL_STEPS, behaviours=behaviours)


@pytest.mark.slow
def test_sweep_twins() -> None:
    for seed in range(30):
        run_chaos(seed, 4, heal_steps=HEAL_STEPS, twins=(4,))
    for seed in range(8):
        run_chaos(seed, 7, steps=300, heal_steps=HEAL_STEPS, twins=(6, 7))


@pytest.mark.slow
def test_sweep_crash_at_every_vote() -> None:
    for seed in range(40):
        crash_at_every_vote(seed, False)


# --- determinism ----------------------------------------------------------------

TRACE_PROGRAM = """
import sys
sys.path.insert(0, {harness_dir!r})
from bft_harness import Behaviour, Cluster
cluster = Cluster(11, 4, behaviours={{4: Behaviour(equivocate=True)}}, drop_rate=0.1, crash_rate=0.02, trace=True)
cluster.run(60)
print(cluster.trace.hexdigest(), min(cluster.committed_heights().values()))
"""


def test_one_seed_gives_one_trace_under_any_hash_seed() -> None:
    """Same seed, same messages in the same order, whatever PYTHONHASHSEED is (this
    process's own hash seed differs from the subprocess's unless both were pinned)."""
    program = TRACE_PROGRAM.format(harness_dir=str(Path(__file__).parent))
    hash_seed = "4243" if os.environ.get("PYTHONHASHSEED") == "4242" else "4242"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    trace, height = done.stdout.split()
    assert int(height) > 0
    in_process = Cluster(11, 4, behaviours={4: Behaviour(equivocate=True)}, drop_rate=0.1, crash_rate=0.02, trace=True)
    in_process.run(60)
    assert in_process.trace is not None and in_process.trace.hexdigest() == trace


def test_a_validator_cut_off_for_hundreds_of_rounds_catches_up() -> None:
    """Beyond every round window and the cores' block window: certificates pull it to the
    current round, block sync (cores, then the node's committed store) brings the blocks."""
    small_windows = {"round_window_max": 8, "evidence_window_rounds": 8, "blocks_pending_max": 64}
    cluster = Cluster(seed=12, size=4, core_options=small_windows)
    cluster.partition = [{1, 2, 3}, {4}]
    cluster.run(200)
    lagging = cluster.processes[3]
    leader_height = max(cluster.committed_heights().values())
    window = lagging.config.round_window_max
    assert lagging.core is not None and leader_height - len(lagging.durable.committed) > window
    assert max(p.core.status().round for p in cluster.processes if p.core) - lagging.core.status().round > window
    cluster.partition = None
    cluster.run(100)
    heights = cluster.committed_heights()
    assert heights[4] >= leader_height, heights


@pytest.mark.parametrize("size", [4, 7])
def test_a_block_is_final_everywhere_four_message_delays_after_its_proposal(size: int) -> None:
    """With every message taking exactly one step: proposal, votes, next proposal, votes."""
    cluster = Cluster(seed=13, size=size, delay_max=1)
    cluster.run(40)
    finality = cluster.checker.finality_steps
    assert len(finality) >= 15 * size  # one block per 2 steps, every validator commits each
    assert set(finality) == {4}, sorted(set(finality))
