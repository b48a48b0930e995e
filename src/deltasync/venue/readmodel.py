"""The venue's read model: views of orders and trades built from the block stream.

The state machine keeps what consensus needs (open orders, positions, a few
recent trades); a trader also asks about orders that have left the book and
about their own trade history. ``ReadModel`` folds every applied block's
commands and events into bounded indexes of views. It is derived purely from
the log, so any node (leader or follower) that feeds it the same blocks
answers the same way; it is not part of the state root.

``result_of`` turns one command's events into the ``CommandResult`` its
client gets: right after the command is folded for a fresh command, and on
the original events for a retried one (the node's session table keeps them).
Each block becomes the ``BlockUpdate`` subscribers receive (including exact
book level changes, found by diffing the touched books).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import replace
from typing import Any

from deltasync.core import limits
from deltasync.core.fixed import NOTIONAL_DIVISOR
from deltasync.exchange import commands as xc
from deltasync.exchange import events as xe
from deltasync.exchange.liquidation import LIQUIDATION_LABEL
from deltasync.exchange.oracle import IndexPriceUpdated, OracleReportRejected
from deltasync.exchange.settlement import InstrumentSettled
from deltasync.venue import views as v
from deltasync.venue.combos import make_combo
from deltasync.venue.commands import account_of
from deltasync.venue.errors import VenueError

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
        self._trades_by_id: OrderedDict[int, v.TradeView] = OrderedDict()
        self.trade_seq: dict[str, int] = {}
        self.change_ids: dict[str, int] = {}
        self._levels: dict[str, dict[tuple[v.Side, int], int]] = {}
        self.event_counts: dict[str, int] = {}  # by event class name: the demo's summary
        self.settlement_prices: dict[str, int] = {}  # instrument -> Price raw, once settled
        self._liquidation_orders: OrderedDict[int, None] = OrderedDict()
        self.height = 0
        self.time_ns = 0

    # --- blocks -------------------------------------------------------------------------

    def apply(
        self,
        height: int,
        time_ns: int,
        commands: Sequence[Any],
        per_command_events: Sequence[Sequence[Any]],
        block_events: Iterable[Any] = (),
        wanted: Container[int] = (),
    ) -> tuple[dict[int, v.CommandResult], v.BlockUpdate]:
        """Fold one block: ``commands[i]`` (an exchange command) had the events
        ``per_command_events[i]``; ``block_events`` are the events no command
        caused (expiry, settlement, ...). Returns the result of each command whose
        index is ``wanted`` (someone waits for it), as of right after that command."""
        assert len(commands) == len(per_command_events)
        self.height, self.time_ns = height, time_ns
        block = _BlockFold(height, time_ns // 1_000_000)
        results: dict[int, v.CommandResult] = {}
        for index, (command, events) in enumerate(zip(commands, per_command_events, strict=True)):
            self._fold_command(block, command, events)
            if index in wanted:
                results[index] = self.result_of(height, events)
        for event in block_events:
            self._fold_event(block, None, event)
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

    def result_of(self, height: int, events: Sequence[Any]) -> v.CommandResult:
        """What a command did, from its events and the views they were folded into."""
        rejection: v.Rejection | None = None
        order_id: int | None = None
        combo: v.OrderView | None = None
        trades: list[v.TradeView] = []
        cancelled: list[v.OrderView] = []
        for event in events:
            match event:
                case xe.OrderAccepted() | xe.OrderEdited():
                    order_id = event.order_id
                case xe.OrderCancelled():
                    view = self.orders.get(event.order_id)
                    if view is not None:
                        cancelled.append(view)
                        order_id = event.order_id if order_id is None else order_id
                case xe.Trade():
                    trade = self._trades_by_id.get(event.trade_id)
                    if trade is not None:
                        trades.append(trade)
                case xe.ComboFilled():
                    combo = self.orders.get(event.combo_id)
                case (xe.OrderRejected() | xe.CancelRejected() | xe.ComboRejected()
                      | xe.WithdrawRejected() | xe.ListingRejected()) if rejection is None:
                    rejection = v.Rejection(event.reason.code)
                case OracleReportRejected() if rejection is None:
                    rejection = v.Rejection(event.reason.value, {"detail": event.detail})
        order = combo if combo is not None else (
            None if order_id is None else self.orders.get(order_id))
        return v.CommandResult(height=height, rejection=rejection, order=order,
                               trades=tuple(trades), cancelled=tuple(cancelled))

    def _fold_command(self, block: _BlockFold, command: Any, events: Sequence[Any]) -> None:
        account = account_of(command)
        if account is not None:
            block.accounts.add(account)
        for event in events:
            self._fold_event(block, command, event)
        if isinstance(command, xc.PlaceCombo):
            # After the legs' trades, whose taker order id is the combo's own id.
            for event in events:
                if isinstance(event, xe.ComboFilled):
                    self._fold_combo(block, command, event)

    def _fold_event(self, block: _BlockFold, command: Any, event: Any) -> None:
        """``command`` is the command that caused ``event`` (None: a block event)."""
        kind = type(event).__name__
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        match event:
            case xe.OrderAccepted():
                self._fold_accepted(block, command, event)
            case xe.Trade():
                self._fold_trade(block, event)
            case xe.OrderCancelled():
                self._fold_closed(block, event.order_id, None, _CANCEL_REASON.get(
                    event.reason, "other"))
                block.touch_instrument(event.account, event.instrument)
            case xe.OrderExpired():
                self._fold_closed(block, event.order_id, v.OrderStatus.EXPIRED, "expired")
                block.touch_instrument(event.account, event.instrument)
            case xe.OrderEdited():
                self._fold_edited(block, event)
            case (xe.OrderRejected() | xe.CancelRejected() | xe.ComboRejected()
                  | xe.WithdrawRejected() | xe.ListingRejected() | OracleReportRejected()):
                pass  # nothing changed; the command's result reads them (``result_of``)
            case xe.ComboFilled() | xe.Deposited() | xe.Withdrawn():
                block.accounts.add(event.account)
            case xe.InstrumentListed() | xe.InstrumentExpired():
                block.instruments_touched.add(event.instrument)
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

    def _fold_accepted(self, block: _BlockFold, command: Any, event: xe.OrderAccepted) -> None:
        if command is None and event.label == LIQUIDATION_LABEL:
            # Placed by the liquidation engine itself (no client command).
            self._liquidation_orders[event.order_id] = None
            while len(self._liquidation_orders) > limits.venue_liquidation_orders_kept_max:
                self._liquidation_orders.popitem(last=False)
        post_only = reduce_only = False
        if isinstance(command, xc.PlaceOrder):
            post_only, reduce_only = command.post_only, command.reduce_only
        time_ms = block.time_ms
        accepted = v.OrderView(
            order_id=event.order_id, account_id=event.account, instrument_name=event.instrument,
            side=event.side, order_type=event.order_type, time_in_force=event.time_in_force,
            price_raw=event.price.raw, amount_raw=event.amount.raw, filled_amount_raw=0,
            average_price_raw=0, order_state=v.OrderStatus.OPEN, post_only=post_only,
            reduce_only=reduce_only, label=event.label, creation_timestamp_ms=time_ms,
            last_update_timestamp_ms=time_ms,
        )
        self._put_order(accepted)
        block.touch(accepted)

    def _fold_closed(self, block: _BlockFold, order_id: int, state: v.OrderStatus | None,
                     cancel_reason: str) -> None:
        """An order left the book; ``state`` None: filled if it filled whole, else cancelled."""
        view = self.orders.get(order_id)
        if view is None:
            return
        if state is None:
            state = (v.OrderStatus.FILLED if view.filled_amount_raw == view.amount_raw
                     else v.OrderStatus.CANCELLED)
        view = replace(view, order_state=state, last_update_timestamp_ms=block.time_ms,
                       cancel_reason=cancel_reason)
        self._put_order(view)
        block.touch(view)

    def _fold_edited(self, block: _BlockFold, event: xe.OrderEdited) -> None:
        view = self.orders.get(event.order_id)
        if view is not None:
            view = replace(view, price_raw=event.price.raw, amount_raw=event.amount.raw,
                           last_update_timestamp_ms=block.time_ms, replaced=True)
            self._put_order(view)
            block.touch(view)
        block.instruments_touched.add(event.instrument)

    def _fold_combo(self, block: _BlockFold, command: xc.PlaceCombo,
                    event: xe.ComboFilled) -> None:
        """A filled combo is an order a trader can look up, named after its legs."""
        time_ms = block.time_ms
        view = v.OrderView(
            order_id=event.combo_id, account_id=event.account, instrument_name="",
            side=event.side, order_type=v.OrderType.LIMIT,
            time_in_force=v.TimeInForce.IMMEDIATE_OR_CANCEL,
            price_raw=command.price.raw, amount_raw=event.amount.raw,
            filled_amount_raw=event.amount.raw,
            average_price_raw=_per_unit(event.premium.raw * NOTIONAL_DIVISOR, event.amount.raw),
            order_state=v.OrderStatus.FILLED, post_only=False, reduce_only=False,
            label=command.label, creation_timestamp_ms=time_ms, last_update_timestamp_ms=time_ms,
            combo_name=_combo_name(command),
        )
        self._put_order(view)
        block.touch(view)

    def _fold_trade(self, block: _BlockFold, event: xe.Trade) -> None:
        name = event.instrument
        seq = self.trade_seq.get(name, 0) + 1
        self.trade_seq[name] = seq
        trade = v.TradeView(
            trade_id=event.trade_id, trade_seq=seq, instrument_name=name,
            price_raw=event.price.raw, amount_raw=event.amount.raw,
            side=event.taker_side, timestamp_ms=block.time_ms,
            taker_account_id=event.taker_account, maker_account_id=event.maker_account,
            taker_order_id=event.taker_order_id, maker_order_id=event.maker_order_id,
            taker_fee_raw=event.taker_fee.raw, maker_fee_raw=event.maker_fee.raw,
            liquidation=event.taker_order_id in self._liquidation_orders,
        )
        self._remember_trade(trade)
        for account in {event.taker_account, event.maker_account}:
            self._user_trades(account, name).append(trade)
            block.accounts.add(account)
        for order_id in (event.taker_order_id, event.maker_order_id):
            self._fold_fill(block, order_id, event)
        block.trades.append(trade)
        block.instruments_touched.add(name)

    def _fold_fill(self, block: _BlockFold, order_id: int, event: xe.Trade) -> None:
        view = self.orders.get(order_id)
        if view is None:
            return
        filled = view.filled_amount_raw + event.amount.raw
        average = _per_unit(
            view.average_price_raw * view.filled_amount_raw + event.price.raw * event.amount.raw,
            filled,
        )
        state = v.OrderStatus.FILLED if filled >= view.amount_raw else view.order_state
        view = replace(view, filled_amount_raw=filled, average_price_raw=average,
                       order_state=state, last_update_timestamp_ms=block.time_ms)
        self._put_order(view)
        block.touch(view)

    def _remember_trade(self, trade: v.TradeView) -> None:
        name = trade.instrument_name
        trades = self.trades.get(name)
        if trades is None:
            trades = self.trades[name] = deque(maxlen=limits.venue_trades_per_instrument_max)
        trades.append(trade)
        self._trades_by_id[trade.trade_id] = trade
        while len(self._trades_by_id) > limits.venue_trades_by_id_kept_max:
            self._trades_by_id.popitem(last=False)

    def _user_trades(self, account: int, name: str) -> deque[v.TradeView]:
        by_instrument = self.user_trades.pop(account, None) or {}
        self.user_trades[account] = by_instrument  # most recently used last
        while len(self.user_trades) > limits.venue_accounts_tracked_max:
            self.user_trades.popitem(last=False)
        return by_instrument.setdefault(
            name, deque(maxlen=limits.venue_trades_per_account_instrument_max))

    def _put_order(self, view: v.OrderView) -> None:
        self.orders.pop(view.order_id, None)
        self.orders[view.order_id] = view
        # Forget the oldest closed orders first; open orders are never forgotten.
        while len(self.orders) > limits.venue_orders_kept_max:
            for order_id, old in self.orders.items():
                if old.order_state is not v.OrderStatus.OPEN:
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
            now = {(v.Side.BUY, price): amount for price, amount in bids}
            now.update({(v.Side.SELL, price): amount for price, amount in asks})
            before = self._levels.get(name, {})
            changed = False
            for key in sorted(before.keys() | now.keys(), key=lambda k: (_SIDE_ORDER[k[0]], k[1])):
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


# Level changes list bids before asks, as the old "buy" < "sell" spelling sorted them.
_SIDE_ORDER = {v.Side.BUY: 0, v.Side.SELL: 1}


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

    def touch_instrument(self, account: int, instrument: str) -> None:
        self.accounts.add(account)
        self.instruments_touched.add(instrument)


def _per_unit(amount_raw: int, quantity_raw: int) -> int:
    """An average price (Price raw) from a money total (price raw x quantity raw units)."""
    if quantity_raw == 0:
        return 0
    return amount_raw // quantity_raw


def _combo_name(command: xc.PlaceCombo) -> str | None:
    """The self-describing name of a combo command's legs (any node derives it)."""
    legs = [v.ComboLeg(leg.instrument, leg.ratio if leg.side is xc.Side.BUY else -leg.ratio)
            for leg in command.legs]
    try:
        return make_combo(legs)[0]
    except VenueError:
        return None
