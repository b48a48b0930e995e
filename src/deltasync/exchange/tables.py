"""The exchange's tables: its records, their indexes, and what changed since the last commit.

``Tables`` is the data that the concept modules work on: ``ledger`` (money),
``orders`` (open orders), ``matching`` (taking liquidity, trades), ``combos``,
``listings``, ``records`` (the commitment), ``snapshot``, ``invariants`` and
``queries``. ``state.ExchangeState`` adds the transition function
(``apply_block``, ``apply``) and the port it offers extensions.

- Replicated, and committed by ``records``: instruments, accounts with their
  positions, open orders, the running totals and reference prices, the block
  height and time.
- Derived, and rebuilt by ``snapshot``: the books' price levels, each
  position's open-order exposure, ``locked`` collateral, the reduce-only
  index, the expiry and good-til-time heaps.
- Query caches, deterministic but not committed: the recent trades of each
  instrument (carried in snapshots) and recently closed orders (not).
- Dirty marks: every mutation marks the record it changed; ``records.commit``
  writes exactly those into the Merkle map, so the cost of a state root grows
  with the keys changed, not with the state.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from deltasync.commitment.merkle import MerkleMap
from deltasync.core.errors import LocalError
from deltasync.exchange.accounts import Account
from deltasync.exchange.book import Book, Order, OrderStatus
from deltasync.exchange.events import Trade
from deltasync.exchange.genesis import GenesisConfig
from deltasync.exchange.hot_events import EventValues
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.ports import OrderGate, RiskEngine, StateAccess


class StateError(LocalError):
    """The state machine was driven wrongly (a bug in the caller): fields say how."""


class Tables:
    """The exchange's records and indexes (see the module docstring)."""

    # The narrow view of this state that risk engines and order gates receive: the
    # ``ExchangeState`` itself, set by its constructor (see ``ports.StateAccess``).
    access: StateAccess

    def __init__(self, config: GenesisConfig, risk: RiskEngine) -> None:
        self.config = config
        self.risk = risk
        self.height = 0
        self.time_ns = config.genesis_time_ns
        # replicated records and their indexes
        self.instruments: dict[int, Instrument] = {}
        self.instrument_by_name: dict[str, Instrument] = {}
        self.books: dict[int, Book] = {}
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}  # every open order, also in its book
        self.reference_prices: dict[str, int] = {
            spec.name: spec.reference_price_raw for spec in config.underlyings
        }
        self.deposits_total = 0
        self.withdrawals_total = 0
        self.trades_total = 0
        self.volume_total = 0  # Quantity raw traded, all instruments
        self.fee_account = Account(config.fee_account)
        self.accounts[config.fee_account] = self.fee_account
        self.open_orders_per_account_max = config.limits.open_orders_per_account_max
        self.order_gates: list[OrderGate] = []
        # time-driven work: (expire_at_ns, order id) and (expiry_ns, instrument id) heaps
        self.good_til_time_heap: list[tuple[int, int]] = []
        self.expiry_heap: list[tuple[int, int]] = []
        # query caches: deterministic, but not part of the state root
        self.recent_trades: dict[int, deque[Trade]] = {}
        self.closed_orders: OrderedDict[int, tuple[Order, OrderStatus]] = OrderedDict()
        self.event_values = EventValues()  # interned fields of the hot events
        # commitment: the map, and the records changed since the last commit
        self.merkle = MerkleMap()
        self.dirty_accounts: dict[int, None] = {config.fee_account: None}
        self.dirty_positions: dict[tuple[int, int], None] = {}
        self.dirty_orders: dict[int, None] = {}
        self.dirty_books: dict[int, None] = {}
        self.dirty_instruments: dict[int, None] = {}
        self.dirty_records: dict[bytes, bytes | None] = {}  # extensions' records
        self.meta_dirty = True
