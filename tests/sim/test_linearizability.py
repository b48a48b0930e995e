"""The linearizability checker on hand-written histories (it must accept and reject)."""

from __future__ import annotations

from deltasync.sim.linearizability import (
    REJECTED,
    Operation,
    check_history,
    check_operations,
    shrink,
)


def op(
    op_id: int,
    kind: str,
    amount: int,
    start: int,
    end: int | None,
    output: int | None,
    key: int = 1,
    client: int = 0,
) -> Operation:
    return Operation(op_id, client or op_id, key, kind, amount, start, end, output)


def test_sequential_history_is_linearizable() -> None:
    ops = [
        op(1, "deposit", 10, 0, 1, 10),
        op(2, "withdraw", 4, 2, 3, 6),
        op(3, "read", 0, 4, 5, 6),
        op(4, "withdraw", 7, 6, 7, REJECTED),
    ]
    assert check_operations(ops)[0] is True


def test_stale_read_is_caught_and_shrunk_to_its_witness() -> None:
    ops = [
        op(1, "deposit", 10, 0, 1, 10),
        op(2, "read", 0, 2, 3, 10),
        op(3, "deposit", 5, 4, 5, 15),
        op(4, "read", 0, 6, 7, 10),  # stale: the deposit of 5 completed before it started
        op(5, "read", 0, 8, 9, 15),
        op(6, "deposit", 1, 10, 11, 16),
    ]
    assert check_operations(ops)[0] is False
    minimal = shrink(ops)
    assert [o.op_id for o in minimal] == [1, 3, 4]
    assert check_operations(minimal)[0] is False


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    ops = [
        op(1, "deposit", 10, 0, 10, 15),  # overlaps op 2, which went first
        op(2, "deposit", 5, 1, 9, 5),
        op(3, "read", 0, 11, 12, 15),
    ]
    assert check_operations(ops)[0] is True


def test_indeterminate_operations_may_or_may_not_have_happened() -> None:
    base = [op(1, "deposit", 10, 0, 1, 10), op(2, "deposit", 7, 2, None, None)]
    assert check_operations(base + [op(3, "read", 0, 5, 6, 10)])[0] is True
    assert check_operations(base + [op(3, "read", 0, 5, 6, 17)])[0] is True
    assert check_operations(base + [op(3, "read", 0, 5, 6, 11)])[0] is False
    # once seen applied, it cannot un-happen
    seen = base + [op(3, "read", 0, 5, 6, 17), op(4, "read", 0, 7, 8, 10)]
    assert check_operations(seen)[0] is False


def test_rejection_with_enough_funds_is_not_linearizable() -> None:
    ops = [op(1, "deposit", 10, 0, 1, 10), op(2, "withdraw", 5, 2, 3, REJECTED)]
    assert check_operations(ops)[0] is False


def test_keys_are_checked_independently() -> None:
    ops = [
        op(1, "deposit", 10, 0, 1, 10, key=1),
        op(2, "deposit", 10, 0, 1, 10, key=2),
        op(3, "read", 0, 2, 3, 0, key=2),  # wrong on key 2 only
    ]
    verdicts = {r.key: r.linearizable for r in check_history(ops)}
    assert verdicts == {1: True, 2: False}


def test_search_budget_reports_inconclusive_not_a_verdict() -> None:
    ops = [op(i, "deposit", 1 << i, 0, None, None) for i in range(1, 16)]
    ops.append(op(99, "read", 0, 1, 2, (1 << 16) - 2))  # all of them applied
    assert check_operations(ops, budget=10)[0] is None
    assert check_operations(ops)[0] is True


def test_exchange_adjustments_are_part_of_the_model() -> None:
    # a socialized loss took 3 between the deposit and the read: only with it is the read valid
    ops = [op(1, "deposit", 10, 0, 1, 10), op(3, "read", 0, 6, 7, 7)]
    assert check_operations(ops)[0] is False
    assert check_operations(ops + [op(2, "adjust", -3, 2, 5, None)])[0] is True
