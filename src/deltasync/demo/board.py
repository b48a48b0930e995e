"""Market data for the agents: marks, best prices and the index, refreshed by one task,
and the tick and lot rules of the options they trade."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from deltasync.client import ApiError
from deltasync.demo.api import Api, NodesDown
from deltasync.demo.clock import sleep_or_stop


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
            await sleep_or_stop(stop, interval_s)

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
