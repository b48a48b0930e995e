"""The demo's summaries: what the cluster run did, the verdict, and how both are printed.

``build_summary`` collects the run's figures while the nodes still run;
``finish_summary`` adds the offline audit of a never-killed node once they are
stopped, and ``verdict`` decides: ``problems`` fail the run (roots that were not
compared equal, a disagreement during the run, a halted node, a problem the audit
found), ``warnings`` only report missing milestones. The in-process demo has its
own table (``print_in_process_summary``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from deltasync.demo.audit import audit_node
from deltasync.demo.cluster_demo import ClusterDemo
from deltasync.demo.in_process import DemoResult
from deltasync.demo.scenario import SHORT_EXPIRY


def build_summary(demo: ClusterDemo, final: dict[str, Any]) -> dict[str, Any]:
    """The run's figures, with the final root comparison ``final``; the audit is pending."""
    m = demo.metrics
    watch = demo.watch
    assert demo.setup is not None
    return {
        "duration_s": demo.plan.duration_s,
        "nodes": len(watch.urls),
        "seed": demo.options.seed,
        "block_time_rate": demo.setup.rate,
        "orders": m.orders(),
        "orders_accepted": sum(m.accepted[k] for k in m.accepted),
        "orders_rejected": sum(m.rejected.values()),
        "rejections": dict(m.rejected.most_common(10)),
        "orders_per_s": round(m.orders() / demo.plan.duration_s, 1),
        "latency_ms": {"p50": _round(m.percentile_ms(0.5)), "p99": _round(m.percentile_ms(0.99))},
        "trades_client_view": m.trades,
        "combo_fills": m.combo_fills,
        "oracle_reports": m.oracle_reports,
        "oracle_rejected": m.oracle_rejected,
        "failovers": m.failovers,
        "node_killed": demo.killed,
        "node_restarted": demo.restarted,
        "restarted_node_caught_up": demo.caught_up,
        "milestones_s": {k: round(v, 1) for k, v in demo.milestones.items()},
        "heights": {str(k): v for k, v in sorted(watch.heights().items())},
        "final_roots": final,
        "roots_agree": bool(final.get("agree")) and final.get("nodes_compared") == len(watch.urls),
        "root_checks": watch.root_checks,
        "root_disagreements": watch.root_disagreements[:5],
        "halts": watch.halts(),
        "levered_before_crash": demo.observed.get("levered_before_crash"),
        "index_before_crash": demo.observed.get("index_before_crash"),
        "subscription": _subscription(demo),
        "index_after_crash": demo.observed.get("index_after_crash"),
        "problems": list(demo.problems),
        "audit_pending": True,
    }


def finish_summary(demo: ClusterDemo, summary: dict[str, Any]) -> dict[str, Any]:
    """After the nodes stopped: replay a never-killed node's log offline, then decide."""
    summary.pop("audit_pending", None)
    nodes = sorted(demo.watch.urls)
    survivor = next((n for n in nodes if n != demo.killed), 1)
    try:
        audit = audit_node(demo.data_dir / f"node{survivor}",
                           expected_roots=summary.get("final_roots") or {},
                           deadline_s=max(15.0, demo.plan.duration_s / 4))
    except Exception as exc:  # a damaged log is a finding, not a crash of the demo
        audit = {"problems": [f"the replay failed: {exc!r}"[:300]], "complete": False}
    audit["node"] = survivor
    summary["audit"] = audit
    return verdict(summary)


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """Fill in the counts from the audit, ``problems`` (fail the run), ``warnings`` and ``ok``."""
    audit = summary.get("audit") or {}
    summary["trades"] = audit.get("trades", summary.get("trades_client_view", 0))
    summary["liquidations"] = audit.get("liquidations", 0)
    summary["settlements"] = audit.get("settlements", 0)
    problems = summary.setdefault("problems", [])
    if not summary.get("roots_agree"):
        problems.append("the nodes' state roots were not all compared equal at a common height")
    if summary.get("root_disagreements"):
        problems.append("state roots disagreed during the run")
    if summary.get("halts"):
        problems.append(f"{len(summary['halts'])} node(s) halted: {summary['halts'][:3]}")
    problems += [f"audit: {p}" for p in audit.get("problems", [])]
    summary["warnings"] = _warnings(summary, audit)
    summary["ok"] = not problems
    return summary


def _warnings(summary: dict[str, Any], audit: dict[str, Any]) -> list[str]:
    """Milestones of the scenario that did not happen (they do not fail the run)."""
    warnings = []
    if not audit.get("complete"):
        warnings.append("the audit did not replay the whole log in time")
    if not summary.get("node_restarted"):
        warnings.append("no node was restarted")
    elif not summary.get("restarted_node_caught_up"):
        warnings.append("the restarted node did not catch up during the run")
    if summary["liquidations"] == 0:
        warnings.append("no liquidation happened")
    if summary["settlements"] == 0:
        warnings.append("the short expiry did not settle")
    if summary["trades"] == 0:
        warnings.append("no trade happened")
    if not summary.get("combo_fills"):
        warnings.append("no combo filled")
    subscription = summary.get("subscription") or {}
    if subscription.get("book_matches_rest") is False:
        warnings.append("the book kept from the WebSocket subscription differs from "
                        "public/get_order_book")
    return warnings


