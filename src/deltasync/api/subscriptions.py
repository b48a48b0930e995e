"""Subscriptions: channels fed from the venue's block stream.

One ``Hub`` per server reads ``venue.blocks()`` and fans each block out to
the sessions subscribed to the channels it touches. A session's outbound
queue is bounded; a session that cannot keep up is closed rather than
allowed to grow memory (``Session.push`` returns False and the transport
disconnects it).

Book channels carry Deribit's ``change_id``/``prev_change_id`` chain. The
change id is the height of the block that changed the book (so it is the
same on every node), and ``prev_change_id`` is the change id of the previous
notification this subscription delivered: a client that sees
``prev_change_id`` differ from the last ``change_id`` it holds has lost a
message and must resubscribe. The first notification is a full snapshot
(``type: "snapshot"``) whose change id equals ``public/get_order_book``'s.
Changes that race with the snapshot read are buffered and replayed past it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltasync.api import errors, shapes
from deltasync.api.errors import ApiError
from deltasync.api.jsonio import dumps, money
from deltasync.core import limits
from deltasync.venue.combos import is_combo_name, parse_combo
from deltasync.venue.port import Venue
from deltasync.venue.views import BlockUpdate, BookView, Side, TradeView

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.1
_INSTRUMENT = r"[A-Za-z0-9_.\-]{1,400}"
_CHANNELS = {
    "book_raw": re.compile(rf"^book\.({_INSTRUMENT})\.raw$"),
    "book_100ms": re.compile(rf"^book\.({_INSTRUMENT})\.100ms$"),
    "trades": re.compile(rf"^trades\.({_INSTRUMENT})\.(?:raw|100ms)$"),
    "ticker": re.compile(rf"^ticker\.({_INSTRUMENT})\.(?:raw|100ms)$"),
    "index": re.compile(r"^deribit_price_index\.([a-z0-9_]{3,32})$"),
    "user_orders": re.compile(rf"^user\.orders\.({_INSTRUMENT})\.(?:raw|100ms)$"),
    "user_trades": re.compile(rf"^user\.trades\.({_INSTRUMENT})\.(?:raw|100ms)$"),
    "user_portfolio": re.compile(r"^user\.portfolio\.([A-Za-z]{2,10})$"),
}
USER_KINDS = {"user_orders", "user_trades", "user_portfolio"}
BOOK_KINDS = {"book_raw", "book_100ms"}


def parse_channel(channel: Any) -> tuple[str, str]:
    if type(channel) is not str or len(channel) > 450:
        raise errors.invalid_param("channels", "each channel must be a string")
    for kind, pattern in _CHANNELS.items():
        match = pattern.match(channel)
        if match:
            return kind, match.group(1)
    raise ApiError(errors.INVALID_PARAMS, {"param": "channels", "reason": "unknown channel",
                                           "channel": channel[:120]})


class Session:
    """One WebSocket connection's outbound side and its subscriptions."""

    def __init__(self, name: str, queue_max: int = limits.api_ws_outbound_messages_max) -> None:
        self.name = name
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_max)
        self.subscriptions: dict[str, Subscription] = {}
        self.principal: Any = None  # auth.Principal once authenticated
        self.closed = False
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None
        # Pipelining (see ApiServer._ws_request): requests take the gate in arrival
        # order; a trading command gives it back once the venue has queued it.
        self.gate = asyncio.Lock()
        self.writes = WritesInFlight()
        self.heartbeat: asyncio.Task[None] | None = None
        self.close_after_reply = False  # private/logout: answer, then hang up

    def push(self, text: str) -> bool:
        if self.closed:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return False
        return True

    def notify(self, channel: str, data: Any) -> bool:
        return self.push(
            dumps({"jsonrpc": "2.0", "method": "subscription",
                   "params": {"channel": channel, "data": data}})
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass  # the writer checks ``closed`` after every message


class WritesInFlight:
    """One connection's write requests between their arrival and their answer."""

    def __init__(self) -> None:
        self.requests = 0  # write requests in flight, each counted from the gate to its answer
        self.classes = [0, 0, 0]  # their admitted commands, per sequencing class
        self._changed = asyncio.Event()

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    def begin(self) -> None:
        self.requests += 1

    def end(self, admitted: list[int]) -> None:
        self.requests -= 1
        for sequencing_class in admitted:
            self.classes[sequencing_class] -= 1
        self._changed.set()  # wake every waiter once, then arm again
        self._changed = asyncio.Event()


class WritePipeline:
    """The ``venue.Pipeline`` of one write request on a WebSocket.

    A command may join the venue's queue behind the session's earlier ones
    unless one of them has a higher sequencing class: the state machine would
    apply it first in a shared block, so it waits until they have finished."""

    def __init__(self, writes: WritesInFlight, release_gate: Callable[[], None]) -> None:
        self.writes = writes
        self.release_gate = release_gate
        self.admitted: list[int] = []

    async def admit(self, sequencing_class: int) -> None:
        writes = self.writes
        if any(writes.classes[k] for k in range(sequencing_class + 1, len(writes.classes))):
            await self.settle()
        writes.classes[sequencing_class] += 1
        self.admitted.append(sequencing_class)

    def queued(self) -> None:
        self.release_gate()

    async def settle(self) -> None:
        """Wait until every earlier write of the session has been answered."""
        writes = self.writes
        await writes.wait_until(lambda: writes.requests <= 1)  # this request alone


@dataclass(slots=True)
class Subscription:
    session: Session
    channel: str
    kind: str
    target: str  # instrument, index name, currency, or "any"
    account_id: int | None = None
    # book channels
    ready: bool = False
    change_id: int = 0
    buffered: list[tuple[int, int, list[Any]]] = field(default_factory=list)
    pending: dict[tuple[str, int], int] = field(default_factory=dict)
    pending_change_id: int = 0
    pending_time_ms: int = 0


class Hub:
    def __init__(self, venue: Venue, *, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.venue = venue
        self.flush_interval_s = flush_interval_s
        self._by_channel: dict[str, dict[int, Subscription]] = {}
        self._user_subs: dict[int, dict[tuple[int, str], Subscription]] = {}
        self._dirty_tickers: set[str] = set()
        self._dirty_accounts: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.height = 0
        self.on_error: Callable[[BaseException], None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(), name="api-hub-blocks"),
            asyncio.create_task(self._flusher(), name="api-hub-flush"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    # --- subscribe / unsubscribe --------------------------------------------------

    async def subscribe(self, session: Session, channels: list[Any]) -> list[str]:
        parsed = [(channel, *parse_channel(channel)) for channel in channels]
        fresh = [item for item in parsed if item[0] not in session.subscriptions]
        if len(session.subscriptions) + len(fresh) > limits.subscriptions_per_session_max:
            raise ApiError(errors.INVALID_PARAMS, {
                "param": "channels",
                "reason": f"at most {limits.subscriptions_per_session_max} subscriptions per session",
            })
        for channel, kind, target in fresh:
            if kind in USER_KINDS and session.principal is None:
                raise ApiError(errors.UNAUTHORIZED, {"reason": "user channels need private/auth",
                                                     "channel": channel})
            await self._check_target(kind, target)
        # Everything is valid: register them all (no half-subscribed list on an error).
        added: list[str] = []
        for channel, kind, target in fresh:
            account_id = session.principal.account_id if kind in USER_KINDS else None
            sub = Subscription(session, channel, kind, target, account_id,
                               ready=kind not in BOOK_KINDS)
            session.subscriptions[channel] = sub
            self._by_channel.setdefault(channel, {})[id(session)] = sub
            if account_id is not None:
                self._user_subs.setdefault(account_id, {})[(id(session), channel)] = sub
            added.append(channel)
            if kind in BOOK_KINDS:
                await self._snapshot(sub)
        return [channel for channel, _, _ in parsed if channel in session.subscriptions]

    async def _check_target(self, kind: str, target: str) -> None:
        if kind in ("index", "user_portfolio"):
            return
        if kind in ("user_orders", "user_trades") and (target == "any" or "." in target):
            return  # "any", "option.any", "any.BTC": filters, not instruments
        if kind in USER_KINDS and is_combo_name(target):
            parse_combo(target)  # raises 10020 for a malformed combo name
            return
        if await self.venue.instrument(target, linearizable=False) is None:
            raise ApiError(errors.INVALID_OR_UNSUPPORTED_INSTRUMENT,
                           {"instrument_name": target[:120]})

    async def _snapshot(self, sub: Subscription) -> None:
        # Registered first (buffering), read second: nothing between the two is lost.
        view = await self.venue.book(sub.target, limits.api_book_depth_max, linearizable=False)
        if view is None:
            self._remove(sub)
            raise ApiError(errors.INVALID_OR_UNSUPPORTED_INSTRUMENT,
                           {"instrument_name": sub.target[:120]})
        sub.change_id = view.change_id
        sub.ready = True
        sub.session.notify(sub.channel, _book_snapshot(view))
        buffered, sub.buffered = sub.buffered, []
        for height, time_ms, changes in buffered:
            if height > sub.change_id:
                self._deliver_book(sub, height, time_ms, changes)

    def unsubscribe(self, session: Session, channels: list[Any]) -> list[str]:
        removed = []
        for channel in channels:
            sub = session.subscriptions.get(channel) if type(channel) is str else None
            if sub is not None:
                self._remove(sub)
                removed.append(channel)
        return removed

    def drop_session(self, session: Session) -> None:
        for sub in list(session.subscriptions.values()):
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        sub.session.subscriptions.pop(sub.channel, None)
        subs = self._by_channel.get(sub.channel)
        if subs is not None:
            subs.pop(id(sub.session), None)
            if not subs:
                del self._by_channel[sub.channel]
        if sub.account_id is not None:
            owned = self._user_subs.get(sub.account_id)
            if owned is not None:
                owned.pop((id(sub.session), sub.channel), None)
                if not owned:
                    del self._user_subs[sub.account_id]

    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._by_channel.values())

    # --- the block stream ------------------------------------------------------------

    async def _consume(self) -> None:
        resync = False
        while True:
            # Subscribe first, snapshot second: blocks applied while the snapshots
            # are read wait in the new stream and are replayed past them.
            stream = self.venue.blocks()
            if resync:
                await self._resync_books()
            try:
                async for update in stream:
                    self.dispatch(update)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not silence every subscription
                log.exception("subscription hub failed; resubscribing to the block stream")
                if self.on_error is not None:
                    self.on_error(exc)
            # The stream ended (we fell behind, or a bug): book subscribers resynchronise.
            resync = True
            await asyncio.sleep(0.01)

    async def _resync_books(self) -> None:
        for subs in list(self._by_channel.values()):
            for sub in list(subs.values()):
                if sub.kind in BOOK_KINDS and not sub.session.closed:
                    sub.ready = False
                    sub.pending.clear()
                    try:
                        await self._snapshot(sub)
                    except ApiError:
                        pass  # instrument gone: the subscription was removed

    def dispatch(self, update: BlockUpdate) -> None:
        self.height = update.height
        time_ms = update.time_ns // 1_000_000
        if not self._by_channel:
            return
        self._dispatch_books(update, time_ms)
        self._dispatch_trades(update.trades)
        for index in update.indexes:
            data = {"index_name": index.index_name, "price": money(index.price_raw),
                    "timestamp": index.timestamp_ms}
            self._send_all(f"deribit_price_index.{index.index_name}", data)
        self._dispatch_user(update, time_ms)
        touched = set(update.instruments)
        touched.update(trade.instrument_name for trade in update.trades)
        touched.update(level.instrument_name for level in update.levels)
        for name in touched:
            if f"ticker.{name}.100ms" in self._by_channel or f"ticker.{name}.raw" in self._by_channel:
                self._dirty_tickers.add(name)

    def _send_all(self, channel: str, data: Any) -> None:
        subs = self._by_channel.get(channel)
        if not subs:
            return
        text = dumps({"jsonrpc": "2.0", "method": "subscription",
                      "params": {"channel": channel, "data": data}})
        for sub in list(subs.values()):
            sub.session.push(text)

    def _dispatch_books(self, update: BlockUpdate, time_ms: int) -> None:
        changes: dict[str, list[Any]] = {}
        for level in update.levels:
            changes.setdefault(level.instrument_name, []).append(level)
        for name, levels in changes.items():
            for channel in (f"book.{name}.raw", f"book.{name}.100ms"):
                for sub in list(self._by_channel.get(channel, {}).values()):
                    if not sub.ready:
                        sub.buffered.append((update.height, time_ms, levels))
                    elif update.height > sub.change_id:
                        self._deliver_book(sub, update.height, time_ms, levels)

    def _deliver_book(self, sub: Subscription, height: int, time_ms: int, levels: list[Any]) -> None:
        if sub.kind == "book_100ms":
            for level in levels:
                sub.pending[(shapes.SIDE_NAMES[level.side], level.price_raw)] = level.amount_raw
            sub.pending_change_id = height
            sub.pending_time_ms = time_ms
            return
        bids = [_level_entry(level.price_raw, level.amount_raw) for level in levels
                if level.side is Side.BUY]
        asks = [_level_entry(level.price_raw, level.amount_raw) for level in levels
                if level.side is Side.SELL]
        data = {"type": "change", "timestamp": time_ms, "instrument_name": sub.target,
                "change_id": height, "prev_change_id": sub.change_id, "bids": bids, "asks": asks}
        sub.change_id = height
        sub.session.notify(sub.channel, data)

    def _dispatch_trades(self, trades: tuple[TradeView, ...]) -> None:
        by_instrument: dict[str, list[Any]] = {}
        for trade in trades:
            by_instrument.setdefault(trade.instrument_name, []).append(shapes.public_trade(trade))
        for name, data in by_instrument.items():
            self._send_all(f"trades.{name}.raw", data)
            self._send_all(f"trades.{name}.100ms", data)

    def _dispatch_user(self, update: BlockUpdate, time_ms: int) -> None:
        for view in update.orders:
            name = view.combo_name or view.instrument_name
            for sub in list(self._user_subs.get(view.account_id, {}).values()):
                if sub.kind == "user_orders" and target_matches(sub.target, name):
                    sub.session.notify(sub.channel, shapes.order(view))
        for trade in update.trades:
            for account_id in sorted({trade.taker_account_id, trade.maker_account_id}):
                for sub in list(self._user_subs.get(account_id, {}).values()):
                    if sub.kind == "user_trades" and target_matches(sub.target, trade.instrument_name):
                        sub.session.notify(sub.channel, [shapes.user_trade(trade, account_id)])
        self._dirty_accounts.update(update.accounts)

    # --- periodic channels -------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("subscription flush failed")
                if self.on_error is not None:
                    self.on_error(exc)

    async def flush(self) -> None:
        for subs in list(self._by_channel.values()):
            for sub in list(subs.values()):
                if sub.kind == "book_100ms" and sub.ready and sub.pending:
                    self._flush_book(sub)
        tickers, self._dirty_tickers = self._dirty_tickers, set()
        for name in sorted(tickers):
            view = await self.venue.ticker(name, linearizable=False)
            if view is not None:
                data = shapes.ticker(view)
                self._send_all(f"ticker.{name}.100ms", data)
                self._send_all(f"ticker.{name}.raw", data)
        accounts, self._dirty_accounts = self._dirty_accounts, set()
        if not accounts:
            return
        for channel, subs in list(self._by_channel.items()):
            if not channel.startswith("user.portfolio."):
                continue
            for sub in list(subs.values()):
                if sub.account_id in accounts:
                    summary = await self.venue.account_summary(sub.account_id, linearizable=False)
                    if summary is not None:
                        sub.session.notify(channel, shapes.account_summary(summary))

    def _flush_book(self, sub: Subscription) -> None:
        bids: list[list[Any]] = []
        asks: list[list[Any]] = []
        for (side, price_raw), amount_raw in sorted(sub.pending.items()):
            entry = _level_entry(price_raw, amount_raw)
            (bids if side == "buy" else asks).append(entry)
        data = {"type": "change", "timestamp": sub.pending_time_ms, "instrument_name": sub.target,
                "change_id": sub.pending_change_id, "prev_change_id": sub.change_id,
                "bids": bids, "asks": asks}
        sub.change_id = sub.pending_change_id
        sub.pending.clear()
        sub.session.notify(sub.channel, data)


def target_matches(target: str, instrument_name: str) -> bool:
    """A user channel's target: an instrument, ``any``, or ``KIND.CURRENCY``
    (``option.any``, ``any.BTC``, ``option_combo.any``) as Deribit spells them."""
    if target in (instrument_name, "any"):
        return True
    kind, _, currency = target.partition(".")
    if not currency:
        return False
    is_combo = "-CMB-" in instrument_name
    kind_ok = kind == "any" or (kind == "option_combo" and is_combo) or (
        kind == "option" and not is_combo)
    base = instrument_name.split("_", 1)[0]
    return kind_ok and currency in ("any", base, "USDC")


def _level_entry(price_raw: int, amount_raw: int) -> list[Any]:
    action = "delete" if amount_raw == 0 else "change"
    return [action, money(price_raw), money(amount_raw)]


def _book_snapshot(view: BookView) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "timestamp": view.ticker.timestamp_ms,
        "instrument_name": view.ticker.instrument_name,
        "change_id": view.change_id,
        "bids": [["new", money(price), money(amount)] for price, amount in view.bids],
        "asks": [["new", money(price), money(amount)] for price, amount in view.asks],
    }
