"""Risk figures for ``deltasync bench exchange``: orders with pre-trade margin, re-margining.

- ``bench_apply_orders_with_margin()``: orders/s through ``apply_block`` of the
  full venue (``new_exchange``: oracle, margin, settlement, liquidation) over
  10,000 funded accounts that each hold an option portfolio (four positions
  on BTC and ETH, half of the accounts in portfolio mode); the stream is
  passive and aggressive limit orders plus cancels on 36 instruments, 1,000
  commands per block, one block per 100 ms of block time with the three demo
  oracle sources reporting both underlyings every block at an unchanged
  index, state root included. (Marks then refresh every 10 s of block time,
  i.e. every 100 blocks, at the cost ``bench_remargin_ms_10k`` measures; the
  20 measured blocks do not include one.)
- ``bench_remargin_ms_10k()``: milliseconds the margin engine spends at the
  start of the block in which the BTC index moves by 1 %: fresh marks for every
  BTC instrument (including the portfolio scenario grids) and the BTC part of
  every one of the 10,000 accounts, each holding BTC options.

Times are CPU time of this process (``time.process_time``), so other load on a
shared machine does not distort them. Run alone: ``python -m
deltasync.cli.bench_risk [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from typing import Any

_S = 1_000_000_000
_BLOCK_NS = _S // 10


class _Venue:
    """A venue with funded accounts holding option portfolios (built through real trades)."""

    def __init__(self, accounts_count: int, seed: int) -> None:
        from deltasync.core.fixed import Amount, Price, Quantity
        from deltasync.exchange.assembly import demo_reports, new_exchange
        from deltasync.exchange.commands import Deposit, PlaceOrder, Side
        from deltasync.exchange.genesis import default_genesis
        from deltasync.exchange.margin import MarginMode, SetMarginMode

        self.config = default_genesis()
        self.state = new_exchange(self.config)
        self.prices = {"BTC": Price.whole(100_000), "ETH": Price.whole(3_500)}
        self.demo_reports = demo_reports
        self.height = 0
        self.time_ns = self.config.genesis_time_ns
        rng = random.Random(seed)
        self.accounts = list(range(1_000, 1_000 + accounts_count))
        names = self.config.instruments
        self.btc = [n for n in names if n.startswith("BTC_USDC-27NOV26")]
        self.btc += [n for n in names if n.startswith("BTC_USDC-25DEC26")]
        self.eth = [n for n in names if n.startswith("ETH_USDC-27NOV26")]
        self.block([Deposit(a, Amount.whole(1_000_000)) for a in self.accounts[:4_000]])
        for first in range(4_000, accounts_count, 4_000):
            self.block([Deposit(a, Amount.whole(1_000_000))
                        for a in self.accounts[first:first + 4_000]])
        self.block([])  # the index forms
        modes = [SetMarginMode(a, MarginMode.PORTFOLIO) for a in self.accounts[1::2]]
        for first in range(0, len(modes), 4_000):
            self.block(modes[first:first + 4_000])
        trades: list[Any] = []
        for index in range(0, accounts_count - 1, 2):
            a, b = self.accounts[index], self.accounts[index + 1]
            legs = [(a, b, rng.choice(self.btc), "0.1"), (b, a, rng.choice(self.btc), "0.1"),
                    (a, b, rng.choice(self.btc), "0.05"), (b, a, rng.choice(self.eth), "1")]
            for seller, buyer, name, amount in legs:
                price = self.mark_price(name)
                trades.append(PlaceOrder(seller, name, Side.SELL, Quantity.parse(amount), price))
                trades.append(PlaceOrder(buyer, name, Side.BUY, Quantity.parse(amount), price))
        for first in range(0, len(trades), 4_000):
            self.block(trades[first:first + 4_000])
        self.names = self.btc[:18] + self.btc[-18:]

    def mark_price(self, name: str) -> Any:
        from deltasync.core.fixed import Price
        from deltasync.exchange import queries
        from deltasync.exchange.margin import MarginEngine

        instrument = queries.instrument(self.state, name)
        assert instrument is not None
        risk = self.state.risk
        assert isinstance(risk, MarginEngine)
        mark = max(risk.mark_price_raw(instrument), instrument.tick_raw)
        return Price(instrument.round_price_up(mark))

    def block(self, commands: list[Any], reports: bool = True) -> Any:
        self.height += 1
        self.time_ns += _BLOCK_NS
        if reports:
            commands = commands + self.demo_reports(self.prices, self.time_ns)
        return self.state.apply_block(self.height, self.time_ns, commands)


def _order_stream(venue: _Venue, blocks: int, seed: int) -> list[list[Any]]:
    from deltasync.core.fixed import Price, Quantity
    from deltasync.core.ids import log_id
    from deltasync.exchange import queries
    from deltasync.exchange.commands import CancelOrder, PlaceOrder, Side, TimeInForce

    rng = random.Random(seed)
    marks = {name: venue.mark_price(name).raw for name in venue.names}
    resting: list[tuple[int, int]] = []
    out: list[list[Any]] = []
    quantities = [Quantity(10_000 * n) for n in range(1, 6)]
    height = venue.height
    for _ in range(blocks):
        height += 1
        block: list[Any] = []
        for _ in range(1_000):
            account = rng.choice(venue.accounts)
            roll = rng.random()
            if roll < 0.25 and resting:
                owner, order_id = resting.pop(rng.randrange(len(resting)))
                block.append(CancelOrder(owner, order_id))
                continue
            name = rng.choice(venue.names)
            instrument = queries.instrument(venue.state, name)
            assert instrument is not None
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            step = rng.randint(1, 30) * instrument.tick_for(marks[name])
            passive = roll < 0.75
            offset = -step if (side is Side.BUY) == passive else step
            price = instrument.round_price_up(max(marks[name] + offset, instrument.tick_raw))
            tif = TimeInForce.GOOD_TIL_CANCELLED if passive else TimeInForce.IMMEDIATE_OR_CANCEL
            block.append(PlaceOrder(account, name, side, rng.choice(quantities), Price(price),
                                    time_in_force=tif))
        sequenced = venue.state.sequence_block(block)
        for position, command in enumerate(sequenced):
            if isinstance(command, PlaceOrder) and (
                command.time_in_force is TimeInForce.GOOD_TIL_CANCELLED
            ):
                resting.append((command.account, log_id(height, position)))
        out.append(block)
    return out


def bench_apply_orders_with_margin(
    accounts_count: int = 10_000, blocks_max: int = 20, seed: int = 1
) -> float:
    """Orders (and cancels) per second through apply_block with pre-trade margin."""
    venue = _Venue(accounts_count, seed)
    stream = _order_stream(venue, blocks_max, seed)
    gc.collect()
    commands = 0
    elapsed = 0.0
    for block in stream:
        started = time.process_time()
        venue.block(block)
        elapsed += time.process_time() - started
        commands += len(block)
    return commands / elapsed


def bench_remargin_ms_10k(accounts_count: int = 10_000, seed: int = 1) -> float:
    """Milliseconds of margin work at the block start after a 1 % BTC index move."""
    from deltasync.core.fixed import Price
    from deltasync.exchange.margin import MarginEngine

    venue = _Venue(accounts_count, seed)
    margin = venue.state.risk
    assert isinstance(margin, MarginEngine)
    exposed = len(margin.exposed.get("BTC", {}))
    assert exposed >= accounts_count - 1, exposed
    timings: list[float] = []
    original = margin.on_block_start

    def timed(state: Any, ctx: Any) -> list[Any]:
        started = time.process_time()
        events = original(state, ctx)
        timings.append(time.process_time() - started)
        return events

    margin.on_block_start = timed  # type: ignore[method-assign]
    best = float("inf")
    for move in (1_010, 990, 1_010):
        venue.prices["BTC"] = Price(venue.prices["BTC"].raw * move // 1_000)
        venue.block([])
        gc.collect()
        before = margin.remargined_accounts
        timings.clear()
        venue.block([])  # the new index is in effect from this block's start
        assert margin.remargined_accounts - before >= exposed, "every BTC account re-margined"
        best = min(best, timings[0])
    return best * 1_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    accounts = 1_000 if args.quick else 10_000
    figures = {
        "apply_orders_per_s_with_margin": round(
            bench_apply_orders_with_margin(accounts, 5 if args.quick else 20, args.seed)
        ),
        "remargin_ms_10k_accounts": round(bench_remargin_ms_10k(accounts, args.seed), 1),
        "accounts": accounts,
    }
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
