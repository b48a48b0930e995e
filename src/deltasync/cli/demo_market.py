"""The simulated market of the cluster demo: prices, oracle sources, and trading agents.

Everything here talks to a running cluster through its Deribit-compatible API
(the ``deltasync.client`` SDK over HTTP, HMAC-authenticated), the way an
outside trading firm would:

- ``PricePath``: the "true" BTC and ETH prices (a seeded random walk, with a
  scheduled crash);
- ``OracleSource``: one simulated price source per (source, underlying)
  stream: it observes the true price with noise and latency, sometimes
  reports an outlier, goes silent during its outage window, and signs each
  report (ed25519, the demo seeds) with an SVI smile per listed expiry;
- ``MarkBoard``: marks, best bid/ask and active instruments, refreshed from
  ``public/get_book_summary_by_currency`` for every agent to read;
- agents: ``MarketMaker`` (post-only two-sided quotes around mark, labelled,
  edited as marks move, pulled by label now and then), ``Taker`` (IOC, market
  and resting limit orders), ``ComboTrader`` (call spreads through
  ``private/create_combo``), ``LeveredShort`` (sells puts up to its margin
  limit, the account a crash liquidates), ``BookWatcher`` (a WebSocket
  subscriber keeping one book from its ``change_id`` chain).

Every network call has a timeout; a call that fails because a node is down
moves the agent to the next node (its key works on every node), a bounded
number of times. Nothing here spawns tasks per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import aiohttp

from deltasync.client import ApiError, Client

NS_PER_S = 1_000_000_000
NS_PER_YEAR = 365 * 86_400 * NS_PER_S
ORACLE_SEED_PREFIX = b"deltasync/demo-oracle/"
SOURCE_IDS = ("demo-a", "demo-b", "demo-c", "demo-d")
RETRYABLE_CODES = {10028, 10047, 13028}  # too many requests, queue full, unavailable
ORDER_KINDS = ("buy", "sell", "edit", "cancel", "combo")


def source_seed(source_id: str) -> bytes:
    """The public demo seed of a source (as ``assembly.DEMO_ORACLE_SEEDS``): demos only."""
    return hashlib.sha256(ORACLE_SEED_PREFIX + source_id.encode()).digest()


@dataclass(frozen=True)
class BlockClock:
    """Block time as every node computes it: anchor + (wall - wall anchor) x rate."""

    rate: int
    block_anchor_ns: int
    wall_anchor_ns: int

    def now_ns(self) -> int:
        return self.block_anchor_ns + (time.time_ns() - self.wall_anchor_ns) * self.rate

    def wall_of(self, block_ns: int) -> float:
        """Wall time (seconds since the epoch) at which block time reaches ``block_ns``."""
        return (self.wall_anchor_ns + (block_ns - self.block_anchor_ns) / self.rate) / NS_PER_S


# --- metrics ----------------------------------------------------------------------------


@dataclass
class Metrics:
    """What the agents did, as the clients saw it."""

    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    order_times: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    requests: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    trades: int = 0
    combo_fills: int = 0
    failovers: int = 0
    call_failures: int = 0
    oracle_reports: int = 0
    oracle_rejected: int = 0
    oracle_outliers: int = 0
    levered_contracts: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, str]] = field(default_factory=list)

    def orders(self) -> int:
        return sum(self.accepted[kind] + self.rejected_of(kind) for kind in ORDER_KINDS)

    def rejected_of(self, kind: str) -> int:
        return sum(n for key, n in self.rejected.items() if key.startswith(kind + ":"))

    def orders_per_s(self, window_s: float = 2.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.order_times if now - t <= window_s) / window_s

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def note(self, text: str) -> None:
        self.events.append((time.monotonic(), text))


class NodesDown(Exception):
    """Every node refused or timed out for this call, after the allowed retries."""


class Api:
    """One account's access to the cluster: an SDK client per node, fail-over between them."""

    def __init__(self, urls: list[str], home: int, metrics: Metrics, timeout_s: float = 5.0,
                 client_id: str | None = None, client_secret: str | None = None) -> None:
        self.urls = urls
        self.current = home % len(urls)
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.client_secret = client_secret
        self._clients: dict[int, Client] = {}

    def _client(self, index: int) -> Client:
        client = self._clients.get(index)
        if client is None:
            client = Client(self.urls[index], self.client_id, self.client_secret,
                            timeout_s=self.timeout_s)
            self._clients[index] = client
        return client

    async def run(self, action: Callable[[Client], Awaitable[Any]], kind: str | None = None,
                  attempts: int = 4) -> Any:
        """``action(client)`` on the current node; on a dead node or a retryable answer,
        the next node after a short pause. ApiErrors of the venue go to the caller."""
        last: BaseException | None = None
        for attempt in range(attempts):
            client = self._client(self.current)
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(action(client), self.timeout_s + 1)
            except ApiError as exc:
                if exc.code not in RETRYABLE_CODES:
                    self._record(kind, started)
                    raise
                last = exc
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                last = exc
                self.current = (self.current + 1) % len(self.urls)
                self.metrics.failovers += 1
            else:
                self._record(kind, started)
                return result
            await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
        self.metrics.call_failures += 1
        raise NodesDown(repr(last)[:200])

    def _record(self, kind: str | None, started: float) -> None:
        if kind is None:
            return
        self.metrics.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.metrics.order_times.append(time.monotonic())
        self.metrics.requests[kind] += 1

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   kind: str | None = None, post: bool = False) -> Any:
        if post:
            return await self.run(
                lambda c: c.http_call(method, params or {}, http_method="POST"), kind)
        return await self.run(lambda c: c.call(method, params or {}), kind)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


