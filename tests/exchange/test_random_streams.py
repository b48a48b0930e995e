"""Random command streams: every invariant after every block, and snapshots that restore exactly."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.demo.in_process import MarketScenario, run_scenario
from deltasync.exchange import invariants
from deltasync.exchange.commands import (
    COMMANDS,
    CancelAll,
    CancelByLabel,
    CancelOrder,
    ComboLeg,
    Deposit,
    EditOrder,
    OrderType,
    PlaceCombo,
    PlaceOrder,
    Side,
    TimeInForce,
    Withdraw,
)
from deltasync.exchange.events import OrderAccepted
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.sequencing import command_priority, sequence_indexes
from deltasync.exchange.state import ExchangeState

from .helpers import CALL, CALL_105, PUT, SECOND_NS

ACCOUNTS = (10, 11, 12)
NAMES = (CALL, CALL_105, PUT)
accounts = st.sampled_from(ACCOUNTS)
names = st.sampled_from(NAMES)
sides = st.sampled_from((Side.BUY, Side.SELL))
prices = st.integers(18, 22).map(lambda n: Price(n * 25_000_000))  # 450..550 USDC: crosses often
amounts = st.integers(1, 6).map(lambda n: Quantity(n * 10_000))
labels = st.sampled_from(("", "a", "b"))
order_refs = st.integers(0, 50)  # index into the orders accepted so far

time_in_force = st.sampled_from(
    [TimeInForce.GOOD_TIL_CANCELLED] * 5 + [TimeInForce.GOOD_TIL_TIME] * 2
    + [TimeInForce.IMMEDIATE_OR_CANCEL] * 2 + [TimeInForce.FILL_OR_KILL]
)
limit_orders = st.tuples(
    st.just("limit"), accounts, names, sides, amounts, prices, time_in_force,
    st.booleans(), st.integers(0, 5).map(lambda n: n == 0), labels, st.integers(0, 3),
)
market_orders = st.builds(
    lambda a, n, s, amt: PlaceOrder(a, n, s, amt, None, OrderType.MARKET,
                                    TimeInForce.IMMEDIATE_OR_CANCEL),
    accounts, names, sides, amounts,
)
combos = st.builds(
    lambda a, s, amt, pr, tif: PlaceCombo(
        a, (ComboLeg(CALL, Side.BUY, 1), ComboLeg(CALL_105, Side.SELL, 1)), s, amt,
        Price(pr), tif),
    accounts, sides, amounts, st.integers(-150, 150).map(lambda n: n * 1_000_000),
    st.sampled_from((TimeInForce.FILL_OR_KILL, TimeInForce.IMMEDIATE_OR_CANCEL)),
)
others = st.one_of(
    market_orders, combos,
    st.tuples(st.just("cancel"), accounts, order_refs),
    st.tuples(st.just("edit"), accounts, order_refs, prices, amounts, st.booleans()),
    st.builds(CancelAll, accounts, st.one_of(st.none(), names)),
    st.builds(CancelByLabel, accounts, labels, st.one_of(st.none(), names)),
    st.builds(Withdraw, accounts, st.integers(1, 30_000).map(Amount.whole)),
    st.builds(Deposit, accounts, st.integers(1, 50_000).map(Amount.whole)),
)
# three quarters of the actions are limit orders, mostly resting, so books fill up and cross
actions = st.integers(0, 3).flatmap(lambda n: others if n == 0 else limit_orders)


def resolve(action: Any, known: list[tuple[int, int]], time_ns: int) -> Any:
    """Turn an action into a command: 'the n-th order seen so far', relative expiries."""
    if not isinstance(action, tuple):
        return action
    if action[0] == "limit":
        _, account, name, side, amount, price, tif, post_only, reduce_only, label, ttl = action
        rests = tif in (TimeInForce.GOOD_TIL_CANCELLED, TimeInForce.GOOD_TIL_TIME)
        expire_at = time_ns + ttl * SECOND_NS if tif is TimeInForce.GOOD_TIL_TIME else 0
        if tif is TimeInForce.GOOD_TIL_TIME and ttl == 0:
            expire_at = time_ns - 1  # already past: must be rejected
        return PlaceOrder(account, name, side, amount, price, OrderType.LIMIT, tif,
                          max(expire_at, 0) or (1 if tif is TimeInForce.GOOD_TIL_TIME else 0),
                          post_only and rests, reduce_only, label)
    # mostly the owner's own order, sometimes someone else's
    # recent orders are the likely-open ones
    target_account, target = known[-1 - action[2] % min(len(known), 6)] if known else (0, action[2])
    account = target_account if action[2] % 4 else action[1]
    if action[0] == "cancel":
        return CancelOrder(account, target)
    _, _, _, price, amount, post_only = action
    return EditOrder(account, target, price, amount, post_only)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(actions, min_size=1, max_size=12), min_size=1, max_size=12))
def test_invariants_hold_after_every_block(blocks: list[list[Any]]) -> None:
    config = default_genesis()
    state = ExchangeState.from_genesis(config)
    time_ns = config.genesis_time_ns
    funding = [Deposit(a, Amount.whole(400_000)) for a in ACCOUNTS]
    state.apply_block(1, time_ns + SECOND_NS, funding)
    known: list[tuple[int, int]] = []
    for height, block in enumerate(blocks, start=2):
        now = time_ns + height * SECOND_NS
        commands = [resolve(action, known, now) for action in block]
        assert sequence_indexes(commands) == sequence_indexes(commands, command_priority)
        result = state.apply_block(height, now, commands)
        for events in result.events:
            known += [(e.account, e.order_id) for e in events if isinstance(e, OrderAccepted)]
        problems = invariants.check_invariants(state) + invariants.check_commitment(state)
        assert problems == [], (height, problems)
        # commands survive the wire unchanged
        assert [COMMANDS.decode(COMMANDS.encode(c)) for c in commands] == commands
    restored = ExchangeState.restore(state.snapshot_bytes())
    assert restored.state_root() == state.state_root()
    assert invariants.check_invariants(restored) == []


def test_market_scenario_invariants_every_block() -> None:
    result = run_scenario(seed=7, blocks_max=40)
    assert result.problems == []
    assert result.stats.trades > 100 and result.stats.combos_filled > 0
    assert result.stats.expired > 0 and result.stats.cancels > 0 and result.stats.edits > 0


def test_market_scenario_snapshot_mid_stream_then_replay_the_same() -> None:
    config = default_genesis()
    state = ExchangeState.from_genesis(config)
    scenario = MarketScenario(config, seed=11)
    log = []
    for _ in range(25):
        block = scenario.next_block(state)
        log.append(block)
        state.apply_block(*block)
        if len(log) == 12:
            snapshot = state.snapshot_bytes()
    restored = ExchangeState.restore(snapshot)
    for height, time_ns, commands in log[12:]:
        restored.apply_block(height, time_ns, commands)
    assert restored.state_root() == state.state_root()
    assert restored.snapshot_bytes() == state.snapshot_bytes()
