"""A WebSocket subscriber that keeps one instrument's book, as a market-data client would."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from deltasync.client import ApiError, BookGap, BookTracker, Client
from deltasync.demo.clock import sleep_or_stop


class BookWatcher:
    """A WebSocket subscriber: keeps one instrument's book from ``book.{name}.raw`` (checking
    the ``change_id`` chain) and counts ``trades.{name}.raw``; reconnects to another node
    when its node dies, resubscribes for a fresh snapshot after a gap."""

    def __init__(self, urls: list[str], home: int, instrument: str) -> None:
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
                await sleep_or_stop(stop, 0.3)

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
