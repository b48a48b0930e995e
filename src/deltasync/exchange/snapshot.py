"""Snapshots: the whole replicated state as canonical bytes, and back.

A snapshot is ``encode([SNAPSHOT_VERSION, genesis JSON, meta, instruments,
accounts with positions, open orders, recent trades, extensions])``: the
committed records plus the recent-trades query cache, and each extension's
own ``snapshot()``. Everything derived (book levels, open-order exposure,
locked collateral, the reduce-only index, the heaps) is rebuilt on load, so a
restored state commits to the same root as the one that wrote it.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deltasync.core.codec import decode, encode
from deltasync.exchange.accounts import Position
from deltasync.exchange.book import Order
from deltasync.exchange.events import EVENTS
from deltasync.exchange.genesis import GenesisConfig
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.ledger import open_account, position_of, refresh_requirement
from deltasync.exchange.listings import list_instrument
from deltasync.exchange.orders import add_exposure
from deltasync.exchange.ports import Extension
from deltasync.exchange.records import commit, meta_wire
from deltasync.exchange.tables import StateError, Tables

SNAPSHOT_VERSION = 1
_GOOD_TIL_TIME = 2  # Order.time_in_force of TimeInForce.GOOD_TIL_TIME


def snapshot_bytes(state: Tables, extensions: Sequence[Extension]) -> bytes:
    """Canonical bytes of the whole replicated state (plus the recent-trades cache)."""
    commit(state)
    accounts = []
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        positions = [
            [iid, account.positions[iid].to_wire()] for iid in sorted(account.positions)
        ]
        accounts.append([account_id, account.to_wire(), positions])
    doc = [
        SNAPSHOT_VERSION,
        json.dumps(state.config.to_dict(), sort_keys=True, separators=(",", ":")),
        meta_wire(state),
        [state.instruments[iid].to_wire() for iid in sorted(state.instruments)],
        accounts,
        [state.orders[order_id].to_wire() for order_id in sorted(state.orders)],
        [
            [iid, [EVENTS.to_wire(trade) for trade in state.recent_trades[iid]]]
            for iid in sorted(state.recent_trades)
            if state.recent_trades[iid]
        ],
        [[extension.name, extension.snapshot()] for extension in extensions],
    ]
    return encode(doc)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A decoded snapshot, its parts still in wire form."""

    config: GenesisConfig
    meta: list[Any]
    instruments: list[Any]
    accounts: list[Any]
    orders: list[Any]
    recent_trades: list[Any]
    extensions: list[Any]  # [name, data] per extension


def parse(data: bytes) -> Snapshot:
    """Decode snapshot bytes (canonical only); raises ``StateError`` if they are not one."""
    doc = decode(data, canonical=True, max_bytes=len(data))
    if type(doc) is not list or len(doc) != 8 or doc[0] != SNAPSHOT_VERSION:
        version = doc[0] if type(doc) is list and doc else None
        raise StateError(reason="not an exchange snapshot", version=version)
    _, genesis_json, meta, instruments, accounts, orders, trades, extensions = doc
    config = GenesisConfig.from_dict(json.loads(genesis_json))
    return Snapshot(config, meta, instruments, accounts, orders, trades, extensions)


def load(state: Tables, snapshot: Snapshot) -> None:
    """Fill a fresh state (built from ``snapshot.config``) with the snapshot's records and
    rebuild everything derived. Extensions restore their own part afterwards."""
    (chain_id, state.height, state.time_ns, state.deposits_total, state.withdrawals_total,
     state.trades_total, state.volume_total, references) = snapshot.meta
    if chain_id != state.config.chain_id:
        raise StateError(reason="snapshot chain id does not match its genesis")
    state.reference_prices = {name: price for name, price in references}
    for wire in snapshot.instruments:
        instrument = Instrument.from_wire(wire)
        list_instrument(state, instrument)
        if not instrument.active:
            iid = instrument.instrument_id
            state.expiry_heap = [entry for entry in state.expiry_heap if entry[1] != iid]
            heapq.heapify(state.expiry_heap)
    _load_accounts(state, snapshot.accounts)
    _load_orders(state, snapshot.orders)
    for account in state.accounts.values():
        for iid, position in account.positions.items():
            refresh_requirement(state, account, position, state.instruments[iid])
    for iid, wires in snapshot.recent_trades:
        state.recent_trades[iid].extend(EVENTS.from_wire(wire) for wire in wires)


def _load_accounts(state: Tables, accounts: list[Any]) -> None:
    for account_id, wire, positions in accounts:
        account = open_account(state, account_id)
        (account.cash, account.deposited, account.withdrawn, account.fees_paid,
         account.realized_pnl) = wire
        for iid, position_wire in positions:
            account.positions[iid] = Position.from_wire(iid, position_wire)
            state.dirty_positions[(account_id, iid)] = None
        state.dirty_accounts[account_id] = None


def _load_orders(state: Tables, orders: list[Any]) -> None:
    for wire in sorted(orders, key=lambda w: w[7]):  # priority order rebuilds the queues
        order = Order.from_wire(wire)
        state.books[order.instrument_id].rest(order)
        state.orders[order.order_id] = order
        account = state.accounts[order.account]
        account.orders[order.order_id] = None
        if order.reduce_only:
            account.reduce_only[order.instrument_id] = (
                account.reduce_only.get(order.instrument_id, 0) + 1
            )
        if order.time_in_force == _GOOD_TIL_TIME:
            heapq.heappush(state.good_til_time_heap, (order.expire_at_ns, order.order_id))
        state.dirty_orders[order.order_id] = None
        state.dirty_books[order.instrument_id] = None
        # open-order exposure and collateral are derived, not stored: rebuild them
        instrument = state.instruments[order.instrument_id]
        add_exposure(position_of(account, order.instrument_id), order, instrument,
                     order.remaining)
