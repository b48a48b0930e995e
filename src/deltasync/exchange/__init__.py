"""The exchange state machine: pure, deterministic; ``apply_block`` is its only mutator.

Stable API (imported lazily, so ``deltasync.exchange.pricing`` stays cheap):

- ``ExchangeState`` (state): ``from_genesis``, ``restore``, ``apply_block``,
  ``sequence_block``, ``state_root``, ``snapshot_bytes``; ``BlockResult``;
- ``command_priority``, ``sequence_block``, ``Context`` (sequencing): in-block order
  and log positions;
- ``queries``: read-only questions (instruments, books, orders, positions, accounts);
  ``invariants``: ``check_invariants``, ``check_commitment``; ``records``: proofs;
- ``GenesisConfig``, ``default_genesis`` (genesis);
- ``COMMANDS`` (commands) and ``EVENTS`` (events): the message registries;
- ``Extension``, ``RiskEngine``, ``StateAccess`` (ports) and ``SimpleCollateral``
  (collateral): what plugs into the state machine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExchangeState": "deltasync.exchange.state",
    "BlockResult": "deltasync.exchange.state",
    "Context": "deltasync.exchange.sequencing",
    "command_priority": "deltasync.exchange.sequencing",
    "sequence_block": "deltasync.exchange.sequencing",
    "GenesisConfig": "deltasync.exchange.genesis",
    "default_genesis": "deltasync.exchange.genesis",
    "COMMANDS": "deltasync.exchange.commands",
    "EVENTS": "deltasync.exchange.events",
    "Extension": "deltasync.exchange.ports",
    "RiskEngine": "deltasync.exchange.ports",
    "StateAccess": "deltasync.exchange.ports",
    "SimpleCollateral": "deltasync.exchange.collateral",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deltasync.exchange' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
