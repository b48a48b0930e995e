"""The JSON-RPC methods: one table from Deribit's method names to handlers.

Handlers take a ``Call`` (the caller, the parsed params, the session) and
return the ``result`` value or raise ``ApiError``. They validate every
parameter before anything reaches the venue, so bad input changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from deltasync import __version__
from deltasync.api import errors, shapes
from deltasync.api.auth import Authenticator, KeyStore, Principal
from deltasync.api.errors import ApiError, from_venue_error, rejection_error
from deltasync.api.jsonio import money
from deltasync.api.params import Params, ascii_int, int64
from deltasync.api.subscriptions import Hub, Session, WritePipeline
from deltasync.core import limits
from deltasync.core.fixed import INT64_MAX
from deltasync.venue.combos import combo_instrument_id, is_combo_name, make_combo, parse_combo
from deltasync.venue.errors import VenueError
from deltasync.venue.port import Venue
from deltasync.venue.views import (
    ComboLeg,
    CommandResult,
    InstrumentView,
    OrderType,
    Side,
    TimeInForce,
)

API_VERSION = f"2.1.1-deltasync-{__version__}"
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000)


@dataclass(slots=True)
class Call:
    method: str  # "public/get_time"
    params: Params
    principal: Principal | None
    session: Session | None  # the WebSocket session, None over HTTP
    pipeline: WritePipeline | None = None  # a write on a WebSocket (see venue.Pipeline)

    @property
    def account_id(self) -> int:
        assert self.principal is not None, "private handlers run only with a principal"
        return self.principal.account_id

    @property
    def linearizable(self) -> bool:
        return self.params.boolean("linearizable", default=True)

    def write_options(self) -> dict[str, Any]:
        """The keyword arguments every venue write takes: the retry key and the pipeline."""
        return {"request_id": self.params.optional_string("request_id", max_len=64),
                "pipeline": self.pipeline}


Handler = Callable[["Methods", Call], Awaitable[Any]]


class Methods:
    def __init__(self, venue: Venue, auth: Authenticator, keys: KeyStore, hub: Hub,
                 demo_mode: bool) -> None:
        self.venue = venue
        self.auth = auth
        self.keys = keys
        self.hub = hub
        self.demo_mode = demo_mode

    async def call(self, call: Call) -> Any:
        scope, _, name = call.method.partition("/")
        table = PUBLIC if scope == "public" else PRIVATE if scope == "private" else None
        handler = table.get(name) if table is not None else None
        if handler is None:
            raise ApiError(errors.METHOD_NOT_FOUND, {"method": call.method[:120]})
        if scope == "private" and call.principal is None:
            raise ApiError(errors.UNAUTHORIZED, {"reason": "private methods need authentication"})
        try:
            return await handler(self, call)
        except VenueError as error:
            raise from_venue_error(error) from None

    # --- helpers --------------------------------------------------------------------

    async def _instrument(self, call: Call, name: str, *, local: bool = False) -> InstrumentView:
        """``local``: look it up in this node's state, without a read barrier (writes:
        the state machine checks the instrument again anyway)."""
        view = await self.venue.instrument(name, linearizable=call.linearizable and not local)
        if view is None:
            raise ApiError(errors.INVALID_OR_UNSUPPORTED_INSTRUMENT, {"instrument_name": name[:120]})
        return view

    def _order_result(self, call: Call, result: CommandResult) -> dict[str, Any]:
        if result.order is None:
            raise ApiError(errors.INTERNAL_ERROR, {"reason": "venue returned no order"})
        return {
            "order": shapes.order(result.order),
            "trades": [shapes.user_trade(trade, call.account_id, result.order)
                       for trade in result.trades],
        }


# --- public: session and reference data ---------------------------------------------------


async def _auth(m: Methods, call: Call) -> Any:
    grant = m.auth.grant(call.params.raw)
    if call.session is not None:
        call.session.principal = m.auth.bearer(grant["access_token"])
    return grant


async def _get_time(m: Methods, call: Call) -> Any:
    return time.time_ns() // 1_000_000


async def _test(m: Methods, call: Call) -> Any:
    return {"version": API_VERSION}


async def _hello(m: Methods, call: Call) -> Any:
    call.params.string("client_name", required=False, max_len=64)
    return {"version": API_VERSION}


async def _status(m: Methods, call: Call) -> Any:
    return {"locked": "false", "locked_indices": []}


async def _get_currencies(m: Methods, call: Call) -> Any:
    views = await m.venue.instruments(linearizable=call.linearizable)
    currencies = sorted({view.base_currency for view in views} | {"USDC"})
    return [
        {
            "currency": currency,
            "currency_long": currency,
            "fee_precision": 6,
            "min_confirmations": 0,
            "min_withdrawal_fee": 0,
            "withdrawal_fee": 0,
            "withdrawal_priorities": [],
            "coin_type": "STABLE" if currency == "USDC" else "BITCOIN" if currency == "BTC" else "ETHER",
            "apr": None,
        }
        for currency in currencies
    ]


def _matches_currency(view: InstrumentView, currency: str) -> bool:
    return currency == "any" or currency in (view.base_currency, view.settlement_currency)


async def _get_instruments(m: Methods, call: Call) -> Any:
    currency = call.params.string("currency", max_len=10)
    kind = call.params.string("kind", required=False, default="", max_len=20)
    if kind not in ("", "option", "option_combo", "future", "spot", "future_combo"):
        raise errors.invalid_param("kind", "unknown kind")
    expired = call.params.boolean("expired")
    views = await m.venue.instruments(linearizable=call.linearizable)
    return [
        shapes.instrument(view)
        for view in views
        if _matches_currency(view, currency)
        and (not kind or view.kind == kind)
        and view.is_active != expired
    ]


async def _get_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    return shapes.instrument(await m._instrument(call, name))


def _index_name(call: Call) -> str:
    name = call.params.string("index_name", max_len=32).lower()
    return name[:-4] + "_usdc" if name.endswith("_usd") else name


async def _get_index_price(m: Methods, call: Call) -> Any:
    name = _index_name(call)
    view = await m.venue.index_price(name, linearizable=call.linearizable)
    if view is None:
        raise errors.invalid_param("index_name", "unknown index")
    return {
        "index_price": money(view.price_raw),
        "estimated_delivery_price": money(
            view.estimated_delivery_price_raw
            if view.estimated_delivery_price_raw is not None else view.price_raw
        ),
    }


async def _get_index_price_names(m: Methods, call: Call) -> Any:
    views = await m.venue.instruments(linearizable=call.linearizable)
    return sorted({shapes.index_name_of(view.instrument_name) for view in views})


async def _get_order_book(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    depth = call.params.integer("depth", required=False, default=10, low=1,
                                high=limits.api_book_depth_max)
    view = await m.venue.book(name, depth, linearizable=call.linearizable)
    if view is None:
        raise ApiError(errors.INVALID_OR_UNSUPPORTED_INSTRUMENT, {"instrument_name": name[:120]})
    return shapes.order_book(view)


async def _ticker(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    view = await m.venue.ticker(name, linearizable=call.linearizable)
    if view is None:
        raise ApiError(errors.INVALID_OR_UNSUPPORTED_INSTRUMENT, {"instrument_name": name[:120]})
    return shapes.ticker(view)


async def _get_book_summary_by_currency(m: Methods, call: Call) -> Any:
    currency = call.params.string("currency", max_len=10)
    kind = call.params.string("kind", required=False, default="option", max_len=20)
    views = await m.venue.instruments(linearizable=call.linearizable)
    out = []
    for view in views:
        if not view.is_active or view.kind != kind or not _matches_currency(view, currency):
            continue
        # One barrier (above) covers the whole summary: the tickers read local state.
        ticker = await m.venue.ticker(view.instrument_name, linearizable=False)
        if ticker is not None:
            out.append(shapes.book_summary(ticker, view.base_currency, view.quote_currency,
                                           view.creation_timestamp_ms))
    return out


async def _get_book_summary_by_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    view = await m._instrument(call, name)
    ticker = await m.venue.ticker(name, linearizable=call.linearizable)
    assert ticker is not None
    return [shapes.book_summary(ticker, view.base_currency, view.quote_currency,
                                view.creation_timestamp_ms)]


def _count(call: Call) -> int:
    return call.params.integer("count", required=False, default=10, low=1,
                               high=limits.api_trades_count_max)


def _sorted_trades(call: Call, trades: list[Any]) -> list[Any]:
    sorting = call.params.string("sorting", required=False, default="desc", max_len=8)
    if sorting not in ("asc", "desc", "default"):
        raise errors.invalid_param("sorting", "must be asc, desc or default")
    # trade ids are log positions: one order across instruments (trade_seq is per instrument)
    trades = sorted(trades, key=lambda trade: trade.trade_id, reverse=sorting != "asc")
    return trades


async def _currency_instruments(m: Methods, call: Call) -> list[str]:
    currency = call.params.string("currency", max_len=10)
    kind = call.params.string("kind", required=False, default="any", max_len=20)
    if kind not in ("any", "option"):
        return []
    views = await m.venue.instruments(linearizable=call.linearizable)
    return [view.instrument_name for view in views if _matches_currency(view, currency)]


async def _get_last_trades_by_currency(m: Methods, call: Call) -> Any:
    count = _count(call)
    trades = []
    for name in await _currency_instruments(m, call):  # one barrier above, local reads here
        trades += await m.venue.last_trades(name, count + 1, linearizable=False)
    trades = _sorted_trades(call, trades)
    return {"trades": [shapes.public_trade(trade) for trade in trades[:count]],
            "has_more": len(trades) > count}


async def _get_user_trades_by_currency(m: Methods, call: Call) -> Any:
    count = _count(call)
    trades = []
    for name in await _currency_instruments(m, call):
        trades += await m.venue.user_trades(call.account_id, name, count + 1,
                                            linearizable=False)
    trades = _sorted_trades(call, trades)
    return {"trades": [shapes.user_trade(trade, call.account_id) for trade in trades[:count]],
            "has_more": len(trades) > count}


async def _get_last_trades_by_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    count = _count(call)
    await m._instrument(call, name)
    trades = await m.venue.last_trades(name, count + 1, linearizable=call.linearizable)
    trades = _sorted_trades(call, trades)
    return {"trades": [shapes.public_trade(trade) for trade in trades[:count]],
            "has_more": len(trades) > count}


# --- subscriptions --------------------------------------------------------------------------


def _channels(call: Call) -> list[Any]:
    channels = call.params.raw.get("channels")
    if type(channels) is not list or not channels:
        raise errors.invalid_param("channels", "must be a non-empty list of channel names")
    return channels


async def _subscribe(m: Methods, call: Call) -> Any:
    if call.session is None:
        raise ApiError(errors.MUST_BE_WEBSOCKET_REQUEST)
    return await m.hub.subscribe(call.session, _channels(call))


async def _unsubscribe(m: Methods, call: Call) -> Any:
    if call.session is None:
        raise ApiError(errors.MUST_BE_WEBSOCKET_REQUEST)
    return m.hub.unsubscribe(call.session, _channels(call))


async def _unsubscribe_all(m: Methods, call: Call) -> Any:
    if call.session is None:
        raise ApiError(errors.MUST_BE_WEBSOCKET_REQUEST)
    m.hub.drop_session(call.session)
    return "ok"


async def _logout(m: Methods, call: Call) -> Any:
    assert call.principal is not None
    m.auth.logout(call.principal)
    if call.session is not None:
        call.session.principal = None
        call.session.close_after_reply = True
    return "ok"


# --- deltasync's own methods ------------------------------------------------------------------


async def _cluster_status(m: Methods, call: Call) -> Any:
    return await m.venue.cluster_status()


async def _node_status(m: Methods, call: Call) -> Any:
    return await m.venue.node_status()


async def _stats(m: Methods, call: Call) -> Any:
    return await m.venue.stats()


async def _state_root(m: Methods, call: Call) -> Any:
    height = call.params.optional_integer("height")
    view = await m.venue.state_root(height)
    if view is None:
        raise ApiError(errors.NOT_FOUND, {"reason": "no state root at that height", "height": height})
    return {"height": view.height, "state_root": view.state_root, "time_ns": view.time_ns,
            "timestamp": view.time_ns // 1_000_000}


async def _account_proof(m: Methods, call: Call) -> Any:
    account_id = call.params.integer("account_id")
    proof = await m.venue.account_proof(account_id)
    if proof is None:
        raise ApiError(errors.NOT_FOUND, {"reason": "no such account", "account_id": account_id})
    return proof


async def _oracle_report(m: Methods, call: Call) -> Any:
    """Relay a price source's signed report into the log (the state machine verifies it)."""
    p = call.params
    source_id = p.string("source_id", max_len=64)
    underlying = p.string("underlying", max_len=16)
    price_raw = p.fixed("price")
    ts_ns = p.integer("ts_ns", low=1)
    signature_hex = p.string("signature", max_len=256)
    surface = p.raw.get("vol_surface")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError as exc:
        raise errors.invalid_param("report", str(exc)[:200]) from None
    slices = None
    if surface is not None:
        if type(surface) is not list or len(surface) > limits.oracle_surface_slices_max:
            raise errors.invalid_param("vol_surface", "a list of [expiry_ns, a, b, rho, m, sigma]")
        slices = tuple(_six_ints(item) for item in surface)
    assert price_raw is not None
    result = await m.venue.relay_oracle_report(
        source_id=source_id, underlying=underlying, price_raw=price_raw, ts_ns=ts_ns,
        vol_surface=slices, signature=signature, pipeline=call.pipeline)
    _accepted(result)
    return {"accepted": True, "height": result.height}


