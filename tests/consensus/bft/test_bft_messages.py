"""Wire values, signing bytes, certificates and the validator set, checked alone."""

from __future__ import annotations

import pytest
from bft_harness import CHAIN_ID, signer_for, validator_set

from deltasync.consensus.bft import (
    BFT_MESSAGES,
    Block,
    BlockRequest,
    BlockResponse,
    Ed25519Signer,
    Evidence,
    EvidenceKind,
    Proposal,
    QuorumCert,
    SafetyState,
    Timeout,
    TimeoutCert,
    TimeoutSignature,
    Validator,
    ValidatorSet,
    ValidatorSignature,
    Vote,
    VoteData,
    evidence_valid,
    genesis_qc,
    qc_problem,
    tc_problem,
)
from deltasync.consensus.bft.messages import proposal_signing_bytes, timeout_signing_bytes
from deltasync.core.errors import CodecError, ConfigError


def signed_qc(validators: ValidatorSet, data: VoteData, signers: list[int]) -> QuorumCert:
    message = data.signing_bytes(CHAIN_ID)
    return QuorumCert(
        data, tuple(ValidatorSignature(i, signer_for(i).sign(message)) for i in sorted(signers))
    )


def first_block_vote_data(epoch: int = 0, round_number: int = 1) -> VoteData:
    genesis = genesis_qc(CHAIN_ID, epoch)
    block = Block(epoch, round_number, 1, genesis.block_id, genesis, 2, b"payload")
    return VoteData(epoch, round_number, 1, block.compute_id(CHAIN_ID), genesis.block_id, 0)


@pytest.mark.parametrize(("size", "faults", "quorum"), [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)])
def test_quorum_arithmetic(size: int, faults: int, quorum: int) -> None:
    validators = validator_set(size)
    assert (validators.faults_tolerated, validators.quorum) == (faults, quorum)
    # two quorums overlap in more than f members: at least one honest in common
    assert 2 * validators.quorum - size > validators.faults_tolerated


def test_proposer_rotates_round_robin() -> None:
    validators = validator_set(4)
    assert [validators.proposer(r) for r in range(1, 9)] == [2, 3, 4, 1, 2, 3, 4, 1]


def test_validator_set_refuses_bad_membership() -> None:
    key = signer_for(1).public_key
    with pytest.raises(ConfigError):
        ValidatorSet(0, (Validator(2, key), Validator(1, key)))
    with pytest.raises(ConfigError):
        ValidatorSet(0, (Validator(1, key[:31]),))
    with pytest.raises(ConfigError):
        ValidatorSet(0, ())


def test_every_message_round_trips_canonically() -> None:
    validators = validator_set(4)
    data = first_block_vote_data()
    qc = signed_qc(validators, data, [1, 2, 3])
    timeouts = tuple(
        TimeoutSignature(i, 1, signer_for(i).sign(timeout_signing_bytes(CHAIN_ID, 0, 2, 1))) for i in (1, 2, 4)
    )
    tc = TimeoutCert(0, 2, timeouts, qc)
    block = Block(0, 3, 2, data.block_id, qc, 4, b"\x00\xff")
    values = [
        Proposal(block, block.compute_id(CHAIN_ID), tc, b"s" * 64),
        Vote(data, 3, b"v" * 64),
        Timeout(0, 3, 1, qc, tc, b"t" * 64),
        BlockRequest(1, data.block_id, 8),
        BlockResponse(2, (block,)),
        Evidence(EvidenceKind.DOUBLE_VOTE, 3, 0, 1, data, b"a" * 64, data, b"b" * 64),
        SafetyState(0, 3, qc, tc),
    ]
    for value in values:
        wire = BFT_MESSAGES.encode(value)
        assert BFT_MESSAGES.decode(wire, canonical=True) == value
    with pytest.raises(CodecError):
        BFT_MESSAGES.decode(BFT_MESSAGES.encode(values[1])[:-3])


def test_signatures_are_bound_to_kind_chain_and_round() -> None:
    validators = validator_set(4)
    data = first_block_vote_data()
    vote_signature = signer_for(1).sign(data.signing_bytes(CHAIN_ID))
    assert validators.signed_by(1, data.signing_bytes(CHAIN_ID), vote_signature)
    assert not validators.signed_by(2, data.signing_bytes(CHAIN_ID), vote_signature)
    assert not validators.signed_by(1, data.signing_bytes("another-chain"), vote_signature)
    as_proposal = proposal_signing_bytes(CHAIN_ID, 0, data.round, data.block_id)
    assert not validators.signed_by(1, as_proposal, vote_signature)
    assert not validators.signed_by(1, timeout_signing_bytes(CHAIN_ID, 0, 1, 0), vote_signature)


