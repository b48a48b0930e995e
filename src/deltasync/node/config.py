"""Node configuration: one TOML or JSON file per node.

Example (``cluster up`` writes these)::

    node_id = 1
    data_dir = "/tmp/ds/node1"
    raft_address = "127.0.0.1:7101"
    api_address = "127.0.0.1:8101"
    gateway_address = "127.0.0.1:7201"  # native msgpack gateway (optional)
    cluster_secret_hex = "..."          # 32 random bytes shared by the cluster
    demo_mode = true                    # allows account creation with a deposit
    [peers]                             # raft addresses of every voter, self included
    1 = "127.0.0.1:7101"
    2 = "127.0.0.1:7102"
    3 = "127.0.0.1:7103"
    [api_peers]
    1 = "http://127.0.0.1:8101"
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltasync.core.errors import ConfigError


def _address(value: Any, key: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(key=key, reason="expected HOST:PORT", value=value)
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key=key, reason="bad port", value=value)
    return host, int(port)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    data_dir: Path
    raft_address: tuple[str, int]
    api_address: tuple[str, int] | None
    gateway_address: tuple[str, int] | None
    peers: dict[int, tuple[str, int]]
    api_peers: dict[int, str] = field(default_factory=dict)
    cluster_secret: bytes = b""
    demo_mode: bool = False
    demo_oracle: bool = False  # the leader publishes demo oracle reports (quickstarts)
    tick_ms: int = 10
    election_ticks: int = 20
    heartbeat_ticks: int = 2
    block_wait_ms: int = 2
    block_commands_max: int = 2048
    snapshot_every_blocks: int = 2000
    genesis: dict[str, Any] | None = None  # None means the default genesis
    block_time_rate: int = 1  # >1 only in demos: block time runs this many times faster
    block_anchor_ns: int = 0
    wall_anchor_ns: int = 0
    seed: int = 0

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> NodeConfig:
        try:
            node_id = int(raw["node_id"])
            peers = {int(k): _address(v, f"peers.{k}") for k, v in raw["peers"].items()}
            secret = bytes.fromhex(raw.get("cluster_secret_hex", ""))
        except KeyError as exc:
            raise ConfigError(key=str(exc), reason="missing") from None
        except ValueError as exc:
            raise ConfigError(key="config", reason=str(exc)) from None
        if node_id not in peers:
            raise ConfigError(key="peers", reason="must include this node", node_id=node_id)
        if len(secret) < 16:
            raise ConfigError(key="cluster_secret_hex", reason="at least 16 bytes required")
        api = raw.get("api_address")
        gateway = raw.get("gateway_address")
        config = NodeConfig(
            node_id=node_id,
            data_dir=Path(raw["data_dir"]),
            raft_address=_address(raw.get("raft_address", ""), "raft_address"),
            api_address=_address(api, "api_address") if api else None,
            gateway_address=_address(gateway, "gateway_address") if gateway else None,
            peers=peers,
            api_peers={int(k): str(v) for k, v in raw.get("api_peers", {}).items()},
            cluster_secret=secret,
            demo_mode=bool(raw.get("demo_mode", False)),
            demo_oracle=bool(raw.get("demo_oracle", False)),
            tick_ms=int(raw.get("tick_ms", 10)),
            election_ticks=int(raw.get("election_ticks", 20)),
            heartbeat_ticks=int(raw.get("heartbeat_ticks", 2)),
            block_wait_ms=int(raw.get("block_wait_ms", 2)),
            block_commands_max=int(raw.get("block_commands_max", 2048)),
            snapshot_every_blocks=int(raw.get("snapshot_every_blocks", 2000)),
            genesis=raw.get("genesis"),
            block_time_rate=int(raw.get("block_time_rate", 1)),
            block_anchor_ns=int(raw.get("block_anchor_ns", 0)),
            wall_anchor_ns=int(raw.get("wall_anchor_ns", 0)),
            seed=int(raw.get("seed", node_id)),
        )
        if not 1 <= config.tick_ms <= 1000:
            raise ConfigError(key="tick_ms", reason="1..1000")
        if not 1 <= config.block_time_rate <= 10_000:
            raise ConfigError(key="block_time_rate", reason="1..10000")
        if config.heartbeat_ticks >= config.election_ticks:
            raise ConfigError(key="heartbeat_ticks", reason="must be below election_ticks")
        return config

    @staticmethod
    def load(path: Path) -> NodeConfig:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return NodeConfig.from_dict(raw)