def _six_ints(item: Any) -> tuple[int, int, int, int, int, int]:
    if type(item) is not list or len(item) != 6 or any(type(x) is not int for x in item):
        raise errors.invalid_param("vol_surface", "each slice is [expiry_ns, a, b, rho, m, sigma]")
    expiry_ns, a, b, rho, m, sigma = (int64("vol_surface", x) for x in item)
    return expiry_ns, a, b, rho, m, sigma


def _accepted(result: CommandResult) -> CommandResult:
    """The result of a command the state machine accepted; a rejection is an error."""
    if result.rejection is not None:
        raise rejection_error(result.rejection.reason, result.rejection.detail)
    return result


async def _create_account(m: Methods, call: Call) -> Any:
    if not m.demo_mode:
        raise ApiError(errors.FORBIDDEN, {"reason": "account creation is open only in demo mode"})
    deposit_raw = call.params.fixed("deposit", required=False, positive=False) or 0
    account_id = await m.venue.create_account(deposit_raw)
    key = m.keys.create(account_id)
    return {"account_id": account_id, "client_id": key.client_id,
            "client_secret": key.client_secret, "deposit": money(deposit_raw)}


async def _deposit(m: Methods, call: Call) -> Any:
    if not m.demo_mode:
        raise ApiError(errors.FORBIDDEN, {"reason": "deposits through the API are demo-only"})
    amount_raw = call.params.fixed("amount")
    assert amount_raw is not None
    _accepted(await m.venue.deposit(call.account_id, amount_raw))
    summary = await m.venue.account_summary(call.account_id)
    return shapes.account_summary(summary) if summary is not None else None


