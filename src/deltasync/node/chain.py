"""The chain of committed blocks: the checks a replica makes before it applies a block,
and an offline replay of a node's committed log with the same checks.

Every block header names the height after the tip, the hash of the tip block, a block
time that never goes backwards, and the state root after the tip block (the
proposer's). ``check_block(tip, header)`` judges a header against a tip:

- ``Verdict.APPLY``: it follows the tip and the roots agree;
- ``Verdict.STALE``: it does not follow the tip (proposed on a stale tip, e.g. by a
  deposed leader); every replica skips it the same way;
- ``Verdict.DIVERGED``: it follows the tip but its root is not ours: this replica's
  state differs from the proposer's, and it halts with ``divergence_report``, which
  names the keys the last block changed (every earlier root agreed, so the divergence
  lies among them).

``NodeCore._apply_entry`` makes these checks on every committed entry. ``Replica``
is the same replica without consensus: it applies committed block bytes with the
same checks and the same per-session de-duplication of retried commands
(``select_commands``), so ``replay(Replica(...), committed_blocks(...))`` rebuilds
what a node built from its log (the demo's offline auditor does this).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from deltasync.consensus import EntryType
from deltasync.core.errors import CodecError
from deltasync.exchange.state import BlockResult, ExchangeState
from deltasync.node.block import GENESIS_HASH, Block, BlockHeader, Noop, block_hash
from deltasync.node.sessions import Outcome, SessionTable

divergent_keys_reported_max = 32


@dataclass(slots=True)
class ChainTip:
    """The last applied block: what the next block's header must follow."""

    height: int = 0
    time_ns: int = 0
    last_hash: bytes = GENESIS_HASH
    state_root: bytes = b""


class Verdict(Enum):
    APPLY = "apply"  # follows the tip, roots agree
    STALE = "stale"  # does not follow the tip: skipped by every replica
    DIVERGED = "diverged"  # follows the tip, but the proposer's root is not ours: halt


def check_block(tip: ChainTip, header: BlockHeader) -> Verdict:
    """Does ``header`` follow ``tip`` (height, previous hash, block time), with our root?"""
    if (
        header.height != tip.height + 1
        or header.prev_hash != tip.last_hash
        or header.time_ns < tip.time_ns
    ):
        return Verdict.STALE
    if header.state_root != tip.state_root:
        return Verdict.DIVERGED
    return Verdict.APPLY


def divergence_report(
    tip: ChainTip, header: BlockHeader, machine: ExchangeState, raft_index: int
) -> dict[str, Any]:
    """Why a replica halts on a ``DIVERGED`` header: both roots and the candidate keys."""
    return {
        "reason": "state root mismatch",
        "height": header.height - 1,
        "expected_root": header.state_root.hex(),
        "own_root": tip.state_root.hex(),
        "proposer": header.proposer,
        "raft_index": raft_index,
        # Every earlier root agreed, so the divergence lies among the keys the
        # last block changed (here or on the proposer): the first ones, sorted.
        "divergent_key_candidates": [
            {"key": key.hex(), "value_sha256": _value_digest(machine.merkle.get(key))}
            for key in machine.merkle.last_changed_keys()[:divergent_keys_reported_max]
        ],
    }


def _value_digest(value: bytes | None) -> str | None:
    return None if value is None else hashlib.sha256(value).hexdigest()


# --- the commands of a block against the session table ----------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """A command answered without being applied: ``why`` is ``"duplicate"`` (a retry of
    an applied request: its first answer), ``"expired"`` (applied, but its cached answer
    is gone), ``"malformed"`` (undecodable) or ``"noop"``."""

    why: str
    height: int  # of the answer: the first application's for a duplicate, 0 if expired
    events: tuple[Any, ...] = ()

    @property
    def error(self) -> str | None:
        return self.why if self.why in ("expired", "malformed") else None


@dataclass(slots=True)
class Selection:
    """A block's commands sorted by the session table, in block order.

    ``commands`` (decoded) are to be applied; ``positions`` are their places in the
    block; ``settled`` holds, by position, the commands answered without being applied.
    A second copy of a request within the block is in neither: the first copy answers.
    """

    commands: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    settled: dict[int, Settled] = field(default_factory=dict)


def select_commands(
    block: Block, sessions: SessionTable, decode: Callable[[Any], Any]
) -> Selection:
    """Which commands of ``block`` to apply. Records no-ops in ``sessions`` (they are
    replicated and de-duplicated like any command, but do no exchange work)."""
    header = block.header
    selection = Selection()
    seen: set[tuple[int, int]] = set()
    for position, command in enumerate(block.commands):
        key = (command.session, command.request)
        if command.session != 0 and key in seen:
            continue
        seen.add(key)
        outcome, cached = sessions.check(command.session, command.request)
        if outcome is Outcome.DUPLICATE:
            height, events = cached
            selection.settled[position] = Settled("duplicate", height, events)
            continue
        if outcome is Outcome.EXPIRED:
            selection.settled[position] = Settled("expired", 0)
            continue
        try:
            decoded = decode(command.command)
        except CodecError:
            selection.settled[position] = Settled("malformed", header.height)
            continue
        if isinstance(decoded, Noop):
            sessions.record(command.session, command.request, (header.height, ()), header.time_ns)
            selection.settled[position] = Settled("noop", header.height)
            continue
        selection.commands.append(decoded)
        selection.positions.append(position)
    return selection


def record_results(
    block: Block, selection: Selection, result: BlockResult, sessions: SessionTable
) -> None:
    """Remember each applied command's answer for its retries, then forget idle sessions."""
    header = block.header
    for slot, position in enumerate(selection.positions):
        command = block.commands[position]
        sessions.record(
            command.session, command.request, (header.height, result.events[slot]), header.time_ns
        )
    sessions.evict_idle(header.time_ns)