# --- prices -----------------------------------------------------------------------------


@dataclass
class Crash:
    start_s: float  # seconds after the trading start
    length_s: float
    drop: dict[str, float]  # underlying -> fraction lost (0.2 = -20 %)


class PricePath:
    """True prices: a seeded random walk in wall time, plus the scheduled crash."""

    def __init__(self, spots: dict[str, float], seed: int, crash: Crash,
                 vol_per_sqrt_s: float = 0.0006, jump_every_s: float = 15.0) -> None:
        self.base = dict(spots)
        self.walk = {name: 0.0 for name in spots}
        self.rng = random.Random(seed)
        self.crash = crash
        self.vol = vol_per_sqrt_s
        self.jump_every_s = jump_every_s
        self.start = time.monotonic()
        self.last = self.start
        self.trading = False  # the schedule (crash, outages) runs from the trading start

    def start_trading(self) -> None:
        self.start = self.last = time.monotonic()
        self.trading = True

    def elapsed_s(self) -> float:
        """Seconds since the trading start (0 before it)."""
        return time.monotonic() - self.start if self.trading else 0.0

    def step(self) -> None:
        now = time.monotonic()
        dt = max(0.0, now - self.last)
        self.last = now
        for name in self.walk:
            self.walk[name] += self.rng.gauss(0.0, self.vol * math.sqrt(dt))
            if self.rng.random() < dt / self.jump_every_s:  # a Poisson jump, up or down
                self.walk[name] += self.rng.choice((-1.0, 1.0)) * self.rng.uniform(0.005, 0.015)

    def crash_fraction(self) -> float:
        t = self.elapsed_s() - self.crash.start_s
        if not self.trading or t <= 0:
            return 0.0
        return min(1.0, t / self.crash.length_s)

    def price(self, underlying: str) -> float:
        drop = self.crash.drop.get(underlying, 0.0) * self.crash_fraction()
        return self.base[underlying] * math.exp(self.walk[underlying]) * (1.0 - drop)

    def atm_vol(self, underlying: str) -> float:
        base = {"BTC": 0.55, "ETH": 0.70}.get(underlying, 0.6)
        return base * (1.0 + 0.5 * self.crash_fraction())  # vol spikes in the crash


def svi_surface(expiries_ns: list[int], ts_ns: int, atm_vol: float, rng: random.Random) -> Any:
    """One SVI slice per expiry after ``ts_ns``: skewed to puts, smile constant in vol terms."""
    from deltasync.exchange.svi import SviSlice

    slices = []
    for expiry_ns in sorted(expiries_ns):
        if expiry_ns <= ts_ns + 60 * NS_PER_S:
            continue  # an expiry about to pass: no smile (the margin engine's default vol)
        t_years = (expiry_ns - ts_ns) / NS_PER_YEAR
        vol = atm_vol * (1.0 + rng.uniform(-0.02, 0.02))
        b = 0.5 * t_years
        sigma = 0.1
        a = vol * vol * t_years - b * sigma
        slices.append(SviSlice.from_floats(expiry_ns, a, b, -0.3, 0.0, sigma))
    return tuple(slices) or None


@dataclass
class OracleSource:
    source_id: str
    underlying: str
    noise: float  # relative standard deviation of an observation
    latency_s: tuple[float, float]
    interval_s: float
    outlier_probability: float
    outage: tuple[float, float] | None  # seconds after the trading start


