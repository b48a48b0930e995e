"""Liquidation: a cascade after a 20 % index drop, money conserved exactly after every block."""

from __future__ import annotations

from typing import Any

from deltasync.core.codec import decode
from deltasync.core.fixed import Amount, Price
from deltasync.exchange.assembly import demo_reports, restore_exchange
from deltasync.exchange.commands import Deposit
from deltasync.exchange.events import CancelReason, OrderAccepted, OrderCancelled, Trade
from deltasync.exchange.liquidation import (
    LIQUIDATION_LABEL,
    BackstopTransfer,
    InsuranceCovered,
    LiquidationFill,
    LiquidationStarted,
    SocializedLoss,
)
from deltasync.exchange.margin import MarginConfig

from .test_margin_support import PUT, RiskVenue, buy, risk_genesis, sell

SHORTS = [100, 101, 102, 103, 104]
BUYER, MAKER, BYSTANDER = 11, 12, 13
INSURANCE, BACKSTOP = MarginConfig().insurance_account, MarginConfig().backstop_account
M = 1_000_000


THIN = {"im_base_ppm": 100_000, "im_min_ppm": 80_000, "mm_base_ppm": 50_000}


def _setup(funding: int = 14_700, **margin: Any) -> RiskVenue:
    """Five accounts short one ATM put each, funded near their initial margin."""
    venue = RiskVenue(risk_genesis(**margin))
    venue.block(*(Deposit(a, Amount.whole(funding + 200 * i)) for i, a in enumerate(SHORTS)),
                Deposit(BUYER, Amount.whole(1_000_000)), Deposit(MAKER, Amount.whole(1_000_000)),
                Deposit(BYSTANDER, Amount.whole(50_000)), Deposit(INSURANCE, Amount.whole(2_000)))
    [*placed, taken] = venue.block(*(sell(a, PUT, "1", "4500") for a in SHORTS),
                                   buy(BUYER, PUT, "5", "4500"))
    assert all(type(events[0]) is OrderAccepted for events in placed), placed
    assert sum(1 for e in taken if type(e) is Trade) == 5
    # each short also leaves a resting order (cancelled first when liquidated)
    venue.block(*(sell(a, "BTC_USDC-27NOV26-120000-C", "0.01", "9000") for a in SHORTS))
    return venue


