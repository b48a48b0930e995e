"""One BFT core at a time: the voting, timeout and commit rules, the Ready contract,
refusal of forged input, evidence, restart."""

from __future__ import annotations

import pytest
from bft_harness import CHAIN_ID, signer_for, validator_set
from test_bft_messages import signed_qc

from deltasync.consensus.bft import (
    BftConfig,
    BftNode,
    BftUsageError,
    Block,
    BlockRequest,
    BlockResponse,
    EvidenceKind,
    InvalidReason,
    Outgoing,
    PayloadRequest,
    Proposal,
    QuorumCert,
    Ready,
    Recovered,
    Rejected,
    RejectReason,
    SafetyState,
    Timeout,
    Vote,
    VoteData,
    evidence_valid,
    genesis_qc,
)
from deltasync.consensus.bft.messages import proposal_signing_bytes, timeout_signing_bytes
from deltasync.core.errors import ConfigError

VALIDATORS = validator_set(4)


def core(vid: int, recovered: Recovered | None = None, **options: object) -> BftNode:
    config = BftConfig(vid, CHAIN_ID, VALIDATORS, round_timeout_ticks=4, **options)  # type: ignore[arg-type]
    return BftNode(config, signer_for(vid), recovered)


def drain(node: BftNode) -> list[Ready]:
    readies = []
    while node.has_ready():
        ready = node.ready()
        node.advance(ready)
        readies.append(ready)
    return readies


def sent(readies: list[Ready]) -> list[Outgoing]:
    return [item for ready in readies for item in ready.messages]


def make_proposal(round_number: int, qc: QuorumCert, payload: bytes = b"x", proposer: int | None = None) -> Proposal:
    proposer = VALIDATORS.proposer(round_number) if proposer is None else proposer
    block = Block(0, round_number, qc.height + 1, qc.block_id, qc, proposer, payload)
    block_id = block.compute_id(CHAIN_ID)
    signature = signer_for(proposer).sign(proposal_signing_bytes(CHAIN_ID, 0, round_number, block_id))
    return Proposal(block, block_id, None, signature)


def vote_data(proposal: Proposal) -> VoteData:
    block = proposal.block
    return VoteData(0, block.round, block.height, proposal.block_id, block.parent_id, block.qc.round)


def test_the_proposer_is_asked_for_a_payload_and_votes_for_its_own_block() -> None:
    node = core(2)  # the proposer of round 1
    first = node.ready()
    assert first.payload_request is not None and first.payload_request.round == 1
    assert first.payload_request.parent_id == genesis_qc(CHAIN_ID, 0).block_id
    node.advance(first)
    block = node.propose(first.payload_request, b"orders")
    assert isinstance(block, Block) and block.height == 1
    ready = node.ready()
    # the vote went out with the safety state that forbids a second one: persist it first
    assert ready.must_sync and ready.safety is not None and ready.safety.last_voted_round == 1
    kinds = sorted({type(item.message).__name__ for item in ready.messages})
    assert kinds == ["Proposal", "Vote"]
    assert sorted(item.recipient for item in ready.messages if isinstance(item.message, Vote)) == [1, 3, 4]
    with pytest.raises(BftUsageError):
        node.ready()
    node.advance(ready)
    again = node.propose(first.payload_request, b"again")  # a second block in one round would be an equivocation
    assert isinstance(again, Rejected) and again.reason is RejectReason.ALREADY_PROPOSED


def test_propose_refuses_out_of_turn_and_oversized() -> None:
    node = core(3)
    drain(node)
    genesis_id = genesis_qc(CHAIN_ID, 0).block_id
    assert isinstance(node.propose(PayloadRequest(1, 1, genesis_id), b"x"), Rejected)
    proposer = core(2, payload_bytes_max=4)
    request = [r.payload_request for r in drain(proposer) if r.payload_request][0]
    rejected = proposer.propose(request, b"12345")
    assert isinstance(rejected, Rejected) and rejected.reason is RejectReason.PAYLOAD_TOO_LARGE


