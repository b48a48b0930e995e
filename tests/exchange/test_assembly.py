"""assembly: the full venue from a genesis, its default oracle, registries and snapshots."""

from __future__ import annotations

import subprocess
import sys

from deltasync.core.fixed import Amount, Price
from deltasync.exchange.assembly import (
    COMMAND_REGISTRIES,
    DEMO_ORACLE_SEEDS,
    EVENT_REGISTRIES,
    default_oracle_dict,
    demo_reports,
    new_exchange,
    restore_exchange,
)
from deltasync.exchange.commands import Deposit
from deltasync.exchange.events import OrderAccepted, OrderRejected, RejectReason
from deltasync.exchange.genesis import default_genesis, default_genesis_dict
from deltasync.exchange.liquidation import LiquidationEngine
from deltasync.exchange.margin import MarginEngine, MarginMode, SetMarginMode
from deltasync.exchange.oracle import OracleConfig, OracleReportAccepted
from deltasync.exchange.settlement import SettlementEngine

from .test_margin_support import CALL, S, buy, sell


def test_new_exchange_wires_every_extension_in_order() -> None:
    state = new_exchange(default_genesis())
    assert isinstance(state.risk, MarginEngine)
    assert [e.name for e in state.extensions] == ["oracle", "margin", "settlement", "liquidation"]
    assert isinstance(state.extensions[2], SettlementEngine)
    assert isinstance(state.extensions[3], LiquidationEngine)


def test_the_default_oracle_accepts_demo_reports_and_opens_trading() -> None:
    genesis = default_genesis()
    assert genesis.oracle == {}
    config = OracleConfig.from_dict(default_oracle_dict(genesis))
    assert config.underlyings() == ("BTC", "ETH") and config.min_sources == 2
    state = new_exchange(genesis)
    t = state.time_ns + S
    prices = {"BTC": Price.whole(100_000), "ETH": Price.whole(3_500)}
    state.apply_block(1, t, [Deposit(7, Amount.whole(100_000))])
    result = state.apply_block(2, t + S, [buy(7, CALL, "0.1", "1000"),
                                          *demo_reports(prices, t + S)])
    halted = result.events[0][0]  # reports of a block count from the next block on
    assert type(halted) is OrderRejected and halted.reason is RejectReason.TRADING_HALTED
    assert all(type(events[0]) is OracleReportAccepted for events in result.events[1:])
    result = state.apply_block(3, t + 2 * S, [buy(7, CALL, "0.1", "1000")])
    assert type(result.events[0][0]) is OrderAccepted  # the index formed at this block's start


def test_demo_seeds_are_fixed() -> None:
    assert len(DEMO_ORACLE_SEEDS) == 3 and all(len(s) == 32 for s in DEMO_ORACLE_SEEDS.values())
    code = (
        "from deltasync.exchange.assembly import DEMO_ORACLE_SEEDS as d;"
        "print(sorted((k, v.hex()) for k, v in d.items()))"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}, check=True).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1


def test_registries_decode_every_risk_message() -> None:
    tags = [(registry.name, registry.tag_of(cls)) for registry in COMMAND_REGISTRIES
            for cls in registry.classes()]
    assert len(tags) == len(set(tags))
    risk = COMMAND_REGISTRIES[2]
    assert risk is EVENT_REGISTRIES[2]
    assert all(200 <= risk.tag_of(cls) < 300 for cls in risk.classes())
    command = SetMarginMode(7, MarginMode.PORTFOLIO)
    assert risk.decode(risk.encode(command)) == command


def test_restore_exchange_reproduces_the_root_and_continues_identically() -> None:
    raw = default_genesis_dict()
    raw["margin"] = {"default_mode": "portfolio"}
    from deltasync.exchange.genesis import GenesisConfig

    genesis = GenesisConfig.from_dict(raw)
    state = new_exchange(genesis)
    t = state.time_ns
    prices = {"BTC": Price.whole(100_000), "ETH": Price.whole(3_500)}
    blocks = [
        [Deposit(7, Amount.whole(100_000)), Deposit(8, Amount.whole(100_000))],
        [],
        [sell(7, CALL, "0.5", "5000"), buy(8, CALL, "0.5", "5000")],
        [sell(7, CALL, "0.2", "6000")],
    ]
    for height, block in enumerate(blocks, start=1):
        t += S
        state.apply_block(height, t, block + demo_reports(prices, t))
    copy = restore_exchange(state.snapshot_bytes())
    assert copy.state_root() == state.state_root()
    assert isinstance(copy.risk, MarginEngine) and copy.risk.mode_of(7) is MarginMode.PORTFOLIO
    prices["BTC"] = Price.whole(95_000)
    for height in range(len(blocks) + 1, len(blocks) + 4):
        t += S
        commands = [buy(8, CALL, "0.1", "4000")] + demo_reports(prices, t)
        assert (copy.apply_block(height, t, commands).state_root
                == state.apply_block(height, t, commands).state_root)