def _subscription(demo: ClusterDemo) -> dict[str, Any] | None:
    watcher = demo.watcher
    if watcher is None:
        return None
    return {"instrument": watcher.instrument, "notifications": watcher.notifications,
            "trades_seen": watcher.trades_seen, "book_gaps": watcher.gaps,
            "reconnects": watcher.reconnects,
            "book_matches_rest": demo.observed.get("book_matches_rest")}


def _fmt_index(index: dict[str, str] | None) -> str:
    if not index:
        return "-"
    return " ".join(f"{k} {Decimal(v):,.0f}" for k, v in sorted(index.items()) if v != "None")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary table of a cluster run, row by row."""
    latency = summary.get("latency_ms") or {}
    audit = summary.get("audit") or {}
    final = summary.get("final_roots") or {}
    sub = summary.get("subscription") or {}
    return [
        ("orders (accepted / rejected)",
         f"{summary.get('orders', 0)} ({summary.get('orders_accepted', 0)} / "
         f"{summary.get('orders_rejected', 0)})"),
        ("orders / s", f"{summary.get('orders_per_s', 0)}"),
        ("latency p50 / p99 (ms)", f"{latency.get('p50')} / {latency.get('p99')}"),
        ("trades", f"{summary.get('trades', 0)}"),
        ("combo fills", f"{summary.get('combo_fills', 0)}"),
        ("liquidations (accounts / steps)",
         f"{audit.get('liquidated_accounts', 0)} / {summary.get('liquidations', 0)}"),
        ("settlements (positions / instruments)",
         f"{summary.get('settlements', 0)} / {audit.get('instruments_settled', 0)}"),
        (f"{SHORT_EXPIRY} settlement prices (TWAP)", _fmt_index(audit.get("settlement_prices"))),
        ("oracle reports relayed", f"{summary.get('oracle_reports', 0)}"),
        ("node killed / restarted / caught up",
         f"{summary.get('node_killed')} / {summary.get('node_restarted')} / "
         f"{summary.get('restarted_node_caught_up')}"),
        ("index before / after the crash",
         f"{_fmt_index(summary.get('index_before_crash'))} -> "
         f"{_fmt_index(summary.get('index_after_crash'))}"),
        ("oracle breaker trips", f"{audit.get('breaker_trips', 0)}"),
        ("ws book (notifications / gaps / = REST)",
         f"{sub.get('notifications', '-')} / {sub.get('book_gaps', '-')} / "
         f"{sub.get('book_matches_rest', '-')}"),
        ("client fail-overs", f"{summary.get('failovers', 0)}"),
        ("blocks replayed by the auditor",
         f"{audit.get('blocks', '-')} in {audit.get('elapsed_s', '-')} s"),
        ("state roots", ("agree" if summary.get("roots_agree") else "DO NOT AGREE")
         + f" at height {final.get('height')} on {final.get('nodes_compared')} nodes"),
        ("invariants", "OK" if not audit.get("problems") else "BROKEN"),
    ]


def print_summary(summary: dict[str, Any]) -> None:
    """The cluster run's summary table, its warnings and problems, and OK or FAILED."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="deltasync demo: summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in summary_rows(summary):
        table.add_row(what, value)
    console.print(table)
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}")
    for problem in summary.get("problems", []):
        console.print(f"[red]problem[/]: {problem}")
    console.print("[bold green]OK[/]" if summary.get("ok") else "[bold red]FAILED[/]")


# --- the in-process demo ----------------------------------------------------------------


def _usdc(raw: int) -> str:
    return f"{raw / 1_000_000:,.2f}"


def in_process_rows(result: DemoResult) -> list[tuple[str, str]]:
    """The summary table of an in-process run, row by row."""
    stats, state = result.stats, result.state
    return [
        ("blocks", f"{stats.blocks}"),
        ("commands", f"{stats.commands}"),
        ("elapsed (s, with invariant checks every block)", f"{result.elapsed_s:.2f}"),
        ("orders accepted / rejected", f"{stats.orders_accepted} / {stats.orders_rejected}"),
        ("trades", f"{stats.trades}"),
        ("volume (contracts x size)", f"{stats.volume_raw / 1_000_000:,.2f}"),
        ("premium traded (USDC)", _usdc(stats.premium_raw)),
        ("fees (USDC)", _usdc(stats.fees_raw)),
        ("fee account balance (USDC)", _usdc(state.fee_account.cash)),
        ("cancels / GTT expired / edits", f"{stats.cancels} / {stats.expired} / {stats.edits}"),
        ("combos filled / rejected", f"{stats.combos_filled} / {stats.combos_rejected}"),
        ("open orders", f"{len(state.orders)}"),
        ("accounts", f"{len(state.accounts)}"),
        ("state root", result.state_root.hex()[:32] + "..."),
        ("invariants", "OK" if not result.problems else f"BROKEN ({len(result.problems)})"),
    ]


def print_in_process_summary(console: Any, result: DemoResult) -> None:
    """The in-process run's table, its most frequent rejections and any broken invariant."""
    from rich.table import Table

    table = Table(title="summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in in_process_rows(result):
        table.add_row(what, value)
    console.print(table)
    stats = result.stats
    if stats.rejections:
        top = ", ".join(f"{code} {count}" for code, count in stats.rejections.most_common(6))
        console.print(f"rejections: {top}")
    for problem in result.problems[:20]:
        console.print(f"[red]invariant broken[/]: {problem}")
