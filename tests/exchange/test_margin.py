"""Margin: hand-computed standard and portfolio figures, pre-trade refusals, incremental re-margining."""

from __future__ import annotations

from fractions import Fraction

import pytest

from deltasync.core.errors import ConfigError
from deltasync.core.fixed import Amount
from deltasync.core.ids import OptionKind
from deltasync.exchange import pricing, queries
from deltasync.exchange.commands import CancelAll, Withdraw
from deltasync.exchange.events import (
    OrderAccepted,
    OrderRejected,
    RejectReason,
    Withdrawn,
    WithdrawRejected,
)
from deltasync.exchange.margin import (
    MarginConfig,
    MarginMode,
    MarginModeChanged,
    MarginModeRejected,
    SetMarginMode,
)

from .test_margin_support import (
    CALL,
    CALL_110,
    ETH_CALL,
    PUT_90,
    RiskVenue,
    buy,
    risk_genesis,
    sell,
)

M = 1_000_000  # raw units per USDC / per price unit
CONTRACTS_PER_BTC = 100  # contract size 0.01


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def mark(venue: RiskVenue, name: str, spot: int = 100_000) -> int:
    instrument = queries.instrument(venue.state, name)
    assert instrument is not None
    marks_time_ns = venue.margin.marks_time_ns(instrument.underlying)
    assert marks_time_ns is not None
    t_ns = instrument.expiry_ns - marks_time_ns
    # no smile is published: the fallback vol of 80 % applies
    return pricing.mark_price_raw(spot * M, instrument.strike_raw, 800_000, t_ns, 0,
                                  instrument.kind)


def traded(venue: RiskVenue, seller: int, buyer: int, name: str, amount: str, price: str) -> None:
    [placed, taken] = venue.block(sell(seller, name, amount, price), buy(buyer, name, amount, price))
    assert type(placed[0]) is OrderAccepted and type(taken[0]) is OrderAccepted, (placed, taken)
    assert any(type(e).__name__ == "Trade" for e in taken), taken


