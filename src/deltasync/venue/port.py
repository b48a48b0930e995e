"""The port the API talks to: one ``Venue`` protocol, two implementations.

``LocalVenue`` (one process, a single-node ``NodeCore`` on in-memory storage)
and ``NodeVenue`` (a replicated node) both implement it, sharing everything
but the transport (``venue.shell.ShellVenue``), so the HTTP/WebSocket layer,
auth, rate limits and subscriptions are written once.

Writes take validated request fields and return once the command's block is
applied: the venue builds the exchange command from them once
(``venue.commands``), asks the exchange for its sequencing class, puts it
through the log and answers from the block that applied it. Refusals before a
block are ``venue.errors``; business rejections are ``CommandResult.rejection``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from deltasync.venue.views import (
    AccountView,
    BlockUpdate,
    BookView,
    ComboLeg,
    CommandResult,
    IndexView,
    InstrumentView,
    OrderType,
    OrderView,
    PositionView,
    Side,
    StateRootView,
    TickerView,
    TimeInForce,
    TradeView,
)


class Pipeline(Protocol):
    """A caller that sends several commands without waiting (one WebSocket).

    The state machine sorts a block's commands by sequencing class (cancels
    first, then makers, then takers; ``ExchangeState.priority_of``), so a
    command must not join a block in which it would overtake an earlier command
    of the same caller. The venue calls ``admit`` with the command's class before
    queueing it, and ``queued`` once it holds its place in the log's order: the
    caller may then send its next command."""

    async def admit(self, sequencing_class: int) -> None: ...

    def queued(self) -> None: ...


@runtime_checkable
class Venue(Protocol):
    """A running exchange seen from the API.

    Writes return after the command's block is applied. Reads are
    linearizable by default (the replicated node confirms leadership with a
    ReadIndex first); ``linearizable=False`` answers from local state, which
    may lag. Unknown instruments, orders and accounts are ``None`` or empty.
    ``request_id`` makes a retried write apply once: the retry is answered
    with the original command's result.
    """

    demo_mode: bool

    # --- writes --------------------------------------------------------------------------

    async def place_order(
        self, account_id: int, *, instrument_name: str, side: Side, amount_raw: int,
        order_type: OrderType, price_raw: int | None, time_in_force: TimeInForce,
        valid_until_ms: int | None = None, post_only: bool = False,
        reduce_only: bool = False, label: str = "",
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> CommandResult:
        """``GOOD_TIL_TIME`` without ``valid_until_ms`` lasts to the end of the
        UTC day of the block time (Deribit's good_til_day)."""
        ...

    async def place_combo(
        self, account_id: int, *, legs: tuple[ComboLeg, ...], side: Side, amount_raw: int,
        price_raw: int, time_in_force: TimeInForce, label: str = "",
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> CommandResult: ...

    async def edit_order(
        self, account_id: int, *, order_id: int, amount_raw: int, price_raw: int,
        post_only: bool, request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> CommandResult: ...

    async def cancel_order(
        self, account_id: int, order_id: int, *, request_id: str | None = None,
        pipeline: Pipeline | None = None,
    ) -> CommandResult: ...

    async def cancel_all(
        self, account_id: int, instrument_name: str | None = None, *,
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> CommandResult: ...

    async def cancel_by_label(
        self, account_id: int, label: str, instrument_name: str | None = None, *,
        request_id: str | None = None, pipeline: Pipeline | None = None,
    ) -> CommandResult: ...

    async def relay_oracle_report(
        self, *, source_id: str, underlying: str, price_raw: int, ts_ns: int,
        vol_surface: tuple[tuple[int, int, int, int, int, int], ...] | None,
        signature: bytes, pipeline: Pipeline | None = None,
    ) -> CommandResult:
        """A price source's signed report; the state machine checks the signature,
        so anyone may relay one."""
        ...

    async def create_account(self, deposit_raw: int) -> int: ...

    async def deposit(self, account_id: int, amount_raw: int) -> CommandResult: ...

    # --- reads ---------------------------------------------------------------------------

    async def instruments(self, *, linearizable: bool = True) -> list[InstrumentView]: ...

    async def instrument(self, name: str, *, linearizable: bool = True) -> InstrumentView | None: ...

    async def book(
        self, name: str, depth: int, *, linearizable: bool = True
    ) -> BookView | None: ...

    async def ticker(self, name: str, *, linearizable: bool = True) -> TickerView | None: ...

    async def index_price(self, index_name: str, *, linearizable: bool = True) -> IndexView | None: ...

    async def last_trades(
        self, name: str, count: int, *, linearizable: bool = True
    ) -> list[TradeView]: ...

    async def open_orders(
        self, account_id: int, instrument_name: str | None = None, *, linearizable: bool = True
    ) -> list[OrderView]: ...

    async def order(
        self, account_id: int, order_id: int, *, linearizable: bool = True
    ) -> OrderView | None: ...

    async def user_trades(
        self, account_id: int, instrument_name: str, count: int, *, linearizable: bool = True
    ) -> list[TradeView]: ...

    async def positions(
        self, account_id: int, *, linearizable: bool = True
    ) -> list[PositionView]: ...

    async def account_summary(
        self, account_id: int, *, linearizable: bool = True
    ) -> AccountView | None: ...

    async def node_status(self) -> dict[str, Any]:
        """This node alone: id, role, leader, height, commit index, state root."""
        ...

    async def cluster_status(self) -> dict[str, Any]:
        """Every node as this node can see it, and whether their state roots agree."""
        ...

    async def state_root(self, height: int | None = None) -> StateRootView | None: ...

    async def stats(self) -> dict[str, Any]:
        """Counters since this venue started serving: events applied by kind, trades."""
        ...

    async def account_proof(self, account_id: int) -> dict[str, Any] | None: ...

    def blocks(self) -> AsyncIterator[BlockUpdate]:
        """Every applied block from now on, in height order (a bounded queue;
        a consumer that falls too far behind sees the iterator end)."""
        ...
