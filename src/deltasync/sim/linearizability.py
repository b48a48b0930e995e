"""A linearizability checker for client histories: Wing & Gong's search, Lowe's memoization.

The model is a per-account balance (what a client can observe of the funding
accounts): ``deposit`` adds and reports the new balance, ``withdraw`` subtracts
and reports the new balance or is rejected when funds are short, ``read``
(a linearizable ReadIndex read) reports the balance. Accounts are independent
keys, so the history is partitioned per account and each part is checked alone
(as Knossos and Porcupine do); a history is linearizable iff every part is.

An operation whose outcome the client never learned (it timed out, or its
answer was lost with a crashed gateway) is *indeterminate*: it may take effect
at any point after its invocation, or never. Its return time is +infinity and
the model lets it either apply or not.

On failure, ``shrink`` finds a minimal failing sub-history in two sound steps:
the shortest failing prefix in time (a prefix of a linearizable history is
linearizable, once operations still running at the cut become indeterminate),
then dropping reads one at a time while it still fails (a read changes nothing,
so dropping it can only make a history easier to linearize).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

REJECTED = -1  # the output of a withdraw refused for insufficient funds


@dataclass(frozen=True, slots=True)
class Operation:
    op_id: int
    client: int
    key: int  # the account
    kind: str  # "deposit" | "withdraw" | "read" | "adjust" (by the exchange, not a client)
    amount: int  # raw units; 0 for reads
    invoke_ns: int
    return_ns: int | None  # None: indeterminate
    output: int | None  # balance after (or REJECTED); None: unknown

    def describe(self) -> str:
        what = self.kind if self.kind == "read" else f"{self.kind} {self.amount}"
        if self.return_ns is None:
            result, end = "?", "..."
        else:
            result = "rejected" if self.output == REJECTED else str(self.output)
            end = str(self.return_ns)
        return (
            f"op {self.op_id} client {self.client} account {self.key}: {what} -> {result}"
            f"  [{self.invoke_ns} .. {end}]"
        )


def balance_step(state: int, op: Operation) -> tuple[int, ...]:
    """Balances the account may hold after ``op`` (empty: ``op`` cannot happen here)."""
    out = op.output
    match op.kind:
        case "deposit":
            after = state + op.amount
            if out is None:
                return (after, state)  # unknown: applied, or never
            return (after,) if out == after else ()
        case "withdraw":
            if out is None:
                return (state - op.amount, state) if state >= op.amount else (state,)
            if out == REJECTED:
                return (state,) if state < op.amount else ()
            return (out,) if state >= op.amount and state - op.amount == out else ()
        case "adjust":  # the exchange moved the balance itself (e.g. a socialized loss)
            return (state + op.amount,)
        case "read":
            if out is None:
                return (state,)
            return (state,) if out == state else ()
    raise AssertionError(f"unknown operation kind {op.kind}")


Step = Callable[[int, Operation], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: int
    linearizable: bool | None  # None: the search budget ran out
    operations: int
    explored: int


@dataclass(slots=True)
class _Entries:
    """Lowe's doubly linked list of call and return entries, in time order.

    Positions 1..m hold the entries (calls before returns at equal times); 0 is
    the head sentinel and ``end`` (m + 1) the tail. Lifting a call takes it and
    its return out of the list (the operation is linearized); unlifting puts both
    back where they were.
    """

    is_call: list[bool]
    op_at: list[int]  # the operation index of each position
    return_pos: list[int]  # the position of each operation's return
    nxt: list[int]
    prv: list[int]
    end: int

    @staticmethod
    def of(ops: Sequence[Operation]) -> _Entries:
        end_time = max(op.invoke_ns for op in ops)
        end_time = max([end_time] + [op.return_ns for op in ops if op.return_ns is not None]) + 1
        # (time, 0 call / 1 return, op index): calls sort before returns at equal times
        raw = [(op.invoke_ns, 0, i) for i, op in enumerate(ops)]
        raw += [(end_time if op.return_ns is None else op.return_ns, 1, i) for i, op in enumerate(ops)]
        raw.sort()
        m = len(raw)
        is_call = [False] * (m + 2)
        op_at = [0] * (m + 2)
        return_pos = [0] * len(ops)
        for pos, (_, kind, index) in enumerate(raw, start=1):
            is_call[pos] = kind == 0
            op_at[pos] = index
            if kind == 1:
                return_pos[index] = pos
        return _Entries(is_call, op_at, return_pos, list(range(1, m + 3)), [0, *range(0, m + 1)], m + 1)

    def lift(self, pos: int) -> None:
        nxt, prv = self.nxt, self.prv
        ret = self.return_pos[self.op_at[pos]]
        nxt[prv[pos]] = nxt[pos]
        prv[nxt[pos]] = prv[pos]
        nxt[prv[ret]] = nxt[ret]
        prv[nxt[ret]] = prv[ret]

    def unlift(self, pos: int) -> None:
        nxt, prv = self.nxt, self.prv
        ret = self.return_pos[self.op_at[pos]]
        nxt[prv[ret]] = ret
        prv[nxt[ret]] = ret
        nxt[prv[pos]] = pos
        prv[nxt[pos]] = pos


def check_operations(
    ops: Sequence[Operation], initial: int = 0, step: Step = balance_step, budget: int = 2_000_000
) -> tuple[bool | None, int]:
    """Wing-Gong-Lowe search over one key's operations. Returns (verdict, states explored)."""
    if not ops:
        return True, 0
    entries = _Entries.of(ops)
    is_call, op_at, nxt, end = entries.is_call, entries.op_at, entries.nxt, entries.end
    cache: set[tuple[int, int]] = set()  # (linearized set, state) already explored

    def first_unexplored(linearized: int, candidates: tuple[int, ...], start: int) -> int:
        for choice in range(start, len(candidates)):
            key = (linearized, candidates[choice])
            if key not in cache:
                cache.add(key)
                return choice
        return -1

    state = initial
    linearized = 0  # bit i set: operation i is linearized
    stack: list[tuple[int, int, int, tuple[int, ...], int]] = []
    explored = 0
    pos = nxt[0]
    while nxt[0] != end:
        explored += 1
        if explored > budget:
            return None, explored
        if is_call[pos]:
            # linearize this call next, in the first of its outcomes not yet explored
            state0, linearized0, start = state, linearized, 0
            candidates = step(state, ops[op_at[pos]])
        else:
            # a return whose call is not linearized yet: undo the last choice, try its next outcome
            if not stack:
                return False, explored
            pos, state0, linearized0, candidates, choice = stack.pop()
            entries.unlift(pos)
            start = choice + 1
        bit = 1 << op_at[pos]
        choice = first_unexplored(linearized0 | bit, candidates, start)
        if choice < 0:
            state, linearized = state0, linearized0
            pos = nxt[pos]
            continue
        stack.append((pos, state0, linearized0, candidates, choice))
        entries.lift(pos)
        state, linearized = candidates[choice], linearized0 | bit
        pos = nxt[0]
    return True, explored


