"""What the cluster demo plays: its schedule, its genesis and the instruments it trades.

Times in the schedule are fractions of the trading phase (``Plan``); block time
runs ``rate`` times faster than the wall clock, anchored so that the short expiry
(``SHORT_EXPIRY``) comes at ~75 % of the run (see ``cluster_demo``). Block time is
synthetic, so the scenario does not depend on today's date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltasync.exchange.genesis import default_genesis_dict, parse_expiry
from deltasync.exchange.instruments import expiry_ns_of as expiry_ns_of_days
from deltasync.exchange.oracle import public_key_of
from deltasync.node.demo_oracle import demo_source_seed

NS_PER_S = 1_000_000_000
SHORT_EXPIRY = "21NOV26"
WEEK_EXPIRY = "27NOV26"
LONG_EXPIRIES = ("25DEC26", "29JAN27")  # the default genesis' other expiries
SOURCE_IDS = ("demo-a", "demo-b", "demo-c", "demo-d")  # the scenario's oracle sources
UNDERLYINGS = ("BTC", "ETH")
SPOTS = {"BTC": 100_000, "ETH": 3_500}  # the true prices at the start, in whole USDC
CRASH_DROP = {"BTC": 0.20, "ETH": 0.22}  # fraction of the true price lost in the crash
WATCHED = f"BTC_USDC-{WEEK_EXPIRY}-100000-P"  # the option the live view and the subscriber follow


@dataclass(frozen=True)
class Plan:
    """The scenario's schedule in seconds after the trading start."""

    duration_s: float

    def at(self, fraction: float) -> float:
        return self.duration_s * fraction

    @property
    def kill_s(self) -> float:
        return self.at(0.30)

    @property
    def restart_s(self) -> float:
        return self.at(0.45)

    @property
    def crash_s(self) -> float:
        return self.at(0.50)

    @property
    def crash_len_s(self) -> float:
        return max(1.5, self.at(0.04))

    @property
    def expiry_s(self) -> float:
        return self.at(0.75)

    @property
    def outage(self) -> tuple[float, float]:
        return self.at(0.20), self.at(0.35)


def instrument_names() -> dict[str, list[str]]:
    """The instruments the agents use, by role."""
    btc_short = [f"BTC_USDC-{SHORT_EXPIRY}-{k}-{t}" for k in (95000, 100000, 105000) for t in "CP"]
    eth_short = [f"ETH_USDC-{SHORT_EXPIRY}-{k}-{t}" for k in (3250, 3500, 3750) for t in "CP"]
    btc_week = [f"BTC_USDC-{WEEK_EXPIRY}-{k}-{t}"
                for k in (90000, 95000, 100000, 105000, 110000) for t in "CP"]
    eth_week = [f"ETH_USDC-{WEEK_EXPIRY}-{k}-{t}"
                for k in (3000, 3250, 3500, 3750, 4000) for t in "CP"]
    return {
        "quoted": btc_short + eth_short + btc_week + eth_week,
        "short": btc_short + eth_short,
        "levered_puts": [f"BTC_USDC-{WEEK_EXPIRY}-100000-P", f"BTC_USDC-{WEEK_EXPIRY}-95000-P",
                         f"ETH_USDC-{WEEK_EXPIRY}-3500-P", f"ETH_USDC-{WEEK_EXPIRY}-3250-P"],
    }


def combo_spreads() -> list[tuple[str, str]]:
    """(long leg, short leg) of the spreads the combo trader buys."""
    return [
        (f"BTC_USDC-{WEEK_EXPIRY}-100000-C", f"BTC_USDC-{WEEK_EXPIRY}-105000-C"),
        (f"ETH_USDC-{WEEK_EXPIRY}-3500-C", f"ETH_USDC-{WEEK_EXPIRY}-3750-C"),
        (f"BTC_USDC-{WEEK_EXPIRY}-100000-P", f"BTC_USDC-{WEEK_EXPIRY}-95000-P"),
    ]


def demo_genesis(rate: int) -> dict[str, Any]:
    """The default genesis plus the short expiry, and an oracle of the scenario's sources
    whose freshness rules are in wall seconds (block time runs ``rate`` x faster)."""
    genesis = default_genesis_dict()
    genesis["listings"].append({"underlying": "BTC", "expiry": SHORT_EXPIRY,
                                "strikes": [str(k) for k in range(90000, 110001, 5000)]})
    genesis["listings"].append({"underlying": "ETH", "expiry": SHORT_EXPIRY,
                                "strikes": [str(k) for k in range(3000, 4001, 250)]})
    genesis["oracle"] = {
        "sources": [{"id": source, "public_key": public_key_of(demo_source_seed(source)).hex(),
                     "underlyings": list(UNDERLYINGS)} for source in SOURCE_IDS],
        "min_sources": 2,
        "staleness_ns": 5 * rate * NS_PER_S,  # five wall seconds
        "clamp_band_ppm": 20_000,
        "max_report_skew_ns": 5 * rate * NS_PER_S,
        "jump_bound_ppm": 150_000,
        "jump_confirm_sources": 2,
    }
    genesis["margin"] = {"mark_refresh_ns": rate * NS_PER_S}  # marks age at most one wall second
    return genesis


def expiry_ns_of(expiry: str) -> int:
    """Block time (ns) at which options of ``expiry`` (``21NOV26``) expire."""
    return expiry_ns_of_days(parse_expiry(expiry, "expiry"))


def listed_expiries_ns() -> list[int]:
    """Every expiry of the demo genesis, for the oracle's smiles."""
    return sorted({expiry_ns_of(e) for e in (SHORT_EXPIRY, WEEK_EXPIRY, *LONG_EXPIRIES)})
