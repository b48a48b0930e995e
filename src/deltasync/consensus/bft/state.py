"""Configuration, the values the BFT core hands to its caller, and what it restarts from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from deltasync.consensus.bft.messages import (
    BFT_MESSAGES,
    Block,
    Evidence,
    Outgoing,
    QuorumCert,
    TimeoutCert,
)
from deltasync.consensus.bft.validators import ValidatorSet
from deltasync.core import limits
from deltasync.core.errors import ConfigError, LocalError


@dataclass(frozen=True, slots=True)
class BftConfig:
    """Static settings of one validator. ``chain_id`` separates signatures of two chains."""

    validator_id: int
    chain_id: str
    validators: ValidatorSet
    round_timeout_ticks: int = 10
    timeout_backoff_exponent_max: int = limits.bft_timeout_backoff_exponent_max
    # When set, a proposal's payload goes out in Ready.blocks_to_validate and the core
    # votes only after payload_verdict(block_id, True). Off: every payload is acceptable.
    validate_payloads: bool = True
    sync_retry_ticks: int = 3
    payload_bytes_max: int = limits.bft_payload_bytes_max
    round_window_max: int = limits.bft_round_window_max
    evidence_window_rounds: int = limits.bft_evidence_window_rounds
    blocks_pending_max: int = limits.bft_blocks_pending_max
    sync_blocks_per_response_max: int = limits.bft_sync_blocks_per_response_max
    sync_bytes_per_response_max: int = limits.bft_sync_bytes_per_response_max
    committed_per_ready_max: int = limits.bft_committed_per_ready_max

    def __post_init__(self) -> None:
        if not self.validators.is_member(self.validator_id):
            raise ConfigError(key="validator_id", reason="not a member of the validator set")
        if not self.chain_id:
            raise ConfigError(key="chain_id", reason="must not be empty")
        if self.round_timeout_ticks < 2 or self.sync_retry_ticks < 1:
            raise ConfigError(key="round_timeout_ticks", reason="must be >= 2 (sync retry >= 1)")
        if not 0 <= self.timeout_backoff_exponent_max <= 16:
            raise ConfigError(key="timeout_backoff_exponent_max", reason="must be in 0..16")
        if self.round_window_max < 2 or self.evidence_window_rounds < 2:
            raise ConfigError(key="round_window_max", reason="windows must be >= 2 rounds")
        if self.blocks_pending_max < self.round_window_max:
            raise ConfigError(key="blocks_pending_max", reason="must hold a round window")


@BFT_MESSAGES.register(20)
@dataclass(frozen=True, slots=True)
class SafetyState:
    """What must be durable before a vote or a timeout leaves the validator.

    ``last_voted_round``: the highest round this validator voted or timed out in; it
    never votes again in a round at or below it. ``high_qc``: the highest certificate
    it knows, its lock: its timeouts report that round, which is what keeps a block
    committed by a 2-chain from being skipped after a timeout certificate.
    ``high_tc``: the highest timeout certificate it knows; not needed for safety, but
    after a restart it justifies the round the validator was in, so its timeouts can
    bring the others to that round (they may have lost the TC too).
    """

    epoch: int
    last_voted_round: int
    high_qc: QuorumCert
    high_tc: TimeoutCert | None


@dataclass(frozen=True, slots=True)
class Recovered:
    """What durable storage hands back after a restart.

    ``safety`` as last persisted; ``committed_qc`` the certificate of the last block
    the application applied (``CommittedBlock.certificate`` of it), so the core knows
    where the committed chain ends. Blocks proposed but not committed are not needed:
    the core fetches them from its peers.
    """

    safety: SafetyState
    committed_qc: QuorumCert


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """A block that is final, with the certificates that prove it.

    ``certificate`` certifies this block (2f + 1 votes for its id). ``commit_qc`` is the
    certificate of a block one round above the last block of the committed chain,
    whose parent is that block: the 2-chain that made it final. Earlier blocks of the
    same batch are final because the chain of parent ids ties them to it.
    """

    block: Block
    block_id: bytes
    certificate: QuorumCert
    commit_qc: QuorumCert


@dataclass(frozen=True, slots=True)
class PayloadRequest:
    """This validator proposes in ``round``: call ``propose(request, payload)``.

    ``parent_id``/``height`` name the block the payload will extend (the node builds it
    on the state after that block). If the parent changes before the node answers (a
    higher QC arrived), ``propose`` refuses with STALE_PAYLOAD_REQUEST and a new request
    comes out: a payload is never placed on a parent it was not built for.
    """

    round: int
    height: int
    parent_id: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the caller may observe (not persisted)."""

    round: int
    proposer: int


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the caller must do after feeding the core some input.

    The caller's contract, in this order:

    1. Persist ``safety`` (if not None). If ``must_sync``, fsync before going on. A vote
       or timeout in ``messages`` was signed under this state: sending it before the
       state is durable lets a crash and restart sign a second, conflicting vote in the
       same round, which is exactly what a Byzantine validator does.
    2. Only then send ``messages`` (each to its ``recipient``; any may be lost or
       delayed, none may be altered).
    3. Apply ``committed`` in order (heights are contiguous and increasing); persist
       each block with its ``certificate`` so a restart can pass the last one as
       ``Recovered.committed_qc``.
    4. Validate ``blocks_to_validate`` (payload well-formed, built on the state after
       its parent, within the node's clock skew ...) and answer each with
       ``payload_verdict(block_id, valid)``. The core votes only for a payload judged
       valid.
    5. If ``payload_request`` is set, build a payload on the state after its
       ``parent_id`` and call ``propose(payload_request, payload)``.
    6. Include ``evidence`` in a block the node proposes (deduplicated by its key).
    7. Call ``advance(ready)`` with this same object before asking for the next.
    """

    soft_state: SoftState | None
    safety: SafetyState | None
    must_sync: bool
    messages: tuple[Outgoing, ...]
    committed: tuple[CommittedBlock, ...]
    blocks_to_validate: tuple[Block, ...]
    payload_request: PayloadRequest | None
    evidence: tuple[Evidence, ...]


class InvalidReason(Enum):
    WRONG_EPOCH = "wrong epoch"
    NOT_A_MEMBER = "signer not in the validator set"
    BAD_SIGNATURE = "bad signature"
    WRONG_PROPOSER = "not the proposer of that round"
    MALFORMED_BLOCK = "block fields inconsistent"
    BLOCK_ID_MISMATCH = "block id is not the hash of the block"
    BAD_CERTIFICATE = "certificate invalid"
    UNJUSTIFIED_ROUND = "round not justified by a QC or TC"
    PAYLOAD_TOO_LARGE = "payload larger than allowed"
    OUT_OF_WINDOW = "round outside the accepted window"
    STALE = "older than what is already known"
    LIMIT = "a bounded buffer is full"
    UNSOLICITED = "block not requested"
    UNKNOWN_BLOCK = "block not held by the core: the node serves it from its committed blocks"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message ``step`` refused; the core changed nothing because of it, except that
    valid certificates it carried (a QC, a TC) were learned: they are self-authenticating."""

    reason: InvalidReason
    detail: str = ""


class RejectReason(Enum):
    NOT_PROPOSER = "not the proposer of the current round"
    ALREADY_PROPOSED = "already proposed in this round"
    STALE_PAYLOAD_REQUEST = "the round or parent changed since the payload request"
    PAYLOAD_TOO_LARGE = "payload larger than allowed"
    NO_JUSTIFICATION = "no QC or TC justifies proposing in this round"


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    validator_id: int
    epoch: int
    round: int
    proposer: int
    last_voted_round: int
    high_qc_round: int
    high_tc_round: int
    committed_height: int
    committed_round: int
    committed_block_id: bytes
    blocks_pending: int


class BftUsageError(LocalError):
    """The caller broke the core's contract (fields: reason, ...)."""


class SafetyViolation(LocalError):
    """The core found its own committed chain contradicted: halt, never continue."""