async def run_source(source: OracleSource, path: PricePath, clock: BlockClock,
                     expiries_ns: list[int], relay: Api, metrics: Metrics, seed: int,
                     stop: asyncio.Event) -> None:
    """Observe, wait out the latency, sign and relay; until ``stop``."""
    from deltasync.core.fixed import Price
    from deltasync.exchange.oracle import sign_report

    rng = random.Random(seed)
    key = source_seed(source.source_id)
    decimals = 2 if source.underlying == "BTC" else 3
    while not stop.is_set():
        await _sleep_or_stop(stop, source.interval_s * rng.uniform(0.8, 1.2))
        elapsed = path.elapsed_s()
        if path.trading and source.outage is not None and (
                source.outage[0] <= elapsed < source.outage[1]):
            continue
        ts_ns = clock.now_ns()
        price = path.price(source.underlying) * (1.0 + rng.gauss(0.0, source.noise))
        if rng.random() < source.outlier_probability:
            price *= rng.choice((0.96, 1.04))  # a bad tick: the oracle's clamp band absorbs it
            metrics.oracle_outliers += 1
        surface = svi_surface(expiries_ns, ts_ns, path.atm_vol(source.underlying), rng)
        report = sign_report(key, source.source_id, source.underlying,
                             Price.parse(f"{price:.{decimals}f}"), ts_ns, surface)
        await _sleep_or_stop(stop, rng.uniform(*source.latency_s))
        params: dict[str, Any] = {
            "source_id": report.source_id, "underlying": report.underlying,
            "price": Decimal(str(report.price)), "ts_ns": report.ts_ns,
            "signature": report.signature.hex(),
        }
        if surface is not None:
            params["vol_surface"] = [s.to_wire() for s in surface]
        try:
            await relay.call("public/deltasync_oracle_report", params, post=True)
            metrics.oracle_reports += 1
        except ApiError:
            metrics.oracle_rejected += 1
        except NodesDown:
            pass


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    except TimeoutError:
        pass


# --- market data --------------------------------------------------------------------------


@dataclass
class Quote:
    mark: Decimal | None
    bid: Decimal | None
    ask: Decimal | None


class MarkBoard:
    """Marks and best prices of the active instruments, refreshed by one task for all agents."""

    def __init__(self, api: Api, currencies: tuple[str, ...] = ("BTC", "ETH")) -> None:
        self.api = api
        self.currencies = currencies
        self.quotes: dict[str, Quote] = {}
        self.index: dict[str, Decimal | None] = {}
        self.updated = 0.0
        self.sample_name: str | None = None
        self.sample: dict[str, Any] = {}  # the ticker of one option: mark, IV, greeks

    async def refresh(self) -> None:
        quotes: dict[str, Quote] = {}
        for currency in self.currencies:
            rows = await self.api.call("public/get_book_summary_by_currency",
                                       {"currency": currency, "kind": "option"})
            for row in rows:
                quotes[row["instrument_name"]] = Quote(
                    _dec(row.get("mark_price")), _dec(row.get("bid_price")),
                    _dec(row.get("ask_price")))
            index = await self.api.call("public/get_index_price",
                                        {"index_name": f"{currency.lower()}_usdc"})
            self.index[currency] = _dec(index.get("index_price"))
        self.quotes = quotes
        self.updated = time.monotonic()
        if self.sample_name is not None:
            self.sample = await self.api.call("public/ticker",
                                              {"instrument_name": self.sample_name})

    async def run(self, stop: asyncio.Event, interval_s: float = 0.4) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except (ApiError, NodesDown):
                pass
            await _sleep_or_stop(stop, interval_s)

    def active(self, name: str) -> bool:
        quote = self.quotes.get(name)
        return quote is not None and quote.mark is not None and quote.mark > 0


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class Spec:
    """Tick and size rules of an underlying's options (the genesis defaults)."""

    tick_low: Decimal
    tick_high: Decimal
    tick_above: Decimal
    lot: Decimal

    def tick(self, price: Decimal) -> Decimal:
        return self.tick_high if price > self.tick_above else self.tick_low

    def down(self, price: Decimal) -> Decimal:
        tick = self.tick(price)
        return max(tick, (price / tick).to_integral_value(ROUND_FLOOR) * tick)

    def up(self, price: Decimal) -> Decimal:
        tick = self.tick(price)
        return max(tick, (price / tick).to_integral_value(ROUND_CEILING) * tick)


SPECS = {
    "BTC": Spec(Decimal(1), Decimal(5), Decimal(1000), Decimal("0.01")),
    "ETH": Spec(Decimal("0.1"), Decimal("0.5"), Decimal(100), Decimal("0.1")),
}


def underlying_of(name: str) -> str:
    return name.split("_", 1)[0]


# --- agents -------------------------------------------------------------------------------


@dataclass
class Account:
    name: str
    api: Api
    account_id: int = 0


async def create_account(name: str, urls: list[str], home: int, deposit: Decimal,
                         metrics: Metrics) -> Account:
    api = Api(urls, home, metrics)
    result = await api.call("public/deltasync_create_account", {"deposit": deposit})
    api.client_id, api.client_secret = result["client_id"], result["client_secret"]
    await api.close()  # clients are rebuilt with the credentials
    return Account(name, api, int(result["account_id"]))


