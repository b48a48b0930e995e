"""Test doubles with planted bugs: each must be caught by one of the simulator's checkers."""

from __future__ import annotations

import itertools
from typing import Any

from deltasync.exchange.commands import Deposit
from deltasync.exchange.state import BlockResult
from deltasync.node.driver import Answer, NodeCore
from deltasync.sim.simulator import CheckedExchangeState

_instances = itertools.count(1)


class NonDeterministicState(CheckedExchangeState):
    """Puts a per-process-object value into the state root (like id() or a wall clock would)."""

    def apply_block(self, height: int, time_ns: int, commands: Any) -> BlockResult:
        if not hasattr(self, "_noise"):
            self._noise = next(_instances)
        if commands:
            self.set_record(b"sim/noise", self._noise.to_bytes(8, "big"))
        return super().apply_block(height, time_ns, commands)


class LeakyDepositState(CheckedExchangeState):
    """Credits a deposit twice to the balance but once to the books: money appears from nowhere."""

    def apply(self, command: object, ctx: Any) -> list[Any]:
        events = super().apply(command, ctx)
        if type(command) is Deposit and command.amount.raw % 7 == 0:
            self.accounts[command.account].cash += 1
        return events


class AckBeforeFsync:
    """A durable log that returns from ``save`` before anything is synced."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save(self, hard_state: Any, entries: Any, sync: bool = True) -> None:
        self._inner.save(hard_state, entries, sync=False)


class PhantomAckCore(NodeCore):
    """A gateway that sometimes answers success without ever sequencing the command."""

    def submit(self, command: Any, session: int, request: int, now_ns: int) -> bool:
        if request % 5 == 3 and isinstance(command, Deposit):
            self._out.answers.append(Answer(session, request, self.tip.height, ()))
            return True
        return super().submit(command, session, request, now_ns)


class LocalReadCore(NodeCore):
    """Serves "linearizable" reads from local state at once, skipping ReadIndex."""

    def read(self, context: bytes) -> None:
        self._out.reads.append(context)
        return None


class StalledSequencerCore(NodeCore):
    """A sequencer that stops proposing once the term passes 2 (raft itself stays healthy)."""

    def _can_propose(self) -> bool:
        return self.raft.term <= 2 and super()._can_propose()


class FutureClockCore(NodeCore):
    """A sequencer that stamps blocks from a clock a minute fast (e.g. the wrong time source)."""

    def _propose_block(self, now_ns: int, allow_empty: bool = False) -> None:
        super()._propose_block(now_ns + 60_000_000_000, allow_empty)
