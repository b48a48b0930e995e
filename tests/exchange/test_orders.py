"""Order behaviour through the state machine: time in force, flags, edits, fees, ordering, ids."""

from __future__ import annotations

import pytest

from deltasync.commitment.merkle import verify_proof
from deltasync.core.fixed import Amount
from deltasync.core.ids import OptionKind, log_id
from deltasync.exchange import invariants, queries
from deltasync.exchange.book import OrderStatus
from deltasync.exchange.commands import (
    CancelAll,
    CancelByLabel,
    CancelOrder,
    Deposit,
    EditOrder,
    ListInstruments,
    OrderType,
    PlaceOrder,
    Side,
    Withdraw,
)
from deltasync.exchange.events import (
    CancelReason,
    CancelRejected,
    Deposited,
    DepositRejected,
    InstrumentExpired,
    InstrumentListed,
    ListingRejected,
    OrderAccepted,
    OrderCancelled,
    OrderEdited,
    OrderExpired,
    OrderRejected,
    RejectReason,
    Trade,
    Withdrawn,
    WithdrawRejected,
)
from deltasync.exchange.records import account_proof
from deltasync.exchange.state import ExchangeState
from deltasync.exchange.tables import StateError

from .helpers import (
    CALL,
    FOK,
    GTT,
    IOC,
    PUT,
    SECOND_NS,
    Venue,
    buy,
    genesis,
    kinds,
    p,
    q,
    records,
    sell,
    usdc,
)

A, B, C = 10, 11, 12


@pytest.fixture
def venue() -> Venue:
    v = Venue()
    v.fund(A, B, C)
    return v


def order_id(events: list) -> int:
    return kinds(events, OrderAccepted)[0].order_id


def test_price_time_priority_and_partial_fills(venue: Venue) -> None:
    first = order_id(venue.one(sell(A, CALL, "0.05", "500")))
    second = order_id(venue.one(sell(B, CALL, "0.05", "500")))
    better = order_id(venue.one(sell(B, CALL, "0.01", "495")))
    events = venue.one(buy(C, CALL, "0.08", "500"))
    trades = kinds(events, Trade)
    assert [(t.maker_order_id, t.amount, t.price) for t in trades] == [
        (better, q("0.01"), p("495")),
        (first, q("0.05"), p("500")),
        (second, q("0.02"), p("500")),
    ]
    assert queries.order(venue.state, second).remaining == q("0.03")
    assert queries.order(venue.state, first).status is OrderStatus.FILLED
    assert venue.size(C, CALL) == q("0.08").raw
    assert venue.size(A, CALL) == -q("0.05").raw


