"""The exchange state machine: pure, deterministic; `apply` is its only mutator."""
