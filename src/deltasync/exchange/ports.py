"""Ports: what the state machine asks of the parts plugged into it, and what it offers them.

- ``RiskEngine``: the pre-trade checks (``collateral.SimpleCollateral``,
  ``margin.MarginEngine``). A check decides and returns its decision as data:
  a ``RejectReason``, or None to accept. ``position_requirement`` says what a
  position locks; the trading core keeps ``Account.locked`` equal to its sum.
- ``OrderGate``: a check every new order, edit and combo leg passes (the
  oracle's circuit breaker), again a ``RejectReason`` or None.
- ``Extension``: a part of the state machine owned elsewhere (oracle, margin,
  settlement, liquidation): commands of its own, block hooks, records in the
  state root, its own snapshot.
- ``StateAccess``: the narrow view of the state that extensions and risk
  engines get instead of the whole ``ExchangeState``: the records they read,
  the clock, and the few operations they may perform. Every operation keeps
  the trading core's bookkeeping whole (dirty marks, derived exposure,
  reduce-only orders), which is why extensions never touch the tables directly.

Hooks run with their own log positions (``ctx.position`` starts at
``sequencing.START_HOOK_POSITION`` / ``END_HOOK_POSITION``): a hook that places
orders through ``apply(PlaceOrder(...), ctx)`` advances ``ctx.position`` after
each one so ids stay unique. Money moves between accounts with ``transfer``;
positions change with ``book_position``; ``changed_accounts()`` names the
accounts a block touched (call it in ``on_block_end``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from deltasync.exchange.accounts import Account, Position
from deltasync.exchange.events import CancelReason, RejectReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.sequencing import Context

Handler = Callable[[Any, Context], list[Any]]
OrderGate = Callable[["StateAccess", Instrument, int], RejectReason | None]


class RiskEngine(Protocol):
    """The pre-trade check interface. Margin replaces ``SimpleCollateral`` through it.

    ``position_requirement`` is called by the state whenever a position's size
    or open-order exposure changes; the account's ``locked`` is kept equal to
    the sum over its positions. An engine that does not decompose per position
    (portfolio margin) returns 0 there and does its work in the checks.
    ``side`` is the book's ``BUY`` / ``SELL``.
    """

    def position_requirement(self, instrument: Instrument, position: Position) -> int: ...

    def check_order(
        self,
        state: StateAccess,
        account: Account,
        instrument: Instrument,
        side: int,
        price_raw: int,
        amount_raw: int,
    ) -> RejectReason | None: ...

    def check_combo(
        self,
        state: StateAccess,
        account: Account,
        legs: list[tuple[Instrument, int]],
        cash_delta: int,
    ) -> RejectReason | None:
        """``legs``: (instrument, signed quantity change); ``cash_delta`` includes fees."""
        ...

    def check_withdraw(
        self, state: StateAccess, account: Account, amount_raw: int
    ) -> RejectReason | None: ...


class StateAccess(Protocol):
    """What an extension or a risk engine may read and do (see the module docstring).

    The mappings are the state's own records: read them, never change them.
    """

    @property
    def height(self) -> int: ...

    @property
    def time_ns(self) -> int: ...

    @property
    def risk(self) -> RiskEngine: ...

    @property
    def instruments(self) -> Mapping[int, Instrument]: ...

    @property
    def accounts(self) -> Mapping[int, Account]: ...

    @property
    def reference_prices(self) -> Mapping[str, int]: ...

    # --- wiring (from ``Extension.attach``) ---

    def register_command(self, cls: type, handler: Handler, priority: int = 2) -> None: ...

    def add_order_gate(self, gate: OrderGate) -> None: ...

    # --- records and prices ---

    def set_record(self, key: bytes, value: bytes | None) -> None: ...

    def set_reference_price(self, underlying: str, price_raw: int) -> None: ...

    def changed_accounts(self) -> list[int]: ...

    def has_changed(self, account_id: int) -> bool: ...

    # --- operations ---

    def apply(self, command: object, ctx: Context) -> list[Any]: ...

    def cancel_instrument_orders(self, instrument_id: int, reason: CancelReason) -> list[Any]: ...

    def cancel_account_orders(self, account_id: int, reason: CancelReason) -> list[Any]: ...

    def transfer(self, source: int, target: int, amount_raw: int) -> None: ...

    def book_position(
        self, account_id: int, instrument: Instrument, quantity: int, cost: int
    ) -> list[Any]: ...


class Extension(Protocol):
    """A part of the state machine owned elsewhere (oracle, margin, settlement, liquidation).

    ``attach`` registers command handlers (``register_command``) and order
    gates; replicated records go through ``set_record`` so they reach the
    state root; ``snapshot``/``restore`` carry the extension's state.
    """

    name: str

    def attach(self, state: StateAccess) -> None: ...

    def on_block_start(self, state: StateAccess, ctx: Context) -> list[Any]: ...

    def on_block_end(self, state: StateAccess, ctx: Context) -> list[Any]: ...

    def snapshot(self) -> Any: ...

    def restore(self, state: StateAccess, data: Any) -> None: ...
