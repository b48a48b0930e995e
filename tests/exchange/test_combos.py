"""Combos: every leg in ratio within the net limit, or nothing at all."""

from __future__ import annotations

import pytest

from deltasync.core.fixed import Amount
from deltasync.exchange import queries
from deltasync.exchange.commands import ComboLeg, PlaceCombo, Side
from deltasync.exchange.events import ComboFilled, ComboRejected, RejectReason, Trade

from .helpers import (
    CALL,
    CALL_105,
    CALL_110,
    ETH_CALL,
    FOK,
    IOC,
    Venue,
    buy,
    kinds,
    p,
    q,
    records,
    sell,
)

MAKER, OTHER, TAKER = 20, 21, 22
SPREAD = (ComboLeg(CALL, Side.BUY, 1), ComboLeg(CALL_105, Side.SELL, 1))


@pytest.fixture
def venue() -> Venue:
    v = Venue()
    v.fund(MAKER, OTHER, TAKER)
    v.block(
        sell(MAKER, CALL, "0.05", "3000"),
        sell(MAKER, CALL, "0.05", "3100"),
        buy(MAKER, CALL_105, "0.05", "1500"),
        buy(MAKER, CALL_105, "0.05", "1400"),
        sell(OTHER, CALL_110, "0.2", "800"),
        buy(OTHER, CALL_110, "0.2", "700"),
    )
    return v


def books_and_accounts(venue: Venue) -> tuple:
    state = venue.state
    books = tuple(queries.book_depth(state, name, 50) for name in (CALL, CALL_105, CALL_110))
    accounts = tuple(queries.account_summary(state, a) for a in (MAKER, OTHER, TAKER, 0))
    positions = tuple(tuple(queries.positions(state, a)) for a in (MAKER, OTHER, TAKER))
    return books, accounts, positions


