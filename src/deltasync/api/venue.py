"""The narrow interface between the API and whatever runs the exchange.

The API never touches ``ExchangeState`` or consensus directly. It talks to a
``Venue``: something that puts commands through the log and answers queries.
``LocalVenue`` (one process, no replication) and the replicated node both
implement it, so the HTTP/WebSocket layer, auth, rate limits and
subscriptions are written once.

Everything crossing this boundary is a small frozen dataclass in API terms
(instrument names, raw fixed-point integers with the scales of
``deltasync.core.fixed``), not the exchange's own commands and events: the
venue translates both ways, so the server keeps working while the state
machine's internals change.

Money and sizes are raw integers (``*_raw``): prices and amounts in
millionths (``Price``/``Quantity``/``Amount`` scales). Figures that are not
replicated money (implied volatility, Greeks, commission rates) are
``Decimal`` and only displayed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable

# --- enumerations with Deribit's spellings -----------------------------------


class Direction(Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(Enum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(Enum):
    GOOD_TIL_CANCELLED = "good_til_cancelled"
    GOOD_TIL_DAY = "good_til_day"  # expires at the end of the UTC day of its block time
    FILL_OR_KILL = "fill_or_kill"
    IMMEDIATE_OR_CANCEL = "immediate_or_cancel"


class OrderState(Enum):
    OPEN = "open"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


# --- commands (what a client asks the venue to do) ----------------------------


@dataclass(frozen=True, slots=True)
class ComboLeg:
    instrument_name: str
    ratio: int  # signed: positive legs are bought when the combo is bought

    def __post_init__(self) -> None:
        assert self.ratio != 0, "a combo leg needs a non-zero ratio"


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    instrument_name: str
    direction: Direction
    amount_raw: int
    order_type: OrderType = OrderType.LIMIT
    price_raw: int | None = None  # required for limit orders
    time_in_force: TimeInForce = TimeInForce.GOOD_TIL_CANCELLED
    post_only: bool = False
    reject_post_only: bool = True  # deltasync never reprices post-only orders
    reduce_only: bool = False
    label: str = ""
    valid_until_ms: int | None = None  # good-til-time, in block time


@dataclass(frozen=True, slots=True)
class PlaceComboOrder:
    combo_name: str
    legs: tuple[ComboLeg, ...]
    direction: Direction
    amount_raw: int  # combo units; leg amount = amount x |ratio|
    price_raw: int  # net limit price per combo unit (may be negative: a credit)
    time_in_force: TimeInForce = TimeInForce.IMMEDIATE_OR_CANCEL
    label: str = ""


@dataclass(frozen=True, slots=True)
class EditOrder:
    order_id: int
    amount_raw: int
    price_raw: int | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int


@dataclass(frozen=True, slots=True)
class CancelAll:
    instrument_name: str | None = None  # None: every instrument


@dataclass(frozen=True, slots=True)
class CancelByLabel:
    label: str
    instrument_name: str | None = None  # None: every instrument


@dataclass(frozen=True, slots=True)
class SubmitOracleReport:
    """A price source's signed report (``exchange.oracle.OracleReport``); the state
    machine checks the signature, so anyone may relay one."""

    report: Any


VenueCommand = (
    PlaceOrder | PlaceComboOrder | EditOrder | CancelOrder | CancelAll | CancelByLabel
    | SubmitOracleReport
)


# --- views (what the venue reports) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A business rejection from the state machine, by its reason name."""

    reason: str  # the exchange's reason code, lower snake case ("insufficient_funds")
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: int
    account_id: int
    instrument_name: str
    direction: Direction
    order_type: OrderType
    time_in_force: TimeInForce
    price_raw: int | None
    amount_raw: int
    filled_amount_raw: int
    average_price_raw: int  # 0 until something fills
    order_state: OrderState
    post_only: bool
    reduce_only: bool
    label: str
    creation_timestamp_ms: int
    last_update_timestamp_ms: int
    cancel_reason: str | None = None  # "user_request", "expired", "liquidation", ...
    replaced: bool = False
    combo_name: str | None = None


@dataclass(frozen=True, slots=True)
class TradeView:
    trade_id: int
    trade_seq: int  # per instrument, increasing
    instrument_name: str
    price_raw: int
    amount_raw: int
    direction: Direction  # the taker's side
    timestamp_ms: int
    taker_account_id: int
    maker_account_id: int
    taker_order_id: int
    maker_order_id: int
    taker_fee_raw: int
    maker_fee_raw: int
    index_price_raw: int | None = None
    mark_price_raw: int | None = None
    iv: Decimal | None = None
    combo_name: str | None = None
    liquidation: bool = False


