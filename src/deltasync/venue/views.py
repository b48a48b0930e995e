"""What the venue reports: views of orders, trades, positions, accounts, books, blocks.

The one home of these shapes: the read model builds them from the block
stream, the reads build them from the state machine, and the API turns them
into Deribit's JSON (``api.shapes``). Side, order type and time in force are
the exchange's own enums (``exchange.commands``), and so is an order's state
(``exchange.book.OrderStatus``): the API spells them Deribit's way.

Money and sizes are raw integers (``*_raw``): prices and amounts in
millionths (``Price``/``Quantity``/``Amount`` scales). Figures that are not
replicated money (implied volatility, Greeks, commission rates) are
``Decimal`` and only displayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from deltasync.exchange.book import OrderStatus
from deltasync.exchange.commands import OrderType, Side, TimeInForce

__all__ = [
    "AccountView", "BlockUpdate", "BookView", "ComboLeg", "CommandResult", "Greeks",
    "IndexView", "InstrumentView", "LevelChange", "OrderStatus", "OrderType", "OrderView",
    "PositionView", "Rejection", "Side", "StateRootView", "TickerView", "TimeInForce",
    "TradeView",
]


@dataclass(frozen=True, slots=True)
class ComboLeg:
    """A leg of a combo as its name spells it (``venue.combos``)."""

    instrument_name: str
    ratio: int  # signed: positive legs are bought when the combo is bought

    def __post_init__(self) -> None:
        assert self.ratio != 0, "a combo leg needs a non-zero ratio"


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
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price_raw: int | None
    amount_raw: int
    filled_amount_raw: int
    average_price_raw: int  # 0 until something fills
    order_state: OrderStatus
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
    side: Side  # the taker's side
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
    side: Side  # BUY: a bid level, SELL: an ask level
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