def test_call_spread_fills_both_legs_in_ratio(venue: Venue) -> None:
    events = venue.one(PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.05"), p("1500"), FOK))
    [filled] = kinds(events, ComboFilled)
    trades = kinds(events, Trade)
    assert [(t.instrument, t.taker_side, t.price, t.amount) for t in trades] == [
        (CALL, Side.BUY, p("3000"), q("0.05")),
        (CALL_105, Side.SELL, p("1500"), q("0.05")),
    ]
    assert filled.amount == q("0.05")
    assert filled.premium == Amount.parse("75")  # (3000 - 1500) x 0.05
    assert filled.fees == sum((t.taker_fee for t in trades), Amount(0))
    assert venue.size(TAKER, CALL) == q("0.05").raw
    assert venue.size(TAKER, CALL_105) == -q("0.05").raw
    assert len({t.trade_id for t in trades}) == 2


def test_combo_that_cannot_fill_leaves_nothing_behind(venue: Venue) -> None:
    before = books_and_accounts(venue)
    cases = [
        # too large for the second leg's book
        (PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.2"), p("5000"), FOK), RejectReason.COMBO_WOULD_NOT_FILL),
        # net limit too low: the cheapest spread is 1500
        (PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.05"), p("1499"), FOK), RejectReason.COMBO_WOULD_NOT_FILL),
        (PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.05"), p("1499"), IOC), RejectReason.COMBO_WOULD_NOT_FILL),
        # legs on two underlyings
        (PlaceCombo(TAKER, (ComboLeg(CALL, Side.BUY, 1), ComboLeg(ETH_CALL, Side.SELL, 1)),
                    Side.BUY, q("0.01"), p("100"), FOK), RejectReason.COMBO_INVALID_LEGS),
        (PlaceCombo(TAKER, (ComboLeg(CALL, Side.BUY, 1), ComboLeg("BTC_USDC-27NOV26-1-C", Side.SELL, 1)),
                    Side.BUY, q("0.01"), p("100"), FOK), RejectReason.UNKNOWN_INSTRUMENT),
        (PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.015"), p("5000"), FOK), RejectReason.INVALID_AMOUNT_STEP),
        (PlaceCombo(99, SPREAD, Side.BUY, q("0.01"), p("5000"), FOK), RejectReason.UNKNOWN_ACCOUNT),
    ]
    committed = records(venue.state)
    for command, reason in cases:
        events = venue.one(command)
        assert [e.reason for e in kinds(events, ComboRejected)] == [reason], command
        assert kinds(events, Trade) == []
        assert books_and_accounts(venue) == before
        assert records(venue.state) == committed


def test_combo_refused_for_funds_changes_nothing() -> None:
    venue = Venue()
    venue.fund(MAKER)
    venue.fund(TAKER, usdc_whole=100)
    venue.block(sell(MAKER, CALL, "0.05", "3000"), buy(MAKER, CALL_105, "0.05", "1500"))
    before = books_and_accounts(venue)
    events = venue.one(PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.05"), p("1500"), FOK))
    assert kinds(events, ComboRejected)[0].reason is RejectReason.INSUFFICIENT_FUNDS
    assert books_and_accounts(venue) == before


def test_ioc_fills_the_largest_size_within_the_limit(venue: Venue) -> None:
    # 0.05 at 3000-1500 = 1500; the next 0.05 costs 3100-1400 = 1700 per unit.
    # A limit of 1560 per unit allows an average over n units of at most 1560:
    # 0.05 x 1500 + x x 1700 <= (0.05 + x) x 1560  ->  x <= 0.0214 -> 0.02
    events = venue.one(PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.1"), p("1560"), IOC))
    [filled] = kinds(events, ComboFilled)
    assert filled.amount == q("0.07")
    assert venue.size(TAKER, CALL) == q("0.07").raw
    assert venue.size(TAKER, CALL_105) == -q("0.07").raw
    paid = filled.premium.raw
    assert paid * 1_000_000 <= p("1560").raw * q("0.07").raw


def test_ratio_legs_and_selling_a_combo(venue: Venue) -> None:
    fly = (ComboLeg(CALL, Side.BUY, 1), ComboLeg(CALL_105, Side.SELL, 2), ComboLeg(CALL_110, Side.BUY, 1))
    events = venue.one(PlaceCombo(TAKER, fly, Side.BUY, q("0.05"), p("1000"), FOK))
    [filled] = kinds(events, ComboFilled)
    # 3000 - 2 x (0.05 @1500 + 0.05 @1400)/0.1 + 800 per unit: 150 + 40 - 145 = 45 USDC
    assert filled.premium == Amount.parse("45")
    assert venue.size(TAKER, CALL_105) == -q("0.1").raw
    assert venue.size(TAKER, CALL_110) == q("0.05").raw
    # sell the spread back: legs reversed (sell CALL into bids, buy CALL_105 from asks)
    venue.block(buy(MAKER, CALL, "0.05", "2900"), sell(OTHER, CALL_105, "0.05", "1600"))
    events = venue.one(PlaceCombo(TAKER, SPREAD, Side.SELL, q("0.05"), p("1300"), FOK))
    trades = kinds(events, Trade)
    assert [(t.instrument, t.taker_side) for t in trades] == [(CALL, Side.SELL), (CALL_105, Side.BUY)]
    assert kinds(events, ComboFilled)[0].premium == Amount.parse("-65")  # received (2900-1600) x 0.05
    too_greedy = venue.one(PlaceCombo(TAKER, SPREAD, Side.SELL, q("0.01"), p("5000"), FOK))
    assert kinds(too_greedy, ComboRejected)


def test_combo_skips_the_accounts_own_resting_orders(venue: Venue) -> None:
    venue.one(sell(TAKER, CALL, "0.05", "2950"))  # better than MAKER's, but the taker's own
    events = venue.one(PlaceCombo(TAKER, SPREAD, Side.BUY, q("0.05"), p("1500"), FOK))
    assert [t.maker_account for t in kinds(events, Trade)] == [MAKER, MAKER]
    assert queries.book_depth(venue.state, CALL).asks[0].price == p("2950")
