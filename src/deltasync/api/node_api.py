"""The API of a node process: a ``NodeVenue`` behind an ``ApiServer``.

API keys are derived from the cluster secret (``KeyStore(master=...)``), so a
key created on one node works on every node and survives failover.
``start_api`` is what ``deltasync node`` calls when the config has an
``api_address``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from deltasync.api.auth import KeyStore
from deltasync.api.server import ApiServer
from deltasync.venue.replicated import NodeVenue

log = logging.getLogger(__name__)


def api_master_secret(cluster_secret: bytes) -> bytes:
    """The key-derivation secret of a cluster's API keys (never the cluster secret itself)."""
    return hmac.new(cluster_secret, b"deltasync-api-keys", hashlib.sha256).digest()


class NodeApi:
    """The API attached to a node process: ``await stop()`` closes both halves."""

    def __init__(self, server: ApiServer, venue: NodeVenue) -> None:
        self.server = server
        self.venue = venue

    async def stop(self) -> None:
        await self.server.stop()
        await self.venue.close()


async def start_api(venue: NodeVenue, address: tuple[str, int], cluster_secret: bytes) -> NodeApi:
    """Serve the API of ``venue``'s node on ``address``."""
    keys = KeyStore(master=api_master_secret(cluster_secret))
    host, port = address
    server = ApiServer(venue, host, port, keys, demo_mode=venue.demo_mode)
    await server.start()
    log.info("API on http://%s:%d (demo mode %s)", host, server.port, venue.demo_mode)
    return NodeApi(server, venue)
