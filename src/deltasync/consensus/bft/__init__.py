"""The BFT consensus core: two-chain HotStuff (Jolteon / DiemBFT v4 family), sans-I/O.

Build a ``BftNode`` from a ``BftConfig`` (validator id, chain id, ``ValidatorSet``), a
``Signer`` and a ``Recovered`` (or None for a new chain); feed it ``step``/``tick``/
``propose``/``payload_verdict``; act on each ``Ready`` as its docstring says. Messages
travel with ``BFT_MESSAGES.encode``/``decode``. See docs/bft.md.
"""

from deltasync.consensus.bft.certify import evidence_valid, qc_problem, tc_problem
from deltasync.consensus.bft.crypto import Ed25519Signer, Signer, signing_bytes
from deltasync.consensus.bft.messages import (
    BFT_MESSAGES,
    Block,
    BlockRequest,
    BlockResponse,
    Evidence,
    EvidenceKind,
    Message,
    Outgoing,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    TimeoutSignature,
    ValidatorSignature,
    Vote,
    VoteData,
    genesis_block_id,
    genesis_qc,
)
from deltasync.consensus.bft.node import BftNode
from deltasync.consensus.bft.state import (
    BftConfig,
    BftUsageError,
    CommittedBlock,
    Invalid,
    InvalidReason,
    PayloadRequest,
    Ready,
    Recovered,
    Rejected,
    RejectReason,
    SafetyState,
    SafetyViolation,
    SoftState,
    Status,
)
from deltasync.consensus.bft.validators import Validator, ValidatorSet

__all__ = [
    "BFT_MESSAGES",
    "BftConfig",
    "BftNode",
    "BftUsageError",
    "Block",
    "BlockRequest",
    "BlockResponse",
    "CommittedBlock",
    "Ed25519Signer",
    "Evidence",
    "EvidenceKind",
    "Invalid",
    "InvalidReason",
    "Message",
    "Outgoing",
    "PayloadRequest",
    "Proposal",
    "QuorumCert",
    "Ready",
    "Recovered",
    "Rejected",
    "RejectReason",
    "SafetyState",
    "SafetyViolation",
    "Signer",
    "SoftState",
    "Status",
    "Timeout",
    "TimeoutCert",
    "TimeoutSignature",
    "Validator",
    "ValidatorSet",
    "ValidatorSignature",
    "Vote",
    "VoteData",
    "evidence_valid",
    "genesis_block_id",
    "genesis_qc",
    "qc_problem",
    "signing_bytes",
    "tc_problem",
]
