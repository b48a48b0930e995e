"""`deltasync node --config FILE`: run one node until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

HELP = "run one node (consensus, storage, transport, exchange, API) from a config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="node config (.json or .toml)")


async def run_node(config_path: Path) -> int:
    from deltasync.node.config import NodeConfig
    from deltasync.node.server import NodeServer

    config = NodeConfig.load(config_path)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s node{config.node_id} %(levelname)s %(name)s: %(message)s",
    )
    from deltasync.storage.errors import StorageError

    try:
        server = NodeServer(config)
    except StorageError as exc:
        # e.g. a corrupt record in the middle of the WAL: refuse to start, say where
        logging.getLogger("deltasync.node").error("refusing to start: %s", exc)
        print(f"deltasync node {config.node_id}: refusing to start: {exc}", file=sys.stderr)
        return 2
    await server.start()
    if config.api_address is not None:
        from deltasync.api.node_api import start_api
        from deltasync.venue.replicated import NodeVenue

        server.api = await start_api(NodeVenue(server), config.api_address, config.cluster_secret)
    return await server.run_until_stopped()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(run_node(args.config))