# --- private: trading -------------------------------------------------------------------------


def _order_id(call: Call) -> int:
    value = call.params.raw.get("order_id")
    if type(value) is str:
        value = ascii_int(value)
    if type(value) is not int or value < 0:
        raise ApiError(errors.INVALID_PARAMS, {"param": "order_id", "reason": "unknown order id"})
    return int64("order_id", value, low=0)


def _label(call: Call) -> str:
    label = call.params.string("label", required=False, default="", max_len=limits.labels_bytes_max)
    if len(label.encode()) > limits.labels_bytes_max:
        raise errors.invalid_param("label", f"at most {limits.labels_bytes_max} bytes")
    return label


def _amount(call: Call, contract_size_raw: int | None = None) -> int:
    """``amount`` (units of the underlying), or ``contracts`` x the contract size."""
    if call.params.has("amount") or not call.params.has("contracts") or not contract_size_raw:
        amount = call.params.fixed("amount")
        assert amount is not None
        return amount
    contracts = call.params.decimal("contracts")
    assert contracts is not None
    if contracts != contracts.to_integral_value() or contracts <= 0:
        raise errors.invalid_param("contracts", "a positive whole number of contracts")
    if contracts > 10**12:
        raise errors.invalid_param("contracts", "out of range")
    return int(contracts) * contract_size_raw