# --- the offline replay -----------------------------------------------------------------


class LogRecord(Protocol):
    """A log entry as storage or consensus holds it."""

    @property
    def index(self) -> int: ...

    @property
    def type(self) -> object: ...  # an ``EntryType`` or its value

    @property
    def data(self) -> bytes: ...


def committed_blocks(entries: Iterable[LogRecord], commit_index: int) -> Iterator[tuple[int, bytes]]:
    """(raft index, bytes) of the committed application entries, in log order."""
    for entry in entries:
        if entry.index > commit_index:
            return
        if EntryType(entry.type) is EntryType.NORMAL:
            yield entry.index, entry.data


@dataclass(frozen=True, slots=True)
class ReplayedBlock:
    height: int
    time_ns: int
    raft_index: int
    commands: tuple[Any, ...]  # the decoded commands applied
    result: BlockResult


class Replica:
    """A replica without consensus: applies committed blocks in log order with the
    checks of ``check_block`` and the session rules of ``select_commands``.

    ``halted`` is set (and nothing more is applied) when a header's root differs from
    the replayed one; ``skipped`` counts what every replica skips or answers from its
    session table (``malformed_block``, ``stale_block``, and the ``why`` of each ``Settled``
    command but no-ops: ``duplicate``, ``expired``, ``malformed``).
    """

    def __init__(self, machine: ExchangeState, decode: Callable[[Any], Any]) -> None:
        self.machine = machine
        self.decode = decode
        self.sessions = SessionTable()
        self.tip = ChainTip(0, machine.time_ns, GENESIS_HASH, machine.state_root())
        self.halted: dict[str, Any] | None = None
        self.skipped: Counter[str] = Counter()

    def apply(self, raft_index: int, data: bytes) -> ReplayedBlock | None:
        """Apply one committed entry's block; None when it is skipped or the replica halts."""
        assert self.halted is None, "a halted replica applies nothing"
        try:
            block = Block.from_bytes(data)
        except CodecError:
            self.skipped["malformed_block"] += 1
            return None
        header = block.header
        verdict = check_block(self.tip, header)
        if verdict is Verdict.STALE:
            self.skipped["stale_block"] += 1
            return None
        if verdict is Verdict.DIVERGED:
            self.halted = divergence_report(self.tip, header, self.machine, raft_index)
            return None
        selection = select_commands(block, self.sessions, self.decode)
        self._count_settled(selection)
        result = self.machine.apply_block(header.height, header.time_ns, selection.commands)
        record_results(block, selection, result, self.sessions)
        self.tip = ChainTip(header.height, header.time_ns, block_hash(data), result.state_root)
        return ReplayedBlock(
            header.height, header.time_ns, raft_index, tuple(selection.commands), result
        )

    def _count_settled(self, selection: Selection) -> None:
        for settled in selection.settled.values():
            if settled.why != "noop":
                self.skipped[settled.why] += 1


def replay(replica: Replica, blocks: Iterable[tuple[int, bytes]]) -> Iterator[ReplayedBlock]:
    """Apply ``blocks`` (from ``committed_blocks``) to ``replica``, yielding each applied
    block; stops early when the replica halts (see ``replica.halted``)."""
    for raft_index, data in blocks:
        applied = replica.apply(raft_index, data)
        if replica.halted is not None:
            return
        if applied is not None:
            yield applied