def _drop(venue: RiskVenue) -> None:
    venue.prices["BTC"] = Price(venue.prices["BTC"].raw * 8 // 10)
    venue.block()


def _liquidation_events(venue: RiskVenue) -> list[Any]:
    return venue.end_events()


def test_cascade_after_a_20_percent_drop_conserves_money_every_block() -> None:
    venue = _setup(**THIN)  # 10 % + mark initial margin: a 20 % gap bankrupts every short
    # the maker offers some puts near where they will be worth after the drop
    [[offer]] = venue.block(sell(MAKER, PUT, "0.8", "21000"))
    assert type(offer) is OrderAccepted
    assert not venue.margin.below_maintenance
    _drop(venue)  # reports at 80,000: the index moves at the next block's start
    venue.block()
    first = _liquidation_events(venue)
    started = [e.account for e in first if type(e) is LiquidationStarted]
    assert sorted(started) == SHORTS
    # worst margin ratio first, then account id: the least funded account leads
    assert started[0] == 100
    cancelled = [e for e in first if type(e) is OrderCancelled and e.reason is CancelReason.RISK]
    assert sorted(e.account for e in cancelled) == SHORTS
    fills = [e for e in first if type(e) is LiquidationFill]
    assert fills and fills[0].account == 100
    assert sum(e.amount.raw for e in fills) == 800_000  # the book held 0.8
    trades = [e for e in first if type(e) is Trade]
    assert all(t.maker_account == MAKER and t.price.raw <= 22_500 * M for t in trades)
    backstop = [e for e in first if type(e) is BackstopTransfer]
    assert backstop and all(e.backstop_account == BACKSTOP for e in backstop)
    # equity went negative: each short was closed whole (book first, then the backstop)
    assert all(venue.size(a, PUT) == 0 for a in SHORTS)
    events = list(first)
    for _ in range(12):
        venue.block()  # money_problems() is asserted inside every block
        events += _liquidation_events(venue)
        if not venue.margin.below_maintenance:
            break
    assert not venue.margin.below_maintenance
    assert all(venue.size(a, PUT) == 0 for a in SHORTS)
    assert all(venue.state.accounts[a].cash >= 0 for a in SHORTS)
    covered = [e for e in events if type(e) is InsuranceCovered]
    socialized = [e for e in events if type(e) is SocializedLoss]
    assert covered and socialized  # the 2,000 USDC fund runs dry, the rest is shared
    assert venue.state.accounts[INSURANCE].cash >= 0
    assert all(e.uncovered.raw == 0 for e in socialized)
    # positions net to zero across the buyer, the maker and the backstop
    assert venue.size(BUYER, PUT) + venue.size(MAKER, PUT) + venue.size(BACKSTOP, PUT) == 0
    assert venue.size(BACKSTOP, PUT) < 0
    assert venue.state.accounts[BYSTANDER].cash < 50_000 * M  # took a pro-rata haircut


def test_liquidation_stops_once_the_account_is_back_above_maintenance() -> None:
    venue = _setup(funding=20_000)  # default parameters: 15 % + mark
    _drop(venue)
    for _ in range(15):
        venue.block()
    assert not venue.margin.below_maintenance
    sizes = [venue.size(a, PUT) for a in SHORTS]
    assert all(-1_000_000 < size < 0 for size in sizes), sizes  # reduced, not closed
    for account in SHORTS:
        summary = venue.margin.summary(venue.state, account)
        assert summary is not None and summary.equity >= summary.maintenance_margin > 0


def test_liquidation_orders_are_ioc_reduce_only_within_the_band() -> None:
    venue = _setup(**THIN)
    venue.block(sell(MAKER, PUT, "5", "40000"))  # far above any band: never used
    _drop(venue)
    venue.block()
    events = _liquidation_events(venue)
    accepted = [e for e in events if type(e) is OrderAccepted]
    assert accepted and all(e.label == LIQUIDATION_LABEL for e in accepted)
    assert not any(type(e) is Trade for e in events)
    # nothing filled in the book: every (bankrupt) short went whole to the backstop
    moved = [e.amount.raw for e in events if type(e) is BackstopTransfer]
    assert moved == [1_000_000] * len(SHORTS)
    ids = [e.order_id for e in accepted]
    assert len(set(ids)) == len(ids)  # distinct log positions


def test_liquidation_pauses_while_the_underlying_is_cancel_only() -> None:
    venue = _setup(liquidation_accounts_per_block_max=1, **THIN)
    _drop(venue)
    venue.block()
    assert [e.account for e in _liquidation_events(venue) if type(e) is LiquidationStarted] == [100]
    venue.block(seconds=40, reports=False)  # every report is stale: cancel-only
    assert venue.state.risk.oracle.is_cancel_only("BTC")  # type: ignore[attr-defined]
    for _ in range(3):
        venue.block(reports=False)
        assert not [e for e in _liquidation_events(venue) if type(e) is LiquidationStarted]
    assert venue.margin.below_maintenance
    venue.block()  # fresh reports again
    venue.block()  # ... the breaker resets at this block's start
    assert [e for e in _liquidation_events(venue) if type(e) is LiquidationStarted]


def test_liquidation_totals_are_in_the_state_root() -> None:
    venue = _setup(**THIN)
    _drop(venue)
    venue.block()
    value = venue.state.merkle.get(b"liq/meta")
    assert value is not None and decode(value)[0] == len(SHORTS)  # steps taken
    restored = restore_exchange(venue.state.snapshot_bytes())
    assert restored.state_root() == venue.state.state_root()
    height, time_ns = venue.height + 1, venue.time_ns + 10**9
    venue.block()
    restored.apply_block(height, time_ns, demo_reports(venue.prices, time_ns))
    assert restored.state_root() == venue.state.state_root()


_CASCADE_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.exchange import test_liquidation as t
venue = t._setup(**t.THIN)
venue.block(t.sell(t.MAKER, t.PUT, "0.8", "21000"))
t._drop(venue)
for _ in range(4):
    venue.block()
print(venue.state.state_root().hex())
"""


def test_the_cascade_reaches_the_same_root_under_any_hash_seed() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    roots = set()
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", _CASCADE_SCRIPT.format(root=root)],
                              capture_output=True, text=True, env=env, check=True, cwd=root)
        roots.add(done.stdout.strip())
    assert len(roots) == 1 and len(roots.pop()) == 64


def test_a_negative_balance_without_positions_is_covered_then_socialized() -> None:
    venue = RiskVenue()
    venue.block(Deposit(20, Amount.whole(1_000)), Deposit(21, Amount.whole(3_000)),
                Deposit(22, Amount.whole(1_000)), Deposit(INSURANCE, Amount.whole(500)))
    # a loss booked outside trading (as a settlement of a short can): 20 owes 1,500
    venue.state.transfer(20, 23, 2_500 * M)
    venue.block()
    events = venue.end_events()
    [started] = [e for e in events if type(e) is LiquidationStarted]
    assert started.account == 20 and started.equity.raw == -1_500 * M
    [covered] = [e for e in events if type(e) is InsuranceCovered]
    assert covered.amount.raw == 500 * M and covered.fund_balance.raw == 0
    [shared] = [e for e in events if type(e) is SocializedLoss]
    # 1,000 left, taken pro rata from 21 (3,000), 22 (1,000) and 23 (2,500)
    assert shared.deficit.raw == 1_000 * M and shared.accounts == 3 and shared.uncovered.raw == 0
    cash = {a: venue.state.accounts[a].cash for a in (20, 21, 22, 23)}
    assert cash[20] == 0
    assert cash[21] == 3_000 * M - 1_000 * M * 3_000 // 6_500 - 1
    assert sum(cash.values()) == 5_500 * M  # the deposits plus the 500 the fund paid in
    assert not venue.margin.below_maintenance