@dataclass(frozen=True, slots=True)
class PositionView:
    account_id: int
    instrument_name: str
    size_raw: int  # signed: negative is short
    average_price_raw: int
    mark_price_raw: int | None
    index_price_raw: int | None
    floating_pnl_raw: int
    realized_pnl_raw: int
    initial_margin_raw: int = 0
    maintenance_margin_raw: int = 0
    delta: Decimal | None = None
    gamma: Decimal | None = None
    vega: Decimal | None = None
    theta: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: int
    currency: str  # the collateral currency, USDC
    balance_raw: int
    equity_raw: int
    available_funds_raw: int
    available_withdrawal_funds_raw: int
    initial_margin_raw: int
    maintenance_margin_raw: int
    total_pl_raw: int
    session_upl_raw: int
    session_rpl_raw: int
    fees_paid_raw: int
    margin_model: str = "segregated_sm"
    delta_total: Decimal | None = None
    options_gamma: Decimal | None = None
    options_vega: Decimal | None = None
    options_theta: Decimal | None = None


@dataclass(frozen=True, slots=True)
class InstrumentView:
    instrument_name: str
    kind: str  # "option" or "option_combo"
    base_currency: str  # BTC
    quote_currency: str  # USDC
    settlement_currency: str  # USDC
    option_type: str | None  # "call" / "put"
    strike_raw: int | None
    expiration_timestamp_ms: int
    creation_timestamp_ms: int
    tick_size_raw: int
    min_trade_amount_raw: int
    contract_size_raw: int
    is_active: bool
    maker_commission: Decimal
    taker_commission: Decimal
    instrument_id: int
    tick_size_steps: tuple[tuple[int, int], ...] = ()  # (above_price_raw, tick_size_raw)
    legs: tuple[ComboLeg, ...] = ()


@dataclass(frozen=True, slots=True)
class Greeks:
    delta: Decimal
    gamma: Decimal
    vega: Decimal
    theta: Decimal
    rho: Decimal


@dataclass(frozen=True, slots=True)
class TickerView:
    instrument_name: str
    state: str  # "open", "closed", "cancel_only"
    timestamp_ms: int
    best_bid_price_raw: int | None
    best_bid_amount_raw: int
    best_ask_price_raw: int | None
    best_ask_amount_raw: int
    last_price_raw: int | None
    mark_price_raw: int | None
    index_price_raw: int | None
    underlying_price_raw: int | None
    mark_iv: Decimal | None
    bid_iv: Decimal | None
    ask_iv: Decimal | None
    greeks: Greeks | None
    open_interest_raw: int
    volume_raw: int  # over the last 24 h of block time
    high_raw: int | None
    low_raw: int | None
    settlement_price_raw: int | None = None
    interest_rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BookView:
    ticker: TickerView
    bids: tuple[tuple[int, int], ...]  # (price_raw, amount_raw), best first
    asks: tuple[tuple[int, int], ...]
    change_id: int  # height of the last block that changed this book (0: never)


@dataclass(frozen=True, slots=True)
class IndexView:
    index_name: str  # "btc_usdc"
    price_raw: int | None  # None: no fresh index yet
    timestamp_ms: int
    estimated_delivery_price_raw: int | None = None


@dataclass(frozen=True, slots=True)
class StateRootView:
    height: int
    state_root: str  # hex
    time_ns: int


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command did, from the events of its block."""

    height: int
    rejection: Rejection | None = None
    order: OrderView | None = None  # the placed / edited / cancelled order
    trades: tuple[TradeView, ...] = ()
    cancelled: tuple[OrderView, ...] = ()  # for cancel_all / cancel_by_label


# --- the block stream ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelChange:
    instrument_name: str
    side: Direction  # BUY: a bid level, SELL: an ask level
    price_raw: int
    amount_raw: int  # the level's new total; 0 removes it


@dataclass(frozen=True, slots=True)
class BlockUpdate:
    """Everything subscribers may need from one applied block."""

    height: int
    time_ns: int
    orders: tuple[OrderView, ...] = ()  # orders whose state changed
    trades: tuple[TradeView, ...] = ()
    levels: tuple[LevelChange, ...] = ()
    indexes: tuple[IndexView, ...] = ()
    accounts: tuple[int, ...] = ()  # accounts whose balance, margin or positions changed
    instruments: tuple[str, ...] = ()  # instruments whose ticker changed (mark, trades, book)


# --- the protocol ---------------------------------------------------------------------


@runtime_checkable
class Venue(Protocol):
    """A running exchange seen from the API.

    ``submit`` returns after the command's block is applied. Reads are
    linearizable by default (the replicated node confirms leadership with a
    ReadIndex first); ``linearizable=False`` answers from local state, which
    may lag. Unknown instruments, orders and accounts are ``None`` or empty.
    """

    demo_mode: bool

    async def submit(
        self,
        account_id: int,
        command: VenueCommand,
        request_id: str | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> CommandResult:
        """Put a command through the log. ``on_queued`` is called once the command
        holds its place in the venue's order (before it is applied), so a caller
        may pipeline the next command without reordering them."""
        ...

    async def create_account(self, deposit_raw: int) -> int: ...

    async def deposit(self, account_id: int, amount_raw: int) -> CommandResult: ...

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