def test_ioc_remainder_is_cancelled_and_never_rests(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.02", "500"))
    events = venue.one(buy(B, CALL, "0.05", "510", time_in_force=IOC))
    assert sum(t.amount.raw for t in kinds(events, Trade)) == q("0.02").raw
    cancelled = kinds(events, OrderCancelled)
    assert [(c.remaining, c.reason) for c in cancelled] == [(q("0.03"), CancelReason.UNFILLED)]
    assert queries.book_depth(venue.state, CALL).bids == ()


def test_fill_or_kill_fills_whole_or_not_at_all(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.02", "500"))
    venue.one(sell(A, CALL, "0.02", "520"))
    before = queries.book_depth(venue.state, CALL)
    events = venue.one(buy(B, CALL, "0.04", "510", time_in_force=FOK))
    assert kinds(events, Trade) == []
    assert kinds(events, OrderCancelled)[0].reason is CancelReason.UNFILLED
    assert queries.book_depth(venue.state, CALL) == before
    events = venue.one(buy(B, CALL, "0.04", "520", time_in_force=FOK))
    assert sum(t.amount.raw for t in kinds(events, Trade)) == q("0.04").raw
    assert queries.book_depth(venue.state, CALL).asks == ()


def test_good_til_time_expires_by_block_time(venue: Venue) -> None:
    expire_at = venue.time_ns + 3 * SECOND_NS
    oid = order_id(venue.one(buy(A, CALL, "0.01", "400", time_in_force=GTT, expire_at_ns=expire_at)))
    venue.block(seconds=1)
    assert queries.order(venue.state, oid).status is OrderStatus.OPEN
    venue.block(seconds=2)  # block time == expire_at
    assert venue.last is not None
    expired = kinds(list(venue.last.start_events), OrderExpired)
    assert [e.order_id for e in expired] == [oid]
    assert queries.order(venue.state, oid).status is OrderStatus.EXPIRED
    assert venue.state.accounts[A].locked == 0
    late = venue.one(buy(A, CALL, "0.01", "400", time_in_force=GTT, expire_at_ns=venue.time_ns))
    assert kinds(late, OrderRejected)[0].reason is RejectReason.INVALID_EXPIRY


def test_cancelled_good_til_time_orders_do_not_pile_up(venue: Venue) -> None:
    far = venue.time_ns + 10**6 * SECOND_NS
    for _ in range(12):
        oids = [order_id(e) for e in venue.block(
            *(buy(A, CALL, "0.01", "100", time_in_force=GTT, expire_at_ns=far) for _ in range(150)))]
        venue.block(*(CancelOrder(A, oid) for oid in oids))
    assert len(venue.state.good_til_time_heap) <= 2 * len(venue.state.orders) + 1024 + 1
    keep = order_id(venue.one(buy(A, CALL, "0.01", "100", time_in_force=GTT,
                                  expire_at_ns=venue.time_ns + 2 * SECOND_NS)))
    venue.block(seconds=2)
    assert queries.order(venue.state, keep).status is OrderStatus.EXPIRED


def test_post_only_rejected_when_it_would_cross(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.01", "500"))
    crossing = venue.one(buy(B, CALL, "0.01", "500", post_only=True))
    assert kinds(crossing, OrderRejected)[0].reason is RejectReason.POST_ONLY_WOULD_CROSS
    resting = venue.one(buy(B, CALL, "0.01", "499", post_only=True))
    assert kinds(resting, OrderAccepted) and not kinds(resting, Trade)


def test_reduce_only(venue: Venue) -> None:
    flat = venue.one(sell(A, CALL, "0.01", "500", reduce_only=True))
    assert kinds(flat, OrderRejected)[0].reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    venue.one(sell(B, CALL, "0.03", "500"))
    venue.one(buy(A, CALL, "0.03", "500"))  # A is long 0.03
    grow = venue.one(buy(A, CALL, "0.01", "400", reduce_only=True))
    assert kinds(grow, OrderRejected)[0].reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    flip = venue.one(sell(A, CALL, "0.04", "600", reduce_only=True))
    assert kinds(flip, OrderRejected)[0].reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    ok = venue.one(sell(A, CALL, "0.03", "600", reduce_only=True))
    assert kinds(ok, OrderAccepted)


def test_resting_reduce_only_orders_follow_the_position(venue: Venue) -> None:
    venue.one(sell(B, CALL, "0.05", "500"))
    venue.one(buy(A, CALL, "0.05", "500"))  # A is long 0.05
    first = order_id(venue.one(sell(A, CALL, "0.03", "700", reduce_only=True)))
    second = order_id(venue.one(sell(A, CALL, "0.02", "710", reduce_only=True)))
    too_much = venue.one(sell(A, CALL, "0.01", "720", reduce_only=True))
    assert kinds(too_much, OrderRejected)[0].reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    # A sells 0.03 elsewhere: the position is 0.02, so only the younger 0.02 order still fits
    venue.one(buy(C, CALL, "0.03", "600"))
    events = venue.one(sell(A, CALL, "0.03", "600", time_in_force=IOC))
    cancelled = kinds(events, OrderCancelled)
    assert [(c.order_id, c.reason) for c in cancelled] == [(first, CancelReason.REDUCE_ONLY)]
    assert queries.order(venue.state, second).status is OrderStatus.OPEN
    # a fill of the maker side shrinks it too: C lifts 0.02 of A's order, flat, nothing left
    trade = kinds(venue.one(buy(C, CALL, "0.02", "710")), Trade)
    assert trade[0].maker_order_id == second and venue.size(A, CALL) == 0
    assert queries.open_orders(venue.state, A) == []


def test_self_trade_prevention_cancels_the_resting_maker(venue: Venue) -> None:
    own = order_id(venue.one(sell(A, CALL, "0.02", "500")))
    other = order_id(venue.one(sell(B, CALL, "0.02", "505")))
    events = venue.one(buy(A, CALL, "0.02", "510"))
    cancelled = kinds(events, OrderCancelled)
    assert [(c.order_id, c.reason) for c in cancelled] == [(own, CancelReason.SELF_TRADE)]
    assert [t.maker_order_id for t in kinds(events, Trade)] == [other]
    assert venue.size(A, CALL) == q("0.02").raw


def test_edit_decrease_keeps_priority_increase_and_reprice_lose_it(venue: Venue) -> None:
    first = order_id(venue.one(sell(A, CALL, "0.05", "500")))
    second = order_id(venue.one(sell(B, CALL, "0.05", "500")))
    edited = venue.one(EditOrder(A, first, p("500"), q("0.03")))
    assert kinds(edited, OrderEdited)[0].priority_kept
    fill = venue.one(buy(C, CALL, "0.01", "500"))
    assert kinds(fill, Trade)[0].maker_order_id == first
    # increase: loses priority behind B
    grown = venue.one(EditOrder(A, first, p("500"), q("0.06")))
    assert not kinds(grown, OrderEdited)[0].priority_kept
    assert queries.order(venue.state, first).remaining == q("0.05")  # 0.06 total, 0.01 filled
    fill = venue.one(buy(C, CALL, "0.01", "500"))
    assert kinds(fill, Trade)[0].maker_order_id == second
    # reprice B below A: B is best again by price
    venue.one(EditOrder(B, second, p("499"), q("0.05")))
    assert queries.book_depth(venue.state, CALL).asks[0].price == p("499")
    # an edit that crosses takes liquidity
    taker = order_id(venue.one(buy(C, CALL, "0.01", "490")))
    crossing = venue.one(EditOrder(C, taker, p("499"), q("0.01")))
    assert kinds(crossing, Trade)[0].maker_order_id == second
    assert queries.order(venue.state, taker).status is OrderStatus.FILLED


def test_edit_rejections_change_nothing(venue: Venue) -> None:
    oid = order_id(venue.one(sell(A, CALL, "0.05", "500")))
    venue.one(buy(B, CALL, "0.02", "500"))
    cases = [
        (EditOrder(B, oid, p("500"), q("0.05")), RejectReason.NOT_ORDER_OWNER),
        (EditOrder(A, oid, p("500"), q("0.02")), RejectReason.INVALID_AMOUNT),  # = filled
        (EditOrder(A, oid, p("1002"), q("0.05")), RejectReason.INVALID_PRICE_TICK),
        (EditOrder(A, 12345, p("500"), q("0.05")), RejectReason.UNKNOWN_ORDER),
        (EditOrder(A, oid, p("400"), q("0.05"), post_only=True), RejectReason.POST_ONLY_WOULD_CROSS),
    ]
    venue.one(buy(C, CALL, "0.01", "450"))
    before = records(venue.state)
    for command, reason in cases:
        events = venue.one(command)
        assert kinds(events, OrderRejected)[0].reason is reason, command
        assert records(venue.state) == before, command
    assert queries.order(venue.state, oid).remaining == q("0.03")


def test_cancel_by_label_and_cancel_all(venue: Venue) -> None:
    a = order_id(venue.one(buy(A, CALL, "0.01", "100", label="quote")))
    b = order_id(venue.one(buy(A, PUT, "0.01", "100", label="quote")))
    c = order_id(venue.one(buy(A, CALL, "0.01", "101", label="other")))
    d = order_id(venue.one(buy(A, PUT, "0.01", "101", label="other")))
    events = venue.one(CancelByLabel(A, "quote", CALL))
    assert [e.order_id for e in kinds(events, OrderCancelled)] == [a]
    events = venue.one(CancelByLabel(A, "quote"))
    assert [e.order_id for e in kinds(events, OrderCancelled)] == [b]
    events = venue.one(CancelAll(A, PUT))
    assert [e.order_id for e in kinds(events, OrderCancelled)] == [d]
    assert kinds(venue.one(CancelOrder(B, c)), CancelRejected)[0].reason is RejectReason.NOT_ORDER_OWNER
    events = venue.one(CancelAll(A))
    assert [e.order_id for e in kinds(events, OrderCancelled)] == [c]
    assert venue.state.accounts[A].locked == 0 and queries.open_orders(venue.state, A) == []
    assert kinds(venue.one(CancelOrder(A, c)), CancelRejected)[0].reason is RejectReason.UNKNOWN_ORDER


def test_too_many_open_orders() -> None:
    venue = Venue(genesis(limits={"open_orders_per_account_max": 3}))
    venue.fund(A)
    for price in ("100", "101", "102"):
        venue.one(buy(A, CALL, "0.01", price))
    events = venue.one(buy(A, CALL, "0.01", "103"))
    assert kinds(events, OrderRejected)[0].reason is RejectReason.TOO_MANY_OPEN_ORDERS
    # orders that cannot rest are not counted against the limit
    venue.fund(B)
    venue.one(sell(B, CALL, "0.01", "150"))
    assert kinds(venue.one(buy(A, CALL, "0.01", "150", time_in_force=IOC)), Trade)


def test_fees_rate_and_cap_to_fee_account(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.1", "500"))
    a0, b0 = venue.cash(A), venue.cash(B)
    events = venue.one(buy(B, CALL, "0.1", "500"))
    trade = kinds(events, Trade)[0]
    # 0.03 % of 100,000 x 0.01 BTC = 0.3 USDC per contract; cap 12.5 % x 5 USDC = 0.625
    assert trade.taker_fee == trade.maker_fee == Amount.parse("3")
    assert venue.cash(B) == b0 - usdc("50") - usdc("3")
    assert venue.cash(A) == a0 + usdc("50") - usdc("3")
    assert venue.cash(0) == usdc("6")
    # a cheap option: the cap (12.5 % of the premium) binds
    venue.one(sell(A, CALL, "0.1", "100"))
    trade = kinds(venue.one(buy(B, CALL, "0.1", "100")), Trade)[0]
    assert trade.taker_fee == Amount.parse("1.25")
    assert venue.state.accounts[B].fees_paid == usdc("4.25")


def test_market_orders_bounded_by_band(venue: Venue) -> None:
    none = venue.one(PlaceOrder(B, CALL, Side.BUY, q("0.01"), order_type=OrderType.MARKET,
                                time_in_force=IOC))
    assert kinds(none, OrderRejected)[0].reason is RejectReason.NO_LIQUIDITY
    venue.one(sell(A, CALL, "0.01", "500"))
    venue.one(sell(A, CALL, "0.01", "545"))
    venue.one(sell(A, CALL, "0.01", "560"))  # beyond 500 + 10 %
    events = venue.one(PlaceOrder(B, CALL, Side.BUY, q("0.05"), order_type=OrderType.MARKET,
                                  time_in_force=IOC))
    assert kinds(events, OrderAccepted)[0].price == p("550")
    assert [t.price for t in kinds(events, Trade)] == [p("500"), p("545")]
    assert kinds(events, OrderCancelled)[0].remaining == q("0.03")


@pytest.mark.parametrize(
    "command,reason",
    [
        (buy(A, "BTC_USDC-27NOV26-99999-C", "0.01", "100"), RejectReason.UNKNOWN_INSTRUMENT),
        (buy(A, CALL, "0.01", "1002"), RejectReason.INVALID_PRICE_TICK),  # tick 5 above 1000
        (buy(A, CALL, "0.015", "100"), RejectReason.INVALID_AMOUNT_STEP),
        (buy(A, CALL, "0.01", "0.5"), RejectReason.INVALID_PRICE_TICK),
        (buy(99, CALL, "0.01", "100"), RejectReason.UNKNOWN_ACCOUNT),
        (buy(A, CALL, "1000", "900"), RejectReason.INSUFFICIENT_FUNDS),
        (sell(A, PUT, "1", "500"), RejectReason.INSUFFICIENT_FUNDS),  # needs strike x 1 BTC
    ],
)
def test_rejections(command: PlaceOrder, reason: RejectReason) -> None:
    venue = Venue()
    venue.fund(A, usdc_whole=90_000)
    before = records(venue.state)
    events = venue.one(command)
    assert [e.reason for e in kinds(events, OrderRejected)] == [reason]
    assert venue.state.accounts[A].locked == 0
    assert records(venue.state) == before  # only the block header moved


def test_collateral_reserved_and_released(venue: Venue) -> None:
    oid = order_id(venue.one(buy(A, CALL, "0.1", "500")))
    # premium 50 + fee cap 6.25
    assert venue.state.accounts[A].locked == usdc("56.25")
    venue.one(CancelOrder(A, oid))
    assert venue.state.accounts[A].locked == 0
    venue.one(sell(A, PUT, "0.1", "500"))
    assert venue.state.accounts[A].locked == usdc("10000")  # strike x 0.1
    venue.one(sell(A, CALL, "0.1", "500"))
    assert venue.state.accounts[A].locked == usdc("40000")  # + 300,000 x 0.1


def test_deposits_are_capped_venue_wide(venue: Venue) -> None:
    held = venue.state.deposits_total - venue.state.withdrawals_total
    room = Amount(10**17 - held)
    refused = venue.one(Deposit(A, Amount(room.raw + 1)))
    assert kinds(refused, DepositRejected)[0].reason is RejectReason.DEPOSIT_LIMIT
    assert kinds(venue.one(Deposit(A, room)), Deposited)


def test_withdrawals(venue: Venue) -> None:
    venue.one(sell(A, PUT, "1", "500"))  # locks 100,000
    too_much = venue.one(Withdraw(A, Amount.whole(900_001)))
    assert kinds(too_much, WithdrawRejected)[0].reason is RejectReason.INSUFFICIENT_FUNDS
    ok = venue.one(Withdraw(A, Amount.whole(900_000)))
    assert kinds(ok, Withdrawn)[0].balance == Amount.whole(100_000)
    unknown = venue.one(Withdraw(77, Amount.whole(1)))
    assert kinds(unknown, WithdrawRejected)[0].reason is RejectReason.UNKNOWN_ACCOUNT


def test_cancels_and_post_only_apply_before_takers_in_a_block(venue: Venue) -> None:
    quote = order_id(venue.one(sell(A, CALL, "0.01", "500")))
    events = venue.block(
        buy(B, CALL, "0.01", "510"),  # would hit the stale quote
        CancelOrder(A, quote),
        sell(A, CALL, "0.01", "520", post_only=True),  # the new quote
    )
    assert venue.last is not None and venue.last.order == (1, 2, 0)
    assert kinds(events[1], OrderCancelled)
    assert kinds(events[2], OrderAccepted)
    assert kinds(events[0], Trade) == []  # the taker met the new quote at 520 > 510
    # ids come from the sequenced position
    assert kinds(events[2], OrderAccepted)[0].order_id == log_id(venue.height, 1)
    assert kinds(events[0], OrderAccepted)[0].order_id == log_id(venue.height, 2)


def test_instrument_expiry_cancels_and_deactivates(venue: Venue) -> None:
    oid = order_id(venue.one(buy(A, CALL, "0.01", "100")))
    instrument = queries.instrument(venue.state, CALL)
    assert instrument is not None
    venue.block(seconds=(instrument.expiry_ns - venue.time_ns) // SECOND_NS)
    assert venue.last is not None
    start = list(venue.last.start_events)
    assert kinds(start, OrderCancelled)[0].order_id == oid
    assert kinds(start, OrderCancelled)[0].reason is CancelReason.INSTRUMENT_EXPIRED
    assert any(e.instrument == CALL for e in kinds(start, InstrumentExpired))
    late = venue.one(buy(A, CALL, "0.01", "100"))
    assert kinds(late, OrderRejected)[0].reason is RejectReason.INSTRUMENT_INACTIVE


def test_list_instruments_by_admin_only(venue: Venue) -> None:
    listing = ListInstruments(1, "BTC", "26MAR27", (p("90000"), p("95000")), (OptionKind.CALL,))
    refused = venue.one(ListInstruments(A, "BTC", "26MAR27", (p("90000"),)))
    assert kinds(refused, ListingRejected)[0].reason is RejectReason.NOT_AUTHORIZED
    listed = venue.one(listing)
    assert [e.instrument for e in kinds(listed, InstrumentListed)] == [
        "BTC_USDC-26MAR27-90000-C", "BTC_USDC-26MAR27-95000-C"]
    again = venue.one(listing)
    assert kinds(again, ListingRejected)[0].reason is RejectReason.INSTRUMENT_EXISTS
    past = venue.one(ListInstruments(1, "BTC", "19NOV26", (p("90000"),)))
    assert kinds(past, ListingRejected)[0].reason is RejectReason.INVALID_EXPIRY
    venue.one(sell(A, "BTC_USDC-26MAR27-90000-C", "0.01", "15000"))
    trade = kinds(venue.one(buy(B, "BTC_USDC-26MAR27-90000-C", "0.01", "15000")), Trade)
    assert trade and trade[0].price == p("15000")


def test_positions_average_price_and_realized_pnl(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.1", "500"))
    venue.one(buy(B, CALL, "0.1", "500"))
    venue.one(sell(A, CALL, "0.1", "700"))
    venue.one(buy(B, CALL, "0.1", "700"))
    [position] = queries.positions(venue.state, B)
    assert position.size == q("0.2") and position.average_price == p("600")
    venue.one(buy(C, CALL, "0.1", "800"))
    venue.one(sell(B, CALL, "0.1", "800"))  # closes half at 800 vs 600 average
    [position] = queries.positions(venue.state, B)
    assert position.realized_pnl == Amount.parse("20") and position.size == q("0.1")
    assert queries.account_summary(venue.state, B).realized_pnl == Amount.parse("20")


def test_account_proof_verifies_against_the_root(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.1", "500"))
    root = venue.state.state_root()
    proof = account_proof(venue.state, A)
    assert verify_proof(root, proof)
    venue.one(Deposit(A, Amount.whole(1)))
    assert not verify_proof(venue.state.state_root(), proof)  # stale proof, new root
    assert verify_proof(venue.state.state_root(), account_proof(venue.state, A))


def test_snapshot_restore_gives_the_same_root_and_future(venue: Venue) -> None:
    venue.one(sell(A, CALL, "0.1", "500", label="x"))
    venue.one(buy(B, CALL, "0.05", "500"))
    venue.one(buy(C, PUT, "0.01", "300", time_in_force=GTT, expire_at_ns=venue.time_ns + 5 * SECOND_NS))
    data = venue.state.snapshot_bytes()
    restored = ExchangeState.restore(data)
    assert restored.state_root() == venue.state.state_root()
    assert restored.snapshot_bytes() == data
    assert invariants.check_invariants(restored) == []
    block = [buy(C, CALL, "0.1", "500"), CancelByLabel(A, "x")]
    next_time = venue.time_ns + 10 * SECOND_NS
    ours = venue.state.apply_block(venue.height + 1, next_time, block)
    theirs = restored.apply_block(venue.height + 1, next_time, block)
    assert ours.state_root == theirs.state_root
    assert ours.events == theirs.events and ours.start_events == theirs.start_events


def test_blocks_must_be_consecutive_and_time_monotone(venue: Venue) -> None:
    with pytest.raises(StateError):
        venue.state.apply_block(venue.height + 2, venue.time_ns + 1, [])
    with pytest.raises(StateError):
        venue.state.apply_block(venue.height + 1, venue.time_ns - 1, [])
    root = venue.state.state_root()
    with pytest.raises(StateError):  # an unknown command type: refused before any change
        venue.state.apply_block(venue.height + 1, venue.time_ns + 1, [Deposit(A, Amount(1)), object()])
    assert venue.state.state_root() == root and venue.state.height == venue.height


def test_queries_book_depth_recent_trades_and_summaries() -> None:
    venue = Venue(genesis(limits={"recent_trades_per_instrument_max": 3}))
    venue.fund(A, B)
    venue.block(*(sell(A, CALL, "0.01", str(500 + i)) for i in range(5)),
                *(buy(A, CALL, "0.02", str(400 - i)) for i in range(3)))
    book = queries.book_depth(venue.state, CALL, depth=2)
    assert book is not None
    assert [(lvl.price, lvl.amount, lvl.orders) for lvl in book.asks] == [
        (p("500"), q("0.01"), 1), (p("501"), q("0.01"), 1)]
    assert [lvl.price for lvl in book.bids] == [p("400"), p("399")]
    venue.one(buy(B, CALL, "0.05", "504"))
    trades = queries.recent_trades(venue.state, CALL, 10)
    assert [t.price for t in trades] == [p("502"), p("503"), p("504")]  # bounded, newest last
    assert queries.recent_trades(venue.state, CALL, 1)[0].price == p("504")
    summary = queries.account_summary(venue.state, A)
    assert summary is not None and summary.open_orders == 3 and summary.positions == 1
    assert summary.available == Amount(summary.cash.raw - summary.locked.raw)
    assert [o.price for o in queries.open_orders(venue.state, A, CALL)] == [p("400"), p("399"), p("398")]
    assert queries.open_orders(venue.state, A, PUT) == [] and queries.book_depth(venue.state, "nope") is None
    assert [i.name for i in queries.list_instruments(venue.state, "ETH")][:1] == ["ETH_USDC-27NOV26-2500-C"]
