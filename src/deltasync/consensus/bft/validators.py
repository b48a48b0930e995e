"""The validator set of one epoch: ids, public keys, quorum arithmetic, proposer rotation."""

from __future__ import annotations

from dataclasses import dataclass, field

from nacl.signing import VerifyKey

from deltasync.consensus.bft.crypto import PUBLIC_KEY_BYTES, signature_valid, verify_key
from deltasync.core.errors import ConfigError
from deltasync.core.limits import bft_validators_max


@dataclass(frozen=True, slots=True)
class Validator:
    validator_id: int
    public_key: bytes


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """Fixed for one ``epoch``; a set change is a new ``ValidatorSet`` with a higher epoch.

    With n members it tolerates f = (n - 1) // 3 Byzantine ones; a certificate needs
    ``quorum`` = floor(2n/3) + 1 distinct signatures (2f + 1 when n = 3f + 1), so any two
    quorums share at least f + 1 members, one of them honest.
    """

    epoch: int
    validators: tuple[Validator, ...]
    _keys: dict[int, VerifyKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [v.validator_id for v in self.validators]
        if not 1 <= len(ids) <= bft_validators_max:
            raise ConfigError(key="validators", reason="count out of range", count=len(ids))
        if ids != sorted(set(ids)) or ids[0] <= 0:
            raise ConfigError(key="validators", reason="ids must be positive, sorted, distinct")
        if any(len(v.public_key) != PUBLIC_KEY_BYTES for v in self.validators):
            raise ConfigError(key="validators", reason="public keys are 32 bytes")
        if self.epoch < 0:
            raise ConfigError(key="epoch", reason="must be >= 0")
        keys = {v.validator_id: verify_key(v.public_key) for v in self.validators}
        object.__setattr__(self, "_keys", keys)

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def faults_tolerated(self) -> int:
        return (self.size - 1) // 3

    @property
    def quorum(self) -> int:
        return (2 * self.size) // 3 + 1

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(v.validator_id for v in self.validators)

    def is_member(self, validator_id: int) -> bool:
        return validator_id in self._keys

    def proposer(self, round_number: int) -> int:
        """Round-robin by round: deterministic, and every member leads one round in n."""
        return self.validators[round_number % self.size].validator_id

    def signed_by(self, validator_id: int, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(validator_id)
        return key is not None and signature_valid(key, message, signature)
