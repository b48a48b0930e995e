"""BFT values and wire messages: frozen slotted dataclasses in one codec registry.

The node puts a message on the wire with ``BFT_MESSAGES.encode(message)`` and reads it
back with ``BFT_MESSAGES.decode(data, canonical=True)``. Signed messages carry no
recipient and no transport sender: the signer is the sender, so a message may be
relayed by anyone. Block ids are SHA-256 hashes over the canonical encoding, so a
certificate that signs a block id signs the block's whole content and its ancestry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from deltasync.consensus.bft.crypto import (
    DOMAIN_BLOCK_ID,
    DOMAIN_PROPOSAL,
    DOMAIN_TIMEOUT,
    DOMAIN_VOTE,
    signing_bytes,
)
from deltasync.core.codec import Registry, encode

BFT_MESSAGES = Registry("bft")
BLOCK_ID_BYTES = 32


@BFT_MESSAGES.register(1)
@dataclass(frozen=True, slots=True)
class VoteData:
    """What a vote signs: a block, its position, and its parent's round.

    Carrying ``parent_round`` makes a certificate self-describing for the commit rule:
    a QC whose ``parent_round + 1 == round`` proves that the parent is committed.
    """

    epoch: int
    round: int
    height: int
    block_id: bytes
    parent_id: bytes
    parent_round: int

    def signing_bytes(self, chain_id: str) -> bytes:
        return signing_bytes(
            DOMAIN_VOTE,
            chain_id,
            [self.epoch, self.round, self.height, self.block_id, self.parent_id, self.parent_round],
        )


@BFT_MESSAGES.register(2)
@dataclass(frozen=True, slots=True)
class ValidatorSignature:
    validator_id: int
    signature: bytes


@BFT_MESSAGES.register(3)
@dataclass(frozen=True, slots=True)
class QuorumCert:
    """A quorum's signatures over one ``VoteData``, sorted by validator id."""

    vote_data: VoteData
    signatures: tuple[ValidatorSignature, ...]

    @property
    def round(self) -> int:
        return self.vote_data.round

    @property
    def height(self) -> int:
        return self.vote_data.height

    @property
    def block_id(self) -> bytes:
        return self.vote_data.block_id

    def digest(self) -> bytes:
        return hashlib.sha256(BFT_MESSAGES.encode(self)).digest()


@BFT_MESSAGES.register(4)
@dataclass(frozen=True, slots=True)
class TimeoutSignature:
    validator_id: int
    high_qc_round: int
    signature: bytes


def timeout_signing_bytes(chain_id: str, epoch: int, round_number: int, high_qc_round: int) -> bytes:
    return signing_bytes(DOMAIN_TIMEOUT, chain_id, [epoch, round_number, high_qc_round])


@BFT_MESSAGES.register(5)
@dataclass(frozen=True, slots=True)
class TimeoutCert:
    """A quorum's timeouts of one round, each naming its signer's highest QC round.

    ``high_qc`` is the QC of the highest round named, so that whoever holds the TC can
    propose on it (Jolteon has the proposer collect it from the timeout messages).
    """

    epoch: int
    round: int
    signatures: tuple[TimeoutSignature, ...]
    high_qc: QuorumCert

    def max_high_qc_round(self) -> int:
        return max(s.high_qc_round for s in self.signatures)

    def digest(self) -> bytes:
        return hashlib.sha256(BFT_MESSAGES.encode(self)).digest()


@BFT_MESSAGES.register(6)
@dataclass(frozen=True, slots=True)
class Block:
    """A proposed block: it extends the block certified by ``qc`` (its parent)."""

    epoch: int
    round: int
    height: int
    parent_id: bytes
    qc: QuorumCert
    proposer: int
    payload: bytes

    def compute_id(self, chain_id: str) -> bytes:
        body = signing_bytes(DOMAIN_BLOCK_ID, chain_id, BFT_MESSAGES.to_wire(self))
        return hashlib.sha256(body).digest()


@BFT_MESSAGES.register(7)
@dataclass(frozen=True, slots=True)
class Proposal:
    """The round's proposer -> every validator. ``tc`` justifies a round entered by timeout."""

    block: Block
    block_id: bytes
    tc: TimeoutCert | None
    signature: bytes


def proposal_signing_bytes(chain_id: str, epoch: int, round_number: int, block_id: bytes) -> bytes:
    return signing_bytes(DOMAIN_PROPOSAL, chain_id, [epoch, round_number, block_id])


@BFT_MESSAGES.register(8)
@dataclass(frozen=True, slots=True)
class Vote:
    """A validator -> every validator (all-to-all, so each forms the QC itself)."""

    vote_data: VoteData
    voter: int
    signature: bytes


@BFT_MESSAGES.register(9)
@dataclass(frozen=True, slots=True)
class Timeout:
    """A validator gives up on ``round``; carries its highest QC and the TC that led here."""

    epoch: int
    round: int
    voter: int
    high_qc: QuorumCert
    last_tc: TimeoutCert | None
    signature: bytes


@BFT_MESSAGES.register(10)
@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Ask a peer for ``block_id`` and up to ``count`` of its ancestors (unsigned)."""

    sender: int
    block_id: bytes
    count: int


@BFT_MESSAGES.register(11)
@dataclass(frozen=True, slots=True)
class BlockResponse:
    """Blocks from the requested one down its ancestry; each is checked against its id."""

    sender: int
    blocks: tuple[Block, ...]


class EvidenceKind(Enum):
    DOUBLE_PROPOSAL = 0
    DOUBLE_VOTE = 1


@BFT_MESSAGES.register(12)
@dataclass(frozen=True, slots=True)
class Evidence:
    """Two conflicting signed statements of one validator in one round.

    For ``DOUBLE_PROPOSAL`` the statements are proposal signatures over two block ids
    (``vote_data_*.block_id``; the rest of the vote data is then zeros); for
    ``DOUBLE_VOTE`` they are two votes. Anyone holding the validator set can check it
    with ``evidence_valid``.
    """

    kind: EvidenceKind
    validator_id: int
    epoch: int
    round: int
    first: VoteData
    first_signature: bytes
    second: VoteData
    second_signature: bytes

    def key(self) -> bytes:
        return encode([self.kind.value, self.validator_id, self.epoch, self.round])


Message = Proposal | Vote | Timeout | BlockRequest | BlockResponse


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one recipient, as the Ready hands it out."""

    recipient: int
    message: Message


def genesis_block_id(chain_id: str) -> bytes:
    return hashlib.sha256(signing_bytes(DOMAIN_BLOCK_ID, chain_id, ["genesis"])).digest()


def genesis_qc(chain_id: str, epoch: int) -> QuorumCert:
    """The certificate every chain starts from: round 0, height 0, no signatures.

    It is accepted only as exactly this value, never as a certificate with fewer
    signatures than a quorum.
    """
    genesis = genesis_block_id(chain_id)
    return QuorumCert(VoteData(epoch, 0, 0, genesis, genesis, 0), ())


def proposal_as_vote_data(epoch: int, round_number: int, block_id: bytes) -> VoteData:
    return VoteData(epoch, round_number, 0, block_id, b"", 0)
