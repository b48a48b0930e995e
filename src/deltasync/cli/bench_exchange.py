"""`deltasync bench exchange`: matching engine, state machine and state root figures.

- ``matching_ops_per_s``: a mixed stream on one book (engine only, raw ints):
  half placements (those that would cross match instead of resting), a third
  cancels of live resting orders, and the rest crossing orders that take one
  or more levels (about three fills per crossing order).
- ``apply_orders_per_s``: whole ``PlaceOrder`` / ``CancelOrder`` commands
  through ``ExchangeState.apply_block`` with every check (instrument, ticks,
  amounts, open-order limit, collateral), over 10,000 funded accounts on 36
  instruments, blocks of 1,000 commands, state root included;
  ``apply_orders_per_s_excluding_root`` is the same without the commitment.
- ``state_root_us_per_key``: cost of ``commit()`` (encode each changed record,
  update the Merkle map, recompute the root) per changed key, over a state of
  ~``root_state_keys`` keys.
- when installed, the pricing and risk figures of ``bench_pricing`` and
  ``bench_risk`` (``greeks_per_s``, ``apply_orders_per_s_with_margin``,
  ``remargin_ms_10k_accounts``).

Everything runs on one core in this process and is timed in CPU time of the
process (``time.process_time``), so other load on a shared machine does not
count against the figures; ``--quick`` shrinks the runs for tests.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import random
import time
from typing import Any

HELP = "Exchange figures: matching ops/s, applied orders/s, state root cost per key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="small runs (for tests)")
    parser.add_argument("--seed", type=int, default=1)


def _best_of(runs: int, measure: Any) -> float:
    return max(measure() for _ in range(runs))


def matching_stream(count: int, seed: int) -> list[tuple[int, ...]]:
    """(op, side, price, quantity, account) tuples: 0 place passive, 1 cancel, 2 cross."""
    rng = random.Random(seed)
    ops: list[tuple[int, ...]] = []
    mid = 10_000
    for _ in range(count):
        roll = rng.random()
        side = 1 if rng.random() < 0.5 else 2
        if roll < 0.5:
            offset = rng.randint(1, 40)
            price = mid - offset if side == 1 else mid + offset
            ops.append((0, side, price, rng.randint(1, 10), rng.randint(1, 1000)))
        elif roll < 0.82:
            ops.append((1, rng.randint(0, 1 << 30), 0, 0, 0))
        else:
            price = mid + 45 if side == 1 else mid - 45
            ops.append((2, side, price, rng.randint(1, 25), rng.randint(1, 1000)))
    return ops


def bench_matching(count: int, seed: int) -> float:
    from deltasync.exchange.book import Book, Order

    ops = matching_stream(count, seed)

    def measure() -> float:
        book = Book()
        resting: list[int] = []
        orders = book.orders
        gc.collect()
        started = time.process_time()
        next_id = 1
        for op, side, price, quantity, account in ops:
            if op == 0:
                if book.would_cross(side, price):
                    book.match(side, price, quantity, account, 1000, 1000)
                    continue
                book.rest(Order(next_id, account, 1, side, price, quantity, quantity, next_id))
                resting.append(next_id)
                next_id += 1
            elif op == 1:
                # cancel a random live order (ids of orders filled meanwhile are dropped)
                while resting:
                    index = side % len(resting)
                    order_id = resting[index]
                    resting[index] = resting[-1]
                    resting.pop()
                    if order_id in orders:
                        book.remove(order_id)
                        break
            else:
                book.match(side, price, quantity, account, 1000, 1000)
        elapsed = time.process_time() - started
        assert not book.check()
        return len(ops) / elapsed

    return _best_of(3, measure)


def _apply_setup(accounts_count: int, seed: int) -> tuple[Any, list[list[Any]], Any]:
    from deltasync.core.fixed import Amount, Price, Quantity
    from deltasync.exchange.commands import CancelOrder, Deposit, PlaceOrder, Side, TimeInForce
    from deltasync.exchange.genesis import default_genesis
    from deltasync.exchange.state import ExchangeState

    config = default_genesis()
    names = [n for n in config.instruments if n.startswith("BTC_USDC-27NOV26")][:18]
    names += [n for n in config.instruments if n.startswith("BTC_USDC-25DEC26")][:18]
    rng = random.Random(seed)
    accounts = list(range(100, 100 + accounts_count))
    funding = [Deposit(a, Amount.whole(10_000_000)) for a in accounts]
    quantities = [Quantity(10_000 * n) for n in range(1, 11)]
    prices = {n: [Price(1_000_000 * (500 + k)) for k in range(-60, 61)] for n in names}
    from deltasync.core.ids import log_id
    from deltasync.exchange.sequencing import sequence_indexes

    blocks: list[list[Any]] = []
    order_ids: list[tuple[int, int]] = []  # (account, id) of likely-resting orders
    height = -(-accounts_count // 4_000)  # funding blocks come first
    for _ in range(60):
        height += 1
        block: list[Any] = []
        for _ in range(1000):
            account = rng.choice(accounts)
            name = rng.choice(names)
            roll = rng.random()
            if roll < 0.25 and order_ids:
                owner, order_id = order_ids.pop(rng.randrange(len(order_ids)))
                block.append(CancelOrder(owner, order_id))
                continue
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            ladder = prices[name]
            if roll < 0.75:  # passive: below mid for buys, above for sells
                price = ladder[rng.randint(0, 55)] if side is Side.BUY else ladder[rng.randint(65, 120)]
                tif = TimeInForce.GOOD_TIL_CANCELLED
            else:  # aggressive
                price = ladder[rng.randint(62, 120)] if side is Side.BUY else ladder[rng.randint(0, 58)]
                tif = TimeInForce.IMMEDIATE_OR_CANCEL
            block.append(PlaceOrder(account, name, side, rng.choice(quantities), price,
                                    time_in_force=tif))
        for position, index in enumerate(sequence_indexes(block)):
            command = block[index]
            if isinstance(command, PlaceOrder) and command.time_in_force is TimeInForce.GOOD_TIL_CANCELLED:
                order_ids.append((command.account, log_id(height, position)))
        blocks.append(block)
    state = ExchangeState.from_genesis(config)
    return state, [funding] + blocks, config


def bench_apply(accounts_count: int, blocks_max: int, seed: int) -> tuple[float, float]:
    """(orders/s with the root each block, orders/s without committing)."""
    from deltasync.exchange import invariants

    results = []
    for with_root in (True, False):
        state, blocks, config = _apply_setup(accounts_count, seed)
        time_ns = config.genesis_time_ns
        funding = blocks[0]
        for first in range(0, len(funding), 4_000):
            state.apply_block(state.height + 1, time_ns + 1, funding[first : first + 4_000])
        base = state.height
        gc.collect()
        commands = 0
        elapsed = 0.0
        for height, block in enumerate(blocks[1 : blocks_max + 1], start=base + 1):
            if not with_root:
                setattr(state, "state_root", lambda: b"")  # noqa: B010 - measure without the root
            started = time.process_time()
            state.apply_block(height, time_ns + height * 1_000_000_000, block)
            elapsed += time.process_time() - started
            commands += len(block)
        if not with_root:
            del state.state_root
        problems = invariants.check_invariants(state)
        assert not problems, problems[:3]
        results.append(commands / elapsed)
    return results[0], results[1]


def bench_state_root(accounts_count: int, changed_per_round: int, rounds: int, seed: int) -> tuple[float, int]:
    """Microseconds per changed key for commit(), and the state's key count."""
    from deltasync.core.fixed import Amount
    from deltasync.exchange import invariants
    from deltasync.exchange.commands import Deposit
    from deltasync.exchange.genesis import default_genesis
    from deltasync.exchange.state import ExchangeState

    config = default_genesis()
    state = ExchangeState.from_genesis(config)
    deposits = [Deposit(a, Amount.whole(1)) for a in range(1, accounts_count + 1)]
    for height, first in enumerate(range(0, accounts_count, 4_000), start=1):
        state.apply_block(height, config.genesis_time_ns + height, deposits[first : first + 4_000])
    rng = random.Random(seed)
    total_keys = 0
    elapsed = 0.0
    for _ in range(rounds):
        for account_id in rng.sample(range(1, accounts_count + 1), changed_per_round):
            state.accounts[account_id].cash += 1
            state.deposits_total += 1
            state.dirty_accounts[account_id] = None
        gc.collect()
        started = time.process_time()
        state.state_root()
        elapsed += time.process_time() - started
        total_keys += changed_per_round
    assert not invariants.check_invariants(state)
    return elapsed / total_keys * 1e6, len(state.merkle)


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    started = time.perf_counter()
    matching = bench_matching(30_000 if quick else 300_000, args.seed)
    apply_with_root, apply_without_root = bench_apply(
        1_000 if quick else 10_000, 3 if quick else 40, args.seed
    )
    root_us, root_keys = bench_state_root(
        5_000 if quick else 100_000, 500 if quick else 5_000, 2 if quick else 8, args.seed
    )
    figures: dict[str, Any] = {
        "matching_ops_per_s": round(matching),
        "apply_orders_per_s": round(apply_with_root),
        "apply_orders_per_s_excluding_root": round(apply_without_root),
        "state_root_us_per_key": round(root_us, 2),
        "root_state_keys": root_keys,
        "accounts": 1_000 if quick else 10_000,
    }
    # Figures of the parts other modules own, when they are installed.
    if importlib.util.find_spec("deltasync.cli.bench_pricing"):
        from deltasync.cli.bench_pricing import bench_greeks

        figures["greeks_per_s"] = round(bench_greeks(2_000 if quick else 100_000))
    if importlib.util.find_spec("deltasync.cli.bench_risk"):
        from deltasync.cli import bench_risk

        accounts = 1_000 if quick else 10_000
        figures["apply_orders_per_s_with_margin"] = round(
            bench_risk.bench_apply_orders_with_margin(accounts, 5 if quick else 20, args.seed)
        )
        figures["remargin_ms_10k_accounts"] = round(
            bench_risk.bench_remargin_ms_10k(accounts, args.seed), 1
        )
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        for key, value in figures.items():
            print(f"{key:36} {value:>14,}" if isinstance(value, int) else f"{key:36} {value:>14}")
    return 0