def test_a_validator_votes_once_per_round_and_reports_the_equivocation() -> None:
    node = core(1)
    drain(node)
    genesis = genesis_qc(CHAIN_ID, 0)
    first, second = make_proposal(1, genesis, b"a"), make_proposal(1, genesis, b"b")
    assert node.step(first) is None
    readies = drain(node)
    assert [r.blocks_to_validate for r in readies if r.blocks_to_validate][0][0] == first.block
    node.payload_verdict(first.block_id, True)
    votes = [m.message for m in sent(drain(node)) if isinstance(m.message, Vote)]
    assert {vote.vote_data.block_id for vote in votes} == {first.block_id}
    assert node.step(second) is None
    readies = drain(node)
    assert not [m for m in sent(readies) if isinstance(m.message, Vote)]
    evidence = [e for r in readies for e in r.evidence]
    assert len(evidence) == 1 and evidence[0].kind is EvidenceKind.DOUBLE_PROPOSAL
    assert evidence[0].validator_id == 2 and evidence_valid(evidence[0], VALIDATORS, CHAIN_ID)
    assert node.status().blocks_pending == 1  # the second block of the round is not stored


def test_no_vote_for_a_payload_the_node_refuses() -> None:
    node = core(1)
    drain(node)
    proposal = make_proposal(1, genesis_qc(CHAIN_ID, 0))
    node.step(proposal)
    drain(node)
    node.payload_verdict(proposal.block_id, False)
    assert not [m for m in sent(drain(node)) if isinstance(m.message, Vote)]
    node.payload_verdict(b"\x00" * 32, True)  # a verdict nobody asked for changes nothing
    assert not sent(drain(node))


def test_double_votes_become_evidence() -> None:
    node = core(1)
    drain(node)
    genesis = genesis_qc(CHAIN_ID, 0)
    datas = [vote_data(make_proposal(1, genesis, payload)) for payload in (b"a", b"b")]
    for data in datas:
        assert node.step(Vote(data, 3, signer_for(3).sign(data.signing_bytes(CHAIN_ID)))) is None
    evidence = [e for r in drain(node) for e in r.evidence]
    assert len(evidence) == 1 and evidence[0].kind is EvidenceKind.DOUBLE_VOTE
    assert evidence[0].validator_id == 3 and evidence_valid(evidence[0], VALIDATORS, CHAIN_ID)


def test_forged_and_malformed_proposals_are_refused_without_effect() -> None:
    node = core(1)
    drain(node)
    genesis = genesis_qc(CHAIN_ID, 0)
    good = make_proposal(1, genesis)
    before = node.status()
    wrong_proposer = make_proposal(1, genesis, proposer=3)
    assert node.step(wrong_proposer).reason is InvalidReason.WRONG_PROPOSER  # type: ignore[union-attr]
    tampered = Proposal(
        Block(0, 1, 1, genesis.block_id, genesis, 2, b"other"), good.block_id, None, good.signature
    )
    assert node.step(tampered).reason is InvalidReason.MALFORMED_BLOCK  # type: ignore[union-attr]
    unsigned = Proposal(good.block, good.block_id, None, signer_for(3).sign(b"whatever"))
    assert node.step(unsigned).reason is InvalidReason.BAD_SIGNATURE  # type: ignore[union-attr]
    assert node.status() == before and not any(r.blocks_to_validate for r in drain(node))


def test_short_and_foreign_certificates_are_refused() -> None:
    node = core(1)
    drain(node)
    first = make_proposal(1, genesis_qc(CHAIN_ID, 0))
    short_qc = signed_qc(VALIDATORS, vote_data(first), [2, 3])  # 2f signatures
    result = node.step(make_proposal(2, short_qc))
    assert result is not None and result.reason is InvalidReason.BAD_CERTIFICATE
    other_chain = VALIDATORS  # right keys, signatures over another chain id
    message = vote_data(first).signing_bytes("another-chain")
    foreign = QuorumCert(
        vote_data(first),
        tuple(
            type(short_qc.signatures[0])(i, signer_for(i).sign(message)) for i in other_chain.ids[:3]
        ),
    )
    result = node.step(make_proposal(2, foreign))
    assert result is not None and result.reason is InvalidReason.BAD_CERTIFICATE
    timeout = Timeout(0, 2, 3, short_qc, None, signer_for(3).sign(b"x"))
    assert node.step(timeout) is not None
    assert node.status().round == 1 and node.status().high_qc_round == 0


