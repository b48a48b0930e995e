"""Listings: instruments listed at genesis or by the admin account, and their expiry.

Instrument ids are 1, 2, ... in listing order (the genesis list first). The
admin account lists a strike grid for one expiry with ``ListInstruments``;
the whole grid is refused if any name already exists, any strike is invalid or
the venue would hold more than ``limits.instruments_max`` instruments.

Expiry: at the start of the first block whose time reaches an instrument's
``expiry_ns``, its open orders are cancelled (``CancelReason.INSTRUMENT_EXPIRED``)
and it becomes inactive (``InstrumentExpired``); settlement follows (the
``settlement`` extension).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import replace
from typing import Any

from deltasync.core import limits
from deltasync.core.errors import DeltasyncError
from deltasync.exchange.book import Book
from deltasync.exchange.commands import ListInstruments
from deltasync.exchange.events import (
    CancelReason,
    InstrumentExpired,
    InstrumentListed,
    ListingRejected,
    RejectReason,
)
from deltasync.exchange.genesis import parse_expiry
from deltasync.exchange.instruments import Instrument, make_instrument, option_name
from deltasync.exchange.orders import cancel_instrument_orders
from deltasync.exchange.sequencing import Context
from deltasync.exchange.tables import Tables


def list_instrument(state: Tables, instrument: Instrument) -> None:
    """Add an instrument with an empty book; its expiry is scheduled."""
    iid = instrument.instrument_id
    assert iid not in state.instruments and instrument.name not in state.instrument_by_name
    state.instruments[iid] = instrument
    state.instrument_by_name[instrument.name] = instrument
    state.books[iid] = Book()
    state.recent_trades[iid] = deque(maxlen=state.config.limits.recent_trades_per_instrument_max)
    heapq.heappush(state.expiry_heap, (instrument.expiry_ns, iid))
    state.dirty_instruments[iid] = None
    state.dirty_books[iid] = None
    state.meta_dirty = True


def replace_instrument(state: Tables, instrument: Instrument) -> None:
    state.instruments[instrument.instrument_id] = instrument
    state.instrument_by_name[instrument.name] = instrument
    state.dirty_instruments[instrument.instrument_id] = None


def list_instruments(state: Tables, command: ListInstruments, ctx: Context) -> list[Any]:
    """The ``ListInstruments`` command: a strike grid for one expiry, all or nothing."""

    def reject(reason: RejectReason, name: str = "") -> list[Any]:
        return [ListingRejected(command.account, name, reason)]

    config = state.config
    if command.account != config.admin_account:
        return reject(RejectReason.NOT_AUTHORIZED)
    spec = config.underlying(command.underlying)
    if spec is None:
        return reject(RejectReason.UNKNOWN_UNDERLYING)
    try:
        expiry_days = parse_expiry(command.expiry, "expiry")
    except DeltasyncError:
        return reject(RejectReason.INVALID_EXPIRY)
    names = [
        option_name(spec.name, config.quote, expiry_days, strike.raw, kind)
        for strike in command.strikes
        for kind in command.kinds
    ]
    if len(state.instruments) + len(names) > limits.instruments_max:
        return reject(RejectReason.TOO_MANY_INSTRUMENTS)
    built = []
    next_id = len(state.instruments) + 1
    for offset, name in enumerate(names):
        if name in state.instrument_by_name:
            return reject(RejectReason.INSTRUMENT_EXISTS, name)
        try:
            instrument = make_instrument(next_id + offset, name, spec, config.fees, config.quote)
        except DeltasyncError:
            return reject(RejectReason.INVALID_PRICE, name)
        if instrument.expiry_ns <= ctx.time_ns:
            return reject(RejectReason.INVALID_EXPIRY, name)
        built.append(instrument)
    events: list[Any] = []
    for instrument in built:
        list_instrument(state, instrument)
        events.append(InstrumentListed(instrument.instrument_id, instrument.name,
                                       instrument.expiry_ns))
    return events


def expire_instruments(state: Tables, ctx: Context) -> list[Any]:
    """Deactivate the instruments whose expiry has come (block start), cancelling their orders."""
    events: list[Any] = []
    heap = state.expiry_heap
    while heap and heap[0][0] <= ctx.time_ns:
        _, instrument_id = heapq.heappop(heap)
        instrument = state.instruments[instrument_id]
        if not instrument.active:
            continue
        events += cancel_instrument_orders(state, instrument_id, CancelReason.INSTRUMENT_EXPIRED)
        replace_instrument(state, replace(instrument, active=False))
        events.append(InstrumentExpired(instrument_id, instrument.name))
    return events
