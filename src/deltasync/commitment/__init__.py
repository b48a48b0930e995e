"""State commitment: Merkle tree, state root, inclusion proofs, tree diff. Imports only `core`."""
