"""The exchange state machine: an ordered stream of commands in, events and a state root out.

``ExchangeState.apply(command, ctx)`` is the only mutator; ``apply_block``
runs one block: time-driven work first (instrument expiry, good-til-time
expiry, extension hooks), then the block's commands in sequenced order, then
the end-of-block hooks, then the state commitment.

In-block ordering (``sequence_block``), applied by ``apply_block`` itself so
that no proposer can change it: commands are sorted, stably, into three
classes, keeping their relative order inside each class:

0. cancels (``CancelOrder``, ``CancelByLabel``, ``CancelAll``), deposits and
   instrument listings: they can only remove liquidity risk or add money;
1. makers: post-only ``PlaceOrder`` and post-only ``EditOrder``;
2. everything that can take liquidity or spend money: other orders and
   edits, combos, withdrawals, and commands of extensions unless they say
   otherwise.

As venues do, this protects quoters: a maker who cancels or re-quotes in the
same block as a taker's order is served first. Log positions (and thus order
and trade ids) are positions in the sequenced order.

Ids: an order (or combo) placed by the command at sequenced position ``p`` of
block ``h`` has id ``log_id(h, p)``; its trades have ids ``log_id(h, p, k)``
for k = 1, 2, ... So a command may produce at most ``FILLS_PER_COMMAND_MAX``
fills; a taker that reaches it (or the level limit) has its remainder
cancelled with ``CancelReason.FILL_LIMIT`` rather than rest crossed.

State commitment: replicated records live in fast Python structures; every
mutation marks the record dirty, and ``commit`` (at the end of each block)
writes each dirty record's canonical encoding into a ``MerkleMap`` and takes
its root, so the cost grows with the keys changed. Keys::

    b"acct/"  + u64 account              [cash, deposited, withdrawn, fees paid, realized pnl]
    b"pos/"   + u64 account + u32 instr  [size, open cost, realized pnl] (non-flat only)
    b"order/" + u64 order id             Order.to_wire()  (open orders only)
    b"book/"  + u32 instr                Book.summary(): top of book and sizes (the book
                                         itself is committed by its order records, each
                                         with its price and queue priority)
    b"inst/"  + u32 instr                Instrument.to_wire()
    b"meta/exchange"                     [chain id, height, time, deposits, withdrawals, trades, ...]
    (extensions add their own prefixes through ``set_record``)

Derived state is not committed and is rebuilt by ``restore``: open-order
exposure per position, ``locked`` collateral (from the risk engine), the
reduce-only index. Query caches are not committed either: the recent trades
per instrument (carried in snapshots) and recently closed orders (not).

Order rules in short: limit orders rest (GTC, GTT until ``expire_at_ns`` of
block time) or not (IOC, FOK: FOK fills whole or is cancelled untouched);
market orders are IOC/FOK bounded by a band around the best opposite price
(``limits.market_band_ppm`` or ``market_band_ticks_min`` ticks, whichever is
wider); post-only orders that would cross are rejected; reduce-only orders
must fit the position together with the account's other reduce-only orders,
and resting ones that stop fitting after a fill are cancelled; self-trade
prevention cancels the resting maker (``book.py``); an edit that only
lowers the amount keeps queue priority, any other edit re-queues (and may
trade).

Money: ``cash`` is exact; premiums and fees are per contract and integer, and
every transfer is between two accounts (fees to the genesis fee account), so
``sum(cash) == deposits - withdrawals`` holds after every command.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import msgpack

from deltasync.commitment.merkle import MerkleMap, Proof
from deltasync.core import limits
from deltasync.core.codec import decode, encode, encode_trusted
from deltasync.core.errors import DeltasyncError, LocalError
from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Price, Quantity
from deltasync.core.ids import log_id
from deltasync.exchange.accounts import (
    Account,
    Position,
    RiskEngine,
    SimpleCollateral,
)
from deltasync.exchange.book import BUY, SELL, Book, Fill, Order
from deltasync.exchange.commands import (
    CancelAll,
    CancelByLabel,
    CancelOrder,
    ComboLeg,
    Deposit,
    EditOrder,
    ListInstruments,
    OrderType,
    PlaceCombo,
    PlaceOrder,
    Side,
    TimeInForce,
    Withdraw,
)
from deltasync.exchange.events import (
    CancelReason,
    CancelRejected,
    ComboFilled,
    ComboRejected,
    Deposited,
    DepositRejected,
    InstrumentExpired,
    InstrumentListed,
    ListingRejected,
    OrderAccepted,
    OrderCancelled,
    OrderEdited,
    OrderExpired,
    OrderRejected,
    RejectReason,
    Trade,
    Withdrawn,
    WithdrawRejected,
)
from deltasync.exchange.genesis import GenesisConfig, parse_expiry
from deltasync.exchange.instruments import PPM, Instrument, make_instrument, option_name
from deltasync.exchange.views import (
    AccountView,
    BookView,
    DepthLevel,
    OrderState,
    OrderView,
    PositionView,
)

_V = TypeVar("_V", Price, Quantity, Amount)
# Records are plain lists of ints, strings and bools: their canonical bytes are exactly
# what ``codec.encode_trusted`` produces. One packer, built once, is three times faster
# than ``msgpack.packb`` building one per call (the state root's hot path).
_pack = msgpack.Packer(use_bin_type=True).pack
assert _pack([1, -(2**63), 2**63 - 1, "é", b"b", True, None, [0]]) == encode_trusted(
    [1, -(2**63), 2**63 - 1, "é", b"b", True, None, [0]]
)
SNAPSHOT_VERSION = 1
# Trade ids use the log_id sub-index 1..1023, which bounds the fills of one command.
FILLS_PER_COMMAND_MAX = limits.fills_per_command_max
LEVELS_PER_COMMAND_MAX = limits.levels_walked_per_order_max
CLOSED_ORDERS_CACHED_MAX = limits.closed_orders_cached_max
BOOK_DEPTH_LEVELS_MAX = limits.book_depth_levels_max
# Log positions inside a block: commands use 0..block_commands_max - 1; block hooks
# (extensions: liquidation, settlement) get their own ranges so that ids they derive
# with log_id never collide with a command's. A hook that creates several orders
# advances ``ctx.position`` by one per order.
LOG_POSITIONS_MAX = 1 << 20  # log_id's position field
START_HOOK_POSITION = limits.block_commands_max
END_HOOK_POSITION = START_HOOK_POSITION + (LOG_POSITIONS_MAX - START_HOOK_POSITION) // 2
assert limits.block_commands_max < START_HOOK_POSITION + 1 < END_HOOK_POSITION < LOG_POSITIONS_MAX

_SIDES = (None, Side.BUY, Side.SELL)
_BUY = Side.BUY
assert TimeInForce.GOOD_TIL_CANCELLED.value == 1 and TimeInForce.GOOD_TIL_TIME.value == 2
assert OrderType.LIMIT.value == 1
_VALUE_CACHE_MAX = 1 << 16


def _value_cache(cls: type[_V]) -> Callable[[int], _V]:
    """Interned fixed-point values for event fields (they are immutable; building one
    validates its range, which is what dominates event construction)."""
    cache: dict[int, _V] = {}

    def make(raw: int) -> _V:
        value = cache.get(raw)
        if value is None:
            if len(cache) >= _VALUE_CACHE_MAX:
                cache.clear()
            value = cache[raw] = cls(raw)
        return value

    return make


_price = _value_cache(Price)
_quantity = _value_cache(Quantity)
_amount = _value_cache(Amount)
_TIFS = {tif.value: tif for tif in TimeInForce}
_ORDER_TYPES = {kind.value: kind for kind in OrderType}
_GTC = TimeInForce.GOOD_TIL_CANCELLED
_GTT = TimeInForce.GOOD_TIL_TIME
_FOK = TimeInForce.FILL_OR_KILL
_CANCEL_KINDS = (CancelOrder, CancelByLabel, CancelAll)


# The hot events (every order, fill and cancel), built without the frozen dataclass
# ``__init__``, whose one ``object.__setattr__`` call per field costs about as much
# as the rest of an order's bookkeeping. Only valid for a plain dataclass: fields
# stored in slots, no ``__post_init__`` or other checks; asserted here.
def _slot_setters(cls: type, count: int) -> tuple[Any, ...]:
    names = tuple(field.name for field in dataclasses.fields(cls))
    assert len(names) == count and names == tuple(cls.__dict__["__slots__"]), cls
    assert not hasattr(cls, "__post_init__") and cls.__new__ is object.__new__, cls
    return tuple(getattr(cls, name).__set__ for name in names)


def _order_accepted(
    order_id: int, account: int, instrument: str, side: Side, order_type: OrderType,
    price: Price, amount: Quantity, time_in_force: TimeInForce, label: str,
    _setters: tuple[Any, ...] = _slot_setters(OrderAccepted, 9), _new: Any = object.__new__,
) -> OrderAccepted:
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = _setters
    event: OrderAccepted = _new(OrderAccepted)
    s0(event, order_id)
    s1(event, account)
    s2(event, instrument)
    s3(event, side)
    s4(event, order_type)
    s5(event, price)
    s6(event, amount)
    s7(event, time_in_force)
    s8(event, label)
    return event


def _order_cancelled(
    order_id: int, account: int, instrument: str, remaining: Quantity, reason: CancelReason,
    _setters: tuple[Any, ...] = _slot_setters(OrderCancelled, 5), _new: Any = object.__new__,
) -> OrderCancelled:
    s0, s1, s2, s3, s4 = _setters
    event: OrderCancelled = _new(OrderCancelled)
    s0(event, order_id)
    s1(event, account)
    s2(event, instrument)
    s3(event, remaining)
    s4(event, reason)
    return event


def _trade(
    trade_id: int, instrument: str, price: Price, amount: Quantity, taker_side: Side,
    taker_order_id: int, maker_order_id: int, taker_account: int, maker_account: int,
    taker_fee: Amount, maker_fee: Amount,
    _setters: tuple[Any, ...] = _slot_setters(Trade, 11), _new: Any = object.__new__,
) -> Trade:
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = _setters
    event: Trade = _new(Trade)
    s0(event, trade_id)
    s1(event, instrument)
    s2(event, price)
    s3(event, amount)
    s4(event, taker_side)
    s5(event, taker_order_id)
    s6(event, maker_order_id)
    s7(event, taker_account)
    s8(event, maker_account)
    s9(event, taker_fee)
    s10(event, maker_fee)
    return event


assert _order_accepted(
    1, 2, "x", Side.BUY, OrderType.LIMIT, Price(3), Quantity(4), TimeInForce.GOOD_TIL_CANCELLED, "l"
) == OrderAccepted(
    1, 2, "x", Side.BUY, OrderType.LIMIT, Price(3), Quantity(4), TimeInForce.GOOD_TIL_CANCELLED, "l"
)
assert _order_cancelled(1, 2, "x", Quantity(3), CancelReason.USER) == OrderCancelled(
    1, 2, "x", Quantity(3), CancelReason.USER
)
assert _trade(1, "x", Price(2), Quantity(3), Side.SELL, 4, 5, 6, 7, Amount(8), Amount(9)) == Trade(
    1, "x", Price(2), Quantity(3), Side.SELL, 4, 5, 6, 7, Amount(8), Amount(9)
)


class StateError(LocalError):
    """The state machine was driven wrongly (a bug in the caller): fields say how."""


class Context:
    """Where a command sits in the log: block height, block time, sequenced position."""

    __slots__ = ("height", "time_ns", "position")

    def __init__(self, height: int, time_ns: int, position: int = 0) -> None:
        self.height = height
        self.time_ns = time_ns
        self.position = position


@dataclass(frozen=True, slots=True)
class BlockResult:
    height: int
    time_ns: int
    start_events: tuple[Any, ...]  # time-driven: expiries, extension block-start hooks
    events: tuple[tuple[Any, ...], ...]  # per command, in the order the block listed them
    end_events: tuple[Any, ...]  # extension block-end hooks (e.g. liquidation)
    order: tuple[int, ...]  # applied order: indexes into the block's commands
    state_root: bytes


Handler = Callable[[Any, Context], list[Any]]


class Extension(Protocol):
    """A part of the state machine owned elsewhere (oracle, margin, settlement).

    ``attach`` registers command handlers (``register_command``) and order
    gates; replicated records go through ``set_record`` so they reach the
    state root; ``snapshot``/``restore`` carry the extension's state.

    Hooks run with their own log positions (``ctx.position`` starts at
    ``START_HOOK_POSITION`` / ``END_HOOK_POSITION``): a hook that places
    orders through ``state.apply(PlaceOrder(...), ctx)`` advances
    ``ctx.position`` after each one so ids stay unique. Money moves between
    accounts with ``transfer``; position changes are followed by
    ``touch_position``; ``changed_accounts()`` names the accounts a block
    touched (call it in ``on_block_end``).
    """

    name: str

    def attach(self, state: ExchangeState) -> None: ...

    def on_block_start(self, state: ExchangeState, ctx: Context) -> list[Any]: ...

    def on_block_end(self, state: ExchangeState, ctx: Context) -> list[Any]: ...

    def snapshot(self) -> Any: ...

    def restore(self, state: ExchangeState, data: Any) -> None: ...


OrderGate = Callable[["ExchangeState", Instrument, int], RejectReason | None]


_TRADING_COMMANDS = frozenset(
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


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


class ExchangeState:
    """The replicated exchange state. Mutated only by ``apply`` / ``apply_block``."""

    def __init__(
        self,
        config: GenesisConfig,
        risk: RiskEngine | None = None,
        extensions: Iterable[Extension] = (),
    ) -> None:
        self.config = config
        self.risk: RiskEngine = risk if risk is not None else SimpleCollateral(config.underlyings)
        self.height = 0
        self.time_ns = config.genesis_time_ns
        self.instruments: dict[int, Instrument] = {}
        self.instrument_by_name: dict[str, Instrument] = {}
        self.books: dict[int, Book] = {}
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}
        self.reference_prices: dict[str, int] = {
            spec.name: spec.reference_price_raw for spec in config.underlyings
        }
        self.deposits_total = 0
        self.withdrawals_total = 0
        self.trades_total = 0
        self.volume_total = 0  # Quantity raw traded, all instruments
        self.fee_account = Account(config.fee_account)
        self.accounts[config.fee_account] = self.fee_account
        self._open_orders_max = config.limits.open_orders_per_account_max
        self._gtt_heap: list[tuple[int, int]] = []
        self._expiry_heap: list[tuple[int, int]] = []
        # query caches: deterministic, but not part of the state root
        self.recent_trades: dict[int, deque[Trade]] = {}
        self._closed: OrderedDict[int, tuple[Order, OrderState]] = OrderedDict()
        # commitment
        self._merkle = MerkleMap()
        self._dirty_accounts: dict[int, None] = {config.fee_account: None}
        self._dirty_positions: dict[tuple[int, int], None] = {}
        self._dirty_orders: dict[int, None] = {}
        self._dirty_books: dict[int, None] = {}
        self._dirty_instruments: dict[int, None] = {}
        self._dirty_records: dict[bytes, bytes | None] = {}
        self._meta_dirty = True
        # extension points
        self._handlers: dict[type, Handler] = {}
        self._priorities: dict[type, int] = {}
        self.order_gates: list[OrderGate] = []
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
            state._list(instrument)
        state.commit()
        return state

    def register_command(self, cls: type, handler: Handler, priority: int = 2) -> None:
        """Route commands of ``cls`` (tags 100-299 are reserved for extensions) to ``handler``."""
        assert cls not in self._handlers, f"{cls.__name__} already has a handler"
        assert priority in (0, 1, 2)
        self._handlers[cls] = handler
        self._priorities[cls] = priority

    def priority_of(self, command: object) -> int:
        if self._priorities:
            priority = self._priorities.get(type(command))
            if priority is not None:
                return priority
        return command_priority(command)

    def sequence_block(self, commands: Sequence[object]) -> list[object]:
        return sequence_block(commands, self.priority_of)

    # --- blocks ------------------------------------------------------------------------

    def apply_block(self, height: int, time_ns: int, commands: Sequence[object]) -> BlockResult:
        if height != self.height + 1:
            raise StateError(reason="blocks must be consecutive", got=height, expected=self.height + 1)
        if time_ns < self.time_ns:
            raise StateError(reason="block time went backwards", got=time_ns, last=self.time_ns)
        if len(commands) > limits.block_commands_max:
            raise StateError(reason="block too large", commands=len(commands))
        for command in commands:  # refuse before changing anything
            if type(command) not in _TRADING_COMMANDS and type(command) not in self._handlers:
                raise StateError(reason="no handler for command", type=type(command).__name__)
        self.height = height
        self.time_ns = time_ns
        self._meta_dirty = True
        ctx = Context(height, time_ns, START_HOOK_POSITION)
        start_events = self._expire(ctx)
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
        assert ctx.position < LOG_POSITIONS_MAX, "block-end hooks used too many log positions"
        root = self.commit()
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
                return self._place(command, ctx)
            case CancelOrder():
                return self._cancel_one(command)
            case EditOrder():
                return self._edit(command, ctx)
            case CancelAll():
                return self._cancel_all(command)
            case CancelByLabel():
                return self._cancel_by_label(command)
            case PlaceCombo():
                return self._combo(command, ctx)
            case Deposit():
                return self._deposit(command)
            case Withdraw():
                return self._withdraw(command)
            case ListInstruments():
                return self._list_instruments(command, ctx)
        handler = self._handlers.get(type(command))
        if handler is None:
            raise StateError(reason="no handler for command", type=type(command).__name__)
        return handler(command, ctx)

    # --- time ------------------------------------------------------------------------------

    def _expire(self, ctx: Context) -> list[Any]:
        events: list[Any] = []
        now = ctx.time_ns
        while self._expiry_heap and self._expiry_heap[0][0] <= now:
            _, instrument_id = heapq.heappop(self._expiry_heap)
            instrument = self.instruments[instrument_id]
            if not instrument.active:
                continue
            book = self.books[instrument_id]
            for order_id in sorted(book.orders):
                events.append(self.cancel_order(order_id, CancelReason.INSTRUMENT_EXPIRED))
            self._replace_instrument(replace(instrument, active=False))
            events.append(InstrumentExpired(instrument_id, instrument.name))
        while self._gtt_heap and self._gtt_heap[0][0] <= now:
            expire_at_ns, order_id = heapq.heappop(self._gtt_heap)
            order = self.orders.get(order_id)
            if order is None or order.expire_at_ns != expire_at_ns:
                continue
            self._remove_resting(order, OrderState.EXPIRED)
            events.append(
                OrderExpired(
                    order_id, order.account, self.instruments[order.instrument_id].name,
                    _quantity(order.remaining),
                )
            )
        return events

    # --- funding -------------------------------------------------------------------------

    def _deposit(self, command: Deposit) -> list[Any]:
        if self.deposits_total - self.withdrawals_total + command.amount.raw > (
            limits.deposits_total_raw_max
        ):
            return [DepositRejected(command.account, command.amount, RejectReason.DEPOSIT_LIMIT)]
        account = self.accounts.get(command.account)
        if account is None:
            account = self.accounts[command.account] = Account(command.account)
        amount = command.amount.raw
        account.cash += amount
        account.deposited += amount
        self.deposits_total += amount
        self._dirty_accounts[account.account_id] = None
        self._meta_dirty = True
        return [Deposited(account.account_id, command.amount, _amount(account.cash))]

    def _withdraw(self, command: Withdraw) -> list[Any]:
        account = self.accounts.get(command.account)
        amount = command.amount.raw
        if account is None:
            return [WithdrawRejected(command.account, command.amount, RejectReason.UNKNOWN_ACCOUNT)]
        reason = self.risk.check_withdraw(self, account, amount)
        if reason is None and amount > account.cash:
            reason = RejectReason.INSUFFICIENT_FUNDS
        if reason is not None:
            return [WithdrawRejected(command.account, command.amount, reason)]
        account.cash -= amount
        account.withdrawn += amount
        self.withdrawals_total += amount
        self._dirty_accounts[account.account_id] = None
        self._meta_dirty = True
        return [Withdrawn(account.account_id, command.amount, _amount(account.cash))]

    # --- instruments -----------------------------------------------------------------------

    def _list(self, instrument: Instrument) -> None:
        iid = instrument.instrument_id
        assert iid not in self.instruments and instrument.name not in self.instrument_by_name
        self.instruments[iid] = instrument
        self.instrument_by_name[instrument.name] = instrument
        self.books[iid] = Book()
        self.recent_trades[iid] = deque(maxlen=self.config.limits.recent_trades_per_instrument_max)
        heapq.heappush(self._expiry_heap, (instrument.expiry_ns, iid))
        self._dirty_instruments[iid] = None
        self._dirty_books[iid] = None
        self._meta_dirty = True

    def _replace_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.instrument_id] = instrument
        self.instrument_by_name[instrument.name] = instrument
        self._dirty_instruments[instrument.instrument_id] = None

    def _list_instruments(self, command: ListInstruments, ctx: Context) -> list[Any]:
        def reject(reason: RejectReason, name: str = "") -> list[Any]:
            return [ListingRejected(command.account, name, reason)]

        if command.account != self.config.admin_account:
            return reject(RejectReason.NOT_AUTHORIZED)
        spec = self.config.underlying(command.underlying)
        if spec is None:
            return reject(RejectReason.UNKNOWN_UNDERLYING)
        try:
            expiry_days = parse_expiry(command.expiry, "expiry")
        except DeltasyncError:
            return reject(RejectReason.INVALID_EXPIRY)
        names = [
            option_name(spec.name, self.config.quote, expiry_days, strike.raw, kind)
            for strike in command.strikes
            for kind in command.kinds
        ]
        if len(self.instruments) + len(names) > limits.instruments_max:
            return reject(RejectReason.TOO_MANY_INSTRUMENTS)
        built = []
        next_id = len(self.instruments) + 1
        for offset, name in enumerate(names):
            if name in self.instrument_by_name:
                return reject(RejectReason.INSTRUMENT_EXISTS, name)
            try:
                instrument = make_instrument(next_id + offset, name, spec, self.config.fees,
                                             self.config.quote)
            except DeltasyncError:
                return reject(RejectReason.INVALID_PRICE, name)
            if instrument.expiry_ns <= ctx.time_ns:
                return reject(RejectReason.INVALID_EXPIRY, name)
            built.append(instrument)
        events: list[Any] = []
        for instrument in built:
            self._list(instrument)
            events.append(InstrumentListed(instrument.instrument_id, instrument.name,
                                           instrument.expiry_ns))
        return events

    # --- orders ------------------------------------------------------------------------------

    def _gate(self, instrument: Instrument, account_id: int, time_ns: int) -> RejectReason | None:
        if not instrument.active or time_ns >= instrument.expiry_ns:
            return RejectReason.INSTRUMENT_INACTIVE
        for gate in self.order_gates:
            reason = gate(self, instrument, account_id)
            if reason is not None:
                return reason
        return None

    def _band_limit(self, instrument: Instrument, side: int, best: int) -> int:
        band = best * self.config.limits.market_band_ppm // PPM
        band_min = instrument.tick_for(best) * self.config.limits.market_band_ticks_min
        if band < band_min:
            band = band_min
        if side == BUY:
            return instrument.round_price_down(best + band)
        return instrument.round_price_up(max(best - band, instrument.tick_raw))

    def _place(self, command: PlaceOrder, ctx: Context) -> list[Any]:
        instrument = self.instrument_by_name.get(command.instrument)
        if instrument is None:
            return [OrderRejected(command.account, command.instrument,
                                  RejectReason.UNKNOWN_INSTRUMENT, command.label)]
        reason = self._order_checks(command, instrument, ctx)
        if type(reason) is RejectReason:
            return [OrderRejected(command.account, command.instrument, reason, command.label)]
        limit: int = reason  # type: ignore[assignment]
        account = self.accounts[command.account]
        side = BUY if command.side is _BUY else SELL  # identity: Enum hashing is slow
        amount = command.amount.raw
        tif = command.time_in_force
        book = self.books[instrument.instrument_id]
        order_id = log_id(ctx.height, ctx.position)
        price = command.price if command.price is not None else _price(limit)
        events: list[Any] = [
            _order_accepted(order_id, command.account, command.instrument, command.side,
                            command.order_type, price, command.amount, tif, command.label)
        ]
        if tif is _FOK and book.fillable(
            side, limit, amount, command.account, LEVELS_PER_COMMAND_MAX, FILLS_PER_COMMAND_MAX
        ) < amount:
            events.append(OrderCancelled(order_id, command.account, command.instrument,
                                         command.amount, CancelReason.UNFILLED))
            return events
        if book.would_cross(side, limit):
            left = self._take(instrument, book, order_id, account, side, limit, amount, ctx, events)
            if not left:
                return events
            rests = (tif is _GTC or tif is _GTT) and not book.would_cross(side, limit)
        else:
            left, rests = amount, tif is _GTC or tif is _GTT
        if rests:
            order = Order(
                order_id, command.account, instrument.instrument_id, side, limit, amount, left,
                order_id, (1 if tif is _GTC else 2), command.expire_at_ns, command.post_only,
                command.reduce_only, command.label, 1,
            )
            self._rest(order, account, instrument)
        else:
            reason_left = (
                CancelReason.UNFILLED if tif is not _GTC and tif is not _GTT
                else CancelReason.FILL_LIMIT
            )
            events.append(_order_cancelled(order_id, command.account, command.instrument,
                                           _quantity(left), reason_left))
        return events

    def _order_checks(
        self, command: PlaceOrder, instrument: Instrument, ctx: Context
    ) -> RejectReason | int:
        """Every pre-trade check of a new order; returns the limit price or a reason."""
        account = self.accounts.get(command.account)
        if account is None:
            return RejectReason.UNKNOWN_ACCOUNT
        if not instrument.active or ctx.time_ns >= instrument.expiry_ns or self.order_gates:
            reason = self._gate(instrument, command.account, ctx.time_ns)
            if reason is not None:
                return reason
        amount = command.amount.raw
        if amount % instrument.contract_size_raw:
            return RejectReason.INVALID_AMOUNT_STEP
        if amount < instrument.min_amount_raw:
            return RejectReason.AMOUNT_BELOW_MINIMUM
        side = BUY if command.side is _BUY else SELL  # identity: Enum hashing is slow
        book = self.books[instrument.instrument_id]
        if command.price is None:
            best = book.best_ask() if side == BUY else book.best_bid()
            if best is None:
                return RejectReason.NO_LIQUIDITY
            limit = self._band_limit(instrument, side, best)
        else:
            limit = command.price.raw
            if limit <= 0:
                return RejectReason.INVALID_PRICE
            if not instrument.is_valid_price(limit):
                return RejectReason.INVALID_PRICE_TICK
            if command.post_only and book.would_cross(side, limit):
                return RejectReason.POST_ONLY_WOULD_CROSS
        tif = command.time_in_force
        if tif is _GTT and command.expire_at_ns <= ctx.time_ns:
            return RejectReason.INVALID_EXPIRY
        if (tif is _GTC or tif is _GTT) and len(account.orders) >= self._open_orders_max:
            return RejectReason.TOO_MANY_OPEN_ORDERS
        if command.reduce_only and not self._reduces(account, instrument, side, amount):
            return RejectReason.REDUCE_ONLY_WOULD_INCREASE
        reason = self.risk.check_order(self, account, instrument, side, limit, amount)
        if reason is not None:
            return reason
        return limit

    def _reduces(
        self, account: Account, instrument: Instrument, side: int, amount: int, exclude: int = 0
    ) -> bool:
        """Reduce-only: the order, with the account's other open reduce-only orders on the
        instrument, must fit in the position and close it, never flip or grow it.

        Checked when an order is placed or edited; after every fill that
        changes the position, ``_enforce_reduce_only`` cancels resting
        reduce-only orders that no longer fit.
        """
        position = account.positions.get(instrument.instrument_id)
        size = position.size if position is not None else 0
        if (side == BUY and size >= 0) or (side == SELL and size <= 0):
            return False
        pending = sum(
            order.remaining
            for order in self._reduce_only_orders(account, instrument.instrument_id)
            if order.side == side and order.order_id != exclude
        )
        return amount + pending <= abs(size)

    def _take(
        self,
        instrument: Instrument,
        book: Book,
        order_id: int,
        account: Account,
        side: int,
        limit: int,
        amount: int,
        ctx: Context,
        events: list[Any],
    ) -> int:
        """Match a taker against ``book``; settle fills; return the quantity left."""
        fills, self_cancelled, left = book.match(
            side, limit, amount, account.account_id, FILLS_PER_COMMAND_MAX, LEVELS_PER_COMMAND_MAX
        )
        if self_cancelled is not None:
            name = instrument.name
            for maker in self_cancelled:
                self._release(maker, OrderState.CANCELLED)
                events.append(_order_cancelled(maker.order_id, maker.account, name,
                                               _quantity(maker.remaining), CancelReason.SELF_TRADE))
        if fills:
            self._settle(instrument, order_id, account, side, fills, ctx, 1, events)
        return left

    def _settle(
        self,
        instrument: Instrument,
        taker_order_id: int,
        taker: Account,
        side: int,
        fills: list[Fill],
        ctx: Context,
        sub: int,
        events: list[Any],
    ) -> tuple[int, int]:
        """Move money and positions for ``fills``; returns (premium paid by taker, taker fees)."""
        iid = instrument.instrument_id
        name = instrument.name
        cs = instrument.contract_size_raw
        reference = self.reference_prices[instrument.underlying]
        fee_per_contract = instrument.fee_per_contract
        taker_rate, maker_rate = instrument.taker_fee_ppm, instrument.maker_fee_ppm
        accounts = self.accounts
        dirty_accounts = self._dirty_accounts
        dirty_positions = self._dirty_positions
        dirty_orders = self._dirty_orders
        recent = self.recent_trades[iid]
        taker_id = taker.account_id
        taker_position = taker.positions.get(iid)
        if taker_position is None:
            taker_position = taker.positions[iid] = Position(iid)
        taker_side = _SIDES[side]
        height, position = ctx.height, ctx.position
        premium_total = fees_total = volume = 0
        maker_fees_total = 0
        last_price = premium_c = taker_fee_c = maker_fee_c = reserve_c = 0
        trade_id_base = log_id(height, position)  # + sub: the command's trade ids
        reduce_only_checks: list[Account] = []
        requirement_of = self.risk.position_requirement
        trade_position = self._trade_position
        for maker, quantity in fills:
            price = maker.price
            if price != last_price:  # fills come level by level: per-contract money once per level
                last_price = price
                premium_c = price * cs // NOTIONAL_DIVISOR
                taker_fee_c = fee_per_contract(taker_rate, reference, price)
                maker_fee_c = fee_per_contract(maker_rate, reference, price)
                if side == SELL:
                    reserve_c = instrument.reserve_per_contract(price)
            contracts = quantity // cs
            premium = contracts * premium_c
            taker_fee = contracts * taker_fee_c
            maker_fee = contracts * maker_fee_c
            maker_id = maker.account
            maker_account = accounts[maker_id]
            maker_position = maker_account.positions[iid]
            if side == BUY:
                maker_position.open_sell_quantity -= quantity
                premium_total += premium
                maker_account.cash += premium - maker_fee
                trade_position(maker_position, maker_account, -quantity, -premium)
            else:
                maker_position.open_buy_quantity -= quantity
                maker_position.open_buy_reserve -= contracts * reserve_c
                premium_total -= premium
                maker_account.cash -= premium + maker_fee
                trade_position(maker_position, maker_account, quantity, premium)
            maker_account.fees_paid += maker_fee
            fees_total += taker_fee
            maker_fees_total += maker_fee
            volume += quantity
            requirement = requirement_of(instrument, maker_position)
            if requirement != maker_position.requirement:
                maker_account.locked += requirement - maker_position.requirement
                maker_position.requirement = requirement
            order_id = maker.order_id
            if maker.remaining == 0:
                self._forget_open(maker_account, maker)
                self._remember_closed(maker, OrderState.FILLED)
            if maker_account.reduce_only and iid in maker_account.reduce_only:
                reduce_only_checks.append(maker_account)
            dirty_orders[order_id] = None
            dirty_accounts[maker_id] = None
            dirty_positions[(maker_id, iid)] = None
            trade = _trade(
                trade_id_base + sub, name, _price(price), _quantity(quantity),
                taker_side, taker_order_id, order_id, taker_id, maker_id,  # type: ignore[arg-type]
                _amount(taker_fee), _amount(maker_fee),
            )
            sub += 1
            events.append(trade)
            recent.append(trade)
        taker.cash -= premium_total + fees_total
        taker.fees_paid += fees_total
        self._trade_position(taker_position, taker, volume if side == BUY else -volume,
                             premium_total)
        self._refresh(taker, taker_position, instrument)
        self.fee_account.cash += fees_total + maker_fees_total
        self.trades_total += len(fills)
        self.volume_total += volume
        self._meta_dirty = True
        dirty_accounts[taker_id] = None
        dirty_accounts[self.fee_account.account_id] = None
        dirty_positions[(taker_id, iid)] = None
        self._dirty_books[iid] = None
        if taker.reduce_only and iid in taker.reduce_only:
            reduce_only_checks.append(taker)
        checked: set[int] = set()
        for account in reduce_only_checks:  # list order: deterministic
            if account.account_id not in checked:
                checked.add(account.account_id)
                events += self._enforce_reduce_only(account, instrument)
        return premium_total, fees_total

    def _trade_position(self, position: Position, account: Account, quantity: int, cost: int) -> None:
        """Add a signed quantity bought (+) or sold (-) for a signed premium ``cost`` (paid +)."""
        size = position.size
        if size == 0 or (size > 0) == (quantity > 0):
            position.size = size + quantity
            position.open_cost += cost
            return
        size_abs, quantity_abs = abs(size), abs(quantity)
        closing = quantity_abs if quantity_abs < size_abs else size_abs
        open_cost = position.open_cost
        released = abs(open_cost) * closing // size_abs
        if open_cost < 0:
            released = -released
        closing_cost = cost * closing // quantity_abs  # exact: both are whole contracts
        realized = -(released + closing_cost)
        position.realized_pnl += realized
        account.realized_pnl += realized
        position.open_cost = open_cost - released
        if quantity_abs > size_abs:
            position.open_cost = cost - closing_cost
        position.size = size + quantity

    def _position(self, account: Account, instrument_id: int) -> Position:
        position = account.positions.get(instrument_id)
        if position is None:
            position = account.positions[instrument_id] = Position(instrument_id)
        return position

    def _refresh(self, account: Account, position: Position, instrument: Instrument) -> None:
        requirement = self.risk.position_requirement(instrument, position)
        if requirement != position.requirement:
            account.locked += requirement - position.requirement
            position.requirement = requirement

    def _rest(self, order: Order, account: Account, instrument: Instrument) -> None:
        """Put ``order`` on its book and count its exposure."""
        iid = instrument.instrument_id
        self.books[iid].rest(order)
        self.orders[order.order_id] = order
        account.orders[order.order_id] = None
        if order.reduce_only:
            account.reduce_only[iid] = account.reduce_only.get(iid, 0) + 1
        position = account.positions.get(iid)
        if position is None:
            position = account.positions[iid] = Position(iid)
        if order.side == BUY:
            position.open_buy_quantity += order.remaining
            position.open_buy_reserve += (
                order.remaining // instrument.contract_size_raw
            ) * instrument.reserve_per_contract(order.price)
        else:
            position.open_sell_quantity += order.remaining
        requirement = self.risk.position_requirement(instrument, position)
        if requirement != position.requirement:
            account.locked += requirement - position.requirement
            position.requirement = requirement
        if order.time_in_force == 2:  # good-til-time
            heap = self._gtt_heap
            if len(heap) > 2 * len(self.orders) + 1024:
                # Entries of cancelled orders wait for their time; drop them all at once so
                # place-and-cancel far in the future cannot grow the heap without bound.
                heap[:] = [(o.expire_at_ns, o.order_id) for o in self.orders.values()
                           if o.time_in_force == 2]
                heapq.heapify(heap)
            heapq.heappush(heap, (order.expire_at_ns, order.order_id))
        self._dirty_orders[order.order_id] = None
        self._dirty_books[iid] = None
        self._dirty_accounts[account.account_id] = None  # open orders changed (see commit)

    def _unreserve(self, order: Order, account: Account, instrument: Instrument, quantity: int) -> Position:
        position = account.positions[instrument.instrument_id]
        if order.side == BUY:
            position.open_buy_quantity -= quantity
            position.open_buy_reserve -= (
                quantity // instrument.contract_size_raw
            ) * instrument.reserve_per_contract(order.price)
        else:
            position.open_sell_quantity -= quantity
        return position

    def _release(self, order: Order, final: OrderState) -> None:
        """Forget an order already out of its book (cancelled, expired, self-traded)."""
        account = self.accounts[order.account]
        instrument = self.instruments[order.instrument_id]
        position = self._unreserve(order, account, instrument, order.remaining)
        self._refresh(account, position, instrument)
        self._forget_open(account, order)
        self._remember_closed(order, final)
        if position.is_empty():
            del account.positions[order.instrument_id]
        self._dirty_orders[order.order_id] = None
        self._dirty_books[order.instrument_id] = None
        self._dirty_accounts[order.account] = None

    def _forget_open(self, account: Account, order: Order) -> None:
        del account.orders[order.order_id]
        del self.orders[order.order_id]
        if order.reduce_only:
            count = account.reduce_only[order.instrument_id] - 1
            if count:
                account.reduce_only[order.instrument_id] = count
            else:
                del account.reduce_only[order.instrument_id]

    def _reduce_only_orders(self, account: Account, instrument_id: int) -> list[Order]:
        """The account's open reduce-only orders on one instrument, oldest first."""
        if instrument_id not in account.reduce_only:
            return []
        orders = [self.orders[order_id] for order_id in account.orders]
        found = [o for o in orders if o.reduce_only and o.instrument_id == instrument_id]
        return sorted(found, key=lambda o: o.priority)

    def _enforce_reduce_only(self, account: Account, instrument: Instrument) -> list[Any]:
        """After the position changed: cancel resting reduce-only orders that could grow it.

        Oldest first, an order is kept while it is on the closing side and
        still fits in what is left of the position; every other one is
        cancelled (``CancelReason.REDUCE_ONLY``).
        """
        position = account.positions.get(instrument.instrument_id)
        size = position.size if position is not None else 0
        closing_side = SELL if size > 0 else BUY if size < 0 else 0
        room = abs(size)
        events: list[Any] = []
        for order in self._reduce_only_orders(account, instrument.instrument_id):
            if order.side == closing_side and order.remaining <= room:
                room -= order.remaining
            else:
                events.append(self.cancel_order(order.order_id, CancelReason.REDUCE_ONLY))
        return events

    def _remove_resting(self, order: Order, final: OrderState) -> None:
        removed = self.books[order.instrument_id].remove(order.order_id)
        assert removed is order
        self._release(order, final)

    def _remember_closed(self, order: Order, final: OrderState) -> None:
        closed = self._closed
        closed[order.order_id] = (order, final)
        if len(closed) > CLOSED_ORDERS_CACHED_MAX:
            closed.popitem(last=False)

    def cancel_order(self, order_id: int, reason: CancelReason) -> OrderCancelled:
        """Cancel an open order (also for extensions: liquidation, settlement)."""
        order = self.orders[order_id]
        self._remove_resting(order, OrderState.CANCELLED)
        return _order_cancelled(order_id, order.account, self.instruments[order.instrument_id].name,
                                _quantity(order.remaining), reason)

    def _cancel_one(self, command: CancelOrder) -> list[Any]:
        order = self.orders.get(command.order_id)
        if order is None:
            return [CancelRejected(command.account, command.order_id, RejectReason.UNKNOWN_ORDER)]
        if order.account != command.account:
            return [CancelRejected(command.account, command.order_id, RejectReason.NOT_ORDER_OWNER)]
        return [self.cancel_order(command.order_id, CancelReason.USER)]

    def _account_orders(self, account_id: int, instrument: str | None) -> list[Order] | None:
        """Open orders of an account in id order, optionally on one instrument (None: unknown)."""
        account = self.accounts.get(account_id)
        if account is None:
            return []
        orders = [self.orders[order_id] for order_id in sorted(account.orders)]
        if instrument is None:
            return orders
        target = self.instrument_by_name.get(instrument)
        if target is None:
            return None
        return [order for order in orders if order.instrument_id == target.instrument_id]

    def _cancel_all(self, command: CancelAll) -> list[Any]:
        orders = self._account_orders(command.account, command.instrument)
        if orders is None:
            return [CancelRejected(command.account, 0, RejectReason.UNKNOWN_INSTRUMENT)]
        return [self.cancel_order(order.order_id, CancelReason.USER) for order in orders]

    def _cancel_by_label(self, command: CancelByLabel) -> list[Any]:
        orders = self._account_orders(command.account, command.instrument)
        if orders is None:
            return [CancelRejected(command.account, 0, RejectReason.UNKNOWN_INSTRUMENT)]
        return [
            self.cancel_order(order.order_id, CancelReason.USER)
            for order in orders
            if order.label == command.label
        ]

    def _edit(self, command: EditOrder, ctx: Context) -> list[Any]:
        order = self.orders.get(command.order_id)

        def reject(reason: RejectReason, name: str = "", label: str = "") -> list[Any]:
            return [OrderRejected(command.account, name, reason, label, command.order_id)]

        if order is None:
            return reject(RejectReason.UNKNOWN_ORDER)
        instrument = self.instruments[order.instrument_id]
        name, label = instrument.name, order.label
        if order.account != command.account:
            return reject(RejectReason.NOT_ORDER_OWNER, name, label)
        reason = self._gate(instrument, command.account, ctx.time_ns)
        if reason is not None:
            return reject(reason, name, label)
        price, amount = command.price.raw, command.amount.raw
        if not instrument.is_valid_price(price):
            return reject(RejectReason.INVALID_PRICE_TICK, name, label)
        if amount % instrument.contract_size_raw:
            return reject(RejectReason.INVALID_AMOUNT_STEP, name, label)
        if amount < instrument.min_amount_raw:
            return reject(RejectReason.AMOUNT_BELOW_MINIMUM, name, label)
        filled = order.amount - order.remaining
        remaining = amount - filled
        if remaining <= 0:
            return reject(RejectReason.INVALID_AMOUNT, name, label)
        account = self.accounts[order.account]
        book = self.books[order.instrument_id]
        iid = instrument.instrument_id
        if price == order.price and remaining <= order.remaining:
            # A decrease at the same price keeps the queue position.
            if remaining < order.remaining:
                position = self._unreserve(order, account, instrument, order.remaining - remaining)
                book.reduce(order, remaining)
                order.amount = amount
                self._refresh(account, position, instrument)
                self._dirty_orders[order.order_id] = None
                self._dirty_books[iid] = None
                self._dirty_accounts[account.account_id] = None
            return [OrderEdited(order.order_id, order.account, name, command.price,
                                command.amount, Quantity(remaining), True)]
        if (command.post_only or order.post_only) and book.would_cross(order.side, price):
            return reject(RejectReason.POST_ONLY_WOULD_CROSS, name, label)
        if order.reduce_only and not self._reduces(
            account, instrument, order.side, remaining, exclude=order.order_id
        ):
            return reject(RejectReason.REDUCE_ONLY_WOULD_INCREASE, name, label)
        # Check the replacement with the old order's exposure released; restore on refusal.
        position = self._unreserve(order, account, instrument, order.remaining)
        self._refresh(account, position, instrument)
        reason = self.risk.check_order(self, account, instrument, order.side, price, remaining)
        if reason is not None:
            self._reserve_back(order, account, instrument, position)
            return reject(reason, name, label)
        book.remove(order.order_id)
        self._forget_open(account, order)
        self._dirty_orders[order.order_id] = None
        self._dirty_books[iid] = None
        self._dirty_accounts[account.account_id] = None
        events: list[Any] = [OrderEdited(order.order_id, order.account, name, command.price,
                                         command.amount, Quantity(remaining), False)]
        left = self._take(instrument, book, order.order_id, account, order.side, price, remaining,
                          ctx, events)
        order.price, order.amount, order.remaining = price, amount, left
        if left == 0:
            self._remember_closed(order, OrderState.FILLED)
        elif book.would_cross(order.side, price):
            self._remember_closed(order, OrderState.CANCELLED)
            events.append(OrderCancelled(order.order_id, order.account, name, Quantity(left),
                                         CancelReason.FILL_LIMIT))
        else:
            # A fresh record: the old one may still sit, dead, in a level's queue.
            requeued = Order(
                order.order_id, order.account, order.instrument_id, order.side, price, amount,
                left, log_id(ctx.height, ctx.position), order.time_in_force, order.expire_at_ns,
                order.post_only or command.post_only, order.reduce_only, order.label,
                order.order_type,
            )
            self._rest(requeued, account, instrument)
        return events

    def _reserve_back(
        self, order: Order, account: Account, instrument: Instrument, position: Position
    ) -> None:
        if order.side == BUY:
            position.open_buy_quantity += order.remaining
            position.open_buy_reserve += (
                order.remaining // instrument.contract_size_raw
            ) * instrument.reserve_per_contract(order.price)
        else:
            position.open_sell_quantity += order.remaining
        self._refresh(account, position, instrument)

    # --- combos -----------------------------------------------------------------------------

    def _combo(self, command: PlaceCombo, ctx: Context) -> list[Any]:
        def reject(reason: RejectReason) -> list[Any]:
            return [ComboRejected(command.account, reason, command.label)]

        account = self.accounts.get(command.account)
        if account is None:
            return reject(RejectReason.UNKNOWN_ACCOUNT)
        legs: list[tuple[Instrument, int, int]] = []  # instrument, side, ratio
        for leg in command.legs:
            instrument = self.instrument_by_name.get(leg.instrument)
            if instrument is None:
                return reject(RejectReason.UNKNOWN_INSTRUMENT)
            reason = self._gate(instrument, command.account, ctx.time_ns)
            if reason is not None:
                return reject(reason)
            leg_side = leg.side if command.side is Side.BUY else leg.side.opposite
            legs.append((instrument, leg_side.value, leg.ratio))
        if len({instrument.underlying for instrument, _, _ in legs}) != 1:
            return reject(RejectReason.COMBO_INVALID_LEGS)
        step = legs[0][0].contract_size_raw
        amount = command.amount.raw
        if amount % step:
            return reject(RejectReason.INVALID_AMOUNT_STEP)
        if amount < max(instrument.min_amount_raw for instrument, _, _ in legs):
            return reject(RejectReason.AMOUNT_BELOW_MINIMUM)
        plan = self._combo_plan(command, legs, amount // step, step)
        if plan is None:
            return reject(RejectReason.COMBO_WOULD_NOT_FILL)
        units, leg_fills = plan
        # Money the account pays (negative: receives), fees included, for the risk check.
        cash_delta = 0
        changes: list[tuple[Instrument, int]] = []
        for (instrument, side, ratio), fills in zip(legs, leg_fills, strict=True):
            premium = sum(
                (q // instrument.contract_size_raw) * instrument.premium_per_contract(m.price)
                for m, q in fills
            )
            reference = self.reference_prices[instrument.underlying]
            fees = sum(
                (q // instrument.contract_size_raw)
                * instrument.fee_per_contract(instrument.taker_fee_ppm, reference, m.price)
                for m, q in fills
            )
            quantity = ratio * units * step
            cash_delta += (-premium if side == BUY else premium) - fees
            changes.append((instrument, quantity if side == BUY else -quantity))
        reason = self.risk.check_combo(self, account, changes, cash_delta)
        if reason is not None:
            return reject(reason)
        combo_id = log_id(ctx.height, ctx.position)
        events: list[Any] = []
        sub = 1
        paid = fees_paid = 0
        for (instrument, side, _), fills in zip(legs, leg_fills, strict=True):
            self.books[instrument.instrument_id].take_planned(fills)
            premium, fees = self._settle(instrument, combo_id, account, side, fills, ctx, sub,
                                         events)
            sub += len(fills)
            paid += premium
            fees_paid += fees
        events.insert(0, ComboFilled(combo_id, command.account, command.side,
                                     Quantity(units * step), Amount(paid), Amount(fees_paid),
                                     command.label))
        return events

    def _combo_plan(
        self, command: PlaceCombo, legs: list[tuple[Instrument, int, int]], units_max: int, step: int
    ) -> tuple[int, list[list[Fill]]] | None:
        """The largest fill (in combo contracts) within the net limit, with its leg fills.

        The net cost of ``n`` combo contracts is convex in ``n`` (each leg walks
        its book from the best price outward), so the average is monotone and
        the fillable sizes form a prefix: FOK tests ``units_max``, IOC binary
        searches it. Nothing is changed here.
        """
        account_id = command.account
        limit_price = command.price.raw
        buying = command.side is Side.BUY

        def plan(units: int) -> list[list[Fill]] | None:
            leg_fills = []
            net_paid = 0  # premium paid along the combo's own direction
            fills_count = 0
            for instrument, side, ratio in legs:
                book = self.books[instrument.instrument_id]
                fills, left = book.plan_take(side, ratio * units * step, account_id,
                                             LEVELS_PER_COMMAND_MAX)
                if left:
                    return None
                fills_count += len(fills)
                cost = sum(
                    (q // instrument.contract_size_raw) * instrument.premium_per_contract(m.price)
                    for m, q in fills
                )
                net_paid += cost if side == BUY else -cost
                leg_fills.append(fills)
            if fills_count > FILLS_PER_COMMAND_MAX:
                return None
            bound = limit_price * units * step  # x NOTIONAL_DIVISOR, compared exactly
            if buying and net_paid * NOTIONAL_DIVISOR > bound:
                return None
            if not buying and -net_paid * NOTIONAL_DIVISOR < bound:
                return None
            return leg_fills

        full = plan(units_max)
        if full is not None:
            return units_max, full
        if command.time_in_force is _FOK:
            return None
        min_units = max(-(-instrument.min_amount_raw // step) for instrument, _, _ in legs)
        low, high, best = min_units, units_max - 1, None
        while low <= high:
            middle = (low + high) // 2
            candidate = plan(middle)
            if candidate is None:
                high = middle - 1
            else:
                best = (middle, candidate)
                low = middle + 1
        return best

    # --- extension hooks ---------------------------------------------------------------------

    def changed_accounts(self) -> list[int]:
        """Accounts whose money, positions or open orders changed since the last commit.

        For extensions that keep per-account aggregates (margin): call it in
        ``on_block_end``, before the commitment clears it.
        """
        return sorted(self._dirty_accounts)

    def set_record(self, key: bytes, value: bytes | None) -> None:
        """Write (or delete, with None) an extension's record into the next commitment."""
        assert not key.startswith((b"acct/", b"pos/", b"order/", b"book/", b"inst/", b"meta/"))
        self._dirty_records[key] = value

    def set_reference_price(self, underlying: str, price_raw: int) -> None:
        """The index used for fees (the oracle updates it)."""
        assert underlying in self.reference_prices and price_raw > 0
        self.reference_prices[underlying] = price_raw
        self._meta_dirty = True

    def transfer(self, source: int, target: int, amount_raw: int) -> None:
        """Move cash between accounts (settlement, liquidation fees); creates the target."""
        assert amount_raw >= 0
        source_account = self.accounts[source]
        target_account = self.accounts.get(target)
        if target_account is None:
            target_account = self.accounts[target] = Account(target)
        source_account.cash -= amount_raw
        target_account.cash += amount_raw
        self._dirty_accounts[source] = None
        self._dirty_accounts[target] = None

    def touch_position(self, account_id: int, instrument_id: int) -> list[Any]:
        """After an extension changed a position: re-run the risk engine, mark it dirty,
        and cancel resting reduce-only orders that no longer fit (their events)."""
        account = self.accounts[account_id]
        instrument = self.instruments[instrument_id]
        position = self._position(account, instrument_id)
        self._refresh(account, position, instrument)
        self._dirty_accounts[account_id] = None
        self._dirty_positions[(account_id, instrument_id)] = None
        return self._enforce_reduce_only(account, instrument)

    # --- commitment ----------------------------------------------------------------------

    def _meta_wire(self) -> list[Any]:
        return [
            self.config.chain_id, self.height, self.time_ns, self.deposits_total,
            self.withdrawals_total, self.trades_total, self.volume_total,
            [[name, self.reference_prices[name]] for name in sorted(self.reference_prices)],
        ]

    def commit(self) -> bytes:
        """Write dirty records into the Merkle map; returns the state root."""
        merkle = self._merkle
        put, delete = merkle.set, merkle.delete
        accounts = self.accounts
        for account_id in self._dirty_accounts:
            # Accounts are also marked when only their open orders changed (derived
            # state, see ``changed_accounts``): rewrite the record only if it differs.
            account = accounts[account_id]
            value = _pack(account.to_wire())
            if value != account.committed:
                account.committed = value
                put(b"acct/" + account_id.to_bytes(8, "big"), value)
        for account_id, instrument_id in self._dirty_positions:
            key = b"pos/" + _u64(account_id) + _u32(instrument_id)
            account = accounts[account_id]
            position = account.positions.get(instrument_id)
            if position is None or position.is_flat():
                if position is not None and position.is_empty():
                    del account.positions[instrument_id]
                delete(key)
            else:
                put(key, _pack(position.to_wire()))
        orders = self.orders
        for order_id in self._dirty_orders:
            order = orders.get(order_id)
            if order is None:
                delete(b"order/" + order_id.to_bytes(8, "big"))
            else:
                put(b"order/" + order_id.to_bytes(8, "big"), _pack(order.to_wire()))
        books = self.books
        for instrument_id in self._dirty_books:
            put(b"book/" + instrument_id.to_bytes(4, "big"),
                _pack(books[instrument_id].summary()))
        for instrument_id in self._dirty_instruments:
            put(b"inst/" + _u32(instrument_id), encode(self.instruments[instrument_id].to_wire()))
        for record_key, record in self._dirty_records.items():
            if record is None:
                delete(record_key)
            else:
                put(record_key, record)
        if self._meta_dirty:
            put(b"meta/exchange", encode(self._meta_wire()))
        self._dirty_accounts = {}
        self._dirty_positions = {}
        self._dirty_orders = {}
        self._dirty_books = {}
        self._dirty_instruments = {}
        self._dirty_records = {}
        self._meta_dirty = False
        return merkle.root()

    def state_root(self) -> bytes:
        return self.commit()

    def account_proof(self, account_id: int) -> Proof:
        """Proof of the account's record (or of its absence) against ``state_root()``."""
        self.commit()
        return self._merkle.prove(b"acct/" + _u64(account_id))

    def position_proof(self, account_id: int, instrument_id: int) -> Proof:
        self.commit()
        return self._merkle.prove(b"pos/" + _u64(account_id) + _u32(instrument_id))

    @property
    def merkle(self) -> MerkleMap:
        """The committed map (read it only after ``commit``)."""
        return self._merkle

    # --- snapshots ---------------------------------------------------------------------------

    def snapshot_bytes(self) -> bytes:
        """Canonical bytes of the whole replicated state (plus the recent-trades cache)."""
        self.commit()
        accounts = []
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            positions = [
                [iid, account.positions[iid].to_wire()] for iid in sorted(account.positions)
            ]
            accounts.append([account_id, account.to_wire(), positions])
        doc = [
            SNAPSHOT_VERSION,
            json.dumps(self.config.to_dict(), sort_keys=True, separators=(",", ":")),
            self._meta_wire(),
            [self.instruments[iid].to_wire() for iid in sorted(self.instruments)],
            accounts,
            [self.orders[order_id].to_wire() for order_id in sorted(self.orders)],
            [
                [iid, [self._registry_wire(trade) for trade in self.recent_trades[iid]]]
                for iid in sorted(self.recent_trades)
                if self.recent_trades[iid]
            ],
            [[extension.name, extension.snapshot()] for extension in self.extensions],
        ]
        return encode(doc)

    @staticmethod
    def _registry_wire(trade: Trade) -> list[Any]:
        from deltasync.exchange.events import EVENTS

        return EVENTS.to_wire(trade)

    @classmethod
    def restore(
        cls,
        data: bytes,
        risk: RiskEngine | None = None,
        extensions: Iterable[Extension] = (),
    ) -> ExchangeState:
        from deltasync.exchange.events import EVENTS

        doc = decode(data, canonical=True, max_bytes=len(data))
        if type(doc) is not list or len(doc) != 8 or doc[0] != SNAPSHOT_VERSION:
            raise StateError(reason="not an exchange snapshot", version=doc[0] if doc else None)
        (_, genesis_json, meta, instruments, accounts, orders, trades, extension_data) = doc
        state = cls(GenesisConfig.from_dict(json.loads(genesis_json)), risk, extensions)
        (chain_id, state.height, state.time_ns, state.deposits_total, state.withdrawals_total,
         state.trades_total, state.volume_total, references) = meta
        if chain_id != state.config.chain_id:
            raise StateError(reason="snapshot chain id does not match its genesis")
        state.reference_prices = {name: price for name, price in references}
        for wire in instruments:
            instrument = Instrument.from_wire(wire)
            state._list(instrument)
            if not instrument.active:
                state._expiry_heap = [e for e in state._expiry_heap if e[1] != instrument.instrument_id]
                heapq.heapify(state._expiry_heap)
        for account_id, wire, positions in accounts:
            account = state.accounts.get(account_id) or Account(account_id)
            state.accounts[account_id] = account
            (account.cash, account.deposited, account.withdrawn, account.fees_paid,
             account.realized_pnl) = wire
            for iid, position_wire in positions:
                account.positions[iid] = Position.from_wire(iid, position_wire)
                state._dirty_positions[(account_id, iid)] = None
            state._dirty_accounts[account_id] = None
        for wire in sorted(orders, key=lambda w: w[7]):  # priority order rebuilds the queues
            order = Order.from_wire(wire)
            state.books[order.instrument_id].rest(order)
            state.orders[order.order_id] = order
            state.accounts[order.account].orders[order.order_id] = None
            if order.reduce_only:
                reduce_only = state.accounts[order.account].reduce_only
                reduce_only[order.instrument_id] = reduce_only.get(order.instrument_id, 0) + 1
            if order.time_in_force == _GTT.value:
                heapq.heappush(state._gtt_heap, (order.expire_at_ns, order.order_id))
            state._dirty_orders[order.order_id] = None
            state._dirty_books[order.instrument_id] = None
            # open-order exposure and collateral are derived, not stored: rebuild them
            account = state.accounts[order.account]
            instrument = state.instruments[order.instrument_id]
            position = state._position(account, order.instrument_id)
            if order.side == BUY:
                position.open_buy_quantity += order.remaining
                position.open_buy_reserve += (
                    order.remaining // instrument.contract_size_raw
                ) * instrument.reserve_per_contract(order.price)
            else:
                position.open_sell_quantity += order.remaining
        for account in state.accounts.values():
            for iid, position in account.positions.items():
                state._refresh(account, position, state.instruments[iid])
        for iid, wires in trades:
            state.recent_trades[iid].extend(EVENTS.from_wire(w) for w in wires)
        by_name = {extension.name: extension for extension in state.extensions}
        for name, data_part in extension_data:
            by_name[name].restore(state, data_part)
        state.commit()
        return state

    # --- invariants ----------------------------------------------------------------------------

    def expected_records(self) -> dict[bytes, bytes]:
        """Every trading-core record rebuilt from scratch (for checking the commitment)."""
        out: dict[bytes, bytes] = {}
        for account_id, account in self.accounts.items():
            out[b"acct/" + _u64(account_id)] = _pack(account.to_wire())
            for iid, position in account.positions.items():
                if not position.is_flat():
                    out[b"pos/" + _u64(account_id) + _u32(iid)] = _pack(position.to_wire())
        for order_id, order in self.orders.items():
            out[b"order/" + _u64(order_id)] = _pack(order.to_wire())
        for iid, book in self.books.items():
            out[b"book/" + _u32(iid)] = _pack(book.summary())
        for iid, instrument in self.instruments.items():
            out[b"inst/" + _u32(iid)] = encode(instrument.to_wire())
        out[b"meta/exchange"] = encode(self._meta_wire())
        return out

    def check_commitment(self) -> list[str]:
        """The committed map holds exactly the records the state implies (a missed dirty
        mark would make a live replica's root differ from a restored one's)."""
        self.commit()
        expected = self.expected_records()
        prefixes = (b"acct/", b"pos/", b"order/", b"book/", b"inst/", b"meta/")
        committed = {k: v for k, v in self._merkle.items() if k.startswith(prefixes)}
        problems = []
        for key in sorted(set(expected) | set(committed)):
            if expected.get(key) != committed.get(key):
                problems.append(f"record {key!r}: committed {committed.get(key)!r}"
                                f" != state {expected.get(key)!r}")
        return problems[:20]

    def check_invariants(self) -> list[str]:
        """Every exchange-wide invariant; returns the violations (empty when sound)."""
        problems: list[str] = []
        cash = sum(account.cash for account in self.accounts.values())
        if cash != self.deposits_total - self.withdrawals_total:
            problems.append(
                f"money not conserved: balances {cash} != deposits {self.deposits_total}"
                f" - withdrawals {self.withdrawals_total}"
            )
        net: dict[int, int] = {}
        for account in self.accounts.values():
            # Under the margin engine a balance may be negative until liquidation and the
            # insurance fund cover it (see docs/risk.md); with simple collateral never.
            if account.cash < 0 and isinstance(self.risk, SimpleCollateral):
                problems.append(f"account {account.account_id} has negative cash {account.cash}")
            locked = 0
            for iid, position in account.positions.items():
                net[iid] = net.get(iid, 0) + position.size
                locked += position.requirement
                expected = self.risk.position_requirement(self.instruments[iid], position)
                if expected != position.requirement:
                    problems.append(f"account {account.account_id} instrument {iid}: stale requirement")
            if locked != account.locked:
                problems.append(f"account {account.account_id}: locked {account.locked} != {locked}")
            if isinstance(self.risk, SimpleCollateral) and account.cash < account.locked:
                problems.append(f"account {account.account_id} is under-collateralised")
            for order_id in account.orders:
                order = self.orders.get(order_id)
                if order is None or order.account != account.account_id:
                    problems.append(f"account {account.account_id} lists foreign order {order_id}")
        for iid, size in sorted(net.items()):
            if size:
                problems.append(f"instrument {iid}: positions net to {size}, not 0")
        exposure: dict[tuple[int, int], list[int]] = {}
        in_books = 0
        for iid, book in self.books.items():
            for problem in book.check():
                problems.append(f"book {self.instruments[iid].name}: {problem}")
            in_books += len(book.orders)
        if in_books != len(self.orders):
            problems.append(f"{len(self.orders)} open orders but {in_books} in books")
        for order in self.orders.values():
            if self.books[order.instrument_id].orders.get(order.order_id) is not order:
                problems.append(f"order {order.order_id} is not in its book")
            instrument = self.instruments[order.instrument_id]
            entry = exposure.setdefault((order.account, order.instrument_id), [0, 0, 0])
            if order.side == BUY:
                entry[0] += order.remaining
                entry[2] += (order.remaining // instrument.contract_size_raw) * (
                    instrument.reserve_per_contract(order.price)
                )
            else:
                entry[1] += order.remaining
        for account in self.accounts.values():
            for iid, position in account.positions.items():
                expected_exposure = exposure.pop((account.account_id, iid), [0, 0, 0])
                actual = [position.open_buy_quantity, position.open_sell_quantity,
                          position.open_buy_reserve]
                if actual != expected_exposure:
                    problems.append(
                        f"account {account.account_id} instrument {iid}: open exposure {actual}"
                        f" != orders {expected_exposure}"
                    )
        for key in sorted(exposure):
            problems.append(f"orders of {key} have no position record")
        for account in self.accounts.values():
            counts: dict[int, int] = {}
            for order_id in account.orders:
                order = self.orders[order_id]
                if order.reduce_only:
                    counts[order.instrument_id] = counts.get(order.instrument_id, 0) + 1
            if counts != account.reduce_only:
                problems.append(f"account {account.account_id}: reduce-only index {account.reduce_only}")
            for iid in sorted(counts):
                held = account.positions.get(iid)
                size = held.size if held is not None else 0
                orders = self._reduce_only_orders(account, iid)
                if any((o.side == BUY) != (size < 0) for o in orders) or sum(
                    o.remaining for o in orders
                ) > abs(size):
                    problems.append(
                        f"account {account.account_id} instrument {iid}: reduce-only orders"
                        f" could grow a position of {size}"
                    )
        return problems

    # --- queries (read-only) ------------------------------------------------------------------

    def instrument(self, name: str) -> Instrument | None:
        return self.instrument_by_name.get(name)

    def list_instruments(self, underlying: str | None = None, active_only: bool = True) -> list[Instrument]:
        return [
            instrument
            for iid, instrument in sorted(self.instruments.items())
            if (underlying is None or instrument.underlying == underlying)
            and (instrument.active or not active_only)
        ]

    def book(self, name: str, depth: int = 10) -> BookView | None:
        instrument = self.instrument_by_name.get(name)
        if instrument is None:
            return None
        book = self.books[instrument.instrument_id]
        depth = max(0, min(depth, BOOK_DEPTH_LEVELS_MAX))

        def levels(side: int) -> tuple[DepthLevel, ...]:
            return tuple(
                DepthLevel(Price(price), Quantity(quantity), count)
                for price, quantity, count in book.depth(side, depth)
            )

        return BookView(name, levels(BUY), levels(SELL))

    def _order_view(self, order: Order, state: OrderState) -> OrderView:
        return OrderView(
            order_id=order.order_id,
            account=order.account,
            instrument=self.instruments[order.instrument_id].name,
            side=_SIDES[order.side],  # type: ignore[arg-type]
            order_type=_ORDER_TYPES[order.order_type],
            price=Price(order.price),
            amount=Quantity(order.amount),
            remaining=Quantity(order.remaining if state is OrderState.OPEN else 0),
            filled=Quantity(order.amount - order.remaining),
            time_in_force=_TIFS[order.time_in_force],
            expire_at_ns=order.expire_at_ns,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            label=order.label,
            state=state,
        )

    def order(self, order_id: int) -> OrderView | None:
        """An open order, or a recently closed one that had rested (query cache)."""
        order = self.orders.get(order_id)
        if order is not None:
            return self._order_view(order, OrderState.OPEN)
        closed = self._closed.get(order_id)
        if closed is None:
            return None
        return self._order_view(*closed)

    def open_orders(self, account_id: int, instrument: str | None = None) -> list[OrderView]:
        orders = self._account_orders(account_id, instrument) or []
        return [self._order_view(order, OrderState.OPEN) for order in orders]

    def positions(self, account_id: int) -> list[PositionView]:
        account = self.accounts.get(account_id)
        if account is None:
            return []
        out = []
        for iid in sorted(account.positions):
            position = account.positions[iid]
            if position.is_empty():
                continue
            average = (
                abs(position.open_cost) * NOTIONAL_DIVISOR // abs(position.size)
                if position.size
                else 0
            )
            out.append(
                PositionView(
                    instrument=self.instruments[iid].name,
                    size=Quantity(position.size),
                    average_price=Price(average),
                    open_cost=Amount(position.open_cost),
                    realized_pnl=Amount(position.realized_pnl),
                    open_buy=Quantity(position.open_buy_quantity),
                    open_sell=Quantity(position.open_sell_quantity),
                    requirement=Amount(position.requirement),
                )
            )
        return out

    def account_summary(self, account_id: int) -> AccountView | None:
        account = self.accounts.get(account_id)
        if account is None:
            return None
        return AccountView(
            account=account_id,
            cash=Amount(account.cash),
            locked=Amount(account.locked),
            available=Amount(account.cash - account.locked),
            deposited=Amount(account.deposited),
            withdrawn=Amount(account.withdrawn),
            fees_paid=Amount(account.fees_paid),
            realized_pnl=Amount(account.realized_pnl),
            open_orders=len(account.orders),
            positions=sum(1 for p in account.positions.values() if not p.is_empty()),
        )

    def recent_trades_of(self, name: str, count: int = 20) -> list[Trade]:
        """The last ``count`` trades of an instrument, newest last."""
        instrument = self.instrument_by_name.get(name)
        if instrument is None:
            return []
        trades = self.recent_trades[instrument.instrument_id]
        count = max(0, min(count, len(trades)))
        return list(trades)[len(trades) - count:]


__all__ = [
    "BlockResult",
    "ComboLeg",
    "Context",
    "ExchangeState",
    "Extension",
    "StateError",
    "command_priority",
    "sequence_block",
    "sequence_indexes",
]
