"""Client sessions: a retried command is applied at most once.

Replicated and deterministic: every node updates this table while applying
blocks, so whichever node answers the retry gives the original answer.

Each session remembers the results of its last ``results_per_session_max``
requests. A request id at or below the session's low-water mark whose result
has been evicted is answered with ``Outcome.EXPIRED`` (it *was* applied; its
answer is gone) instead of being applied again. Sessions idle for longer
than ``session_idle_ns_max`` of block time are evicted, oldest first; the
eviction order depends only on replicated values. The limits live in ``core.limits``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from deltasync.core.limits import client_sessions_max, results_per_session_max, session_idle_ns_max


class Outcome(Enum):
    NEW = "new"  # apply it
    DUPLICATE = "duplicate"  # applied before; here is the cached result
    EXPIRED = "expired"  # applied before; the cached result is gone


@dataclass(slots=True)
class _Session:
    last_active_ns: int
    low_water: int = 0  # every request id <= low_water has been applied
    results: OrderedDict[int, Any] = field(default_factory=OrderedDict)


class SessionTable:
    def __init__(self) -> None:
        self._sessions: dict[int, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def check(self, session: int, request: int) -> tuple[Outcome, Any]:
        if session == 0:
            return Outcome.NEW, None
        state = self._sessions.get(session)
        if state is None:
            return Outcome.NEW, None
        if request in state.results:
            return Outcome.DUPLICATE, state.results[request]
        if request <= state.low_water:
            return Outcome.EXPIRED, None
        return Outcome.NEW, None

    def record(self, session: int, request: int, result: Any, time_ns: int) -> None:
        if session == 0:
            return
        state = self._sessions.get(session)
        if state is None:
            state = self._sessions[session] = _Session(last_active_ns=time_ns)
        state.last_active_ns = time_ns
        state.results[request] = result
        while len(state.results) > results_per_session_max:
            evicted, _ = state.results.popitem(last=False)
            state.low_water = max(state.low_water, evicted)

    def evict_idle(self, time_ns: int) -> int:
        """Drop idle sessions (and the oldest ones beyond the cap). Deterministic."""
        idle = [
            sid
            for sid, state in self._sessions.items()
            if time_ns - state.last_active_ns > session_idle_ns_max
        ]
        for sid in idle:
            del self._sessions[sid]
        excess = len(self._sessions) - client_sessions_max
        if excess > 0:
            oldest = sorted(self._sessions, key=lambda sid: (self._sessions[sid].last_active_ns, sid))
            for sid in oldest[:excess]:
                del self._sessions[sid]
        return len(idle) + max(excess, 0)

    def to_wire(self, result_to_wire: Callable[[Any], Any] = lambda r: r) -> list[Any]:
        """Canonical form; results are kept as objects and converted only here."""
        return [
            [
                sid,
                s.last_active_ns,
                s.low_water,
                [[rid, result_to_wire(res)] for rid, res in s.results.items()],
            ]
            for sid, s in sorted(self._sessions.items())
        ]

    @staticmethod
    def from_wire(
        wire: list[Any], result_from_wire: Callable[[Any], Any] = lambda r: r
    ) -> SessionTable:
        table = SessionTable()
        for sid, last_active_ns, low_water, results in wire:
            state = _Session(last_active_ns=last_active_ns, low_water=low_water)
            for rid, res in results:
                state.results[rid] = result_from_wire(res)
            table._sessions[sid] = state
        return table