def test_a_round_times_out_after_its_ticks_and_the_validator_stops_voting_in_it() -> None:
    node = core(1)
    drain(node)
    for _ in range(3):
        node.tick()
    assert not [m for m in sent(drain(node)) if isinstance(m.message, Timeout)]
    node.tick()
    ready = node.ready()
    timeouts = [m.message for m in ready.messages if isinstance(m.message, Timeout)]
    assert len(timeouts) == 3 and timeouts[0].round == 1 and timeouts[0].high_qc.round == 0
    assert ready.must_sync and ready.safety is not None and ready.safety.last_voted_round == 1
    node.advance(ready)
    proposal = make_proposal(1, genesis_qc(CHAIN_ID, 0))
    node.step(proposal)
    assert not any(r.blocks_to_validate for r in drain(node))


def test_a_quorum_of_timeouts_forms_a_certificate_and_the_next_proposer_uses_it() -> None:
    nodes = {vid: core(vid) for vid in VALIDATORS.ids}
    for node in nodes.values():
        drain(node)
        for _ in range(4):
            node.tick()
    outbox = [item for node in nodes.values() for item in sent(drain(node))]
    for item in outbox:
        nodes[item.recipient].step(item.message)
    assert {node.status().round for node in nodes.values()} == {2}
    proposer = nodes[VALIDATORS.proposer(2)]
    request = [r.payload_request for r in drain(proposer) if r.payload_request]
    assert request and request[-1].round == 2
    block = proposer.propose(request[-1], b"after a timeout")
    assert isinstance(block, Block) and block.qc.round == 0
    proposal = [m.message for m in sent(drain(proposer)) if isinstance(m.message, Proposal)][0]
    assert proposal.tc is not None and proposal.tc.round == 1


def test_a_restarted_validator_does_not_vote_again_in_a_round_it_voted_in() -> None:
    genesis = genesis_qc(CHAIN_ID, 0)
    recovered = Recovered(SafetyState(0, 1, genesis, None), genesis)
    node = core(1, recovered)
    drain(node)
    assert node.status().round == 1 and node.status().last_voted_round == 1
    node.step(make_proposal(1, genesis, b"a different block"))
    readies = drain(node)
    assert not any(r.blocks_to_validate for r in readies)
    assert not [m for m in sent(readies) if isinstance(m.message, Vote)]


def test_the_two_chain_commit_rule() -> None:
    """B1 (round 1) commits when B2 (round 2, child of B1) is certified; not before."""
    node = core(1, validate_payloads=False)
    drain(node)
    b1 = make_proposal(1, genesis_qc(CHAIN_ID, 0), b"one")
    qc1 = signed_qc(VALIDATORS, vote_data(b1), [2, 3, 4])
    b2 = make_proposal(2, qc1, b"two")
    for proposal in (b1, b2):
        node.step(proposal)
    assert not any(r.committed for r in drain(node))  # QC(B1) alone: a one-chain
    qc2 = signed_qc(VALIDATORS, vote_data(b2), [1, 2, 3])
    node.step(make_proposal(3, qc2, b"three"))
    committed = [c for r in drain(node) for c in r.committed]
    assert [c.block.payload for c in committed] == [b"one"]
    assert committed[0].certificate == qc1 and committed[0].commit_qc == qc2


def test_no_commit_across_a_round_gap() -> None:
    """A QC for a block whose parent is two rounds below it commits nothing."""
    node = core(1, validate_payloads=False)
    drain(node)
    b1 = make_proposal(1, genesis_qc(CHAIN_ID, 0), b"one")
    qc1 = signed_qc(VALIDATORS, vote_data(b1), [2, 3, 4])
    block3 = Block(0, 3, 2, b1.block_id, qc1, VALIDATORS.proposer(3), b"three")
    data3 = VoteData(0, 3, 2, block3.compute_id(CHAIN_ID), b1.block_id, 1)
    qc3 = signed_qc(VALIDATORS, data3, [1, 2, 3])
    node.step(b1)
    node.step(make_proposal(4, qc3, b"four"))
    assert not any(r.committed for r in drain(node))