def test_standard_short_call_at_the_money_is_15_percent_plus_mark() -> None:
    venue = RiskVenue()
    venue.fund(10, 11)
    traded(venue, 10, 11, CALL, "1", "5000")
    venue.block()
    mark_raw = mark(venue, CALL)
    assert venue.margin.mark_price_raw(queries.instrument(venue.state, CALL)) == mark_raw  # type: ignore[arg-type]
    seller = venue.margin.summary(venue.state, 10)
    assert seller is not None
    # 100 contracts of 0.01 BTC; per contract: (0.15 x 100000 + mark) x 0.01, rounded up
    assert seller.initial_margin == 100 * ceil_div((15_000 * M + mark_raw) * 10_000, M)
    assert seller.maintenance_margin == 100 * ceil_div((7_500 * M + mark_raw) * 10_000, M)
    assert seller.equity == seller.cash - 100 * ceil_div(mark_raw * 10_000, M)
    buyer = venue.margin.summary(venue.state, 11)
    assert buyer is not None
    assert (buyer.initial_margin, buyer.maintenance_margin) == (0, 0)  # long: premium only
    assert buyer.equity == buyer.cash + 100 * (mark_raw * 10_000 // M)


def test_standard_out_of_the_money_shorts_floor_at_10_percent() -> None:
    venue = RiskVenue()
    venue.fund(10, 11)
    traded(venue, 10, 11, CALL_110, "0.5", "1000")
    traded(venue, 10, 11, PUT_90, "0.2", "1000")
    venue.block()
    call_mark, put_mark = mark(venue, CALL_110), mark(venue, PUT_90)
    seller = venue.margin.summary(venue.state, 10)
    assert seller is not None
    # 10 % OTM: max(0.15 - 0.10, 0.10) = 0.10 of the index, plus the mark
    expected = 50 * ceil_div((10_000 * M + call_mark) * 10_000, M)
    expected += 20 * ceil_div((10_000 * M + put_mark) * 10_000, M)
    assert seller.initial_margin == expected


def test_an_order_beyond_initial_margin_is_rejected_and_one_within_accepted() -> None:
    venue = RiskVenue()
    venue.fund(10, usdc=20_000)
    [[first]] = venue.block(sell(10, CALL, "1", "6000"))  # IM ~ 15000 + mark ~ 19,500
    assert type(first) is OrderAccepted
    [[second]] = venue.block(sell(10, CALL, "0.5", "6000"))  # the worst short becomes 1.5
    assert type(second) is OrderRejected and second.reason is RejectReason.INSUFFICIENT_MARGIN
    summary = venue.margin.summary(venue.state, 10)
    assert summary is not None and summary.initial_margin <= summary.equity


def test_a_buy_needs_its_premium_in_cash() -> None:
    venue = RiskVenue()
    venue.fund(12, usdc=1_000)
    [[rejected]] = venue.block(buy(12, CALL, "1", "5000"))  # 5,000 premium > 1,000 cash
    assert type(rejected) is OrderRejected and rejected.reason is RejectReason.INSUFFICIENT_FUNDS
    [[accepted]] = venue.block(buy(12, CALL, "0.1", "5000"))
    assert type(accepted) is OrderAccepted


def test_a_withdrawal_that_would_break_initial_margin_is_refused() -> None:
    venue = RiskVenue()
    venue.fund(10, usdc=30_000)
    venue.fund(11)
    traded(venue, 10, 11, CALL, "1", "5000")
    venue.block()
    summary = venue.margin.summary(venue.state, 10)
    assert summary is not None
    free = summary.equity - summary.initial_margin
    assert 0 < free < summary.cash
    [[refused]] = venue.block(Withdraw(10, Amount(free + 1_000_000)))
    assert type(refused) is WithdrawRejected and refused.reason is RejectReason.INSUFFICIENT_MARGIN
    [[done]] = venue.block(Withdraw(10, Amount(free // 2)))
    assert type(done) is Withdrawn


def test_orders_that_reduce_the_requirement_pass_even_below_initial_margin() -> None:
    venue = RiskVenue()
    venue.fund(10, usdc=21_000)
    venue.fund(11)
    traded(venue, 10, 11, CALL, "1", "5000")
    venue.move(106_000)  # the short call loses; equity falls below IM
    summary = venue.margin.summary(venue.state, 10)
    assert summary is not None and summary.equity < summary.initial_margin
    [[more]] = venue.block(sell(10, CALL, "0.1", "20000"))
    assert type(more) is OrderRejected and more.reason is RejectReason.INSUFFICIENT_MARGIN
    [[closing]] = venue.block(buy(10, CALL, "0.5", "100"))
    assert type(closing) is OrderAccepted


def _exact_worst_pnl(venue: RiskVenue, holdings: dict[str, int], config: MarginConfig) -> Fraction:
    """Independent reference: exact scenario P&L (USDC raw) of sizes (Quantity raw)."""
    spot = 100_000 * M
    worst = Fraction(0)
    first = True
    moves = [(m, Fraction(1)) for m in config.moves_ppm]
    moves += [(m, Fraction(config.extended_weight_ppm, M)) for m in config.extended_moves_ppm]
    for shock in config.vol_shocks_ppm:
        for move, weight in moves:
            total = Fraction(0)
            for name, size in holdings.items():
                instrument = queries.instrument(venue.state, name)
                assert instrument is not None
                marks_time_ns = venue.margin.marks_time_ns("BTC")
                assert marks_time_ns is not None
                t_ns = instrument.expiry_ns - marks_time_ns
                base = mark(venue, name)
                moved = pricing.mark_price_raw(
                    spot * (M + move) // M, instrument.strike_raw,
                    max(800_000 * (M + shock) // M, 1), t_ns, 0, instrument.kind,
                )
                total += Fraction(size * (moved - base), M) * weight
            worst = total if first or total < worst else worst
            first = False
    return worst


def test_portfolio_requirement_is_worst_scenario_loss_plus_short_term() -> None:
    venue = RiskVenue(risk_genesis(mark_refresh_ns=3_600 * 10**9))
    venue.fund(10, 11)
    [[changed]] = venue.block(SetMarginMode(10, MarginMode.PORTFOLIO))
    assert type(changed) is MarginModeChanged
    traded(venue, 11, 10, CALL, "1", "5000")  # 10 long 1 ATM call
    traded(venue, 10, 11, CALL_110, "2", "1000")  # 10 short 2 calls at 110000
    config = MarginConfig()
    worst = _exact_worst_pnl(venue, {CALL: 1_000_000, CALL_110: -2_000_000}, config)
    assert worst < 0
    summary = venue.margin.summary(venue.state, 10)
    assert summary is not None and summary.mode is MarginMode.PORTFOLIO
    short_term = 2 * 1_000 * M  # 1 % of the 100,000 index per unit short
    contracts = 300
    im = summary.initial_margin
    assert -worst + short_term <= im <= -worst + short_term + contracts  # rounding per contract
    assert summary.maintenance_margin == ceil_div(im * 800_000, M)
    # the same book in standard mode asks far more: 2 naked calls at 0.10 x index + mark
    standard = venue.margin._totals(venue.state, venue.state.accounts[10], MarginMode.STANDARD)
    assert standard[1] > im


def test_portfolio_open_orders_count_at_their_worst() -> None:
    venue = RiskVenue()
    venue.fund(10)
    venue.block(SetMarginMode(10, MarginMode.PORTFOLIO))
    venue.block(sell(10, CALL, "1", "9000"))
    summary = venue.margin.summary(venue.state, 10)
    assert summary is not None
    assert summary.maintenance_margin == 0  # no position yet
    assert summary.initial_margin > 1_000 * M  # short term alone is 1,000 USDC


def test_switching_mode_is_refused_when_the_new_requirement_exceeds_equity() -> None:
    venue = RiskVenue()
    venue.fund(10, usdc=12_000)
    venue.fund(11)
    venue.block(SetMarginMode(10, MarginMode.PORTFOLIO))
    traded(venue, 11, 10, CALL, "1", "5000")
    traded(venue, 10, 11, CALL_110, "1", "1000")  # a bull spread: cheap in portfolio mode
    [[refused]] = venue.block(SetMarginMode(10, MarginMode.STANDARD))
    assert type(refused) is MarginModeRejected
    assert refused.reason is RejectReason.INSUFFICIENT_MARGIN
    assert venue.margin.mode_of(10) is MarginMode.PORTFOLIO


def test_remargin_after_an_index_move_touches_only_exposed_accounts() -> None:
    venue = RiskVenue(risk_genesis(mark_refresh_ns=3_600 * 10**9))
    btc, eth, idle = list(range(100, 120)), list(range(200, 210)), list(range(300, 330))
    venue.fund(*btc, *eth, *idle, 11)
    venue.block(*(sell(a, CALL, "0.1", "6000") for a in btc),
                *(sell(a, ETH_CALL, "1", "300") for a in eth))
    venue.block(buy(11, CALL, str(len(btc) * 0.1), "6000"), buy(11, ETH_CALL, str(len(eth)), "300"))
    assert all(venue.size(a, CALL) == -100_000 for a in btc)
    eth_records = {a: venue.margin.accounts[a].record for a in eth}
    before = venue.margin.remargined_accounts
    venue.move(101_000)
    # the 20 BTC sellers and the buyer (long BTC and ETH): one BTC part each; nothing else
    assert venue.margin.remargined_accounts - before == len(btc) + 1
    assert {a: venue.margin.accounts[a].record for a in eth} == eth_records
    assert all(a not in venue.margin.accounts for a in idle)
    record = venue.margin.accounts[btc[0]].record
    assert record is not None and record[2] > 0


def test_margin_records_are_in_the_state_root_and_survive_a_snapshot() -> None:
    from deltasync.exchange.assembly import restore_exchange

    venue = RiskVenue()
    venue.fund(10, 11)
    venue.block(SetMarginMode(11, MarginMode.PORTFOLIO))
    traded(venue, 10, 11, CALL, "1", "5000")
    key = b"margin/acct/" + (10).to_bytes(8, "big")
    assert venue.state.merkle.get(key) is not None
    restored = restore_exchange(venue.state.snapshot_bytes())
    assert restored.state_root() == venue.state.state_root()
    venue.move(97_000)
    height, time_ns = venue.height, venue.time_ns
    # the restored copy follows the same blocks to the same root
    from deltasync.exchange.assembly import demo_reports

    other = restore_exchange(venue.state.snapshot_bytes())
    assert other.state_root() == venue.state.state_root()
    venue.block()
    other.apply_block(height + 1, time_ns + 10**9, demo_reports(venue.prices, time_ns + 10**9))
    assert other.state_root() == venue.state.state_root()


def test_margin_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        MarginConfig.from_dict({"im_base_ppm": 50_000})  # below im_min
    with pytest.raises(ConfigError):
        MarginConfig.from_dict({"surprise": 1})
    with pytest.raises(ConfigError):
        MarginConfig.from_dict({"moves_ppm": [100_000]})  # no zero move
    config = MarginConfig.from_dict({"default_mode": "portfolio", "vol_ppm": {"BTC": 500_000}})
    assert config.default_mode is MarginMode.PORTFOLIO
    assert config.fallback_vol_ppm("BTC") == 500_000 and config.fallback_vol_ppm("ETH") == 800_000
    assert OptionKind.CALL  # imported for the reference model's kinds


def test_cached_pre_trade_figures_equal_a_full_evaluation() -> None:
    """The fast check (cached terms, one position swapped) agrees exactly with a full pass."""
    import random

    from deltasync.exchange.book import BUY

    rng = random.Random(7)
    venue = RiskVenue()
    accounts = list(range(400, 412))
    venue.fund(*accounts)
    venue.block(*(SetMarginMode(a, MarginMode.PORTFOLIO) for a in accounts[::2]))
    names = [CALL, CALL_110, PUT_90, ETH_CALL, "BTC_USDC-25DEC26-90000-C"]
    for _ in range(6):
        orders = []
        for account in accounts:
            name = rng.choice(names)
            amount = "0.1" if name != ETH_CALL else "1"
            price = "300" if name == ETH_CALL else "2000"
            side = sell if rng.random() < 0.5 else buy
            orders.append(side(account, name, amount, price))
            orders.append((buy if side is sell else sell)(rng.choice(accounts), name, amount, price))
        if rng.random() < 0.5:  # a cancel of everything resting: rows leave the terms
            orders.append(CancelAll(rng.choice(accounts)))
        venue.block(*orders)
    venue.block(*(sell(a, rng.choice(names[:3]), "0.2", "9000") for a in accounts))  # resting
    venue.block()
    state, margin = venue.state, venue.margin
    # the parts kept up to date row by row equal a fresh full evaluation
    for account_id in accounts:
        fresh = margin.evaluate(state, state.accounts[account_id], margin.mode_of(account_id))
        assert margin.accounts[account_id].parts == fresh, account_id
    for account_id in accounts:
        account = state.accounts[account_id]
        for name in names:
            instrument = queries.instrument(state, name)
            assert instrument is not None
            cs = instrument.contract_size_raw
            for side, contracts in ((BUY, 3), (2, 5), (2, 40)):
                if side == BUY:
                    reserve = contracts * instrument.premium_per_contract(1_000 * M)
                    change = (0, contracts, 0, reserve)
                else:
                    change = (0, 0, contracts, 0)
                for combo in (False, True):
                    changes = {instrument.instrument_id: (contracts, 0, 0, 0) if combo else change}
                    cached = margin.cached_totals(
                        state, account, margin.accounts.get(account_id), changes, -123
                    )
                    mode = margin.mode_of(account_id)
                    full_after = margin._totals(state, account, mode, changes, -123)
                    full_before = margin._totals(state, account, mode)
                    assert cached == (full_after[0], full_after[1], full_before[1]), (
                        account_id, name, side, combo, cs,
                    )


def test_an_edit_is_checked_with_its_old_order_released() -> None:
    from deltasync.core.fixed import Price, Quantity
    from deltasync.exchange.commands import EditOrder
    from deltasync.exchange.events import OrderEdited

    venue = RiskVenue()
    venue.fund(10, usdc=20_000)
    [[placed]] = venue.block(sell(10, CALL, "1", "6000"))  # IM ~ 19,500 of 20,000
    assert type(placed) is OrderAccepted
    order_id = placed.order_id
    [[repriced]] = venue.block(EditOrder(10, order_id, Price.whole(6_500), Quantity.whole(1)))
    assert type(repriced) is OrderEdited
    [[bigger]] = venue.block(EditOrder(10, order_id, Price.whole(6_500), Quantity.parse("1.5")))
    assert type(bigger) is OrderRejected and bigger.reason is RejectReason.INSUFFICIENT_MARGIN


def test_a_call_spread_combo_needs_far_less_in_portfolio_mode() -> None:
    from deltasync.core.fixed import Price, Quantity
    from deltasync.exchange.commands import ComboLeg, PlaceCombo, Side
    from deltasync.exchange.events import ComboFilled, ComboRejected

    venue = RiskVenue()
    venue.fund(11)
    venue.fund(10, 12, usdc=6_000)
    venue.block(SetMarginMode(12, MarginMode.PORTFOLIO))
    venue.block(sell(11, CALL, "2", "5000"), buy(11, CALL_110, "2", "1000"))
    legs = (ComboLeg(CALL, Side.BUY, 1), ComboLeg(CALL_110, Side.SELL, 1))
    [[standard]] = venue.block(PlaceCombo(10, legs, Side.BUY, Quantity.whole(1), Price.whole(4_000)))
    assert type(standard) is ComboRejected
    assert standard.reason is RejectReason.INSUFFICIENT_MARGIN  # the short leg: 10 % + mark
    [[portfolio, *_]] = venue.block(
        PlaceCombo(12, legs, Side.BUY, Quantity.whole(1), Price.whole(4_000))
    )
    assert type(portfolio) is ComboFilled
    assert venue.size(12, CALL) == 1_000_000 and venue.size(12, CALL_110) == -1_000_000
    summary = venue.margin.summary(venue.state, 12)
    assert summary is not None and 0 < summary.initial_margin <= summary.equity
