"""The demo's progress: a live panel in a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import time
from typing import Any

from deltasync.demo.clock import NS_PER_S
from deltasync.demo.cluster_demo import ClusterDemo
from deltasync.demo.scenario import SHORT_EXPIRY


class Quiet:
    """No progress (``--json``)."""

    def refresh(self, demo: ClusterDemo) -> None:
        return


class LinePrinter:
    """Progress as plain lines every few seconds (output that is not a terminal: CI, pipes)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.last = 0.0
        self.phase = ""
        self.events = 0

    def refresh(self, demo: ClusterDemo) -> None:
        now = time.monotonic()
        events = demo.metrics.events
        for _, text in events[self.events:]:
            print(f"  * {text}", flush=True)
        self.events = len(events)
        if now - self.last < self.every_s and demo.phase == self.phase:
            return
        self.last, self.phase = now, demo.phase
        m = demo.metrics
        watch = demo.setup.watch if demo.setup is not None else None
        heights = " ".join(f"{k}:{v}" for k, v in sorted(watch.heights().items())) if watch else ""
        check = watch.last_root_check if watch else {}
        roots = "-" if not check else (
            f"agree@{check['height']}" if check["agree"] else f"DISAGREE@{check['height']}")
        p50, p99 = m.percentile_ms(0.5), m.percentile_ms(0.99)
        latency = "-" if p50 is None else f"{p50:.0f}/{p99:.0f}ms"
        print(f"t={demo.trading.elapsed_s():5.1f}s [{demo.phase}] heights {heights or '-'} leader "
              f"{watch.leader if watch else '-'} orders/s {m.orders_per_s():.0f} "
              f"p50/p99 {latency} trades {m.trades} roots {roots}", flush=True)


class LiveView:
    """The rich live panel: nodes, load, latency, leader and root agreement."""

    def __init__(self, live: Any) -> None:
        self.live = live
        self.last = 0.0

    def refresh(self, demo: ClusterDemo) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        self.live.update(render(demo))


def render(demo: ClusterDemo) -> Any:
    """The live panel: the node table, the figures, the last milestones."""
    from rich.console import Group

    events = [text for _, text in demo.metrics.events[-4:]]
    return Group(_node_table(demo), _figures(demo), *events)


def _node_table(demo: ClusterDemo) -> Any:
    from rich.table import Table

    elapsed = demo.trading.elapsed_s()
    table = Table(title=f"deltasync demo  [{demo.phase}]  "
                        f"t={elapsed:5.1f}s / {demo.plan.duration_s:.0f}s")
    for column in ("node", "role", "term", "height", "lag", "state root"):
        table.add_column(column)
    rows = demo.setup.watch.rows if demo.setup is not None else []
    for row in rows:
        role = row["role"]
        style = {"leader": "bold green", "down": "red", "stale": "yellow"}.get(role, "")
        table.add_row(str(row["id"]), f"[{style}]{role}[/]" if style else role,
                      str(row["term"] or ""), str(row["height"] or ""), str(row["lag"] or 0),
                      (row["state_root"] or "")[:16])
    return table


def _figures(demo: ClusterDemo) -> Any:
    from rich.table import Table

    m = demo.metrics
    watch = demo.setup.watch if demo.setup is not None else None
    p50, p99 = m.percentile_ms(0.5), m.percentile_ms(0.99)
    bad_ticks = demo.oracle.bad_ticks if demo.oracle is not None else 0
    table = Table(show_header=False, box=None)
    table.add_column()
    table.add_column()
    table.add_row("orders / s", f"{m.orders_per_s():.0f}   (total {m.orders()})")
    table.add_row("latency p50 / p99", "-" if p50 is None else f"{p50:.1f} / {p99:.1f} ms")
    table.add_row("trades (client view)", f"{m.trades}   combos {m.combo_fills}")
    table.add_row("index (cluster)", _index(demo))
    table.add_row("block time", _block_time(demo))
    table.add_row("option", _sample(demo))
    table.add_row("oracle reports", f"{m.oracle_reports} relayed, {bad_ticks} outliers")
    watcher = demo.watcher
    if watcher is not None:
        table.add_row("ws subscription", f"{watcher.notifications} notifications, "
                      f"{watcher.trades_seen} trades, {watcher.gaps} gaps, "
                      f"{watcher.reconnects} reconnects  ({watcher.instrument})")
    table.add_row("leader", str(watch.leader if watch else "-"))
    table.add_row("state roots", _roots(demo))
    return table


def _roots(demo: ClusterDemo) -> str:
    if demo.setup is None or not demo.setup.watch.last_root_check:
        return "-"
    check = demo.setup.watch.last_root_check
    if check["agree"]:
        return f"[green]agree[/] at {check['height']} ({check['nodes_compared']} nodes)"
    return f"[red]DISAGREE at {check['height']}[/]"


def _index(demo: ClusterDemo) -> str:
    board = demo.board
    if board is None or not board.index:
        return "-"
    return "  ".join(f"{k} {v:,.2f}" for k, v in sorted(board.index.items()) if v)


def _block_time(demo: ClusterDemo) -> str:
    if demo.setup is None:
        return "-"
    now_ns = demo.setup.clock.now_ns()
    left_s = (demo.setup.expiry_ns - now_ns) / NS_PER_S
    shown = time.strftime("%d%b%y %H:%M:%S", time.gmtime(now_ns // NS_PER_S)).upper()
    if left_s > 0:
        return shown + f"   ({SHORT_EXPIRY} expiry in {left_s / 60:.1f} min of block time)"
    return shown + f"   ({SHORT_EXPIRY} expired)"


def _sample(demo: ClusterDemo) -> str:
    board = demo.board
    if board is None or not board.sample:
        return "-"
    t = board.sample
    greeks = t.get("greeks") or {}
    return (f"{board.sample_name}: mark {t.get('mark_price')}  iv {t.get('mark_iv')}  "
            f"delta {greeks.get('delta')}  bid {t.get('best_bid_price')}  "
            f"ask {t.get('best_ask_price')}")
