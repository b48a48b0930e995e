"""The exchange state machine: an ordered stream of commands in, events and a state root out.

``ExchangeState.apply_block`` is the only way in: it runs one block, in this
order:

1. time-driven work at the block's time: instruments reaching their expiry
   (``listings``), good-til-time orders reaching theirs (``orders``), then
   each extension's ``on_block_start`` (oracle, margin, settlement);
2. the block's commands in their sequenced order (``sequencing``), each
   through ``apply``, which dispatches it to the module of its concept;
3. each extension's ``on_block_end`` (margin, liquidation);
4. the state commitment (``records.commit``): the new state root.

Where things live: the records and indexes in ``tables``; money in
``ledger``; open orders, cancels and the reduce-only rule in ``orders``; new
orders, edits and trades in ``matching``; ``combos``; ``listings``; the
commitment in ``records``; ``snapshot``; ``invariants``; read-only questions
in ``queries``; and the ports extensions plug into in ``ports``.
``ExchangeState`` implements ``ports.StateAccess``, the narrow view extensions
and risk engines receive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deltasync.core import limits
from deltasync.exchange import combos, ledger, listings, matching, orders, records, snapshot
from deltasync.exchange.collateral import SimpleCollateral
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
from deltasync.exchange.events import CancelReason
from deltasync.exchange.genesis import GenesisConfig
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.ports import Extension, Handler, OrderGate, RiskEngine
from deltasync.exchange.sequencing import (
    END_HOOK_POSITION,
    START_HOOK_POSITION,
    TRADING_COMMANDS,
    Context,
    command_priority,
    sequence_block,
    sequence_indexes,
)
from deltasync.exchange.tables import StateError, Tables


@dataclass(frozen=True, slots=True)
class BlockResult:
    height: int
    time_ns: int
    start_events: tuple[Any, ...]  # time-driven: expiries, extension block-start hooks
    events: tuple[tuple[Any, ...], ...]  # per command, in the order the block listed them
    end_events: tuple[Any, ...]  # extension block-end hooks (e.g. liquidation)
    order: tuple[int, ...]  # applied order: indexes into the block's commands
    state_root: bytes


class ExchangeState(Tables):
    """The replicated exchange state. Mutated only by ``apply_block`` (and, through it,
    ``apply``); see the module docstring for the order of a block."""

    def __init__(
        self,
        config: GenesisConfig,
        risk: RiskEngine | None = None,
        extensions: Iterable[Extension] = (),
    ) -> None:
        super().__init__(config, risk if risk is not None else SimpleCollateral(config.underlyings))
        self.access = self
        self._handlers: dict[type, Handler] = {}
        self._priorities: dict[type, int] = {}
        self.extensions: list[Extension] = list(extensions)
        names = [extension.name for extension in self.extensions]
        assert len(set(names)) == len(names), f"extension names must be unique: {names}"
        for extension in self.extensions:
            extension.attach(self)

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_genesis(
        cls,
        config: GenesisConfig,
        risk: RiskEngine | None = None,
        extensions: Iterable[Extension] = (),
    ) -> ExchangeState:
        state = cls(config, risk, extensions)
        for instrument in config.build_instruments():
            listings.list_instrument(state, instrument)
        records.commit(state)
        return state

    @classmethod
    def restore(
        cls,
        data: bytes,
        risk: RiskEngine | None = None,
        extensions: Iterable[Extension] = (),
    ) -> ExchangeState:
        """The state from ``snapshot_bytes()`` (with the same kinds of extensions)."""
        parsed = snapshot.parse(data)
        state = cls(parsed.config, risk, extensions)
        snapshot.load(state, parsed)
        by_name = {extension.name: extension for extension in state.extensions}
        for name, part in parsed.extensions:
            by_name[name].restore(state, part)
        records.commit(state)
        return state

    def register_command(self, cls: type, handler: Handler, priority: int = 2) -> None:
        """Route commands of ``cls`` (tags 100-299 are reserved for extensions) to ``handler``."""
        assert cls not in self._handlers, f"{cls.__name__} already has a handler"
        assert priority in (0, 1, 2)
        self._handlers[cls] = handler
        self._priorities[cls] = priority

    def add_order_gate(self, gate: OrderGate) -> None:
        self.order_gates.append(gate)

    def priority_of(self, command: object) -> int:
        """The sequencing class of any command this state handles (extensions' included)."""
        if self._priorities:
            priority = self._priorities.get(type(command))
            if priority is not None:
                return priority
        return command_priority(command)

    def sequence_block(self, commands: Sequence[object]) -> list[object]:
        return sequence_block(commands, self.priority_of)

    # --- the transition function ------------------------------------------------------

    def apply_block(self, height: int, time_ns: int, commands: Sequence[object]) -> BlockResult:
        if height != self.height + 1:
            raise StateError(reason="blocks must be consecutive", got=height, expected=self.height + 1)
        if time_ns < self.time_ns:
            raise StateError(reason="block time went backwards", got=time_ns, last=self.time_ns)
        if len(commands) > limits.block_commands_max:
            raise StateError(reason="block too large", commands=len(commands))
        for command in commands:  # refuse before changing anything
            if type(command) not in TRADING_COMMANDS and type(command) not in self._handlers:
                raise StateError(reason="no handler for command", type=type(command).__name__)
        self.height = height
        self.time_ns = time_ns
        self.meta_dirty = True
        ctx = Context(height, time_ns, START_HOOK_POSITION)
        start_events = listings.expire_instruments(self, ctx)
        start_events += orders.expire_good_til_time(self, ctx)
        for extension in self.extensions:
            start_events += extension.on_block_start(self, ctx)
        assert ctx.position < END_HOOK_POSITION, "block-start hooks used too many log positions"
        order = sequence_indexes(commands, self.priority_of if self._priorities else None)
        per_command: list[tuple[Any, ...]] = [()] * len(commands)
        apply = self.apply
        for position, index in enumerate(order):
            ctx.position = position
            per_command[index] = tuple(apply(commands[index], ctx))
        end_events: list[Any] = []
        ctx.position = END_HOOK_POSITION
        for extension in self.extensions:
            end_events += extension.on_block_end(self, ctx)
        assert ctx.position < limits.log_positions_max, "block-end hooks used too many log positions"
        root = self.state_root()
        return BlockResult(
            height=height,
            time_ns=time_ns,
            start_events=tuple(start_events),
            events=tuple(per_command),
            end_events=tuple(end_events),
            order=tuple(order),
            state_root=root,
        )

    def apply(self, command: object, ctx: Context) -> list[Any]:
        """Apply one command at log position ``ctx``; returns its events."""
        match command:
            case PlaceOrder():
                return matching.place(self, command, ctx)
            case CancelOrder():
                return orders.cancel(self, command)
            case EditOrder():
                return matching.edit(self, command, ctx)
            case CancelAll():
                return orders.cancel_all(self, command)
            case CancelByLabel():
                return orders.cancel_by_label(self, command)
            case PlaceCombo():
                return combos.place_combo(self, command, ctx)
            case Deposit():
                return ledger.deposit(self, command)
            case Withdraw():
                return ledger.withdraw(self, command)
            case ListInstruments():
                return listings.list_instruments(self, command, ctx)
        handler = self._handlers.get(type(command))
        if handler is None:
            raise StateError(reason="no handler for command", type=type(command).__name__)
        return handler(command, ctx)

    def state_root(self) -> bytes:
        """Commit the records changed since the last call; the root over the whole state."""
        return records.commit(self)

    def snapshot_bytes(self) -> bytes:
        """Canonical bytes of the whole replicated state (see ``snapshot``)."""
        return snapshot.snapshot_bytes(self, self.extensions)

    # --- the extension port (ports.StateAccess) ----------------------------------------

    def set_record(self, key: bytes, value: bytes | None) -> None:
        records.set_record(self, key, value)

    def set_reference_price(self, underlying: str, price_raw: int) -> None:
        """The index used for fees (the oracle updates it)."""
        assert underlying in self.reference_prices and price_raw > 0
        self.reference_prices[underlying] = price_raw
        self.meta_dirty = True

    def changed_accounts(self) -> list[int]:
        """Accounts whose money, positions or open orders changed since the last commit
        (call it in ``on_block_end``, before the commitment clears the marks)."""
        return sorted(self.dirty_accounts)

    def has_changed(self, account_id: int) -> bool:
        return account_id in self.dirty_accounts

    def cancel_instrument_orders(self, instrument_id: int, reason: CancelReason) -> list[Any]:
        return orders.cancel_instrument_orders(self, instrument_id, reason)

    def cancel_account_orders(self, account_id: int, reason: CancelReason) -> list[Any]:
        return orders.cancel_account_orders(self, account_id, reason)

    def transfer(self, source: int, target: int, amount_raw: int) -> None:
        ledger.transfer(self, source, target, amount_raw)

    def book_position(
        self, account_id: int, instrument: Instrument, quantity: int, cost: int
    ) -> list[Any]:
        return orders.book_position(self, account_id, instrument, quantity, cost)


__all__ = ["BlockResult", "ExchangeState"]
