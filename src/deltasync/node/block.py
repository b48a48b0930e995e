"""Blocks: what the sequencer proposes and every node applies.

A block is one Raft entry. Its header carries the height, the block time
stamped by the sequencer (never going backwards), the hash of the previous
block and the state root *after the previous block*, so every replica checks
its own root against the leader's before applying anything new.

Each command in a block is wrapped with the client session and request id the
gateway assigned, so a retried command is applied at most once (see
``sessions``).

Encoding is the canonical codec: a block is
``[height, time_ns, prev_hash, state_root, proposer, [[session, request, origin, command_wire], ...]]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from deltasync.core import limits
from deltasync.core.codec import Registry, decode, encode_trusted
from deltasync.core.errors import CodecError

GENESIS_HASH = bytes(32)

NODE_COMMANDS = Registry("node.commands")


@NODE_COMMANDS.register(900)
@dataclass(frozen=True, slots=True)
class Noop:
    """A command that is ordered, made durable and deduplicated but changes no state.

    Used to measure consensus alone (``deltasync bench consensus``)."""

    payload: bytes

    def __post_init__(self) -> None:
        if len(self.payload) > limits.command_bytes_max:
            raise CodecError(reason="noop payload too large", size=len(self.payload))


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A client's command as it travels through the log."""

    session: int  # chosen by the client (or its gateway); 0 means "no dedupe"
    request: int  # strictly increasing per session for commands that must apply once
    origin: int  # node id of the gateway that will answer the client
    command: Any  # the command's wire form (a plain list from the exchange codec)

    def to_wire(self) -> list[Any]:
        return [self.session, self.request, self.origin, self.command]

    @staticmethod
    def from_wire(wire: Any) -> ClientCommand:
        if type(wire) is not list or len(wire) != 4:
            raise CodecError(reason="client command must be [session, request, origin, command]")
        session, request, origin, command = wire
        for name, value in (("session", session), ("request", request), ("origin", origin)):
            if type(value) is not int or value < 0:
                raise CodecError(reason="bad client command field", field=name)
        return ClientCommand(session, request, origin, command)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    time_ns: int
    prev_hash: bytes
    state_root: bytes  # root after block height-1
    proposer: int


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    commands: tuple[ClientCommand, ...]

    def to_bytes(self) -> bytes:
        # Commands were validated when they entered the gateway; every replica hashes
        # and decodes these exact bytes, so no second canonical pass is needed here.
        h = self.header
        return encode_trusted(
            [
                h.height,
                h.time_ns,
                h.prev_hash,
                h.state_root,
                h.proposer,
                [command.to_wire() for command in self.commands],
            ]
        )

    @staticmethod
    def from_bytes(data: bytes) -> Block:
        if len(data) > limits.block_bytes_max:
            raise CodecError(reason="block too large", size=len(data))
        wire = decode(data)
        if type(wire) is not list or len(wire) != 6:
            raise CodecError(reason="block must have 6 fields")
        height, time_ns, prev_hash, state_root, proposer, commands = wire
        if not (type(height) is int and type(time_ns) is int and type(proposer) is int):
            raise CodecError(reason="block header ints")
        if not (type(prev_hash) is bytes and type(state_root) is bytes):
            raise CodecError(reason="block header hashes")
        if type(commands) is not list or len(commands) > limits.block_commands_max:
            raise CodecError(reason="block commands")
        header = BlockHeader(height, time_ns, prev_hash, state_root, proposer)
        return Block(header, tuple(ClientCommand.from_wire(item) for item in commands))


def block_hash(data: bytes) -> bytes:
    """Hash of a block's canonical bytes (chains blocks through ``prev_hash``)."""
    return hashlib.sha256(b"deltasync/block\x00" + data).digest()
