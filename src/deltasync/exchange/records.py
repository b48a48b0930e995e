"""Records: the state commitment. Dirty records into the Merkle map, the root, proofs.

Replicated records live in fast Python structures (``tables``); every mutation
marks the record dirty, and ``commit`` (at the end of each block) writes each
dirty record's canonical encoding into a ``MerkleMap`` and takes its root, so
the cost grows with the keys changed. Keys::

    b"acct/"  + u64 account              [cash, deposited, withdrawn, fees paid, realized pnl]
    b"pos/"   + u64 account + u32 instr  [size, open cost, realized pnl] (non-flat only)
    b"order/" + u64 order id             Order.to_wire()  (open orders only)
    b"book/"  + u32 instr                Book.summary(): top of book and sizes (the book
                                         itself is committed by its order records, each
                                         with its price and queue priority)
    b"inst/"  + u32 instr                Instrument.to_wire()
    b"meta/exchange"                     [chain id, height, time, deposits, withdrawals, trades, ...]
    (extensions add their own prefixes through ``StateAccess.set_record``)

Records are plain lists of ints, strings and bools, so their canonical bytes
are exactly what ``codec.encode_trusted`` produces; one packer built once is
three times faster than ``msgpack.packb`` building one per call (the root's
hot path).
"""

from __future__ import annotations

from typing import Any

import msgpack

from deltasync.commitment.merkle import Proof
from deltasync.core.codec import encode, encode_trusted
from deltasync.exchange.tables import Tables

_pack = msgpack.Packer(use_bin_type=True).pack
assert _pack([1, -(2**63), 2**63 - 1, "é", b"b", True, None, [0]]) == encode_trusted(
    [1, -(2**63), 2**63 - 1, "é", b"b", True, None, [0]]
)
# The trading core's key prefixes; extensions' records must use others.
CORE_PREFIXES = (b"acct/", b"pos/", b"order/", b"book/", b"inst/", b"meta/")
META_KEY = b"meta/exchange"


def account_key(account_id: int) -> bytes:
    return b"acct/" + account_id.to_bytes(8, "big")


def position_key(account_id: int, instrument_id: int) -> bytes:
    return b"pos/" + account_id.to_bytes(8, "big") + instrument_id.to_bytes(4, "big")


def order_key(order_id: int) -> bytes:
    return b"order/" + order_id.to_bytes(8, "big")


def book_key(instrument_id: int) -> bytes:
    return b"book/" + instrument_id.to_bytes(4, "big")


def instrument_key(instrument_id: int) -> bytes:
    return b"inst/" + instrument_id.to_bytes(4, "big")


def meta_wire(state: Tables) -> list[Any]:
    """The exchange-wide record: chain, clock, totals, reference prices."""
    return [
        state.config.chain_id, state.height, state.time_ns, state.deposits_total,
        state.withdrawals_total, state.trades_total, state.volume_total,
        [[name, state.reference_prices[name]] for name in sorted(state.reference_prices)],
    ]


def set_record(state: Tables, key: bytes, value: bytes | None) -> None:
    """Write (or delete, with None) an extension's record into the next commitment."""
    assert not key.startswith(CORE_PREFIXES), key
    state.dirty_records[key] = value


def commit(state: Tables) -> bytes:
    """Write dirty records into the Merkle map; returns the state root."""
    merkle = state.merkle
    put, delete = merkle.set, merkle.delete
    accounts = state.accounts
    for account_id in state.dirty_accounts:
        # Accounts are also marked when only their open orders changed (derived
        # state, see ``changed_accounts``): rewrite the record only if it differs.
        account = accounts[account_id]
        value = _pack(account.to_wire())
        if value != account.committed:
            account.committed = value
            put(b"acct/" + account_id.to_bytes(8, "big"), value)
    for account_id, instrument_id in state.dirty_positions:
        key = b"pos/" + account_id.to_bytes(8, "big") + instrument_id.to_bytes(4, "big")
        account = accounts[account_id]
        position = account.positions.get(instrument_id)
        if position is None or position.is_flat():
            if position is not None and position.is_empty():
                del account.positions[instrument_id]
            delete(key)
        else:
            put(key, _pack(position.to_wire()))
    orders = state.orders
    for order_id in state.dirty_orders:
        order = orders.get(order_id)
        if order is None:
            delete(b"order/" + order_id.to_bytes(8, "big"))
        else:
            put(b"order/" + order_id.to_bytes(8, "big"), _pack(order.to_wire()))
    books = state.books
    for instrument_id in state.dirty_books:
        put(b"book/" + instrument_id.to_bytes(4, "big"), _pack(books[instrument_id].summary()))
    for instrument_id in state.dirty_instruments:
        put(instrument_key(instrument_id), encode(state.instruments[instrument_id].to_wire()))
    for record_key, record in state.dirty_records.items():
        if record is None:
            delete(record_key)
        else:
            put(record_key, record)
    if state.meta_dirty:
        put(META_KEY, encode(meta_wire(state)))
    state.dirty_accounts = {}
    state.dirty_positions = {}
    state.dirty_orders = {}
    state.dirty_books = {}
    state.dirty_instruments = {}
    state.dirty_records = {}
    state.meta_dirty = False
    return merkle.root()


def expected_records(state: Tables) -> dict[bytes, bytes]:
    """Every trading-core record rebuilt from scratch (for checking the commitment)."""
    out: dict[bytes, bytes] = {}
    for account_id, account in state.accounts.items():
        out[account_key(account_id)] = _pack(account.to_wire())
        for iid, position in account.positions.items():
            if not position.is_flat():
                out[position_key(account_id, iid)] = _pack(position.to_wire())
    for order_id, order in state.orders.items():
        out[order_key(order_id)] = _pack(order.to_wire())
    for iid, book in state.books.items():
        out[book_key(iid)] = _pack(book.summary())
    for iid, instrument in state.instruments.items():
        out[instrument_key(iid)] = encode(instrument.to_wire())
    out[META_KEY] = encode(meta_wire(state))
    return out


def account_proof(state: Tables, account_id: int) -> Proof:
    """Proof of the account's record (or of its absence) against the state root."""
    commit(state)
    return state.merkle.prove(account_key(account_id))


def position_proof(state: Tables, account_id: int, instrument_id: int) -> Proof:
    commit(state)
    return state.merkle.prove(position_key(account_id, instrument_id))