def test_replayed_old_messages_change_nothing() -> None:
    node = core(1, validate_payloads=False)
    drain(node)
    b1 = make_proposal(1, genesis_qc(CHAIN_ID, 0), b"one")
    node.step(b1)
    qc1 = signed_qc(VALIDATORS, vote_data(b1), [2, 3, 4])
    node.step(make_proposal(2, qc1, b"two"))
    drain(node)
    status = node.status()
    assert node.step(b1) is None  # known block of an old round: no vote, no state change
    readies = drain(node)
    assert node.status() == status and not sent(readies)


def test_a_long_commit_is_handed_out_in_bounded_readies_in_order() -> None:
    node = core(1, validate_payloads=False, committed_per_ready_max=1)
    drain(node)
    qc = genesis_qc(CHAIN_ID, 0)
    proposals = []
    for round_number in range(1, 5):
        proposal = make_proposal(round_number, qc, b"block-%d" % round_number)
        proposals.append(proposal)
        qc = signed_qc(VALIDATORS, vote_data(proposal), [2, 3, 4])
    for proposal in proposals[1:]:  # block 1 is missing at first: fetched, then committed
        node.step(proposal)
    readies = drain(node)
    requests = [m.message for m in sent(readies) if isinstance(m.message, BlockRequest)]
    assert requests and requests[0].block_id == proposals[0].block_id
    assert not any(r.committed for r in readies)
    assert node.step(BlockResponse(2, (proposals[0].block,))) is None
    readies = drain(node)
    # QC(block 3) has parent round 2: blocks 1 and 2 are final, one per Ready
    assert [len(r.committed) for r in readies if r.committed] == [1, 1]
    assert [c.block.payload for r in readies for c in r.committed] == [b"block-1", b"block-2"]
    assert node.status().committed_height == 2


def test_configuration_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError):
        BftNode(BftConfig(1, CHAIN_ID, VALIDATORS), signer_for(2))  # another validator's key
    with pytest.raises(ConfigError):
        BftConfig(9, CHAIN_ID, VALIDATORS)  # not a member
    with pytest.raises(ConfigError):
        BftConfig(1, "", VALIDATORS)
    genesis = genesis_qc(CHAIN_ID, 1)
    with pytest.raises(ConfigError):
        core(1, Recovered(SafetyState(1, 0, genesis, None), genesis))  # another epoch's state


def test_a_core_refuses_what_is_not_a_message_and_a_second_ready() -> None:
    node = core(1)
    with pytest.raises(BftUsageError):
        node.step("hello")  # type: ignore[arg-type]
    ready = node.ready()
    with pytest.raises(BftUsageError):
        node.advance(Ready(None, None, False, (), (), (), None, ()))
    node.advance(ready)


def test_a_payload_built_for_an_old_parent_is_refused_and_asked_again() -> None:
    node = core(3, validate_payloads=False)  # proposer of round 2
    drain(node)
    genesis = genesis_qc(CHAIN_ID, 0)
    first = make_proposal(1, genesis, b"one")
    timeouts_for_round_1 = []
    for vid in (1, 2, 4):
        message = timeout_signing_bytes(CHAIN_ID, 0, 1, 0)
        timeouts_for_round_1.append(Timeout(0, 1, vid, genesis, None, signer_for(vid).sign(message)))
    for timeout in timeouts_for_round_1:
        node.step(timeout)
    request = [r.payload_request for r in drain(node) if r.payload_request][-1]
    assert (request.round, request.parent_id) == (2, genesis.block_id)
    # before the node answers, the late QC of round 1 arrives: the parent is now block 1
    node.step(first)
    for vid in (1, 2, 4):
        data = vote_data(first)
        node.step(Vote(data, vid, signer_for(vid).sign(data.signing_bytes(CHAIN_ID))))
    refused = node.propose(request, b"built on genesis")
    assert isinstance(refused, Rejected) and refused.reason is RejectReason.STALE_PAYLOAD_REQUEST
    fresh = [r.payload_request for r in drain(node) if r.payload_request][-1]
    assert (fresh.round, fresh.parent_id) == (2, first.block_id)
    block = node.propose(fresh, b"built on block one")
    assert isinstance(block, Block) and block.parent_id == first.block_id
