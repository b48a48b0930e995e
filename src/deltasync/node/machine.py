"""How a node builds its state machine: genesis, extensions and the command codec.

One place decides which parts make up the replicated exchange (the trading
core plus oracle, margin, settlement and liquidation, see
``exchange.assembly``), so every node, the simulator and the tools build the
same machine from the same genesis.
"""

from __future__ import annotations

from typing import Any

from deltasync.core.codec import Registry
from deltasync.exchange import assembly
from deltasync.exchange.genesis import GenesisConfig, default_genesis
from deltasync.exchange.state import ExchangeState
from deltasync.node.block import NODE_COMMANDS
from deltasync.node.driver import CommandCodec


def genesis_from(raw: dict[str, Any] | None) -> GenesisConfig:
    return default_genesis() if raw is None else GenesisConfig.from_dict(raw)


def command_registries() -> list[Registry]:
    return [*assembly.COMMAND_REGISTRIES, NODE_COMMANDS]


def event_registries() -> list[Registry]:
    return list(assembly.EVENT_REGISTRIES)


def command_codec() -> CommandCodec:
    return CommandCodec(command_registries(), event_registries())


def new_machine(genesis: GenesisConfig) -> ExchangeState:
    return assembly.new_exchange(genesis)


def restore_machine(data: bytes) -> ExchangeState:
    return assembly.restore_exchange(data)
