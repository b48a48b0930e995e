"""The full venue in one call: trading core + oracle + margin + settlement + liquidation.

``new_exchange(genesis)`` is what the node, the simulator and the demo build;
``restore_exchange(snapshot_bytes)`` rebuilds it from ``snapshot_bytes()``.
Extensions run in this order every block (start and end): oracle (index,
breaker, TWAP samples), margin (marks, re-margining), settlement (expiries),
liquidation (end of block only).

Oracle config: ``genesis.oracle`` when given; otherwise ``default_oracle_dict``:
three demo sources ``demo-a``, ``demo-b``, ``demo-c`` reporting every genesis
underlying, whose ed25519 seeds are ``sha256(b"deltasync/demo-oracle/" + id)``
(``DEMO_ORACLE_SEEDS``, public on purpose: only for demos and tests), two fresh
sources needed, 30 s staleness, 2 % clamp band, 10 s timestamp skew, a 15 %
jump needs two confirming sources. ``demo_reports`` signs a round of reports.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from deltasync.core.codec import Registry, decode
from deltasync.core.fixed import Price
from deltasync.exchange.commands import COMMANDS
from deltasync.exchange.events import EVENTS
from deltasync.exchange.genesis import GenesisConfig
from deltasync.exchange.liquidation import LiquidationEngine
from deltasync.exchange.margin import RISK_REGISTRY, MarginConfig, MarginEngine
from deltasync.exchange.oracle import (
    ORACLE_REGISTRY,
    OracleConfig,
    OracleExtension,
    OracleReport,
    OracleState,
    public_key_of,
    sign_report,
)
from deltasync.exchange.settlement import SettlementEngine
from deltasync.exchange.state import ExchangeState
from deltasync.exchange.svi import SviSlice

COMMAND_REGISTRIES: list[Registry] = [COMMANDS, ORACLE_REGISTRY, RISK_REGISTRY]
EVENT_REGISTRIES: list[Registry] = [EVENTS, ORACLE_REGISTRY, RISK_REGISTRY]

DEMO_SOURCE_IDS = ("demo-a", "demo-b", "demo-c")
DEMO_ORACLE_SEEDS: dict[str, bytes] = {
    source: hashlib.sha256(b"deltasync/demo-oracle/" + source.encode()).digest()
    for source in DEMO_SOURCE_IDS
}
_S = 1_000_000_000


def default_oracle_dict(genesis: GenesisConfig) -> dict[str, Any]:
    underlyings = [spec.name for spec in genesis.underlyings]
    return {
        "sources": [
            {"id": source, "public_key": public_key_of(DEMO_ORACLE_SEEDS[source]).hex(),
             "underlyings": underlyings}
            for source in DEMO_SOURCE_IDS
        ],
        "min_sources": 2,
        "staleness_ns": 30 * _S,
        "clamp_band_ppm": 20_000,
        "max_report_skew_ns": 10 * _S,
        "jump_bound_ppm": 150_000,
        "jump_confirm_sources": 2,
    }


def demo_reports(
    prices: dict[str, Price],
    ts_ns: int,
    surfaces: dict[str, tuple[SviSlice, ...]] | None = None,
    sources: tuple[str, ...] = DEMO_SOURCE_IDS,
) -> list[OracleReport]:
    """One signed report per demo source and underlying (for the default oracle config)."""
    return [
        sign_report(DEMO_ORACLE_SEEDS[source], source, underlying, prices[underlying], ts_ns,
                    None if surfaces is None else surfaces.get(underlying))
        for underlying in sorted(prices)
        for source in sources
    ]


def _engines(genesis: GenesisConfig) -> tuple[MarginEngine, list[Any]]:
    oracle = OracleExtension(
        OracleState(OracleConfig.from_dict(genesis.oracle or default_oracle_dict(genesis)))
    )
    margin = MarginEngine(MarginConfig.from_dict(genesis.margin), oracle)
    return margin, [oracle, margin, SettlementEngine(margin), LiquidationEngine(margin)]


def new_exchange(genesis: GenesisConfig) -> ExchangeState:
    """The venue at genesis, with every extension attached."""
    margin, extensions = _engines(genesis)
    return ExchangeState.from_genesis(genesis, risk=margin, extensions=extensions)


def restore_exchange(data: bytes) -> ExchangeState:
    """The venue from ``ExchangeState.snapshot_bytes()`` of one built by ``new_exchange``."""
    doc = decode(data, max_bytes=len(data))
    genesis = GenesisConfig.from_dict(json.loads(doc[1]))
    margin, extensions = _engines(genesis)
    return ExchangeState.restore(data, risk=margin, extensions=extensions)


__all__ = [
    "COMMAND_REGISTRIES",
    "DEMO_ORACLE_SEEDS",
    "EVENT_REGISTRIES",
    "default_oracle_dict",
    "demo_reports",
    "new_exchange",
    "restore_exchange",
]
