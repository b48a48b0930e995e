"""The demo's traders, each one account trading through the Deribit-compatible API
(the ``deltasync.client`` SDK over HTTP, HMAC-authenticated), as an outside firm would:

- ``MarketMaker``: post-only two-sided quotes around mark, labelled, edited as marks
  move, pulled by label now and then;
- ``Taker``: IOC limits at the touch, market orders, resting bids it cancels;
- ``ComboTrader``: call and put spreads through ``private/create_combo``;
- ``LeveredShort``: sells puts up to its margin limit (the account a crash liquidates).

Each reads marks and best prices from the shared ``MarkBoard`` and counts what the
venue answered in the shared ``Metrics``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from deltasync.client import ApiError, Client
from deltasync.demo.api import Api, NodesDown
from deltasync.demo.board import SPECS, MarkBoard, underlying_of
from deltasync.demo.clock import TradingClock, sleep_or_stop
from deltasync.demo.metrics import Metrics


@dataclass
class TraderAccount:
    """A trader's account on the venue and its access to the cluster."""

    name: str
    api: Api
    account_id: int = 0


async def create_account(name: str, urls: list[str], home: int, deposit: Decimal,
                         metrics: Metrics) -> TraderAccount:
    api = Api(urls, home, metrics)
    result = await api.call("public/deltasync_create_account", {"deposit": deposit})
    api.client_id, api.client_secret = result["client_id"], result["client_secret"]
    await api.close()  # clients are rebuilt with the credentials
    return TraderAccount(name, api, int(result["account_id"]))


async def _order(account: TraderAccount, kind: str, action: Callable[[Client], Awaitable[Any]]) -> Any:
    """One order-type request; counts acceptance, rejections (by code) and trades."""
    metrics = account.api.metrics
    try:
        result = await account.api.run(action, kind)
    except ApiError as exc:
        metrics.rejected[f"{kind}:{exc.code}"] += 1
        return None
    except NodesDown:
        return None
    metrics.accepted[kind] += 1
    trades = getattr(result, "trades", None)
    if trades:
        metrics.trades += len(trades)
    return result


class MarketMaker:
    """Two-sided post-only quotes around mark on its share of the instruments."""

    def __init__(self, account: TraderAccount, instruments: list[str], board: MarkBoard,
                 seed: int, spread: float, size_lots: int) -> None:
        self.account = account
        self.instruments = instruments
        self.board = board
        self.rng = random.Random(seed)
        self.spread = spread
        self.size_lots = size_lots
        self.orders: dict[tuple[str, str], tuple[str, Decimal]] = {}  # -> (order id, price)
        self.label = f"mm-{account.name}"

    def _target(self, name: str, side: str) -> Decimal | None:
        quote = self.board.quotes.get(name)
        if quote is None or quote.mark is None or quote.mark <= 0:
            return None
        spec = SPECS[underlying_of(name)]
        width = max(quote.mark * Decimal(str(self.spread)), 2 * spec.tick(quote.mark))
        shade = Decimal(str(self.rng.uniform(-0.2, 0.2))) * width
        if side == "buy":
            price = quote.mark - width + shade
            return spec.down(price) if price > spec.tick(price) else None
        return spec.up(quote.mark + width + shade)

    async def _resync(self) -> None:
        """Which of my quotes are still open (fills and liquidations remove them)."""
        try:
            open_orders = await self.account.api.run(lambda c: c.get_open_orders())
        except (ApiError, NodesDown):
            return
        live = {order.order_id for order in open_orders}
        self.orders = {key: value for key, value in self.orders.items() if value[0] in live}

    async def quote(self, name: str, side: str) -> None:
        target = self._target(name, side)
        if target is None:
            return
        spec = SPECS[underlying_of(name)]
        amount = spec.lot * self.size_lots
        existing = self.orders.get((name, side))
        if existing is not None:
            order_id, price = existing
            if abs(price - target) <= max(spec.tick(target), target * Decimal("0.005")):
                return
            result = await _order(self.account, "edit",
                                  lambda c: c.edit(order_id, amount, target))
            if result is not None and result.order.order_state == "open":
                self.orders[(name, side)] = (order_id, target)
                return
            self.orders.pop((name, side), None)
        method = "buy" if side == "buy" else "sell"
        result = await _order(self.account, method, lambda c: getattr(c, method)(
            name, amount, target, post_only=True, label=self.label))
        if result is not None and result.order.order_state == "open":
            self.orders[(name, side)] = (result.order.order_id, target)

    async def run(self, stop: asyncio.Event) -> None:
        cycle = 0
        while not stop.is_set():
            cycle += 1
            if cycle % 8 == 0:
                await self._resync()
            if cycle % 40 == 0:  # pull everything by label; the next cycles re-quote
                await _order(self.account, "cancel",
                             lambda c: c.cancel_by_label(self.label))
                self.orders.clear()
            for name in self.instruments:
                if stop.is_set():
                    return
                if not self.board.active(name):
                    continue
                for side in ("buy", "sell"):
                    await self.quote(name, side)
            await sleep_or_stop(stop, self.rng.uniform(0.1, 0.3))


