"""The extension points other parts of the state machine (oracle, margin) plug into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltasync.core.codec import Registry, encode
from deltasync.exchange import queries
from deltasync.exchange.events import OrderRejected, RejectReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.sequencing import Context
from deltasync.exchange.state import ExchangeState

from .helpers import CALL, ETH_CALL, Venue, buy, kinds

LOCAL = Registry("test.extension")


@LOCAL.register(150)  # the oracle's reserved range
@dataclass(frozen=True, slots=True)
class Halt:
    underlying: str
    halted: bool


@dataclass(frozen=True, slots=True)
class HaltChanged:
    underlying: str
    halted: bool


class CircuitBreaker:
    """A toy cancel-only switch: a command, an order gate, a committed record, a snapshot."""

    name = "breaker"

    def __init__(self) -> None:
        self.halted: dict[str, bool] = {}
        self.block_starts = 0

    def attach(self, state: ExchangeState) -> None:
        state.register_command(Halt, lambda command, ctx: self._apply(state, command), priority=0)
        state.add_order_gate(self._gate)

    def _apply(self, state: ExchangeState, command: Halt) -> list[Any]:
        self.halted[command.underlying] = command.halted
        state.set_record(b"breaker/" + command.underlying.encode(), encode([command.halted]))
        return [HaltChanged(command.underlying, command.halted)]

    def _gate(self, state: ExchangeState, instrument: Instrument, account: int) -> RejectReason | None:
        return RejectReason.TRADING_HALTED if self.halted.get(instrument.underlying) else None

    def on_block_start(self, state: ExchangeState, ctx: Context) -> list[Any]:
        self.block_starts += 1
        return []

    def on_block_end(self, state: ExchangeState, ctx: Context) -> list[Any]:
        return []

    def snapshot(self) -> Any:
        return [[name, self.halted[name]] for name in sorted(self.halted)]

    def restore(self, state: ExchangeState, data: Any) -> None:
        self.halted = {name: halted for name, halted in data}
        for name, halted in data:
            state.set_record(b"breaker/" + name.encode(), encode([halted]))


def test_extension_commands_gates_records_and_snapshots() -> None:
    venue = Venue()
    breaker = CircuitBreaker()
    venue.state = ExchangeState.from_genesis(venue.config, extensions=[breaker])
    venue.fund(10)
    root_before = venue.state.state_root()
    events = venue.block(buy(10, CALL, "0.01", "100"), Halt("BTC", True))
    assert venue.last is not None and venue.last.order == (1, 0)  # priority 0 runs first
    assert kinds(events[1], HaltChanged) == [HaltChanged("BTC", True)]
    assert kinds(events[0], OrderRejected)[0].reason is RejectReason.TRADING_HALTED
    assert not kinds(venue.one(buy(10, ETH_CALL, "0.1", "100")), OrderRejected)
    assert venue.state.merkle.get(b"breaker/BTC") == encode([True])
    assert venue.state.state_root() != root_before
    assert breaker.block_starts == 3

    restored = ExchangeState.restore(venue.state.snapshot_bytes(), extensions=[CircuitBreaker()])
    assert restored.state_root() == venue.state.state_root()
    assert restored.extensions[0].halted == {"BTC": True}  # type: ignore[attr-defined]


class EndOfBlockQuoter:
    """Places one order at the end of every block, the way liquidation would."""

    name = "quoter"

    def attach(self, state: ExchangeState) -> None:
        pass

    def on_block_start(self, state: ExchangeState, ctx: Context) -> list[Any]:
        return []

    def on_block_end(self, state: ExchangeState, ctx: Context) -> list[Any]:
        if 10 not in state.accounts:
            return []
        events = state.apply(buy(10, CALL, "0.01", "100"), ctx)
        ctx.position += 1
        return events

    def snapshot(self) -> Any:
        return None

    def restore(self, state: ExchangeState, data: Any) -> None:
        pass


def test_block_hooks_get_their_own_log_positions() -> None:
    from deltasync.core.ids import log_id
    from deltasync.exchange.events import OrderAccepted
    from deltasync.exchange.sequencing import END_HOOK_POSITION

    venue = Venue()
    venue.state = ExchangeState.from_genesis(venue.config, extensions=[EndOfBlockQuoter()])
    venue.fund(10)
    events = venue.block(buy(10, CALL, "0.01", "101"))
    assert venue.last is not None
    hook_ids = [e.order_id for e in kinds(list(venue.last.end_events), OrderAccepted)]
    assert hook_ids == [log_id(venue.height, END_HOOK_POSITION)]
    assert kinds(events[0], OrderAccepted)[0].order_id == log_id(venue.height, 0)
    assert len(queries.open_orders(venue.state, 10)) == 3