async def _place(m: Methods, call: Call, side: Side) -> Any:
    p = call.params
    name = p.string("instrument_name", max_len=400)
    order_type = p.named("type", shapes.ORDER_TYPE_NAMES, default=OrderType.LIMIT)
    label = _label(call)
    post_only = p.boolean("post_only")
    reduce_only = p.boolean("reduce_only")
    if is_combo_name(name):
        result = await _place_combo(m, call, name, side, order_type, label,
                                    post_only or reduce_only)
        return m._order_result(call, result)
    instrument = await m._instrument(call, name, local=True)
    amount_raw = _amount(call, instrument.contract_size_raw)
    tif = p.named("time_in_force", shapes.TIME_IN_FORCE_NAMES,
                  default=TimeInForce.GOOD_TIL_CANCELLED)
    price_raw = p.fixed("price", required=order_type is OrderType.LIMIT)
    if order_type is OrderType.MARKET:
        if post_only:
            raise errors.invalid_param("post_only", "a market order cannot be post_only")
        if tif is TimeInForce.GOOD_TIL_CANCELLED:
            tif = TimeInForce.IMMEDIATE_OR_CANCEL
    if post_only and tif in (TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL):
        raise errors.invalid_param("post_only", "post_only orders rest on the book")
    valid_until = p.optional_integer("valid_until", low=1, high=INT64_MAX // 1_000_000)
    result = await m.venue.place_order(
        call.account_id, instrument_name=name, side=side, amount_raw=amount_raw,
        order_type=order_type, price_raw=price_raw, time_in_force=tif,
        valid_until_ms=valid_until, post_only=post_only, reduce_only=reduce_only, label=label,
        **call.write_options())
    return m._order_result(call, _accepted(result))


async def _place_combo(m: Methods, call: Call, name: str, side: Side, order_type: OrderType,
                       label: str, post_or_reduce_only: bool) -> CommandResult:
    p = call.params
    legs = parse_combo(name)
    for leg in legs:
        await m._instrument(call, leg.instrument_name, local=True)
    amount_raw = _amount(call)
    tif = p.named("time_in_force", shapes.TIME_IN_FORCE_NAMES,
                  default=TimeInForce.IMMEDIATE_OR_CANCEL)
    if tif not in (TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL):
        raise ApiError(errors.INVALID_ARGS_FOR_INSTRUMENT, {
            "param": "time_in_force",
            "reason": "combo orders fill at once or not at all: immediate_or_cancel or fill_or_kill",
        })
    if order_type is not OrderType.LIMIT or post_or_reduce_only:
        raise ApiError(errors.INVALID_ARGS_FOR_INSTRUMENT,
                       {"reason": "combo orders are limit orders on the net price, without "
                                  "post_only or reduce_only"})
    price_raw = p.fixed("price", positive=False, allow_negative=True)
    assert price_raw is not None
    result = await m.venue.place_combo(
        call.account_id, legs=legs, side=side, amount_raw=amount_raw, price_raw=price_raw,
        time_in_force=tif, label=label, **call.write_options())
    return _accepted(result)


async def _buy(m: Methods, call: Call) -> Any:
    return await _place(m, call, Side.BUY)


async def _sell(m: Methods, call: Call) -> Any:
    return await _place(m, call, Side.SELL)


async def _edit(m: Methods, call: Call) -> Any:
    order_id = _order_id(call)
    if call.pipeline is not None and call.params.raw.get("post_only") is None:
        # It inherits post_only from the order as the session's earlier writes left it.
        await call.pipeline.settle()
    current = await m.venue.order(call.account_id, order_id, linearizable=False)
    if current is None:
        raise ApiError(errors.ORDER_NOT_FOUND, {"order_id": str(order_id)})
    instrument = await m.venue.instrument(current.instrument_name, linearizable=False)
    amount_raw = _amount(call, instrument.contract_size_raw if instrument else None)
    price_raw = call.params.fixed("price", required=False)
    if price_raw is None:
        price_raw = current.price_raw
    reduce_only = call.params.optional_boolean("reduce_only")
    if reduce_only is not None and reduce_only != current.reduce_only:
        raise errors.invalid_param("reduce_only", "an edit cannot change reduce_only")
    post_only = call.params.optional_boolean("post_only")
    if post_only is None:  # a post-only quote stays post-only unless told otherwise
        post_only = current.post_only
    result = await m.venue.edit_order(
        call.account_id, order_id=order_id, amount_raw=amount_raw, price_raw=price_raw or 0,
        post_only=post_only, **call.write_options())
    return m._order_result(call, _accepted(result))


async def _cancel(m: Methods, call: Call) -> Any:
    result = _accepted(await m.venue.cancel_order(call.account_id, _order_id(call),
                                                  **call.write_options()))
    if result.order is None:
        raise ApiError(errors.ORDER_NOT_FOUND)
    return shapes.order(result.order)


async def _cancel_all(m: Methods, call: Call) -> Any:
    result = _accepted(await m.venue.cancel_all(call.account_id, **call.write_options()))
    return len(result.cancelled)


async def _cancel_all_by_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    await m._instrument(call, name, local=True)
    result = _accepted(await m.venue.cancel_all(call.account_id, name, **call.write_options()))
    return len(result.cancelled)


async def _instruments_with_open_orders(m: Methods, call: Call, currency: str,
                                       label: str | None = None) -> list[str]:
    """The caller's instruments of one currency that have (labelled) open orders."""
    views = await m.venue.open_orders(call.account_id)
    return sorted({view.instrument_name for view in views
                   if _of_currency(view.instrument_name, currency)
                   and (label is None or view.label == label)})


def _of_currency(instrument_name: str, currency: str) -> bool:
    return currency in ("any", "USDC") or instrument_name.split("_", 1)[0] == currency


async def _cancel_all_by_currency(m: Methods, call: Call) -> Any:
    # The exchange cancels per account or per instrument: one command per instrument.
    currency = call.params.string("currency", max_len=10)
    options = call.write_options()
    if currency in ("any", "USDC"):
        return len(_accepted(await m.venue.cancel_all(call.account_id, **options)).cancelled)
    count = 0
    for name in await _instruments_with_open_orders(m, call, currency):
        result = await m.venue.cancel_all(call.account_id, name, **options)
        count += len(_accepted(result).cancelled)
    return count


async def _cancel_by_label(m: Methods, call: Call) -> Any:
    label = _label(call)
    if not label:
        raise errors.invalid_param("label", "value_required")
    currency = call.params.optional_string("currency", max_len=10)
    options = call.write_options()
    if currency is None or currency in ("any", "USDC"):
        result = await m.venue.cancel_by_label(call.account_id, label, **options)
        return len(_accepted(result).cancelled)
    count = 0
    for name in await _instruments_with_open_orders(m, call, currency, label):
        result = await m.venue.cancel_by_label(call.account_id, label, name, **options)
        count += len(_accepted(result).cancelled)
    return count


def _order_kind_filter(call: Call) -> str:
    kind = call.params.string("type", required=False, default="all", max_len=20)
    if kind not in ("all", "limit", "market", "stop_all", "stop_limit", "stop_market",
                    "take_all", "trigger_all"):
        raise errors.invalid_param("type", "unknown order type filter")
    return kind


async def _get_open_orders(m: Methods, call: Call) -> Any:
    kind = _order_kind_filter(call)
    views = await m.venue.open_orders(call.account_id, linearizable=call.linearizable)
    return [shapes.order(view) for view in views if kind in ("all", view.order_type.value)]


async def _get_open_orders_by_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    kind = _order_kind_filter(call)
    views = await m.venue.open_orders(call.account_id, name, linearizable=call.linearizable)
    return [shapes.order(view) for view in views if kind in ("all", view.order_type.value)]


async def _get_open_orders_by_currency(m: Methods, call: Call) -> Any:
    currency = call.params.string("currency", max_len=10)
    views = await m.venue.open_orders(call.account_id, linearizable=call.linearizable)
    return [shapes.order(view) for view in views if _of_currency(view.instrument_name, currency)]


async def _get_order_state(m: Methods, call: Call) -> Any:
    order_id = _order_id(call)
    view = await m.venue.order(call.account_id, order_id, linearizable=call.linearizable)
    if view is None:
        raise ApiError(errors.ORDER_NOT_FOUND, {"order_id": str(order_id)})
    return shapes.order(view)


async def _get_user_trades_by_instrument(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    count = _count(call)
    trades = await m.venue.user_trades(call.account_id, name, count + 1,
                                       linearizable=call.linearizable)
    trades = _sorted_trades(call, trades)
    return {"trades": [shapes.user_trade(trade, call.account_id) for trade in trades[:count]],
            "has_more": len(trades) > count}


async def _get_positions(m: Methods, call: Call) -> Any:
    currency = call.params.string("currency", required=False, default="any", max_len=10)
    kind = call.params.string("kind", required=False, default="", max_len=20)
    views = await m.venue.positions(call.account_id, linearizable=call.linearizable)
    return [
        shapes.position(view) for view in views
        if currency in ("any", "USDC", view.instrument_name.split("_", 1)[0])
        and kind in ("", "any", "option")
    ]


async def _get_position(m: Methods, call: Call) -> Any:
    name = call.params.string("instrument_name", max_len=400)
    await m._instrument(call, name)
    views = await m.venue.positions(call.account_id, linearizable=call.linearizable)
    for view in views:
        if view.instrument_name == name:
            return shapes.position(view)
    ticker = await m.venue.ticker(name, linearizable=False)
    return {
        "instrument_name": name, "kind": "option", "size": Decimal(0), "size_currency": Decimal(0),
        "direction": "zero", "average_price": Decimal(0),
        "mark_price": money(ticker.mark_price_raw) if ticker else None,
        "index_price": money(ticker.index_price_raw) if ticker else None,
        "floating_profit_loss": Decimal(0), "realized_profit_loss": Decimal(0),
        "total_profit_loss": Decimal(0), "initial_margin": Decimal(0),
        "maintenance_margin": Decimal(0), "delta": Decimal(0), "gamma": Decimal(0),
        "vega": Decimal(0), "theta": Decimal(0), "settlement_price": None,
    }


async def _get_account_summary(m: Methods, call: Call) -> Any:
    call.params.string("currency", required=False, max_len=10)
    view = await m.venue.account_summary(call.account_id, linearizable=call.linearizable)
    if view is None:
        raise ApiError(errors.NOT_FOUND, {"reason": "account has no record yet"})
    return shapes.account_summary(view)


async def _create_combo(m: Methods, call: Call) -> Any:
    trades = call.params.raw.get("trades")
    if type(trades) is not list:
        raise errors.invalid_param("trades", "must be a list of {instrument_name, amount, direction}")
    legs = []
    for index, leg in enumerate(trades[: limits.combo_legs_max + 1]):
        leg_params = Params(leg, within=f"trades[{index}]")
        name = leg_params.string("instrument_name", max_len=64)
        amount = leg_params.decimal("amount")
        side = leg_params.named("direction", shapes.SIDE_NAMES)
        if amount is None or amount != amount.to_integral_value() or amount <= 0:
            raise errors.invalid_param(f"trades[{index}].amount", "a positive whole ratio")
        ratio = int(amount) if side is Side.BUY else -int(amount)
        legs.append(ComboLeg(name, ratio))
    combo_name, ordered = make_combo(legs)
    for leg in ordered:
        await m._instrument(call, leg.instrument_name)
    now_ms = time.time_ns() // 1_000_000
    return {
        "id": combo_name,
        "instrument_id": combo_instrument_id(combo_name),
        "state": "active",
        "state_timestamp": now_ms,
        "creation_timestamp": now_ms,
        "legs": [shapes.combo_leg(leg) for leg in ordered],
    }


async def _get_combo_details(m: Methods, call: Call) -> Any:
    name = call.params.string("combo_id", max_len=400)
    legs = parse_combo(name)
    return {"id": name, "instrument_id": combo_instrument_id(name), "state": "active",
            "state_timestamp": 0,
            "creation_timestamp": 0, "legs": [shapes.combo_leg(leg) for leg in legs]}


async def _private_account_proof(m: Methods, call: Call) -> Any:
    proof = await m.venue.account_proof(call.account_id)
    if proof is None:
        raise ApiError(errors.NOT_FOUND, {"reason": "account has no record yet"})
    return proof


PUBLIC: dict[str, Handler] = {
    "auth": _auth,
    "get_time": _get_time,
    "test": _test,
    "hello": _hello,
    "status": _status,
    "get_currencies": _get_currencies,
    "get_instruments": _get_instruments,
    "get_instrument": _get_instrument,
    "get_index_price": _get_index_price,
    "get_index_price_names": _get_index_price_names,
    "get_order_book": _get_order_book,
    "ticker": _ticker,
    "get_book_summary_by_currency": _get_book_summary_by_currency,
    "get_book_summary_by_instrument": _get_book_summary_by_instrument,
    "get_last_trades_by_instrument": _get_last_trades_by_instrument,
    "get_last_trades_by_currency": _get_last_trades_by_currency,
    "get_combo_details": _get_combo_details,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "unsubscribe_all": _unsubscribe_all,
    "deltasync_cluster_status": _cluster_status,
    "deltasync_node_status": _node_status,
    "deltasync_stats": _stats,
    "deltasync_state_root": _state_root,
    "deltasync_account_proof": _account_proof,
    "deltasync_create_account": _create_account,
    "deltasync_oracle_report": _oracle_report,
}

# Commands that change state: on a WebSocket they are pipelined (see ApiServer); the
# venue asks the exchange for each command's sequencing class.
WRITE_METHODS = frozenset({
    "private/buy", "private/sell", "private/edit", "private/cancel", "private/cancel_all",
    "private/cancel_all_by_instrument", "private/cancel_all_by_currency",
    "private/cancel_by_label", "public/deltasync_oracle_report",
})

PRIVATE: dict[str, Handler] = {
    "buy": _buy,
    "sell": _sell,
    "edit": _edit,
    "cancel": _cancel,
    "cancel_all": _cancel_all,
    "cancel_all_by_instrument": _cancel_all_by_instrument,
    "cancel_all_by_currency": _cancel_all_by_currency,
    "cancel_by_label": _cancel_by_label,
    "get_open_orders": _get_open_orders,
    "get_open_orders_by_instrument": _get_open_orders_by_instrument,
    "get_open_orders_by_currency": _get_open_orders_by_currency,
    "get_order_state": _get_order_state,
    "get_user_trades_by_instrument": _get_user_trades_by_instrument,
    "get_user_trades_by_currency": _get_user_trades_by_currency,
    "get_positions": _get_positions,
    "get_position": _get_position,
    "get_account_summary": _get_account_summary,
    "create_combo": _create_combo,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "unsubscribe_all": _unsubscribe_all,
    "logout": _logout,
    "deltasync_deposit": _deposit,
    "deltasync_account_proof": _private_account_proof,
}