async def _order(account: Account, kind: str, action: Callable[[Client], Awaitable[Any]]) -> Any:
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

    def __init__(self, account: Account, instruments: list[str], board: MarkBoard,
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
            await _sleep_or_stop(stop, self.rng.uniform(0.1, 0.3))


class Taker:
    """Crosses the spread: IOC limits at the touch, some market orders, resting bids it cancels."""

    def __init__(self, account: Account, instruments: list[str], board: MarkBoard, seed: int,
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
            await _sleep_or_stop(stop, self.rng.uniform(*self.pause_s))


class ComboTrader:
    """Buys call spreads (and sells put spreads) as combos: all legs fill together or none."""

    def __init__(self, account: Account, spreads: list[tuple[str, str]], board: MarkBoard,
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

    async def run(self, stop: asyncio.Event, at_s: list[float], path: PricePath) -> None:
        for when in at_s:
            await _sleep_or_stop(stop, when - path.elapsed_s())
            if stop.is_set():
                return
            for _ in range(6):
                if await self.trade_once() or stop.is_set():
                    break
                await _sleep_or_stop(stop, 0.5)


class LeveredShort:
    """Sells near-the-money puts into the makers' bids until margin refuses more."""

    def __init__(self, account: Account, puts: list[str], board: MarkBoard, seed: int) -> None:
        self.account = account
        self.puts = puts
        self.board = board
        self.rng = random.Random(seed)

    async def run(self, stop: asyncio.Event, start_s: float, until_s: float,
                  path: PricePath) -> None:
        await _sleep_or_stop(stop, start_s - path.elapsed_s())
        metrics = self.account.api.metrics
        refusals = 0
        while not stop.is_set() and path.elapsed_s() < until_s and refusals < 3:
            live = [name for name in self.puts if self.board.active(name)]
            if not live:
                await _sleep_or_stop(stop, 0.2)
                continue
            name = self.rng.choice(live)
            bid = self.board.quotes[name].bid
            if bid is None:
                await _sleep_or_stop(stop, 0.2)
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
            await _sleep_or_stop(stop, 0.05)


class BookWatcher:
    """A WebSocket subscriber: keeps one instrument's book from ``book.{name}.raw`` (checking
    the ``change_id`` chain) and counts ``trades.{name}.raw``; reconnects to another node
    when its node dies, resubscribes for a fresh snapshot after a gap."""

    def __init__(self, urls: list[str], home: int, instrument: str) -> None:
        from deltasync.client import BookTracker

        self.urls = urls
        self.current = home % len(urls)
        self.instrument = instrument
        self.tracker = BookTracker()
        self.notifications = 0
        self.trades_seen = 0
        self.gaps = 0
        self.reconnects = 0
        self.last_note = time.monotonic()
        self.client: Client | None = None

    async def run(self, stop: asyncio.Event) -> None:
        from deltasync.client import BookGap, BookTracker

        name = self.instrument
        while not stop.is_set():
            client = Client(self.urls[self.current], timeout_s=3.0)
            self.client = client
            try:
                await client.connect(authenticate=False)
                sub = await client.subscribe(f"book.{name}.raw", f"trades.{name}.raw")
                self.tracker = BookTracker()
                while not stop.is_set():
                    try:
                        note = await sub.next(timeout_s=0.5)
                    except TimeoutError:
                        continue
                    self.notifications += 1
                    self.last_note = time.monotonic()
                    if note.channel.startswith("book."):
                        try:
                            self.tracker.apply(note.data)
                        except BookGap:
                            self.gaps += 1
                            break
                    else:
                        self.trades_seen += len(note.data)
            except (StopAsyncIteration, ApiError, aiohttp.ClientError, OSError, TimeoutError,
                    ValueError):
                self.current = (self.current + 1) % len(self.urls)  # its node went away
            finally:
                self.client = None
                await client.close()
            if not stop.is_set():
                self.reconnects += 1
                await _sleep_or_stop(stop, 0.3)

    async def compare_with_rest(self, quiet_s: float = 1.0, timeout_s: float = 6.0) -> bool | None:
        """Once no notification came for ``quiet_s``: does the book kept from the
        subscription equal ``public/get_order_book`` on the same node? (None: unknown.)"""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - self.last_note < quiet_s:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)
        if self.tracker.change_id is None:
            return None
        try:
            async with Client(self.urls[self.current], timeout_s=3.0) as rest:
                book = await rest.get_order_book(self.instrument, depth=1000)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None
        bids, asks = self.tracker.levels()
        return (list(book.bids), list(book.asks)) == (bids, asks)
