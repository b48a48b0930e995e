"""`deltasync sim`: deterministic simulation of a whole cluster from one seed.

One seed::

    deltasync sim --seed 42                 # a summary
    deltasync sim --seed 42 --json          # seed, trace_hash, state_root, height, violations, ...
    deltasync sim --seed 42 --nodes 5 --steps 3000 --log   # also print the nemesis log
    deltasync sim --seed 2 --steps 500 --set oracle_jump_ppm=60000 --set trading_clients=4

A swarm of seeds in parallel processes (a progress bar, then a summary; every
failure prints the exact command that replays it)::

    deltasync sim --seeds 1..200 --jobs 2

The exit code is 1 when any seed found a violation. Simulation speed is
reported as simulated seconds per wall-clock second (``sim_speed``); the wall
clock is read here only, never inside the simulator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from typing import Any

HELP = "deterministic cluster simulation with faults and checkers (--seed N or --seeds A..B)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed")
    which.add_argument(
        "--seeds", type=_seed_range, metavar="A..B", help="run seeds A to B inclusive"
    )
    parser.add_argument(
        "--nodes", type=int, choices=(3, 5), help="cluster size (default: drawn from the seed)"
    )
    parser.add_argument(
        "--steps", type=int, help="safety-phase length in node ticks (default: 20 s worth)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="parallel processes for --seeds (default 1)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON (one object; per seed with --seeds)"
    )
    parser.add_argument("--log", action="store_true", help="with --seed: print the nemesis log too")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_override,
        metavar="FIELD=VALUE",
        dest="overrides",
        help="override one drawn config field (ints; tuples as 1,2,3), e.g. --set crash_ppm=300000",
    )
    parser.add_argument(
        "--light",
        action="store_true",
        help="a light workload (one funding and one trading client, up to 1 s between operations,"
        " oracle reports at most every 2 s)",
    )


def _override(text: str) -> tuple[str, int | tuple[int, ...]]:
    from deltasync.sim.config import SimConfig

    name, sep, raw = text.partition("=")
    if not sep or name not in SimConfig.__dataclass_fields__ or name == "seed":
        raise argparse.ArgumentTypeError(
            f"expected FIELD=VALUE with a SimConfig field, got {text!r}"
        )
    try:
        if "," in raw or raw == "":
            return name, tuple(int(part) for part in raw.split(",") if part)
        return name, int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: expected an integer or integers separated by commas"
        ) from None


def _seed_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("..")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError("expected A..B, e.g. 1..100") from None
    if last < first:
        raise argparse.ArgumentTypeError("the range is empty")
    return first, last


LIGHT = {
    "funding_clients": 1,
    "trading_clients": 1,
    "think_ns_max": 1_000_000_000,
    "oracle_interval_ns": 2_000_000_000,
}


Overrides = tuple[tuple[str, Any], ...]


def replay_command(
    seed: int, nodes: int | None, steps: int | None, light: bool = False, overrides: Overrides = ()
) -> str:
    parts = ["deltasync sim", f"--seed {seed}"]
    if nodes is not None:
        parts.append(f"--nodes {nodes}")
    if steps is not None:
        parts.append(f"--steps {steps}")
    if light:
        parts.append("--light")
    for name, value in overrides:
        text = (
            ",".join(map(str, value)) + ("," if len(value) == 1 else "")
            if isinstance(value, tuple)
            else value
        )
        parts.append(f"--set {name}={text}")
    return " ".join(parts)


def run_one(
    seed: int,
    nodes: int | None,
    steps: int | None,
    with_log: bool = False,
    light: bool = False,
    overrides: Overrides = (),
) -> dict[str, Any]:
    """Run one seed in this process; returns the JSON summary (plus timing)."""
    from deltasync.sim.config import SimConfig
    from deltasync.sim.simulator import Simulator

    config = SimConfig.from_seed(seed, nodes=nodes, steps=steps)
    if light:
        config = config.with_overrides(**LIGHT)
    if overrides:
        config = config.with_overrides(**dict(overrides))
    simulator = Simulator(config)
    started = time.perf_counter()
    try:
        out = simulator.run().to_dict()
    except Exception:  # a crash of the simulator (or of code it drives) is a finding too
        out = {
            "seed": seed,
            "nodes": config.nodes,
            "trace_hash": "",
            "state_root": "",
            "height": 0,
            "violations": ["simulator crashed: " + traceback.format_exc()],
            "excused": [],
            "simulated_seconds": 0.0,
            "events": 0,
            "stats": {},
        }
    wall = max(time.perf_counter() - started, 1e-9)
    out["wall_seconds"] = round(wall, 3)
    out["sim_speed"] = round(out["simulated_seconds"] / wall, 1)
    out["replay"] = replay_command(seed, nodes, steps, light, overrides)
    if with_log:
        out["log"] = simulator.log
    return out


def _run_one_args(args: tuple[int, int | None, int | None, bool, Overrides]) -> dict[str, Any]:
    seed, nodes, steps, light, overrides = args
    return run_one(seed, nodes, steps, light=light, overrides=overrides)


def _print_one(result: dict[str, Any], show_log: bool) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    ok = not result["violations"]
    verdict = "[green]ok[/green]" if ok else f"[red]{len(result['violations'])} violation(s)[/red]"
    stats = result["stats"]
    if not stats:
        print(result["violations"][0])
        print(f"  replay: {result['replay']}")
        return
    console.print(
        f"seed {result['seed']}: {verdict}  nodes {result['nodes']}  height {result['height']}"
        f"  root {result['state_root'][:16]}  trace {result['trace_hash'][:16]}"
    )
    console.print(
        f"  {result['simulated_seconds']:.1f} simulated s in {result['wall_seconds']:.2f} wall s"
        f" ({result['sim_speed']:.0f}x), {result['events']} events"
    )
    console.print(
        "  faults: "
        + ", ".join(
            f"{k} {stats[k]}"
            for k in (
                "crashes",
                "partitions",
                "torn_crashes",
                "lost_fsyncs",
                "amnesia",
                "bit_flips",
                "refused_starts",
                "disk_errors",
                "snapshots_installed",
                "messages_dropped",
                "messages_duplicated",
            )
        )
    )
    console.print(
        "  workload: "
        + ", ".join(
            f"{k} {stats[k]}"
            for k in (
                "ops_ok",
                "ops_indeterminate",
                "retries",
                "reads",
                "acks",
                "expiries",
                "blocks_applied",
            )
        )
    )
    if stats.get("reports_accepted") or stats.get("reports_rejected"):
        console.print(
            "  oracle: "
            + ", ".join(
                f"{k} {stats[k]}"
                for k in (
                    "reports_accepted",
                    "reports_rejected",
                    "index_updates",
                    "market_jumps",
                    "breaker_trips",
                    "breaker_resets",
                    "oracle_pauses",
                )
            )
        )
    if show_log:
        for line in result.get("log", []):
            print("  " + line)
    for text in result["excused"]:
        print(f"  excused: {text}")
    for text in result["violations"]:
        print(f"  VIOLATION: {text}")
    if not ok:
        print(f"  replay: {result['replay']}")


def _swarm(args: argparse.Namespace) -> int:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    first, last = args.seeds
    seeds = list(range(first, last + 1))
    jobs = max(1, args.jobs)
    results: list[dict[str, Any]] = []
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]sim"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("seeds", total=len(seeds), failed=0)
        failed = 0
        overrides = tuple(args.overrides)
        work = [(seed, args.nodes, args.steps, args.light, overrides) for seed in seeds]
        if jobs == 1:
            outputs = (_run_one_args(item) for item in work)
            for result in outputs:
                results.append(result)
                failed += bool(result["violations"])
                progress.update(task, advance=1, failed=failed)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_run_one_args, item) for item in work]
                for future in as_completed(futures):
                    result = future.result()
                    results.append(result)
                    failed += bool(result["violations"])
                    progress.update(task, advance=1, failed=failed)
    wall = time.perf_counter() - started
    results.sort(key=lambda r: r["seed"])
    failures = [r for r in results if r["violations"]]
    simulated = sum(r["simulated_seconds"] for r in results)
    if args.json:
        for result in results:
            print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{len(results)} seeds, {len(failures)} failed; {simulated:.0f} simulated s in {wall:.1f} wall s"
            f" ({simulated / max(wall, 1e-9):.0f}x over {jobs} job(s))"
        )
        for result in failures:
            print(
                f"seed {result['seed']}: {len(result['violations'])} violation(s): {result['violations'][0][:300]}"
            )
            print(f"  replay: {result['replay']}")
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    from deltasync.sim.config import SimConfig

    first = args.seed if args.seeds is None else args.seeds[0]
    try:  # a bad override fails here once, not in every worker
        config = SimConfig.from_seed(first, nodes=args.nodes, steps=args.steps)
        config.with_overrides(**{**(LIGHT if args.light else {}), **dict(args.overrides)})
    except (TypeError, ValueError) as error:
        print(f"deltasync sim: {error}", file=sys.stderr)
        return 2
    if args.seeds is not None:
        return _swarm(args)
    result = run_one(
        args.seed,
        args.nodes,
        args.steps,
        with_log=args.log,
        light=args.light,
        overrides=tuple(args.overrides),
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        _print_one(result, args.log)
    sys.stdout.flush()
    return 1 if result["violations"] else 0
