"""Reads of an ``ExchangeState`` as views, shared by every venue.

``StateReads`` holds the venue's read model and answers the ``Venue`` read
methods from a state machine instance (``self.state``) plus the read model;
``fold_block`` feeds both from an applied block and publishes the resulting
``BlockUpdate`` to ``blocks()`` subscribers. ``_barrier`` is the wait that
makes a read linearizable (a ReadIndex round on a replicated node).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Container, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from deltasync.core import limits
from deltasync.core.codec import decode
from deltasync.core.fixed import NOTIONAL_DIVISOR, QUANTITY_SCALE
from deltasync.exchange import queries, records
from deltasync.exchange.book import BUY, SELL
from deltasync.exchange.instruments import PPM, Instrument
from deltasync.exchange.queries import OrderSummary
from deltasync.exchange.state import ExchangeState
from deltasync.venue import views as v
from deltasync.venue.marks import Marks, compute_marks
from deltasync.venue.readmodel import ReadModel

DAY_MS = 86_400_000



class _BlockSubscriber:
    """A bounded queue of blocks; overflowing ends the subscriber's iterator."""

    def __init__(self, owner: StateReads) -> None:
        self.owner = owner
        self.queue: asyncio.Queue[v.BlockUpdate | None] = asyncio.Queue(
            maxsize=limits.venue_block_subscriber_queue_max)
        self.dropped = False

    def offer(self, update: v.BlockUpdate) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:
            self.end()

    def end(self) -> None:
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def iterate(self) -> AsyncIterator[v.BlockUpdate]:
        try:
            while True:
                update = await self.queue.get()
                if update is None:
                    return
                yield update
        finally:
            self.owner._subscribers.discard(self)