def partition(ops: Sequence[Operation]) -> dict[int, list[Operation]]:
    parts: dict[int, list[Operation]] = {}
    for op in sorted(ops, key=lambda o: (o.key, o.invoke_ns, o.op_id)):
        parts.setdefault(op.key, []).append(op)
    return parts


def check_history(ops: Sequence[Operation], budget: int = 2_000_000) -> list[KeyResult]:
    results = []
    for key, part in sorted(partition(ops).items()):
        verdict, explored = check_operations(part, budget=budget)
        results.append(KeyResult(key, verdict, len(part), explored))
    return results


def _prefix(ops: Sequence[Operation], cut_ns: int) -> list[Operation]:
    out = []
    for op in ops:
        if op.invoke_ns > cut_ns:
            continue
        if op.return_ns is not None and op.return_ns > cut_ns:
            op = replace(op, return_ns=None, output=None)
        out.append(op)
    return out


def shrink(ops: Sequence[Operation], budget: int = 200_000) -> list[Operation]:
    """A minimal failing sub-history of one key's non-linearizable ``ops``."""

    def fails(candidate: Sequence[Operation]) -> bool:
        return check_operations(candidate, budget=budget)[0] is False

    ops = list(ops)
    cuts = sorted({op.return_ns for op in ops if op.return_ns is not None})
    lo, hi = 0, len(cuts) - 1
    if cuts and fails(_prefix(ops, cuts[hi])):
        while lo < hi:  # the smallest failing cut
            mid = (lo + hi) // 2
            if fails(_prefix(ops, cuts[mid])):
                hi = mid
            else:
                lo = mid + 1
        ops = _prefix(ops, cuts[lo])
    for op in sorted(ops, key=lambda o: -o.invoke_ns):
        if op.kind == "read":
            trial = [o for o in ops if o.op_id != op.op_id]
            if fails(trial):
                ops = trial
    return ops