def test_quorum_certificate_checks() -> None:
    validators = validator_set(4)
    data = first_block_vote_data()
    quorum = validators.quorum
    good = signed_qc(validators, data, [1, 2, 4])
    assert qc_problem(good, validators, CHAIN_ID, quorum) is None
    short = signed_qc(validators, data, [1, 2])
    assert "quorum" in (qc_problem(short, validators, CHAIN_ID, quorum) or "")
    duplicate = QuorumCert(data, (good.signatures[0], good.signatures[0], good.signatures[1]))
    assert qc_problem(duplicate, validators, CHAIN_ID, quorum) == "signers not sorted and distinct"
    stranger = Ed25519Signer(b"\x07" * 32).sign(data.signing_bytes(CHAIN_ID))
    outsider = QuorumCert(data, (*good.signatures[:2], ValidatorSignature(9, stranger)))
    assert qc_problem(outsider, validators, CHAIN_ID, quorum) == "signer outside the validator set"
    swapped = QuorumCert(data, (*good.signatures[:2], ValidatorSignature(4, good.signatures[0].signature)))
    assert qc_problem(swapped, validators, CHAIN_ID, quorum) == "bad signature of validator 4"
    other_round = VoteData(0, 2, 1, data.block_id, data.parent_id, 0)
    moved = QuorumCert(other_round, good.signatures)
    assert qc_problem(moved, validators, CHAIN_ID, quorum) is not None
    forged_genesis = QuorumCert(VoteData(0, 0, 0, data.block_id, data.block_id, 0), ())
    assert qc_problem(forged_genesis, validators, CHAIN_ID, quorum) == "forged genesis certificate"
    assert qc_problem(genesis_qc(CHAIN_ID, 0), validators, CHAIN_ID, quorum) is None
    assert qc_problem(good, validator_set(4, epoch=1), CHAIN_ID, quorum) == "certificate of another epoch"


def test_timeout_certificate_checks() -> None:
    validators = validator_set(4)
    qc = signed_qc(validators, first_block_vote_data(), [1, 2, 3])

    def timeout_signature(i: int, high_qc_round: int, round_number: int = 3) -> TimeoutSignature:
        message = timeout_signing_bytes(CHAIN_ID, 0, round_number, high_qc_round)
        return TimeoutSignature(i, high_qc_round, signer_for(i).sign(message))

    good = TimeoutCert(0, 3, (timeout_signature(1, 1), timeout_signature(2, 0), timeout_signature(3, 1)), qc)
    assert tc_problem(good, validators, CHAIN_ID, 3) is None
    short = TimeoutCert(0, 3, good.signatures[:2], qc)
    assert tc_problem(short, validators, CHAIN_ID, 3) is not None
    lied_round = TimeoutCert(0, 3, (*good.signatures[:2], TimeoutSignature(3, 0, good.signatures[2].signature)), qc)
    assert tc_problem(lied_round, validators, CHAIN_ID, 3) == "bad signature of validator 3"
    low_qc = TimeoutCert(0, 3, good.signatures, genesis_qc(CHAIN_ID, 0))
    assert tc_problem(low_qc, validators, CHAIN_ID, 3) == "high_qc is not the highest QC the timeouts name"
    replayed = TimeoutCert(0, 4, good.signatures, qc)
    assert tc_problem(replayed, validators, CHAIN_ID, 3) is not None


def test_evidence_is_checkable_by_anyone() -> None:
    validators = validator_set(4)
    a = first_block_vote_data()
    b = VoteData(0, 1, 1, b"\x01" * 32, a.parent_id, 0)
    sign = signer_for(3).sign
    evidence = Evidence(
        EvidenceKind.DOUBLE_VOTE, 3, 0, 1, a, sign(a.signing_bytes(CHAIN_ID)), b, sign(b.signing_bytes(CHAIN_ID))
    )
    assert evidence_valid(evidence, validators, CHAIN_ID)
    framed = Evidence(EvidenceKind.DOUBLE_VOTE, 2, 0, 1, a, evidence.first_signature, b, evidence.second_signature)
    assert not evidence_valid(framed, validators, CHAIN_ID)
    same = Evidence(EvidenceKind.DOUBLE_VOTE, 3, 0, 1, a, evidence.first_signature, a, evidence.first_signature)
    assert not evidence_valid(same, validators, CHAIN_ID)
