"""The API's read model: views of orders and trades built from the event stream.

The state machine keeps what consensus needs (open orders, positions, a few
recent trades); a trader also asks about orders that have left the book and
about their own trade history. ``ReadModel`` folds every applied block's
commands and events into bounded indexes of API views. It is derived purely
from the log, so any node (leader or follower) that feeds it the same blocks
answers the same way; it is not part of the state root.

It also turns each command's events into the ``CommandResult`` the gateway
returns, and each block into the ``BlockUpdate`` subscribers receive
(including exact book level changes, found by diffing the touched books).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from deltasync.api import venue as v
from deltasync.core.fixed import NOTIONAL_DIVISOR, Price, Quantity
from deltasync.exchange import commands as xc
from deltasync.exchange import events as xe
from deltasync.exchange.liquidation import LIQUIDATION_LABEL
from deltasync.exchange.oracle import IndexPriceUpdated, OracleReportRejected
from deltasync.exchange.settlement import InstrumentSettled

ORDERS_KEPT_MAX = 200_000  # closed orders are forgotten oldest first beyond this
TRADES_PER_INSTRUMENT_MAX = 1_000
TRADES_PER_ACCOUNT_INSTRUMENT_MAX = 1_000
ACCOUNTS_TRACKED_MAX = 100_000
LIQUIDATION_ORDERS_KEPT_MAX = 10_000

_SIDE = {xc.Side.BUY: v.Direction.BUY, xc.Side.SELL: v.Direction.SELL}
_TYPE = {xc.OrderType.LIMIT: v.OrderType.LIMIT, xc.OrderType.MARKET: v.OrderType.MARKET}
_TIF = {
    xc.TimeInForce.GOOD_TIL_CANCELLED: v.TimeInForce.GOOD_TIL_CANCELLED,
    xc.TimeInForce.GOOD_TIL_TIME: v.TimeInForce.GOOD_TIL_DAY,
    xc.TimeInForce.IMMEDIATE_OR_CANCEL: v.TimeInForce.IMMEDIATE_OR_CANCEL,
    xc.TimeInForce.FILL_OR_KILL: v.TimeInForce.FILL_OR_KILL,
}
_TIF_TO_EXCHANGE = {view: exchange for exchange, view in _TIF.items()}
_CANCEL_REASON = {
    xe.CancelReason.USER: "user_request",
    xe.CancelReason.UNFILLED: "immediate_or_cancel",
    xe.CancelReason.SELF_TRADE: "self_trade",
    xe.CancelReason.INSTRUMENT_EXPIRED: "instrument_expired",
    xe.CancelReason.FILL_LIMIT: "fill_limit",
    xe.CancelReason.RISK: "liquidation",
    xe.CancelReason.SETTLEMENT: "settlement",
}

BookReader = Callable[[str], tuple[Sequence[tuple[int, int]], Sequence[tuple[int, int]]] | None]


class ReadModel:
    """Fold blocks into views. ``book_levels(name)`` reads a book's full depth
    ((price_raw, amount_raw) bids and asks) from the state after the block."""

    def __init__(self, book_levels: BookReader) -> None:
        self._book_levels = book_levels
        self.orders: OrderedDict[int, v.OrderView] = OrderedDict()
        self.trades: dict[str, deque[v.TradeView]] = {}
        self.user_trades: OrderedDict[int, dict[str, deque[v.TradeView]]] = OrderedDict()
        self.trade_seq: dict[str, int] = {}
        self.change_ids: dict[str, int] = {}
        self._levels: dict[str, dict[tuple[v.Direction, int], int]] = {}
        self.event_counts: dict[str, int] = {}  # by event class name: the demo's summary
        self.settlement_prices: dict[str, int] = {}  # instrument -> Price raw, once settled
        self._liquidation_orders: OrderedDict[int, None] = OrderedDict()
        self.height = 0
        self.time_ns = 0

    # --- commands -> exchange commands ------------------------------------------------

    @staticmethod
    def to_exchange(account: int, command: v.VenueCommand, time_ns: int) -> xc.Command:
        """Translate an API command (validated shapes already) for the state machine."""
        match command:
            case v.PlaceOrder():
                tif = _TIF_TO_EXCHANGE[command.time_in_force]
                expire_at_ns = 0
                if command.valid_until_ms is not None:
                    tif = xc.TimeInForce.GOOD_TIL_TIME
                    expire_at_ns = command.valid_until_ms * 1_000_000
                elif tif is xc.TimeInForce.GOOD_TIL_TIME:
                    day_ns = 86_400 * 1_000_000_000
                    expire_at_ns = (time_ns // day_ns + 1) * day_ns
                market = command.order_type is v.OrderType.MARKET
                return xc.PlaceOrder(
                    account=account, instrument=command.instrument_name,
                    side=xc.Side.BUY if command.direction is v.Direction.BUY else xc.Side.SELL,
                    amount=Quantity(command.amount_raw),
                    price=None if market or command.price_raw is None else Price(command.price_raw),
                    order_type=xc.OrderType.MARKET if market else xc.OrderType.LIMIT,
                    time_in_force=tif, expire_at_ns=expire_at_ns, post_only=command.post_only,
                    reduce_only=command.reduce_only, label=command.label,
                )
            case v.PlaceComboOrder():
                legs = tuple(
                    xc.ComboLeg(leg.instrument_name,
                                xc.Side.BUY if leg.ratio > 0 else xc.Side.SELL, abs(leg.ratio))
                    for leg in command.legs
                )
                return xc.PlaceCombo(
                    account=account, legs=legs,
                    side=xc.Side.BUY if command.direction is v.Direction.BUY else xc.Side.SELL,
                    amount=Quantity(command.amount_raw), price=Price(command.price_raw),
                    time_in_force=xc.TimeInForce.FILL_OR_KILL
                    if command.time_in_force is v.TimeInForce.FILL_OR_KILL
                    else xc.TimeInForce.IMMEDIATE_OR_CANCEL,
                    label=command.label,
                )
            case v.EditOrder():
                return xc.EditOrder(account=account, order_id=command.order_id,
                                    price=Price(command.price_raw or 0),
                                    amount=Quantity(command.amount_raw),
                                    post_only=bool(command.post_only))
            case v.CancelOrder():
                return xc.CancelOrder(account=account, order_id=command.order_id)
            case v.CancelAll():
                return xc.CancelAll(account=account, instrument=command.instrument_name)
            case v.CancelByLabel():
                return xc.CancelByLabel(account=account, label=command.label,
                                        instrument=command.instrument_name)
            case v.SubmitOracleReport():
                report: xc.Command = command.report
                return report
        raise AssertionError(f"untranslated command {command!r}")

    # --- blocks -------------------------------------------------------------------------

    def apply(
        self,
        height: int,
        time_ns: int,
        commands: Sequence[tuple[v.VenueCommand | None, xc.Command]],
        per_command_events: Sequence[Sequence[Any]],
        block_events: Iterable[Any] = (),
    ) -> tuple[list[v.CommandResult], v.BlockUpdate]:
        """Fold one block. ``commands[i]`` is (the API command or None, the exchange
        command); ``per_command_events[i]`` its events; ``block_events`` the events
        not caused by a command (expiry, settlement, ...)."""
        assert len(commands) == len(per_command_events)
        self.height, self.time_ns = height, time_ns
        time_ms = time_ns // 1_000_000
        block = _BlockFold(height, time_ms)
        results = []
        for (api_command, command), events in zip(commands, per_command_events, strict=True):
            results.append(self._fold_command(block, api_command, command, events))
        self._fold_events(block, None, None, list(block_events))
        levels = self._diff_books(block.instruments_touched)
        update = v.BlockUpdate(
            height=height, time_ns=time_ns,
            orders=tuple(self.orders[order_id] for order_id in block.orders_changed
                         if order_id in self.orders),
            trades=tuple(block.trades), levels=tuple(levels),
            indexes=tuple(block.indexes[name] for name in sorted(block.indexes)),
            accounts=tuple(sorted(block.accounts)),
            instruments=tuple(sorted(block.instruments_touched)),
        )
        return results, update

    def _fold_command(self, block: _BlockFold, api_command: v.VenueCommand | None,
                      command: Any, events: Sequence[Any]) -> v.CommandResult:
        account = getattr(command, "account", None)  # extension commands may have none
        if type(account) is int:
            block.accounts.add(account)
        result = _CommandFold()
        self._fold_events(block, result, command, events)
        order = None
        if result.order_id is not None:
            order = self.orders.get(result.order_id)
        if result.combo is not None:
            order = result.combo
        if isinstance(command, xc.PlaceCombo) and order is not None:
            order = replace(order, combo_name=_combo_name(command),
                            price_raw=command.price.raw, label=command.label)
            self._put_order(order)  # a filled combo is an order a trader can look up
            block.touch(order)
        return v.CommandResult(height=block.height, rejection=result.rejection, order=order,
                               trades=tuple(result.trades), cancelled=tuple(result.cancelled))

    def _fold_events(self, block: _BlockFold, result: _CommandFold | None,
                     command: xc.Command | None, events: Sequence[Any]) -> None:
        for event in events:
            self._fold_event(block, result, command, event)

    def _fold_event(self, block: _BlockFold, result: _CommandFold | None,
                    command: xc.Command | None, event: Any) -> None:
        time_ms = block.time_ms
        kind = type(event).__name__
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        match event:
            case xe.OrderAccepted():
                if result is None and event.label == LIQUIDATION_LABEL:
                    # Placed by the liquidation engine itself (no client command).
                    self._liquidation_orders[event.order_id] = None
                    while len(self._liquidation_orders) > LIQUIDATION_ORDERS_KEPT_MAX:
                        self._liquidation_orders.popitem(last=False)
                post_only = reduce_only = False
                if isinstance(command, xc.PlaceOrder):
                    post_only, reduce_only = command.post_only, command.reduce_only
                accepted = v.OrderView(
                    order_id=event.order_id, account_id=event.account,
                    instrument_name=event.instrument, direction=_SIDE[event.side],
                    order_type=_TYPE[event.order_type], time_in_force=_TIF[event.time_in_force],
                    price_raw=event.price.raw, amount_raw=event.amount.raw, filled_amount_raw=0,
                    average_price_raw=0, order_state=v.OrderState.OPEN, post_only=post_only,
                    reduce_only=reduce_only, label=event.label, creation_timestamp_ms=time_ms,
                    last_update_timestamp_ms=time_ms,
                )
                self._put_order(accepted)
                block.touch(accepted)
                if result is not None:
                    result.order_id = event.order_id
            case xe.Trade():
                self._fold_trade(block, result, event)
            case xe.OrderCancelled():
                view = self.orders.get(event.order_id)
                if view is not None:
                    filled = view.filled_amount_raw
                    state = v.OrderState.FILLED if (
                        filled == view.amount_raw) else v.OrderState.CANCELLED
                    view = replace(view, order_state=state, last_update_timestamp_ms=time_ms,
                                   cancel_reason=_CANCEL_REASON.get(event.reason, "other"))
                    self._put_order(view)
                    block.touch(view)
                    if result is not None:
                        result.cancelled.append(view)
                        if result.order_id is None:
                            result.order_id = event.order_id
                block.accounts.add(event.account)
                block.instruments_touched.add(event.instrument)
            case xe.OrderExpired():
                view = self.orders.get(event.order_id)
                if view is not None:
                    view = replace(view, order_state=v.OrderState.CANCELLED,
                                   cancel_reason="expired", last_update_timestamp_ms=time_ms)
                    self._put_order(view)
                    block.touch(view)
                block.accounts.add(event.account)
                block.instruments_touched.add(event.instrument)
            case xe.OrderEdited():
                view = self.orders.get(event.order_id)
                if view is not None:
                    view = replace(view, price_raw=event.price.raw, amount_raw=event.amount.raw,
                                   last_update_timestamp_ms=time_ms, replaced=True)
                    self._put_order(view)
                    block.touch(view)
                if result is not None:
                    result.order_id = event.order_id
                block.instruments_touched.add(event.instrument)
            case xe.OrderRejected() | xe.CancelRejected() | xe.ComboRejected() | \
                    xe.WithdrawRejected() | xe.ListingRejected():
                if result is not None and result.rejection is None:
                    result.rejection = v.Rejection(event.reason.code)
            case xe.ComboFilled():
                if result is not None:
                    result.combo = v.OrderView(
                        order_id=event.combo_id, account_id=event.account, instrument_name="",
                        direction=_SIDE[event.side], order_type=v.OrderType.LIMIT,
                        time_in_force=v.TimeInForce.IMMEDIATE_OR_CANCEL,
                        price_raw=None, amount_raw=event.amount.raw,
                        filled_amount_raw=event.amount.raw,
                        average_price_raw=_per_unit(event.premium.raw * NOTIONAL_DIVISOR,
                                                    event.amount.raw),
                        order_state=v.OrderState.FILLED, post_only=False, reduce_only=False,
                        label=event.label, creation_timestamp_ms=time_ms,
                        last_update_timestamp_ms=time_ms,
                    )
                block.accounts.add(event.account)
            case xe.Deposited() | xe.Withdrawn():
                block.accounts.add(event.account)
            case xe.InstrumentListed() | xe.InstrumentExpired():
                block.instruments_touched.add(event.instrument)
            case OracleReportRejected():
                if result is not None and result.rejection is None:
                    result.rejection = v.Rejection(event.reason.value, {"detail": event.detail})
            case InstrumentSettled():
                self.settlement_prices[event.instrument] = event.settlement_price.raw
                block.instruments_touched.add(event.instrument)
            case IndexPriceUpdated():
                name = f"{event.underlying.lower()}_usdc"
                block.indexes[name] = v.IndexView(name, event.price.raw,
                                                  event.block_time_ns // 1_000_000)
            case _:
                # Events of other owners (oracle, margin): accounts they name changed.
                account = getattr(event, "account", None)
                if type(account) is int:
                    block.accounts.add(account)

    def _fold_trade(self, block: _BlockFold, result: _CommandFold | None, event: xe.Trade) -> None:
        name = event.instrument
        seq = self.trade_seq.get(name, 0) + 1
        self.trade_seq[name] = seq
        trade = v.TradeView(
            trade_id=event.trade_id, trade_seq=seq, instrument_name=name,
            price_raw=event.price.raw, amount_raw=event.amount.raw,
            direction=_SIDE[event.taker_side], timestamp_ms=block.time_ms,
            taker_account_id=event.taker_account, maker_account_id=event.maker_account,
            taker_order_id=event.taker_order_id, maker_order_id=event.maker_order_id,
            taker_fee_raw=event.taker_fee.raw, maker_fee_raw=event.maker_fee.raw,
            liquidation=event.taker_order_id in self._liquidation_orders,
        )
        self.trades.setdefault(name, deque(maxlen=TRADES_PER_INSTRUMENT_MAX)).append(trade)
        for account in {event.taker_account, event.maker_account}:
            self._user_trades(account, name).append(trade)
            block.accounts.add(account)
        for order_id in (event.taker_order_id, event.maker_order_id):
            view = self.orders.get(order_id)
            if view is None:
                continue
            filled = view.filled_amount_raw + event.amount.raw
            average = _per_unit(
                view.average_price_raw * view.filled_amount_raw + event.price.raw * event.amount.raw,
                filled,
            )
            state = v.OrderState.FILLED if filled >= view.amount_raw else view.order_state
            view = replace(view, filled_amount_raw=filled, average_price_raw=average,
                           order_state=state, last_update_timestamp_ms=block.time_ms)
            self._put_order(view)
            block.touch(view)
        block.trades.append(trade)
        block.instruments_touched.add(name)
        if result is not None:
            result.trades.append(trade)

    def _user_trades(self, account: int, name: str) -> deque[v.TradeView]:
        by_instrument = self.user_trades.pop(account, None) or {}
        self.user_trades[account] = by_instrument  # most recently used last
        while len(self.user_trades) > ACCOUNTS_TRACKED_MAX:
            self.user_trades.popitem(last=False)
        return by_instrument.setdefault(name, deque(maxlen=TRADES_PER_ACCOUNT_INSTRUMENT_MAX))

    def _put_order(self, view: v.OrderView) -> None:
        self.orders.pop(view.order_id, None)
        self.orders[view.order_id] = view
        # Forget the oldest closed orders first; open orders are never forgotten.
        while len(self.orders) > ORDERS_KEPT_MAX:
            for order_id, old in self.orders.items():
                if old.order_state is not v.OrderState.OPEN:
                    del self.orders[order_id]
                    break
            else:
                break

    def _diff_books(self, names: set[str]) -> list[v.LevelChange]:
        changes: list[v.LevelChange] = []
        for name in sorted(names):
            depth = self._book_levels(name)
            if depth is None:
                continue
            bids, asks = depth
            now = {(v.Direction.BUY, price): amount for price, amount in bids}
            now.update({(v.Direction.SELL, price): amount for price, amount in asks})
            before = self._levels.get(name, {})
            changed = False
            for key in sorted(before.keys() | now.keys(), key=lambda k: (k[0].value, k[1])):
                amount = now.get(key, 0)
                if before.get(key, 0) != amount:
                    changes.append(v.LevelChange(name, key[0], key[1], amount))
                    changed = True
            self._levels[name] = now
            if changed:
                self.change_ids[name] = self.height
        return changes

    def forget_levels(self) -> None:
        """Drop the cached books: the next diff of a book lists all its levels."""
        self._levels.clear()

    # --- queries -------------------------------------------------------------------------

    def order(self, account: int, order_id: int) -> v.OrderView | None:
        view = self.orders.get(order_id)
        return view if view is not None and view.account_id == account else None

    def last_trades(self, name: str, count: int) -> list[v.TradeView]:
        trades = self.trades.get(name)
        return list(trades)[-count:] if trades else []

    def account_trades(self, account: int, name: str, count: int) -> list[v.TradeView]:
        trades = self.user_trades.get(account, {}).get(name)
        return list(trades)[-count:] if trades else []

    def fees_paid(self, account: int) -> int:
        total = 0
        for trades in self.user_trades.get(account, {}).values():
            for trade in trades:
                if trade.taker_account_id == account:
                    total += trade.taker_fee_raw
                if trade.maker_account_id == account:
                    total += trade.maker_fee_raw
        return total


class _BlockFold:
    __slots__ = ("height", "time_ms", "orders_changed", "trades", "accounts", "instruments_touched",
                 "indexes")

    def __init__(self, height: int, time_ms: int) -> None:
        self.height = height
        self.time_ms = time_ms
        self.orders_changed: dict[int, None] = {}
        self.trades: list[v.TradeView] = []
        self.accounts: set[int] = set()
        self.instruments_touched: set[str] = set()
        self.indexes: dict[str, v.IndexView] = {}

    def touch(self, view: v.OrderView) -> None:
        self.orders_changed.pop(view.order_id, None)
        self.orders_changed[view.order_id] = None
        self.accounts.add(view.account_id)
        if view.instrument_name:
            self.instruments_touched.add(view.instrument_name)


class _CommandFold:
    __slots__ = ("order_id", "combo", "rejection", "trades", "cancelled")

    def __init__(self) -> None:
        self.order_id: int | None = None
        self.combo: v.OrderView | None = None
        self.rejection: v.Rejection | None = None
        self.trades: list[v.TradeView] = []
        self.cancelled: list[v.OrderView] = []


def _per_unit(amount_raw: int, quantity_raw: int) -> int:
    """An average price (Price raw) from a money total (price raw x quantity raw units)."""
    if quantity_raw == 0:
        return 0
    return amount_raw // quantity_raw


def _combo_name(command: xc.PlaceCombo) -> str | None:
    """The API's self-describing name of a combo command's legs (any node derives it)."""
    from deltasync.api.combos import make_combo
    from deltasync.api.errors import ApiError

    legs = [v.ComboLeg(leg.instrument, leg.ratio if leg.side is xc.Side.BUY else -leg.ratio)
            for leg in command.legs]
    try:
        return make_combo(legs)[0]
    except ApiError:
        return None
