"""The in-process demo (``deltasync demo --in-process``): a market scenario applied
block by block to one exchange state machine, with every invariant checked.

``MarketScenario`` generates blocks of commands (deposits, market makers quoting a
strike grid with post-only orders they cancel and replace by label, takers sending
limit, market, IOC, FOK and good-til-time orders, edits, cancels, combos,
withdrawals); ``run_scenario`` applies them with ``ExchangeState.apply_block``,
checking the invariants after every block.

``MarketScenario`` is independent of how blocks are delivered: a multi-node run can
feed the same commands to a cluster. It reads the state only to pick plausible
targets (open orders to cancel, positions to reduce); given the same seed and the
same state it produces the same commands.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deltasync.core.fixed import NOTIONAL_DIVISOR, Amount, Price, Quantity
from deltasync.core.ids import parse_option_name
from deltasync.exchange import events as ev
from deltasync.exchange import invariants, queries
from deltasync.exchange.commands import (
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
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.state import ExchangeState


@dataclass
class ScenarioStats:
    blocks: int = 0
    commands: int = 0
    orders_accepted: int = 0
    orders_rejected: int = 0
    trades: int = 0
    volume_raw: int = 0
    premium_raw: int = 0
    fees_raw: int = 0
    cancels: int = 0
    expired: int = 0
    combos_filled: int = 0
    combos_rejected: int = 0
    edits: int = 0
    rejections: Counter[str] = field(default_factory=Counter)

    def add(self, events: Sequence[Any]) -> None:
        for event in events:
            match event:
                case ev.OrderAccepted():
                    self.orders_accepted += 1
                case ev.OrderRejected(reason=reason):
                    self.orders_rejected += 1
                    self.rejections[reason.code] += 1
                case ev.Trade(price=price, amount=amount, taker_fee=taker_fee, maker_fee=maker_fee):
                    self.trades += 1
                    self.volume_raw += amount.raw
                    self.premium_raw += price.raw * amount.raw // NOTIONAL_DIVISOR
                    self.fees_raw += taker_fee.raw + maker_fee.raw
                case ev.OrderCancelled():
                    self.cancels += 1
                case ev.OrderExpired():
                    self.expired += 1
                case ev.ComboFilled():
                    self.combos_filled += 1
                case ev.ComboRejected(reason=reason):
                    self.combos_rejected += 1
                    self.rejections["combo:" + reason.code] += 1
                case ev.OrderEdited():
                    self.edits += 1
                case ev.WithdrawRejected(reason=reason):
                    self.rejections["withdraw:" + reason.code] += 1


class MarketScenario:
    """A seeded generator of realistic blocks for the exchange.

    Makers (accounts ``100..``) quote every instrument of the chosen
    expiries around a simple integer fair value; takers (accounts ``1000..``)
    trade against them. ``block(state)`` returns the next block's commands.
    """

    def __init__(
        self,
        config: Any,
        seed: int,
        makers: int = 6,
        takers: int = 24,
        commands_per_block: int = 48,
        underlyings: tuple[str, ...] = ("BTC", "ETH"),
        expiries_max: int = 2,
        block_time_ns: int = 1_000_000_000,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.makers = [100 + index for index in range(makers)]
        self.takers = [1000 + index for index in range(takers)]
        self.commands_per_block = commands_per_block
        self.block_time_ns = block_time_ns
        self.height = 0
        self.time_ns = config.genesis_time_ns
        names = [n for n in config.instruments if parse_option_name(n).underlying in underlyings]
        expiries = sorted({parse_option_name(n).expiry_days for n in names})[:expiries_max]
        self.instruments = [n for n in names if parse_option_name(n).expiry_days in expiries]
        assert self.instruments, "no instrument matches the scenario"
        self.options = {name: parse_option_name(name) for name in self.instruments}

    # --- prices ---------------------------------------------------------------------

    def fair_price_raw(self, state: Any, name: str) -> int:
        """Intrinsic value plus a time value of ~ 0.4 x ref x vol x sqrt(t) (integers)."""
        option = self.options[name]
        instrument = state.instrument_by_name[name]
        reference = state.reference_prices[option.underlying]
        days_left = max(1, (instrument.expiry_ns - self.time_ns) // 86_400_000_000_000)
        vol_ppm = 600_000
        time_value = reference * vol_ppm // 1_000_000 * 4 // 10 * math.isqrt(days_left * 10_000) // math.isqrt(365 * 10_000)
        moneyness = abs(reference - option.strike_raw)
        time_value = time_value * reference // (reference + 2 * moneyness)
        intrinsic = (
            max(0, reference - option.strike_raw) if option.kind.value == "C"
            else max(0, option.strike_raw - reference)
        )
        return instrument.round_price_up(max(intrinsic + time_value, instrument.tick_raw))

    # --- blocks ---------------------------------------------------------------------

    def next_block(self, state: Any) -> tuple[int, int, list[Any]]:
        """(height, time_ns, commands) of the next block, given the current state."""
        self.height += 1
        self.time_ns += self.block_time_ns
        if self.height == 1:
            return self.height, self.time_ns, self._funding()
        commands: list[Any] = []
        for _ in range(self.commands_per_block):
            roll = self.rng.random()
            if roll < 0.45:
                commands += self._quote(state)
            elif roll < 0.85:
                commands.append(self._take(state))
            elif roll < 0.93:
                commands.append(self._cancel_or_edit(state))
            elif roll < 0.97:
                commands.append(self._combo(state))
            else:
                commands.append(self._funding_move())
        return self.height, self.time_ns, commands

    def _funding(self) -> list[Any]:
        out: list[Any] = [Deposit(m, Amount.whole(50_000_000)) for m in self.makers]
        out += [Deposit(t, Amount.whole(2_000_000)) for t in self.takers]
        return out

    def _amount(self, name: str, contracts_max: int) -> Any:
        instrument_step = 10_000 if name.startswith("BTC") else 100_000
        return Quantity(instrument_step * self.rng.randint(1, contracts_max))

    def _quote(self, state: Any) -> list[Any]:
        maker = self.rng.choice(self.makers)
        name = self.rng.choice(self.instruments)
        instrument = state.instrument_by_name.get(name)
        if instrument is None or not instrument.active:
            return []
        fair = self.fair_price_raw(state, name)
        tick = instrument.tick_for(fair)
        half_spread = tick * self.rng.randint(1, 6)
        bid = instrument.round_price_down(fair - half_spread)
        ask = instrument.round_price_up(fair + half_spread)
        out: list[Any] = [CancelByLabel(maker, "q", name)]
        if bid > 0:
            out.append(PlaceOrder(maker, name, Side.BUY, self._amount(name, 20), Price(bid),
                                  post_only=True, label="q"))
        out.append(PlaceOrder(maker, name, Side.SELL, self._amount(name, 20), Price(ask),
                              post_only=True, label="q"))
        return out

    def _take(self, state: Any) -> Any:
        taker = self.rng.choice(self.takers)
        name = self.rng.choice(self.instruments)
        side = self.rng.choice((Side.BUY, Side.SELL))
        instrument = state.instrument_by_name[name]
        fair = self.fair_price_raw(state, name)
        tick = instrument.tick_for(fair)
        aggressive = tick * self.rng.randint(-3, 8)
        price = fair + aggressive if side is Side.BUY else fair - aggressive
        price = instrument.round_price_down(max(price, instrument.tick_raw)) or instrument.tick_raw
        amount = self._amount(name, 6)
        roll = self.rng.random()
        if roll < 0.15:
            return PlaceOrder(taker, name, side, amount, order_type=OrderType.MARKET,
                              time_in_force=TimeInForce.IMMEDIATE_OR_CANCEL)
        if roll < 0.45:
            return PlaceOrder(taker, name, side, amount, Price(price),
                              time_in_force=TimeInForce.IMMEDIATE_OR_CANCEL)
        if roll < 0.52:
            return PlaceOrder(taker, name, side, amount, Price(price),
                              time_in_force=TimeInForce.FILL_OR_KILL)
        if roll < 0.65:
            return PlaceOrder(taker, name, side, amount, Price(price),
                              time_in_force=TimeInForce.GOOD_TIL_TIME,
                              expire_at_ns=self.time_ns + self.block_time_ns * self.rng.randint(1, 4),
                              label="gtt")
        if roll < 0.75:
            position = next((p for p in queries.positions(state, taker) if p.instrument == name and p.size.raw), None)
            if position is not None:
                reduce_side = Side.SELL if position.size.raw > 0 else Side.BUY
                step = instrument.contract_size_raw
                size = min(abs(position.size.raw), amount.raw) // step * step
                return PlaceOrder(taker, name, reduce_side, Quantity(size),
                                  order_type=OrderType.MARKET,
                                  time_in_force=TimeInForce.IMMEDIATE_OR_CANCEL, reduce_only=True)
        return PlaceOrder(taker, name, side, amount, Price(price), label="t")

    def _cancel_or_edit(self, state: Any) -> Any:
        taker = self.rng.choice(self.takers)
        orders = queries.open_orders(state, taker)
        if not orders:
            return CancelAll(taker)
        order = self.rng.choice(orders)
        roll = self.rng.random()
        if roll < 0.5:
            return CancelOrder(taker, order.order_id)
        if roll < 0.6:
            return CancelAll(taker, order.instrument)
        instrument = state.instrument_by_name[order.instrument]
        step = instrument.contract_size_raw
        if roll < 0.8 and order.remaining.raw > step:
            return EditOrder(taker, order.order_id, order.price, Quantity(order.amount.raw - step))
        tick = instrument.tick_for(order.price.raw)
        new_price = instrument.round_price_down(order.price.raw + tick * self.rng.randint(-2, 2))
        return EditOrder(taker, order.order_id, Price(max(new_price, instrument.tick_raw)),
                         Quantity(order.amount.raw + step))

    def _combo(self, state: Any) -> Any:
        taker = self.rng.choice(self.takers)
        first = self.rng.choice(self.instruments)
        option = self.options[first]
        partners = [
            n for n in self.instruments
            if n != first and self.options[n].expiry_days == option.expiry_days
            and self.options[n].underlying == option.underlying
            and self.options[n].kind == option.kind
        ]
        second = self.rng.choice(partners)
        legs = (ComboLeg(first, Side.BUY, 1), ComboLeg(second, Side.SELL, 1))
        net = self.fair_price_raw(state, first) - self.fair_price_raw(state, second)
        slack = abs(net) // 5 + state.instrument_by_name[first].tick_raw * 10
        side = self.rng.choice((Side.BUY, Side.SELL))
        limit = net + slack if side is Side.BUY else net - slack
        tif = self.rng.choice((TimeInForce.FILL_OR_KILL, TimeInForce.IMMEDIATE_OR_CANCEL))
        return PlaceCombo(taker, legs, side, self._amount(first, 4), Price(limit), tif, "combo")

    def _funding_move(self) -> Any:
        taker = self.rng.choice(self.takers)
        if self.rng.random() < 0.5:
            return Deposit(taker, Amount.whole(self.rng.randint(1, 50_000)))
        return Withdraw(taker, Amount.whole(self.rng.randint(1, 50_000)))


@dataclass
class DemoResult:
    stats: ScenarioStats
    state_root: bytes
    problems: list[str]
    elapsed_s: float
    state: Any


def run_scenario(
    seed: int,
    duration_s: float | None = None,
    blocks_max: int = 300,
    check_every: int = 1,
    on_block: Callable[[int, ScenarioStats], None] | None = None,
) -> DemoResult:
    """Run the scenario in-process; stops after ``blocks_max`` blocks or ``duration_s`` seconds."""
    config = default_genesis()
    state = ExchangeState.from_genesis(config)
    scenario = MarketScenario(config, seed)
    stats = ScenarioStats()
    problems: list[str] = []
    started = time.perf_counter()
    root = state.state_root()
    for _ in range(blocks_max):
        if duration_s is not None and time.perf_counter() - started > duration_s:
            break
        height, time_ns, commands = scenario.next_block(state)
        result = state.apply_block(height, time_ns, commands)
        root = result.state_root
        stats.blocks += 1
        stats.commands += len(commands)
        stats.add(result.start_events)
        for events in result.events:
            stats.add(events)
        if check_every and height % check_every == 0:
            problems = invariants.check_invariants(state) + invariants.check_commitment(state)
            if problems:
                problems = [f"after block {height}: {p}" for p in problems]
                break
        if on_block is not None:
            on_block(height, stats)
    if not problems:
        problems = invariants.check_invariants(state) + invariants.check_commitment(state)
    return DemoResult(stats, root, problems, time.perf_counter() - started, state)
