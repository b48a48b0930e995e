"""The demo's entry points, as ``deltasync demo`` calls them.

``run_cluster_demo`` owns the run's lifetime: the data directory (temporary unless
given; kept for a post-mortem when the run failed), SIGTERM handled like Ctrl-C, the
progress display, the teardown of every node whatever happens, the offline audit
once the nodes are stopped, and the summary. ``run_in_process`` runs the
single-process scenario.

Exit status: 0 when the roots agree, no node halted and no invariant broke
(missing milestones are warnings); 1 otherwise; 2 for bad options; 130 on
Ctrl-C or SIGTERM (after teardown).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from deltasync.demo.cluster import NodeProcesses
from deltasync.demo.cluster_demo import ClusterDemo, ClusterDemoOptions, Display
from deltasync.demo.in_process import ScenarioStats, run_scenario
from deltasync.demo.progress import LinePrinter, LiveView, Quiet, render
from deltasync.demo.summary import (
    build_summary,
    finish_summary,
    print_in_process_summary,
    print_summary,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_cluster_demo(options: ClusterDemoOptions, processes: NodeProcesses) -> int:
    """Run the cluster scenario with node processes from ``processes``; the exit status."""
    problem = options.problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM stops the demo like Ctrl-C does: agents stop, nodes are torn down.
    previous_term = signal.signal(signal.SIGTERM,
                                  lambda *_: os.kill(os.getpid(), signal.SIGINT))
    temporary = options.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="deltasync-demo-")) if temporary else options.data_dir
    assert data_dir is not None
    data_dir.mkdir(parents=True, exist_ok=True)
    demo: ClusterDemo | None = None
    summary: dict[str, Any] = {}
    interrupted = False
    try:
        demo = ClusterDemo(options, data_dir, processes)
        summary = _run_with_display(demo)
    except KeyboardInterrupt:
        interrupted = True
    except RuntimeError as exc:
        summary = {"ok": False, "problems": [str(exc)]}
    except Exception as exc:  # a bug of the demo itself: still tear the cluster down
        traceback.print_exc()
        summary = {"ok": False, "problems": [f"the demo failed: {exc!r}"]}
    finally:
        if (data_dir / "cluster.json").exists():
            processes.down(data_dir)
        signal.signal(signal.SIGTERM, previous_term)
    if demo is not None and summary.get("audit_pending"):
        summary = finish_summary(demo, summary)
    _keep_or_remove(data_dir, temporary, interrupted or bool(summary.get("ok")), summary)
    if interrupted:
        print("interrupted: cluster stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if options.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    else:
        print_summary(summary)
    return EXIT_OK if summary.get("ok") else EXIT_FAILED


def _run_with_display(demo: ClusterDemo) -> dict[str, Any]:
    """The run, with a live panel on a terminal, plain lines otherwise, nothing with --json."""
    if demo.options.json:
        return asyncio.run(_run(demo, Quiet()))
    if not sys.stdout.isatty():
        return asyncio.run(_run(demo, LinePrinter()))
    from rich.live import Live

    with Live(render(demo), refresh_per_second=4, transient=False) as live:
        return asyncio.run(_run(demo, LiveView(live)))


async def _run(demo: ClusterDemo, display: Display) -> dict[str, Any]:
    final = await demo.run(display)
    return build_summary(demo, final)


def _keep_or_remove(data_dir: Path, temporary: bool, done: bool, summary: dict[str, Any]) -> None:
    """A temporary directory goes after a good or interrupted run; after a failed run it
    stays, with the nodes' logs, for a post-mortem."""
    if not temporary:
        return
    if done:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    summary["data_dir"] = str(data_dir)
    print(f"the cluster's files are kept in {data_dir} (node logs: node*/node.log)",
          file=sys.stderr)


def run_in_process(seed: int, duration_s: float, blocks_max: int) -> int:
    """The in-process scenario with a progress line and a summary; 1 if an invariant broke."""
    from rich.console import Console

    console = Console()
    console.print(f"[bold]deltasync demo[/]: in-process market scenario, seed {seed}")
    with console.status("trading...") as status:
        def progress(height: int, stats: ScenarioStats) -> None:
            if height % 10 == 0:
                status.update(f"block {height}: {stats.trades} trades")

        result = run_scenario(seed, duration_s, blocks_max, on_block=progress)
    print_in_process_summary(console, result)
    return EXIT_FAILED if result.problems else EXIT_OK
