"""A one-process development venue: ``python -m deltasync.api.dev --port 8080``.

Runs ``LocalVenue`` (the full exchange, the demo oracle feeding prices) behind
the API in demo mode, so ``deltasync account create --api URL`` and any
Deribit client work against it without a cluster. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from deltasync.api.server import ApiServer
from deltasync.venue.local import LocalVenue, live_genesis


async def serve(host: str, port: int, oracle_interval_s: float) -> None:
    venue = LocalVenue(genesis=live_genesis(time.time_ns()), demo_mode=True, oracle_interval_s=oracle_interval_s)
    await venue.start()
    server = ApiServer(venue, host, port, demo_mode=True)
    await server.start()
    print(f"deltasync dev venue: {server.url} (demo mode, local, not replicated)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await venue.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deltasync.api.dev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--oracle-interval", type=float, default=2.0,
                        help="seconds between demo oracle reports (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, args.oracle_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
