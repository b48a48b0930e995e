"""The exchange workload: funding clients and trading clients, each one sequential process.

Funding clients deposit to, withdraw from and read (ReadIndex) a few shared
funding accounts; these accounts never trade, so their balances form the
per-key model the linearizability checker verifies. Trading clients fund
their own account once, then place, edit and cancel orders and send combos on
a small option grid (including instruments that expire during the run); their
effects are checked by the exchange invariants and by the state-root checker.

A client has one operation in flight. An attempt goes to a node the client
picks at random (any node: it does not know which are up); if no answer comes
within ``client_timeout_ns``, or the answer says the command was not applied
(``timeout``, ``stale_block``), the client retries the *same* (session,
request) through another node, up to ``client_attempts_max`` attempts, then
gives up: the operation is indeterminate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.exchange.commands import (
    CancelAll,
    CancelOrder,
    ComboLeg,
    Deposit,
    EditOrder,
    PlaceCombo,
    PlaceOrder,
    Side,
    TimeInForce,
    Withdraw,
)
from deltasync.exchange.events import OrderAccepted, OrderCancelled, OrderExpired
from deltasync.exchange.margin import MarginMode, SetMarginMode

FUNDING_ACCOUNT_BASE = 1000
TRADING_ACCOUNT_BASE = 2000
SESSION_BASE = 100

# A small grid: the first expiry happens during the run, the second does not.
UNDERLYING = "BTC"
EXPIRIES = ("27NOV26", "25DEC26")
STRIKES = ("95000", "100000", "105000")


def instruments() -> list[str]:
    return [
        f"{UNDERLYING}_USDC-{expiry}-{strike}-{kind}"
        for expiry in EXPIRIES
        for strike in STRIKES
        for kind in ("C", "P")
    ]


@dataclass(slots=True)
class PendingOp:
    op_id: int
    request: int
    kind: str  # "deposit" | "withdraw" | "read" | "trade"
    command: Any  # the exchange command (None for reads)
    key: int  # account
    amount: int
    invoke_ns: int
    attempts: int = 0
    attempt_node: int = 0
    deadline_ns: int = 0
    token: int = 0  # identifies the current attempt (late answers of old attempts are ignored)


@dataclass(slots=True)
class WorkloadClient:
    """One sequential client of the workload (funding, trading or an oracle feeder)."""

    client_id: int
    session: int
    account: int
    trading: bool
    rng: random.Random
    next_request: int = 1
    funded: bool = False
    op: PendingOp | None = None
    open_orders: list[int] = field(default_factory=list)
    oracle_source: str = ""  # an oracle feeder (signs and sends price reports) when set
    deposit_whole: int = 10_000_000  # what a trading client funds its account with (USDC)
    margin_modes: bool = False  # may switch between standard and portfolio margin

    def next_command(
        self, instrument_names: list[str], funding_accounts: int
    ) -> tuple[str, Any, int, int]:
        """(kind, command, account, amount raw) of the next operation."""
        rng = self.rng
        if not self.trading:
            account = FUNDING_ACCOUNT_BASE + rng.randrange(funding_accounts)
            roll = rng.randrange(10)
            if roll < 4:
                amount = Amount.whole(rng.randrange(1, 50))
                return "deposit", Deposit(account, amount), account, amount.raw
            if roll < 7:
                amount = Amount.whole(rng.randrange(1, 80))
                return "withdraw", Withdraw(account, amount), account, amount.raw
            return "read", None, account, 0
        if not self.funded:
            amount = Amount.whole(self.deposit_whole)
            return "trade", Deposit(self.account, amount), self.account, amount.raw
        return "trade", self._trading_command(instrument_names), self.account, 0

    def _trading_command(self, names: list[str]) -> Any:
        rng = self.rng
        roll = rng.randrange(20)
        if self.open_orders and roll < 4:
            order_id = rng.choice(self.open_orders)
            return CancelOrder(self.account, order_id)
        if self.open_orders and roll < 7:
            order_id = rng.choice(self.open_orders)
            return EditOrder(
                self.account,
                order_id,
                _price(rng),
                Quantity.parse(f"0.0{rng.randrange(1, 10)}"),
                post_only=rng.randrange(4) == 0,
            )
        if roll == 7:
            if self.margin_modes and rng.randrange(2):
                return SetMarginMode(self.account, rng.choice(list(MarginMode)))
            return CancelAll(self.account, rng.choice([None, *names]))
        if roll < 10:
            legs = rng.sample(names, 2)
            return PlaceCombo(
                self.account,
                (
                    ComboLeg(legs[0], Side.BUY, 1),
                    ComboLeg(legs[1], rng.choice(list(Side)), rng.randrange(1, 3)),
                ),
                rng.choice(list(Side)),
                Quantity.parse("0.01"),
                Price.whole(rng.randrange(-3000, 6000)),
                rng.choice((TimeInForce.FILL_OR_KILL, TimeInForce.IMMEDIATE_OR_CANCEL)),
            )
        tif = rng.choice(
            (
                TimeInForce.GOOD_TIL_CANCELLED,
                TimeInForce.GOOD_TIL_CANCELLED,
                TimeInForce.IMMEDIATE_OR_CANCEL,
            )
        )
        return PlaceOrder(
            self.account,
            rng.choice(names),
            rng.choice(list(Side)),
            Quantity.parse(f"0.0{rng.randrange(1, 10)}"),
            _price(rng),
            time_in_force=tif,
            post_only=tif is TimeInForce.GOOD_TIL_CANCELLED and rng.randrange(5) == 0,
            label=f"c{self.client_id}",
        )

    def observe(self, events: tuple[Any, ...]) -> None:
        """Track this client's open orders from the events of its own commands."""
        for event in events:
            match event:
                case OrderAccepted(order_id=order_id, account=account) if account == self.account:
                    if order_id not in self.open_orders:
                        self.open_orders.append(order_id)
                case OrderCancelled(order_id=order_id) | OrderExpired(order_id=order_id):
                    if order_id in self.open_orders:
                        self.open_orders.remove(order_id)
        del self.open_orders[:-20]  # forget very old ones; cancelling them is merely rejected


def _price(rng: random.Random) -> Price:
    if rng.randrange(3) == 0:
        return Price.whole(rng.randrange(100, 1000))  # tick 1 below 1000
    return Price.whole(1000 + 5 * rng.randrange(0, 600))  # tick 5 above
