"""Sequencing: the order in which a block's commands apply, and where each one sits in the log.

In-block ordering, applied by ``ExchangeState.apply_block`` itself so that no
proposer can change it: commands are sorted, stably, into three classes,
keeping their relative order inside each class:

0. cancels (``CancelOrder``, ``CancelByLabel``, ``CancelAll``), deposits and
   instrument listings: they can only remove liquidity risk or add money;
1. makers: post-only ``PlaceOrder`` and post-only ``EditOrder``;
2. everything that can take liquidity or spend money: other orders and
   edits, combos, withdrawals, and commands of extensions unless they say
   otherwise (``ExchangeState.register_command``).

As venues do, this protects quoters: a maker who cancels or re-quotes in the
same block as a taker's order is served first. ``command_priority`` is the
one place that says which class a trading command belongs to: the gateway
asks it rather than re-deriving the rule.

Log positions (``Context``): the command at sequenced position ``p`` of block
``h`` places an order (or a combo) with id ``log_id(h, p)``; its trades have
ids ``log_id(h, p, k)`` for k = 1, 2, ..., so a command produces at most
``limits.fills_per_command_max`` fills. Commands use positions
``0..block_commands_max - 1``; the block hooks of extensions (liquidation,
settlement) get their own ranges from ``START_HOOK_POSITION`` and
``END_HOOK_POSITION``, so that ids they derive never collide with a command's;
a hook that creates several orders advances ``ctx.position`` by one per order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deltasync.core import limits
from deltasync.exchange.commands import (
    CancelAll,
    CancelByLabel,
    CancelOrder,
    Deposit,
    EditOrder,
    ListInstruments,
    PlaceCombo,
    PlaceOrder,
    Withdraw,
)

START_HOOK_POSITION = limits.block_commands_max
END_HOOK_POSITION = (
    START_HOOK_POSITION + (limits.log_positions_max - START_HOOK_POSITION) // 2
)
assert (
    limits.block_commands_max < START_HOOK_POSITION + 1 < END_HOOK_POSITION
    < limits.log_positions_max
)


class Context:
    """Where a command sits in the log: block height, block time, sequenced position."""

    __slots__ = ("height", "time_ns", "position")

    def __init__(self, height: int, time_ns: int, position: int = 0) -> None:
        self.height = height
        self.time_ns = time_ns
        self.position = position


# The commands the trading core handles itself; extensions register theirs.
TRADING_COMMANDS = frozenset(
    (Deposit, Withdraw, PlaceOrder, CancelOrder, CancelByLabel, CancelAll, EditOrder, PlaceCombo,
     ListInstruments)
)
_PRIORITY_BY_TYPE: dict[type, int] = {
    CancelOrder: 0, CancelByLabel: 0, CancelAll: 0, Deposit: 0, ListInstruments: 0,
    PlaceCombo: 2, Withdraw: 2,
}


def command_priority(command: object) -> int:
    """The sequencing class of a trading command (see the module docstring)."""
    kind = type(command)
    if kind is PlaceOrder or kind is EditOrder:
        return 1 if command.post_only else 2  # type: ignore[attr-defined]
    return _PRIORITY_BY_TYPE.get(kind, 2)


def sequence_indexes(
    commands: Sequence[object], priority: Callable[[object], int] | None = None
) -> list[int]:
    """The applied order as indexes into ``commands`` (stable inside each class)."""
    if priority is None:  # the trading rule, inlined (one pass, no call per command)
        by_type = _PRIORITY_BY_TYPE
        classes = [
            (1 if command.post_only else 2)  # type: ignore[attr-defined]
            if (kind := type(command)) is PlaceOrder or kind is EditOrder
            else by_type.get(kind, 2)
            for command in commands
        ]
    else:
        classes = [priority(command) for command in commands]
    return sorted(range(len(commands)), key=classes.__getitem__)


def sequence_block(
    commands: Sequence[object], priority: Callable[[object], int] | None = None
) -> list[object]:
    """``commands`` in the in-block order the state machine applies them."""
    return [commands[index] for index in sequence_indexes(commands, priority)]