class Taker:
    """Crosses the spread: IOC limits at the touch, some market orders, resting bids it cancels."""

    def __init__(self, account: TraderAccount, instruments: list[str], board: MarkBoard, seed: int,
                 pause_s: tuple[float, float]) -> None:
        self.account = account
        self.instruments = instruments
        self.board = board
        self.rng = random.Random(seed)
        self.pause_s = pause_s

    async def step(self) -> None:
        live = [name for name in self.instruments if self.board.active(name)]
        if not live:
            return
        name = self.rng.choice(live)
        quote = self.board.quotes[name]
        spec = SPECS[underlying_of(name)]
        amount = spec.lot * self.rng.choice((1, 1, 2, 3))
        roll = self.rng.random()
        if roll < 0.08:
            side = self.rng.choice(("buy", "sell"))
            await _order(self.account, side, lambda c: getattr(c, side)(
                name, amount, type="market", label="taker-mkt"))
        elif roll < 0.16 and quote.mark is not None:
            # a resting bid below the market, cancelled a moment later
            price = spec.down(quote.mark * Decimal("0.7"))
            result = await _order(self.account, "buy", lambda c: c.buy(
                name, amount, price, label="taker-rest"))
            if result is not None and result.order.order_state == "open":
                await asyncio.sleep(0.05)
                order_id = result.order.order_id
                await _order(self.account, "cancel", lambda c: c.cancel(order_id))
        else:
            side = self.rng.choice(("buy", "sell"))
            touch = quote.ask if side == "buy" else quote.bid
            if touch is None:
                return
            await _order(self.account, side, lambda c: getattr(c, side)(
                name, amount, touch, time_in_force="immediate_or_cancel", label="taker"))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            await sleep_or_stop(stop, self.rng.uniform(*self.pause_s))


class ComboTrader:
    """Buys call spreads (and sells put spreads) as combos: all legs fill together or none."""

    def __init__(self, account: TraderAccount, spreads: list[tuple[str, str]], board: MarkBoard,
                 seed: int) -> None:
        self.account = account
        self.spreads = spreads
        self.board = board
        self.rng = random.Random(seed)

    async def trade_once(self) -> bool:
        live = [(a, b) for a, b in self.spreads if self.board.active(a) and self.board.active(b)]
        self.rng.shuffle(live)
        metrics = self.account.api.metrics
        for long_leg, short_leg in live[:3]:
            ask, bid = self.board.quotes[long_leg].ask, self.board.quotes[short_leg].bid
            if ask is None or bid is None:
                continue
            legs = [{"instrument_name": long_leg, "direction": "buy", "amount": 1},
                    {"instrument_name": short_leg, "direction": "sell", "amount": 1}]
            try:
                # POST: the legs travel as a JSON body rather than a query-string value
                combo = await self.account.api.call("private/create_combo", {"trades": legs},
                                                    post=True)
            except ApiError as exc:
                metrics.note(f"create_combo refused: {exc}"[:120])
                continue
            except NodesDown:
                continue
            spec = SPECS[underlying_of(long_leg)]
            net = spec.up((ask - bid) * Decimal("1.02") + spec.tick(ask))
            combo_name, lot = combo["id"], spec.lot

            def buy_combo(c: Any, n: str = combo_name, p: Decimal = net, q: Decimal = lot) -> Any:
                return c.buy(n, q, p, time_in_force="immediate_or_cancel", label="combo")

            result = await _order(self.account, "combo", buy_combo)
            if result is not None and result.order.filled_amount > 0:
                metrics.combo_fills += 1
                metrics.note(f"combo filled: {combo['id']}")
                return True
        return False

    async def run(self, stop: asyncio.Event, at_s: list[float], trading: TradingClock) -> None:
        for when in at_s:
            await sleep_or_stop(stop, when - trading.elapsed_s())
            if stop.is_set():
                return
            for _ in range(6):
                if await self.trade_once() or stop.is_set():
                    break
                await sleep_or_stop(stop, 0.5)


class LeveredShort:
    """Sells near-the-money puts into the makers' bids until margin refuses more."""

    def __init__(self, account: TraderAccount, puts: list[str], board: MarkBoard, seed: int) -> None:
        self.account = account
        self.puts = puts
        self.board = board
        self.rng = random.Random(seed)

    async def run(self, stop: asyncio.Event, start_s: float, until_s: float,
                  trading: TradingClock) -> None:
        await sleep_or_stop(stop, start_s - trading.elapsed_s())
        metrics = self.account.api.metrics
        refusals = 0
        while not stop.is_set() and trading.elapsed_s() < until_s and refusals < 3:
            live = [name for name in self.puts if self.board.active(name)]
            if not live:
                await sleep_or_stop(stop, 0.2)
                continue
            name = self.rng.choice(live)
            bid = self.board.quotes[name].bid
            if bid is None:
                await sleep_or_stop(stop, 0.2)
                continue
            spec = SPECS[underlying_of(name)]
            amount = spec.lot * 5
            try:
                def sell_levered(c: Any, n: str = name, a: Decimal = amount, p: Any = bid) -> Any:
                    return c.sell(n, a, p, time_in_force="immediate_or_cancel", label="levered")

                result = await self.account.api.run(sell_levered, "sell")
            except ApiError as exc:
                metrics.rejected[f"sell:{exc.code}"] += 1
                if exc.code == 10009:
                    refusals += 1
                continue
            except NodesDown:
                continue
            metrics.accepted["sell"] += 1
            filled = result.order.filled_amount
            if result.trades:
                metrics.trades += len(result.trades)
            if filled > 0:
                metrics.levered_contracts[self.account.name] += int(filled / spec.lot)
            await sleep_or_stop(stop, 0.05)
