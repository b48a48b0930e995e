"""Signing keys behind a small protocol, ed25519 verification, domain-separated bytes.

Every signature of the protocol is over ``signing_bytes(domain, chain_id, fields)``:
a fixed protocol prefix, the message kind, the chain id and the canonical encoding
of the signed fields, so a signature made for one kind of message, one chain or one
protocol version can never be replayed as another.
"""

from __future__ import annotations

from typing import Any, Protocol

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from deltasync.core.codec import encode

PROTOCOL_PREFIX = b"deltasync/bft/v1\x00"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32

DOMAIN_PROPOSAL = b"proposal"
DOMAIN_VOTE = b"vote"
DOMAIN_TIMEOUT = b"timeout"
DOMAIN_BLOCK_ID = b"block-id"


class Signer(Protocol):
    """Holds one validator's private key; the core asks it to sign, never sees the key."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``message``."""
        ...


class Ed25519Signer:
    """A ``Signer`` over an in-memory ed25519 key (the node may supply an HSM-backed one)."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        assert len(seed) == SEED_BYTES, f"an ed25519 seed is {SEED_BYTES} bytes"
        self._key = SigningKey(seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature


def signing_bytes(domain: bytes, chain_id: str, fields: list[Any]) -> bytes:
    """The exact bytes a validator signs for a message of kind ``domain``."""
    return PROTOCOL_PREFIX + domain + b"\x00" + encode([chain_id, *fields])


def verify_key(public_key: bytes) -> VerifyKey:
    assert len(public_key) == PUBLIC_KEY_BYTES, "an ed25519 public key is 32 bytes"
    return VerifyKey(public_key)


def signature_valid(key: VerifyKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True
