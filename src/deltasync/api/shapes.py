"""Views -> Deribit-shaped JSON objects (field names and types as Deribit's docs).

Money leaves as exact decimals (``jsonio.money``), ids as strings where
Deribit sends strings (order_id, trade_id), timestamps in milliseconds.
Fields Deribit always sends are always present, ``null`` while unknown (for
example ``mark_iv`` before the first volatility report).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from deltasync.api.jsonio import money
from deltasync.venue.views import (
    AccountView,
    BookView,
    ComboLeg,
    InstrumentView,
    OrderStatus,
    OrderType,
    OrderView,
    PositionView,
    Side,
    TickerView,
    TimeInForce,
    TradeView,
)

# The exchange's enums, spelled as Deribit spells them (and parsed back by ``methods``).
SIDE_NAMES = {Side.BUY: "buy", Side.SELL: "sell"}
ORDER_STATE_NAMES = {
    OrderStatus.OPEN: "open",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.EXPIRED: "cancelled",  # Deribit has no "expired": cancel_reason says why
}
ORDER_TYPE_NAMES = {OrderType.LIMIT: "limit", OrderType.MARKET: "market"}
TIME_IN_FORCE_NAMES = {
    TimeInForce.GOOD_TIL_CANCELLED: "good_til_cancelled",
    TimeInForce.GOOD_TIL_TIME: "good_til_day",  # expires at the end of the UTC day, or valid_until
    TimeInForce.FILL_OR_KILL: "fill_or_kill",
    TimeInForce.IMMEDIATE_OR_CANCEL: "immediate_or_cancel",
}


def index_name_of(instrument_name: str) -> str:
    """``BTC_USDC-27DEC26-100000-C`` -> ``btc_usdc``."""
    return instrument_name.split("-", 1)[0].lower()


def order(view: OrderView) -> dict[str, Any]:
    price: Any = money(view.price_raw)
    if view.order_type is OrderType.MARKET and price is None:
        price = "market_price"
    return {
        "order_id": str(view.order_id),
        "order_state": ORDER_STATE_NAMES[view.order_state],
        "order_type": ORDER_TYPE_NAMES[view.order_type],
        "time_in_force": TIME_IN_FORCE_NAMES[view.time_in_force],
        "direction": SIDE_NAMES[view.side],
        "instrument_name": view.combo_name or view.instrument_name,
        "price": price,
        "amount": money(view.amount_raw),
        "filled_amount": money(view.filled_amount_raw),
        "average_price": money(view.average_price_raw),
        "label": view.label,
        "post_only": view.post_only,
        "reject_post_only": view.post_only,
        "reduce_only": view.reduce_only,
        "creation_timestamp": view.creation_timestamp_ms,
        "last_update_timestamp": view.last_update_timestamp_ms,
        "cancel_reason": view.cancel_reason or "",
        "replaced": view.replaced,
        "api": True,
        "web": False,
        "is_liquidation": view.cancel_reason == "liquidation",
        "risk_reducing": False,
        "mmp": False,
        "max_show": money(view.amount_raw),
    }


def _tick_direction(trade: TradeView) -> int:
    return 0 if trade.side is Side.BUY else 2


def public_trade(trade: TradeView) -> dict[str, Any]:
    return {
        "trade_id": str(trade.trade_id),
        "trade_seq": trade.trade_seq,
        "timestamp": trade.timestamp_ms,
        "tick_direction": _tick_direction(trade),
        "price": money(trade.price_raw),
        "mark_price": money(trade.mark_price_raw),
        "index_price": money(trade.index_price_raw),
        "iv": trade.iv,
        "instrument_name": trade.instrument_name,
        "direction": SIDE_NAMES[trade.side],
        "amount": money(trade.amount_raw),
        "combo_id": trade.combo_name,
        "liquidation": "T" if trade.liquidation else None,
    }


def user_trade(trade: TradeView, account_id: int, view: OrderView | None = None) -> dict[str, Any]:
    """A trade as one side of it sees it."""
    taker = trade.taker_account_id == account_id
    out = public_trade(trade)
    direction = SIDE_NAMES[trade.side if taker else trade.side.opposite]
    out.update(
        {
            "direction": direction,
            "order_id": str(trade.taker_order_id if taker else trade.maker_order_id),
            "liquidity": "T" if taker else "M",
            "fee": money(trade.taker_fee_raw if taker else trade.maker_fee_raw),
            "fee_currency": "USDC",
            "state": "filled",
            "matching_id": None,
            "self_trade": trade.taker_account_id == trade.maker_account_id,
        }
    )
    if view is not None:
        out.update(
            {
                "order_type": ORDER_TYPE_NAMES[view.order_type],
                "label": view.label,
                "post_only": view.post_only,
                "reduce_only": view.reduce_only,
                "state": ORDER_STATE_NAMES[view.order_state],
            }
        )
    return out


def position(view: PositionView) -> dict[str, Any]:
    direction = "zero" if view.size_raw == 0 else ("buy" if view.size_raw > 0 else "sell")
    return {
        "instrument_name": view.instrument_name,
        "kind": "option",
        "size": money(view.size_raw),
        "size_currency": money(view.size_raw),
        "direction": direction,
        "average_price": money(view.average_price_raw),
        "mark_price": money(view.mark_price_raw),
        "index_price": money(view.index_price_raw),
        "floating_profit_loss": money(view.floating_pnl_raw),
        "realized_profit_loss": money(view.realized_pnl_raw),
        "total_profit_loss": money(view.floating_pnl_raw + view.realized_pnl_raw),
        "initial_margin": money(view.initial_margin_raw),
        "maintenance_margin": money(view.maintenance_margin_raw),
        "delta": view.delta,
        "gamma": view.gamma,
        "vega": view.vega,
        "theta": view.theta,
        "settlement_price": None,
    }


def account_summary(view: AccountView) -> dict[str, Any]:
    return {
        "id": view.account_id,
        "currency": view.currency,
        "balance": money(view.balance_raw),
        "equity": money(view.equity_raw),
        "margin_balance": money(view.equity_raw),
        "available_funds": money(view.available_funds_raw),
        "available_withdrawal_funds": money(view.available_withdrawal_funds_raw),
        "initial_margin": money(view.initial_margin_raw),
        "maintenance_margin": money(view.maintenance_margin_raw),
        "total_pl": money(view.total_pl_raw),
        "session_upl": money(view.session_upl_raw),
        "session_rpl": money(view.session_rpl_raw),
        "fees_paid": money(view.fees_paid_raw),
        "delta_total": view.delta_total,
        "options_gamma": view.options_gamma,
        "options_vega": view.options_vega,
        "options_theta": view.options_theta,
        "margin_model": view.margin_model,
        "portfolio_margining_enabled": view.margin_model.endswith("_pm"),
        "cross_collateral_enabled": False,
    }


def instrument(view: InstrumentView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "instrument_name": view.instrument_name,
        "instrument_id": view.instrument_id,
        "kind": view.kind,
        "base_currency": view.base_currency,
        "quote_currency": view.quote_currency,
        "counter_currency": view.quote_currency,
        "settlement_currency": view.settlement_currency,
        "option_type": view.option_type,
        "strike": money(view.strike_raw),
        "expiration_timestamp": view.expiration_timestamp_ms,
        "creation_timestamp": view.creation_timestamp_ms,
        "tick_size": money(view.tick_size_raw),
        "tick_size_steps": [
            {"above_price": money(above), "tick_size": money(tick)}
            for above, tick in view.tick_size_steps
        ],
        "min_trade_amount": money(view.min_trade_amount_raw),
        "contract_size": money(view.contract_size_raw),
        "is_active": view.is_active,
        "maker_commission": view.maker_commission,
        "taker_commission": view.taker_commission,
        "settlement_period": "day",
        "price_index": index_name_of(view.instrument_name),
        "instrument_type": "linear",
        "rfq": False,
    }
    if view.legs:
        out["legs"] = [combo_leg(leg) for leg in view.legs]
    return out


def combo_leg(leg: ComboLeg) -> dict[str, Any]:
    return {"instrument_name": leg.instrument_name, "amount": leg.ratio}


def ticker(view: TickerView) -> dict[str, Any]:
    greeks = view.greeks
    return {
        "instrument_name": view.instrument_name,
        "state": view.state,
        "timestamp": view.timestamp_ms,
        "best_bid_price": money(view.best_bid_price_raw),
        "best_bid_amount": money(view.best_bid_amount_raw),
        "best_ask_price": money(view.best_ask_price_raw),
        "best_ask_amount": money(view.best_ask_amount_raw),
        "last_price": money(view.last_price_raw),
        "mark_price": money(view.mark_price_raw),
        "index_price": money(view.index_price_raw),
        "underlying_price": money(view.underlying_price_raw),
        "underlying_index": index_name_of(view.instrument_name),
        "estimated_delivery_price": money(view.index_price_raw),
        "settlement_price": money(view.settlement_price_raw),
        "mark_iv": view.mark_iv,
        "bid_iv": view.bid_iv,
        "ask_iv": view.ask_iv,
        "interest_rate": view.interest_rate,
        "open_interest": money(view.open_interest_raw),
        "greeks": None
        if greeks is None
        else {
            "delta": greeks.delta,
            "gamma": greeks.gamma,
            "vega": greeks.vega,
            "theta": greeks.theta,
            "rho": greeks.rho,
        },
        "stats": {
            "volume": money(view.volume_raw),
            "high": money(view.high_raw),
            "low": money(view.low_raw),
            "price_change": None,
        },
    }


def order_book(view: BookView) -> dict[str, Any]:
    out = ticker(view.ticker)
    out["bids"] = [[money(price), money(amount)] for price, amount in view.bids]
    out["asks"] = [[money(price), money(amount)] for price, amount in view.asks]
    out["change_id"] = view.change_id
    return out


def book_summary(view: TickerView, base_currency: str, quote_currency: str,
                 creation_timestamp_ms: int) -> dict[str, Any]:
    mid: Decimal | None = None
    if view.best_bid_price_raw is not None and view.best_ask_price_raw is not None:
        mid = money((view.best_bid_price_raw + view.best_ask_price_raw) // 2)
    return {
        "instrument_name": view.instrument_name,
        "base_currency": base_currency,
        "quote_currency": quote_currency,
        "bid_price": money(view.best_bid_price_raw),
        "ask_price": money(view.best_ask_price_raw),
        "mid_price": mid,
        "mark_price": money(view.mark_price_raw),
        "mark_iv": view.mark_iv,
        "last": money(view.last_price_raw),
        "high": money(view.high_raw),
        "low": money(view.low_raw),
        "volume": money(view.volume_raw),
        "open_interest": money(view.open_interest_raw),
        "underlying_price": money(view.underlying_price_raw),
        "underlying_index": index_name_of(view.instrument_name),
        "estimated_delivery_price": money(view.index_price_raw),
        "interest_rate": view.interest_rate,
        "creation_timestamp": creation_timestamp_ms,
        "price_change": None,
    }
