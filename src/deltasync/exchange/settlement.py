"""Settlement at expiry: cash-settle every position of an expired option at the index TWAP.

``SettlementEngine`` is an ``Extension`` (name ``"settlement"``). At the start
of the first block whose time reaches an option's ``expiry_ns`` the trading
core cancels its open orders and deactivates it (``InstrumentExpired``); then,
in the same block start (the oracle having sampled the index up to the block
time), this engine settles it:

- settlement price ``S`` = the oracle's TWAP of the index over the last
  ``twap_window_ns`` (30 min) of block time ending at ``expiry_ns``
  (``OracleState.twap_raw``); when the oracle holds no sample in that window
  (no index yet, or the first block after expiry came more than a window
  late), the current index, else the exchange's reference price;
- payoff per unit ``max(S - K, 0)`` for a call, ``max(K - S, 0)`` for a put;
- shorts pay first, ``ceil(payoff x |size|)``, into the insurance fund
  account, which acts as the clearing account; then longs receive
  ``floor(payoff x size)`` from it (the rounding dust, below one micro-USDC
  per position, stays in the fund, so the fund never pays out money it did
  not receive); ``settlement_flows`` decides these amounts, as data, before
  any money moves;
- each position is closed at the payoff (realized PnL booked like a trade),
  any order still open is cancelled (``CancelReason.SETTLEMENT``) and the
  instrument stays inactive.

A short whose balance goes negative by settling is then handled by the
liquidation engine at the end of the block (insurance fund, socialized loss).

Events: ``PositionSettled`` per position (longs and shorts in account id
order), then ``InstrumentSettled``. State root: ``b"settle/" + u32 instrument``
-> ``[settlement price, open interest]``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from deltasync.core.codec import encode
from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Price, Quantity
from deltasync.core.ids import OptionKind
from deltasync.exchange.events import CancelReason
from deltasync.exchange.instruments import Instrument
from deltasync.exchange.margin import RISK_REGISTRY, MarginEngine
from deltasync.exchange.ports import StateAccess
from deltasync.exchange.sequencing import Context

_KEY_SETTLED = b"settle/"


@RISK_REGISTRY.register(230)
@dataclass(frozen=True, slots=True)
class PositionSettled:
    account: int
    instrument: str
    amount: Quantity  # the signed size that was settled
    settlement_price: Price
    cash_flow: Amount  # received (+) or paid (-)


@RISK_REGISTRY.register(231)
@dataclass(frozen=True, slots=True)
class InstrumentSettled:
    instrument_id: int
    instrument: str
    settlement_price: Price
    open_interest: Quantity  # long size settled
    twap: bool  # False: a fallback price was used (see the module docstring)


def payoff_per_unit(kind: OptionKind, strike_raw: int, settlement_raw: int) -> int:
    intrinsic = settlement_raw - strike_raw if kind is OptionKind.CALL else strike_raw - settlement_raw
    return intrinsic if intrinsic > 0 else 0


def settlement_flows(
    holders: list[tuple[int, int]], payoff_raw: int
) -> list[tuple[int, int, int]]:
    """Who pays and who receives at settlement, decided before any money moves.

    ``holders``: (account, signed size) in account order; returns (account, size,
    cash) with cash paid (-) or received (+): the shorts first, paying
    ``ceil(payoff x |size|)``, then the longs, receiving ``floor(payoff x size)``,
    so the clearing account never pays out more than it took in.
    """
    shorts = [
        (account_id, size, payoff_raw * size // NOTIONAL_DIVISOR)  # floor of a negative
        for account_id, size in holders
        if size < 0
    ]
    longs = [
        (account_id, size, payoff_raw * size // NOTIONAL_DIVISOR)
        for account_id, size in holders
        if size > 0
    ]
    return shorts + longs


class SettlementEngine:
    name = "settlement"

    def __init__(self, margin: MarginEngine) -> None:
        self.margin = margin
        self.settled: dict[int, tuple[int, int]] = {}  # instrument id -> (price, open interest)
        self._pending: list[tuple[int, int]] = []  # (expiry_ns, instrument id), a heap
        self._known = 0  # instruments pushed to the heap (ids are 1..n)

    def attach(self, state: StateAccess) -> None:
        pass

    def _track_new_listings(self, state: StateAccess) -> None:
        while self._known < len(state.instruments):
            self._known += 1
            instrument = state.instruments[self._known]
            if self._known not in self.settled:
                heapq.heappush(self._pending, (instrument.expiry_ns, self._known))

    def on_block_start(self, state: StateAccess, ctx: Context) -> list[Any]:
        self._track_new_listings(state)
        events: list[Any] = []
        while self._pending and self._pending[0][0] <= ctx.time_ns:
            _, iid = heapq.heappop(self._pending)
            events += self._settle(state, state.instruments[iid])
        return events

    def on_block_end(self, state: StateAccess, ctx: Context) -> list[Any]:
        return []

    def _price(self, state: StateAccess, instrument: Instrument) -> tuple[int, bool]:
        oracle = self.margin.oracle
        underlying = instrument.underlying
        if oracle is not None:
            try:
                twap = oracle.twap_raw(underlying, instrument.expiry_ns)
            except ValueError:  # the window is older than the oracle's ring
                twap = None
            if twap is not None:
                return twap, True
            index = oracle.index_price(underlying)
            if index is not None:
                return index.raw, False
        return state.reference_prices[underlying], False

    def _settle(self, state: StateAccess, instrument: Instrument) -> list[Any]:
        iid = instrument.instrument_id
        events = state.cancel_instrument_orders(iid, CancelReason.SETTLEMENT)
        price, from_twap = self._price(state, instrument)
        holders = [
            (account_id, state.accounts[account_id].positions[iid].size)
            for account_id in sorted(self.margin.exposed.get(instrument.underlying, {}))
            if iid in state.accounts[account_id].positions
            and state.accounts[account_id].positions[iid].size
        ]
        payoff = payoff_per_unit(instrument.kind, instrument.strike_raw, price)
        fund = self.margin.config.insurance_account
        open_interest = 0
        for account_id, size, cash in settlement_flows(holders, payoff):
            if size < 0:
                state.transfer(account_id, fund, -cash)
            else:
                state.transfer(fund, account_id, cash)
                open_interest += size
            events += state.book_position(account_id, instrument, -size, -cash)
            events.append(PositionSettled(account_id, instrument.name, Quantity(size),
                                          Price(price), Amount(cash)))
        self.settled[iid] = (price, open_interest)
        state.set_record(_KEY_SETTLED + iid.to_bytes(4, "big"), encode([price, open_interest]))
        events.append(InstrumentSettled(iid, instrument.name, Price(price),
                                        Quantity(open_interest), from_twap))
        return events

    def snapshot(self) -> Any:
        return [[iid, price, oi] for iid, (price, oi) in sorted(self.settled.items())]

    def restore(self, state: StateAccess, data: Any) -> None:
        self.settled = {iid: (price, oi) for iid, price, oi in data}
        self._pending = []
        self._known = 0
        self._track_new_listings(state)
        for iid, (price, oi) in sorted(self.settled.items()):
            state.set_record(_KEY_SETTLED + iid.to_bytes(4, "big"), encode([price, oi]))
