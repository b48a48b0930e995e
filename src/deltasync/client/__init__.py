"""deltasync's Python SDK: an asyncio client for the Deribit-compatible API."""

from deltasync.client.book import BookGap, BookTracker
from deltasync.client.client import Client, Subscription
from deltasync.client.types import (
    AccountSummary,
    ApiError,
    Notification,
    Order,
    OrderBook,
    OrderResult,
    Position,
    Trade,
)

__all__ = [
    "AccountSummary",
    "ApiError",
    "BookGap",
    "BookTracker",
    "Client",
    "Notification",
    "Order",
    "OrderBook",
    "OrderResult",
    "Position",
    "Subscription",
    "Trade",
]
