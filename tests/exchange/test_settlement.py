"""Settlement at expiry: the 30-minute index TWAP, in- and out-of-the-money options, clean-up."""

from __future__ import annotations

from deltasync.core.fixed import Price
from deltasync.core.ids import OptionKind
from deltasync.exchange import queries
from deltasync.exchange.events import CancelReason, InstrumentExpired, OrderAccepted, OrderCancelled
from deltasync.exchange.margin import MarginConfig
from deltasync.exchange.settlement import (
    InstrumentSettled,
    PositionSettled,
    payoff_per_unit,
    settlement_flows,
)

from .test_margin_support import CALL, PUT, RiskVenue, S, buy, sell

M = 1_000_000
INSURANCE = MarginConfig().insurance_account
MINUTE = 60


def _to_expiry(venue: RiskVenue, btc_in_window: int) -> int:
    """Jump to 31 minutes before expiry, publish ``btc_in_window``, run to expiry in 20 s blocks."""
    instrument = queries.instrument(venue.state, CALL)
    assert instrument is not None
    expiry_ns = instrument.expiry_ns
    venue.prices["BTC"] = Price.whole(btc_in_window)
    venue.block(seconds=(expiry_ns - 31 * MINUTE * S - venue.time_ns) // S)
    while venue.time_ns + 20 * S < expiry_ns:
        venue.block(seconds=20)
    return expiry_ns


def test_in_the_money_call_settles_at_the_twap_and_out_of_the_money_put_at_zero() -> None:
    venue = RiskVenue()
    venue.fund(10, 11)
    venue.block(sell(10, CALL, "1", "5000"), buy(11, CALL, "1", "5000"),
                sell(11, PUT, "0.5", "4000"), buy(10, PUT, "0.5", "4000"))
    [[resting]] = venue.block(buy(10, CALL, "0.2", "100"))
    assert type(resting) is OrderAccepted
    expiry_ns = _to_expiry(venue, 104_000)
    cash = {a: venue.state.accounts[a].cash for a in (10, 11, INSURANCE) if a in venue.state.accounts}
    venue.block(seconds=(expiry_ns - venue.time_ns) // S + 1)  # the first block at/after expiry
    events = venue.start_events()
    oracle = venue.margin.oracle
    assert oracle is not None
    assert oracle.twap_raw("BTC", expiry_ns) == 104_000 * M  # the whole window at 104,000
    expired = [e for e in events if type(e) is InstrumentExpired and e.instrument == CALL]
    assert expired
    assert any(type(e) is OrderCancelled and e.reason is CancelReason.INSTRUMENT_EXPIRED
               for e in events)
    settled = {(e.account, e.instrument): e for e in events if type(e) is PositionSettled}
    assert settled[(11, CALL)].cash_flow.raw == 4_000 * M  # long 1 x (104,000 - 100,000)
    assert settled[(10, CALL)].cash_flow.raw == -4_000 * M
    assert settled[(10, PUT)].cash_flow.raw == 0 and settled[(11, PUT)].cash_flow.raw == 0
    summary = {e.instrument: e for e in events if type(e) is InstrumentSettled}
    assert summary[CALL].settlement_price.raw == 104_000 * M and summary[CALL].twap
    assert summary[CALL].open_interest.raw == 1_000_000
    assert venue.state.accounts[11].cash - cash[11] == 4_000 * M
    assert venue.state.accounts[10].cash - cash[10] == -4_000 * M
    for account in (10, 11):
        assert venue.size(account, CALL) == 0 and venue.size(account, PUT) == 0
    instrument = queries.instrument(venue.state, CALL)
    assert instrument is not None and not instrument.active
    assert not venue.state.books[instrument.instrument_id].orders
    key = b"settle/" + instrument.instrument_id.to_bytes(4, "big")
    assert venue.state.merkle.get(key) is not None
    assert not venue.margin.accounts.get(10) or not venue.margin.accounts[10].parts.get("BTC")
    # settled once only
    venue.block()
    assert not [e for e in venue.start_events() if type(e) is InstrumentSettled]


def test_settlement_rounds_against_the_payer_and_the_fund_keeps_the_dust() -> None:
    venue = RiskVenue()
    venue.fund(10, 11, 12)
    venue.block(sell(10, CALL, "0.01", "5000"), buy(11, CALL, "0.01", "5000"))
    expiry_ns = _to_expiry(venue, 100_001)
    venue.prices["BTC"] = Price(100_000_333_333)  # moves the last samples of the window
    venue.block()
    fund_before = venue.state.accounts.get(INSURANCE)
    fund_cash = 0 if fund_before is None else fund_before.cash
    venue.block(seconds=(expiry_ns - venue.time_ns) // S + 1)
    settled = {e.account: e for e in venue.start_events() if type(e) is PositionSettled}
    price = settled[10].settlement_price.raw
    payoff = payoff_per_unit(OptionKind.CALL, 100_000 * M, price)
    assert settled[11].cash_flow.raw == payoff * 10_000 // M
    assert settled[10].cash_flow.raw == -(-(-payoff * 10_000) // M)
    dust = -settled[10].cash_flow.raw - settled[11].cash_flow.raw
    assert 0 <= dust <= 1
    assert venue.state.accounts[INSURANCE].cash - fund_cash == dust


def test_settlement_flows_take_from_shorts_first_and_round_against_every_holder() -> None:
    # 7.333333 USDC per unit: shorts pay rounded up, longs receive rounded down.
    holders = [(10, 1_500_001), (11, -3_000_000), (12, -1), (13, 1_499_999)]
    flows = settlement_flows(holders, 7_333_333)
    assert flows == [
        (11, -3_000_000, -21_999_999),
        (12, -1, -8),
        (10, 1_500_001, 11_000_006),
        (13, 1_499_999, 10_999_992),
    ]
    assert -sum(cash for _, size, cash in flows if size < 0) >= sum(
        cash for _, size, cash in flows if size > 0
    )
    assert settlement_flows(holders, 0) == [(11, -3_000_000, 0), (12, -1, 0),
                                             (10, 1_500_001, 0), (13, 1_499_999, 0)]
