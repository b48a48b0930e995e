"""State commitment: Merkle tree, state root, inclusion proofs, tree diff. Imports only `core`."""

from deltasync.commitment.merkle import (
    EMPTY_ROOT,
    MerkleError,
    MerkleMap,
    Proof,
    diff_keys,
    root_of,
    verify_proof,
)

__all__ = [
    "EMPTY_ROOT",
    "MerkleError",
    "MerkleMap",
    "Proof",
    "diff_keys",
    "root_of",
    "verify_proof",
]
