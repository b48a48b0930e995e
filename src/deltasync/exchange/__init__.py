"""The exchange state machine: pure, deterministic; `apply` is its only mutator.

Stable API (imported lazily, so ``deltasync.exchange.pricing`` stays cheap):

- ``ExchangeState`` (state): ``from_genesis``, ``apply_block``, ``apply``,
  ``sequence_block``, ``state_root``, ``account_proof``, ``snapshot_bytes``,
  ``restore``, ``check_invariants`` and read-only queries;
- ``GenesisConfig``, ``default_genesis`` (genesis);
- ``COMMANDS`` (commands) and ``EVENTS`` (events): the message registries;
- ``RiskEngine``, ``SimpleCollateral`` (accounts): the pre-trade check interface.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExchangeState": "deltasync.exchange.state",
    "BlockResult": "deltasync.exchange.state",
    "Context": "deltasync.exchange.state",
    "sequence_block": "deltasync.exchange.state",
    "GenesisConfig": "deltasync.exchange.genesis",
    "default_genesis": "deltasync.exchange.genesis",
    "COMMANDS": "deltasync.exchange.commands",
    "EVENTS": "deltasync.exchange.events",
    "RiskEngine": "deltasync.exchange.accounts",
    "SimpleCollateral": "deltasync.exchange.accounts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deltasync.exchange' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
