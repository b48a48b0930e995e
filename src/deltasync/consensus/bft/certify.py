"""Checks of signed messages and certificates against a validator set.

Pure functions: each answers None when the value checks, or the reason it does not.
A certificate checks when it holds at least ``validators.quorum`` signatures from
distinct members of the set (sorted by id, so one encoding per certificate), each
valid over the certified statement. The genesis QC is the one certificate without
signatures and is accepted only as exactly itself.
"""

from __future__ import annotations

from collections.abc import Callable

from deltasync.consensus.bft.messages import (
    Block,
    Evidence,
    EvidenceKind,
    QuorumCert,
    TimeoutCert,
    ValidatorSignature,
    genesis_qc,
    proposal_signing_bytes,
    timeout_signing_bytes,
)
from deltasync.consensus.bft.validators import ValidatorSet


def _signers_ok(ids: list[int], validators: ValidatorSet, quorum: int) -> str | None:
    if ids != sorted(set(ids)):
        return "signers not sorted and distinct"
    if len(ids) < quorum:
        return f"{len(ids)} signatures, quorum is {quorum}"
    if not all(validators.is_member(i) for i in ids):
        return "signer outside the validator set"
    return None


def qc_problem(
    qc: QuorumCert,
    validators: ValidatorSet,
    chain_id: str,
    quorum: int,
    already_verified: Callable[[int, bytes], bool] | None = None,
) -> str | None:
    """Why ``qc`` is not a valid certificate, or None. ``quorum`` is normally ``validators.quorum``.

    ``already_verified(validator_id, signature)`` may vouch for signatures the caller
    checked before over this very vote data (a core's own vote tally), to skip them.
    """
    if qc.vote_data.epoch != validators.epoch:
        return "certificate of another epoch"
    if qc.round == 0:
        return None if qc == genesis_qc(chain_id, validators.epoch) else "forged genesis certificate"
    problem = _signers_ok([s.validator_id for s in qc.signatures], validators, quorum)
    if problem is not None:
        return problem
    message = qc.vote_data.signing_bytes(chain_id)
    for entry in qc.signatures:
        if already_verified is not None and already_verified(entry.validator_id, entry.signature):
            continue
        if not validators.signed_by(entry.validator_id, message, entry.signature):
            return f"bad signature of validator {entry.validator_id}"
    return None


def tc_problem(tc: TimeoutCert, validators: ValidatorSet, chain_id: str, quorum: int) -> str | None:
    """Why ``tc`` is not a valid timeout certificate (its ``high_qc`` included), or None."""
    if tc.epoch != validators.epoch:
        return "certificate of another epoch"
    problem = _signers_ok([s.validator_id for s in tc.signatures], validators, quorum)
    if problem is not None:
        return problem
    for entry in tc.signatures:
        if entry.high_qc_round >= tc.round:
            return "a timeout names a QC at or above its own round"
        message = timeout_signing_bytes(chain_id, tc.epoch, tc.round, entry.high_qc_round)
        if not validators.signed_by(entry.validator_id, message, entry.signature):
            return f"bad signature of validator {entry.validator_id}"
    if tc.high_qc.round != tc.max_high_qc_round():
        return "high_qc is not the highest QC the timeouts name"
    return qc_problem(tc.high_qc, validators, chain_id, quorum)


def block_problem(block: Block, block_id: bytes, chain_id: str, payload_bytes_max: int) -> str | None:
    """Structural checks of a block against its claimed id (no signatures)."""
    if block.parent_id != block.qc.block_id:
        return "parent_id is not the block its QC certifies"
    if block.height != block.qc.height + 1:
        return "height is not its parent's plus one"
    if block.round <= block.qc.round:
        return "round not above its parent's"
    if block.epoch != block.qc.vote_data.epoch:
        return "epoch differs from its QC's"
    if len(block.payload) > payload_bytes_max:
        return "payload too large"
    if block.compute_id(chain_id) != block_id:
        return "block id is not the hash of the block"
    return None


def proposal_signature_ok(
    validators: ValidatorSet, chain_id: str, block: Block, block_id: bytes, signature: bytes
) -> bool:
    message = proposal_signing_bytes(chain_id, block.epoch, block.round, block_id)
    return validators.signed_by(block.proposer, message, signature)


def evidence_valid(evidence: Evidence, validators: ValidatorSet, chain_id: str) -> bool:
    """Two different statements, both signed by the accused, in the same round and epoch."""
    first, second = evidence.first, evidence.second
    if evidence.epoch != validators.epoch or first == second:
        return False
    if (first.round, second.round) != (evidence.round, evidence.round):
        return False
    if (first.epoch, second.epoch) != (evidence.epoch, evidence.epoch):
        return False
    match evidence.kind:
        case EvidenceKind.DOUBLE_PROPOSAL:
            if first.block_id == second.block_id:
                return False
            messages = [
                proposal_signing_bytes(chain_id, evidence.epoch, evidence.round, vote.block_id)
                for vote in (first, second)
            ]
        case EvidenceKind.DOUBLE_VOTE:
            messages = [vote.signing_bytes(chain_id) for vote in (first, second)]
    signatures = (evidence.first_signature, evidence.second_signature)
    return all(
        validators.signed_by(evidence.validator_id, message, signature)
        for message, signature in zip(messages, signatures, strict=True)
    )


def sorted_signatures(by_validator: dict[int, bytes]) -> tuple[ValidatorSignature, ...]:
    return tuple(ValidatorSignature(vid, by_validator[vid]) for vid in sorted(by_validator))