class StateReads:
    """The read half of a venue over an ``ExchangeState`` (see the module docstring)."""

    demo_mode: bool

    def __init__(self, vol_ppm_default: int | None = None) -> None:
        self.vol_ppm_default = vol_ppm_default  # display marks when no oracle smile exists
        self.read = ReadModel(self._book_levels)
        self._subscribers: set[_BlockSubscriber] = set()
        self._long_sizes: dict[tuple[int, str], int] = {}
        self._open_interest: dict[str, int] = {}
        self._instrument_views: dict[str, tuple[Instrument, v.InstrumentView]] = {}

    @property
    def state(self) -> ExchangeState:
        raise NotImplementedError

    async def _barrier(self, linearizable: bool) -> None:
        """Return once local state reflects every write committed before the call."""

    def fold_block(
        self,
        height: int,
        time_ns: int,
        commands: Sequence[Any],
        per_command_events: Sequence[Sequence[Any]],
        block_events: Sequence[Any],
        wanted: Container[int] = (),
    ) -> dict[int, v.CommandResult]:
        """Fold an applied block into the read model and publish it to subscribers;
        returns the results of the ``wanted`` commands (see ``ReadModel.apply``)."""
        if self.read.height and height != self.read.height + 1:
            # Blocks were skipped (a node that installed a snapshot): the cached
            # book levels are stale, so subscribers start over from fresh snapshots.
            self.read.forget_levels()
            self._reconcile_orders()
            self.end_subscribers()
        results, update = self.read.apply(height, time_ns, commands, per_command_events,
                                          block_events, wanted)
        self._update_open_interest(update)
        for subscriber in list(self._subscribers):
            subscriber.offer(update)
        return results

    def end_subscribers(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.end()

    def _update_open_interest(self, update: v.BlockUpdate) -> None:
        for trade in update.trades:
            instrument = queries.instrument(self.state, trade.instrument_name)
            if instrument is None:
                continue
            for account_id in (trade.taker_account_id, trade.maker_account_id):
                account = self.state.accounts.get(account_id)
                position = account.positions.get(instrument.instrument_id) if account else None
                long_size = max(position.size, 0) if position is not None else 0
                key = (account_id, trade.instrument_name)
                before = self._long_sizes.get(key, 0)
                if long_size:
                    self._long_sizes[key] = long_size
                else:
                    self._long_sizes.pop(key, None)
                name = trade.instrument_name
                self._open_interest[name] = self._open_interest.get(name, 0) + long_size - before



    def _book_levels(self, name: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
        # Raw levels straight from the engine's book (read-only): this runs for every
        # book a block touched, on the node's apply path, so no view objects here.
        instrument = queries.instrument(self.state, name)
        if instrument is None:
            return None
        book = self.state.books[instrument.instrument_id]
        depth = limits.api_book_depth_max
        return ([(price, amount) for price, amount, _ in book.depth(BUY, depth)],
                [(price, amount) for price, amount, _ in book.depth(SELL, depth)])

    def _instrument_view(self, instrument: Instrument) -> v.InstrumentView:
        cached = self._instrument_views.get(instrument.name)
        if cached is not None and cached[0] is instrument:  # instruments are immutable
            return cached[1]
        view = self._build_instrument_view(instrument)
        self._instrument_views[instrument.name] = (instrument, view)
        return view

    def _build_instrument_view(self, instrument: Instrument) -> v.InstrumentView:
        genesis_ms = self.state.config.genesis_time_ns // 1_000_000
        return v.InstrumentView(
            instrument_name=instrument.name, kind="option",
            base_currency=instrument.underlying, quote_currency=self.state.config.quote,
            settlement_currency=self.state.config.quote,
            option_type="call" if instrument.kind.value == "C" else "put",
            strike_raw=instrument.strike_raw,
            expiration_timestamp_ms=instrument.expiry_ns // 1_000_000,
            creation_timestamp_ms=genesis_ms, tick_size_raw=instrument.tick_raw,
            min_trade_amount_raw=instrument.min_amount_raw,
            contract_size_raw=instrument.contract_size_raw, is_active=instrument.active,
            maker_commission=Decimal(instrument.maker_fee_ppm) / PPM,
            taker_commission=Decimal(instrument.taker_fee_ppm) / PPM,
            instrument_id=instrument.instrument_id,
            tick_size_steps=tuple((tier.above_price_raw, tier.tick_raw)
                                  for tier in instrument.tick_tiers),
        )

    async def instruments(self, *, linearizable: bool = True) -> list[v.InstrumentView]:
        await self._barrier(linearizable)
        listed = queries.list_instruments(self.state, active_only=False)
        return [self._instrument_view(i) for i in listed]

    async def instrument(self, name: str, *, linearizable: bool = True) -> v.InstrumentView | None:
        await self._barrier(linearizable)
        instrument = queries.instrument(self.state, name)
        return None if instrument is None else self._instrument_view(instrument)

    # The oracle and margin extensions, when the machine has them, are the source
    # of index, vols and marks. Only their pure getters are used here: a read
    # through the API must never touch a cache that replicated work depends on.

    def _extension(self, name: str) -> Any:
        for extension in self.state.extensions:
            if extension.name == name:
                return extension
        return None

    def _index_raw(self, underlying: str) -> int | None:
        oracle_extension = self._extension("oracle")
        if oracle_extension is not None:  # no index yet: None, not a made-up price
            price = oracle_extension.oracle.index_price(underlying)
            return None if price is None else int(price.raw)
        return self.state.reference_prices.get(underlying)

    def _trading_state(self, instrument: Instrument) -> str:
        if not instrument.active:
            return "closed"
        oracle_extension = self._extension("oracle")
        if oracle_extension is not None and oracle_extension.oracle.is_cancel_only(
                instrument.underlying):
            return "cancel_only"
        return "open"

    def _margin_risk(self, instrument: Instrument) -> Any:
        """The margin engine's current figures for the instrument (mark, vol), if any."""
        margin = self._extension("margin")
        if margin is None:
            return None
        return getattr(margin, "_risks", {}).get(instrument.instrument_id)

    def _vol_ppm(self, instrument: Instrument) -> int | None:
        risk = self._margin_risk(instrument)
        if risk is not None:
            return int(risk.vol_ppm)
        oracle_extension = self._extension("oracle")
        if oracle_extension is not None:
            vol = oracle_extension.oracle.vol_at(instrument.underlying, instrument.expiry_ns,
                                                 instrument.strike_raw, self.state.time_ns)
            if vol is not None:
                return int(vol)
        margin = self._extension("margin")
        if margin is not None:
            return int(margin.config.fallback_vol_ppm(instrument.underlying))
        return self.vol_ppm_default

    def _marks(self, instrument: Instrument, best_bid_raw: int | None = None,
               best_ask_raw: int | None = None) -> Marks | None:
        spot = self._index_raw(instrument.underlying)
        margin = self._extension("margin")
        if spot is None and margin is not None:  # the margin engine marks at its own spot
            spot = margin.spot_raw(instrument.underlying)
        vol = self._vol_ppm(instrument)
        if spot is None or vol is None or spot <= 0 or vol <= 0:
            return None
        marks = compute_marks(instrument, spot, vol, self.state.time_ns, best_bid_raw,
                              best_ask_raw)
        risk = self._margin_risk(instrument)
        if risk is not None:  # the mark the margin engine uses, to the micro-USDC
            marks = replace(marks, mark_price_raw=int(risk.mark_raw))
        return marks

    def _ticker(self, instrument: Instrument) -> v.TickerView:
        name = instrument.name
        book = queries.book_depth(self.state, name, 1)
        assert book is not None
        trades = self.read.last_trades(name, 1_000)
        now_ms = self.state.time_ns // 1_000_000
        recent = [trade for trade in trades if trade.timestamp_ms >= now_ms - DAY_MS]
        index = self._index_raw(instrument.underlying)
        bid = book.bids[0] if book.bids else None
        ask = book.asks[0] if book.asks else None
        marks = self._marks(instrument, bid.price.raw if bid else None,
                            ask.price.raw if ask else None)
        return v.TickerView(
            instrument_name=name,
            state=self._trading_state(instrument),
            timestamp_ms=now_ms,
            best_bid_price_raw=bid.price.raw if bid else None,
            best_bid_amount_raw=bid.amount.raw if bid else 0,
            best_ask_price_raw=ask.price.raw if ask else None,
            best_ask_amount_raw=ask.amount.raw if ask else 0,
            last_price_raw=trades[-1].price_raw if trades else None,
            mark_price_raw=marks.mark_price_raw if marks else None,
            index_price_raw=index, underlying_price_raw=index,
            mark_iv=marks.mark_iv if marks else None, bid_iv=marks.bid_iv if marks else None,
            ask_iv=marks.ask_iv if marks else None, greeks=marks.greeks if marks else None,
            open_interest_raw=self._open_interest.get(name, 0),
            volume_raw=sum(trade.amount_raw for trade in recent),
            high_raw=max((trade.price_raw for trade in recent), default=None),
            low_raw=min((trade.price_raw for trade in recent), default=None),
            settlement_price_raw=self.read.settlement_prices.get(name),
        )

    async def ticker(self, name: str, *, linearizable: bool = True) -> v.TickerView | None:
        await self._barrier(linearizable)
        instrument = queries.instrument(self.state, name)
        return None if instrument is None else self._ticker(instrument)

    async def book(self, name: str, depth: int, *, linearizable: bool = True) -> v.BookView | None:
        await self._barrier(linearizable)
        instrument = queries.instrument(self.state, name)
        if instrument is None:
            return None
        view = queries.book_depth(self.state, name, depth)
        assert view is not None
        return v.BookView(
            ticker=self._ticker(instrument),
            bids=tuple((level.price.raw, level.amount.raw) for level in view.bids),
            asks=tuple((level.price.raw, level.amount.raw) for level in view.asks),
            change_id=self.read.change_ids.get(name, 0),
        )

    async def index_price(self, index_name: str, *, linearizable: bool = True) -> v.IndexView | None:
        await self._barrier(linearizable)
        underlying, _, quote = index_name.partition("_")
        if quote.upper() != self.state.config.quote or self.state.config.underlying(
                underlying.upper()) is None:
            return None
        return v.IndexView(index_name, self._index_raw(underlying.upper()),
                           self.state.time_ns // 1_000_000)

    async def last_trades(self, name: str, count: int, *,
                          linearizable: bool = True) -> list[v.TradeView]:
        await self._barrier(linearizable)
        return self.read.last_trades(name, count)

    def _reconcile_orders(self) -> None:
        """After skipped blocks, open orders in the read model may have moved on:
        take the state machine's word for each (or forget what it no longer knows)."""
        stale = [view for view in self.read.orders.values()
                 if view.order_state is v.OrderStatus.OPEN]
        for view in stale:
            current = queries.order(self.state, view.order_id)
            if current is None:
                del self.read.orders[view.order_id]
                continue
            self.read.orders[view.order_id] = replace(
                view, amount_raw=current.amount.raw, filled_amount_raw=current.filled.raw,
                price_raw=current.price.raw, order_state=current.status)

    def _order_from_state(self, view: OrderSummary) -> v.OrderView:
        known = self.read.orders.get(view.order_id)
        if known is not None:
            return known
        return v.OrderView(
            order_id=view.order_id, account_id=view.account, instrument_name=view.instrument,
            side=view.side, order_type=view.order_type,
            time_in_force=view.time_in_force, price_raw=view.price.raw,
            amount_raw=view.amount.raw, filled_amount_raw=view.filled.raw, average_price_raw=0,
            order_state=view.status, post_only=view.post_only,
            reduce_only=view.reduce_only, label=view.label, creation_timestamp_ms=0,
            last_update_timestamp_ms=0,
        )

    async def open_orders(self, account_id: int, instrument_name: str | None = None, *,
                          linearizable: bool = True) -> list[v.OrderView]:
        await self._barrier(linearizable)
        views = queries.open_orders(self.state, account_id, instrument_name)
        return sorted((self._order_from_state(view) for view in views),
                      key=lambda order: order.order_id)

    async def order(self, account_id: int, order_id: int, *,
                    linearizable: bool = True) -> v.OrderView | None:
        await self._barrier(linearizable)
        known = self.read.order(account_id, order_id)
        if known is not None:
            return known
        view = queries.order(self.state, order_id)
        if view is None or view.account != account_id:
            return None
        return self._order_from_state(view)

    async def user_trades(self, account_id: int, instrument_name: str, count: int, *,
                          linearizable: bool = True) -> list[v.TradeView]:
        await self._barrier(linearizable)
        return self.read.account_trades(account_id, instrument_name, count)

    async def positions(self, account_id: int, *,
                        linearizable: bool = True) -> list[v.PositionView]:
        await self._barrier(linearizable)
        return self._positions(account_id)

    def _positions(self, account_id: int) -> list[v.PositionView]:
        out = []
        for view in queries.positions(self.state, account_id):
            if view.size.raw == 0:
                continue
            instrument = queries.instrument(self.state, view.instrument)
            assert instrument is not None
            index = self._index_raw(instrument.underlying)
            marks = self._marks(instrument)
            size = view.size.raw
            floating = 0
            if marks is not None:  # value at mark minus what the open size cost
                floating = size * marks.mark_price_raw // NOTIONAL_DIVISOR - view.open_cost.raw
            units = Decimal(size) / QUANTITY_SCALE
            out.append(v.PositionView(
                account_id=account_id, instrument_name=view.instrument, size_raw=size,
                average_price_raw=view.average_price.raw,
                mark_price_raw=marks.mark_price_raw if marks else None,
                index_price_raw=index, floating_pnl_raw=floating,
                realized_pnl_raw=view.realized_pnl.raw,
                initial_margin_raw=view.requirement.raw,
                maintenance_margin_raw=view.requirement.raw,
                delta=units * marks.greeks.delta if marks else None,
                gamma=units * marks.greeks.gamma if marks else None,
                vega=units * marks.greeks.vega if marks else None,
                theta=units * marks.greeks.theta if marks else None,
            ))
        return out

    async def account_summary(self, account_id: int, *,
                              linearizable: bool = True) -> v.AccountView | None:
        await self._barrier(linearizable)
        view = queries.account_summary(self.state, account_id)
        if view is None:
            return None
        positions = self._positions(account_id)
        upl = sum(position.floating_pnl_raw for position in positions)
        value = sum(position.size_raw * position.mark_price_raw // NOTIONAL_DIVISOR
                    for position in positions if position.mark_price_raw is not None)
        marked = [position for position in positions if position.delta is not None]
        equity, initial, maintenance = view.cash.raw + value, view.locked.raw, view.locked.raw
        available = view.available.raw
        margin_model = "segregated_sm"
        margin = self._extension("margin")
        account_margin = margin.accounts.get(account_id) if margin is not None else None
        if account_margin is not None:  # the engine's figures at its last re-margining
            equity, initial, maintenance = account_margin.totals(view.cash.raw)
            available = min(equity - initial, view.available.raw)
            margin_model = ("segregated_pm" if account_margin.mode.name == "PORTFOLIO"
                            else "segregated_sm")
        return v.AccountView(
            account_id=account_id, currency=self.state.config.quote,
            balance_raw=view.cash.raw, equity_raw=equity,
            available_funds_raw=available,
            available_withdrawal_funds_raw=available,
            initial_margin_raw=initial, maintenance_margin_raw=maintenance,
            margin_model=margin_model,
            total_pl_raw=view.realized_pnl.raw + upl, session_upl_raw=upl,
            session_rpl_raw=view.realized_pnl.raw, fees_paid_raw=view.fees_paid.raw,
            delta_total=sum((p.delta for p in marked if p.delta is not None), Decimal(0))
            if marked else None,
            options_gamma=sum((p.gamma for p in marked if p.gamma is not None), Decimal(0))
            if marked else None,
            options_vega=sum((p.vega for p in marked if p.vega is not None), Decimal(0))
            if marked else None,
            options_theta=sum((p.theta for p in marked if p.theta is not None), Decimal(0))
            if marked else None,
        )


    async def account_proof(self, account_id: int) -> dict[str, Any] | None:
        await self._barrier(True)
        if account_id not in self.state.accounts:
            return None
        proof = records.account_proof(self.state, account_id)
        root = self.state.state_root()
        record = decode(proof.value) if proof.value is not None else None
        return {
            "account_id": account_id,
            "height": self.state.height,
            "state_root": root.hex(),
            "key": proof.key.hex(),
            "value": proof.value.hex() if proof.value is not None else None,
            "record": record,
            "included": proof.included,
            "proof": proof.to_bytes().hex(),
        }

    async def stats(self) -> dict[str, Any]:
        """Counters of what this node has applied since it started serving."""
        read = self.read
        return {
            "height": read.height,
            "events": dict(sorted(read.event_counts.items())),
            "trades": sum(read.trade_seq.values()),
            "orders_tracked": len(read.orders),
        }

    def blocks(self) -> AsyncIterator[v.BlockUpdate]:
        subscriber = _BlockSubscriber(self)
        self._subscribers.add(subscriber)
        return subscriber.iterate()


