"""`deltasync price`: Black-Scholes price and Greeks (and implied vol) as JSON.

One option from flags::

    deltasync price --spot 60 --strike 65 --vol 0.3 --t-years 0.25 --rate 0.08 --type call
    {"price": 2.13336..., "delta": ..., "gamma": ..., "vega": ..., "theta": ..., "rho": ...}

``--price P`` adds ``"iv"`` (the volatility that reprices P; ``--vol`` may then
be left out and the Greeks are taken at that volatility).  ``--jsonl`` reads one
JSON object per line on stdin (keys ``spot, strike, vol, t, rate, type``, plus an
optional ``price`` to invert) and writes one JSON object per line; a bad line
gets ``{"line": n, "error": "..."}`` in its place, the rest carry on, and the
exit code is 1 if any line failed.  ``--bench N`` prints ``{"greeks_per_s": ...}``.

Units as Deribit reports them: vega per 1 % of vol, theta per calendar day, rho
per 1 % of rate; continuous rate, no dividends.  The numbers come from
``deltasync.exchange.pricing``, the same code the state machine marks with.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, TextIO

HELP = "Black-Scholes price, Greeks and implied vol as JSON (one option, or --jsonl)"

_TYPES = {"call": True, "c": True, "put": False, "p": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spot", type=float, help="underlying price")
    parser.add_argument("--strike", type=float, help="strike price")
    parser.add_argument("--vol", type=float, help="annualised volatility (0.55 = 55 %%)")
    parser.add_argument("--t-years", type=float, dest="t_years", help="time to expiry in years")
    parser.add_argument("--rate", type=float, default=0.0, help="continuous rate (default 0)")
    parser.add_argument("--type", dest="option_type", choices=("call", "put"), default="call")
    parser.add_argument("--price", type=float, help="option price to invert into an implied vol")
    parser.add_argument(
        "--jsonl", action="store_true", help="read JSON objects from stdin, one per line"
    )
    parser.add_argument(
        "--bench", type=int, metavar="N", help="time N Greeks evaluations, print greeks_per_s"
    )


class _BadInput(ValueError):
    pass


def _number(row: dict[str, Any], key: str, *, default: float | None = None) -> float:
    if key not in row or row[key] is None:
        if default is None:
            raise _BadInput(f"missing key {key!r}")
        return default
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadInput(f"{key!r} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _BadInput(f"{key!r} must be finite, got {value!r}")
    return number


def _is_call(value: Any) -> bool:
    if not isinstance(value, str) or value.lower() not in _TYPES:
        raise _BadInput(f"'type' must be 'call' or 'put', got {value!r}")
    return _TYPES[value.lower()]


def evaluate(
    spot: float,
    strike: float,
    vol: float | None,
    t_years: float,
    rate: float,
    is_call: bool,
    price: float | None = None,
) -> dict[str, float | None]:
    """The JSON object for one option (raises ValueError with a clear message)."""
    from deltasync.exchange.pricing import IvStatus, black_scholes, implied_vol

    iv: float | None = None
    if price is not None:
        result = implied_vol(price, spot, strike, t_years, rate, is_call)
        if result.status is not IvStatus.OK:
            raise _BadInput(f"no implied vol for price {price!r}: {result.status.value}")
        iv = result.vol
        if vol is None:
            vol = iv
    if vol is None:
        raise _BadInput("missing vol (give a vol, or a price to invert)")
    greeks = black_scholes(spot, strike, vol, t_years, rate, is_call)
    out: dict[str, float | None] = dict(zip(greeks._fields, greeks, strict=True))
    if price is not None:
        out["iv"] = iv
    return out


def evaluate_row(row: Any) -> dict[str, float | None]:
    """One --jsonl object: keys spot, strike, vol, t, rate (default 0), type, price (optional)."""
    if not isinstance(row, dict):
        raise _BadInput(f"expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - {"spot", "strike", "vol", "t", "rate", "type", "price"})
    if unknown:
        raise _BadInput(f"unknown keys {unknown}")
    price = _number(row, "price") if row.get("price") is not None else None
    vol = _number(row, "vol") if row.get("vol") is not None or price is None else None
    return evaluate(
        _number(row, "spot"),
        _number(row, "strike"),
        vol,
        _number(row, "t"),
        _number(row, "rate", default=0.0),
        _is_call(row.get("type")),
        price,
    )


def run_jsonl(stdin: TextIO, stdout: TextIO) -> int:
    failures = 0
    for line_number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            out: dict[str, Any] = evaluate_row(json.loads(line))
        except json.JSONDecodeError as exc:
            out = {"line": line_number, "error": f"invalid JSON: {exc.msg} at column {exc.colno}"}
        except ValueError as exc:  # _BadInput and the pricing layer's input checks
            out = {"line": line_number, "error": str(exc)}
        if "error" in out:
            failures += 1
        stdout.write(json.dumps(out, allow_nan=False) + "\n")
    stdout.flush()
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    if args.bench is not None:
        from deltasync.cli.bench_pricing import bench_greeks

        print(json.dumps({"greeks_per_s": round(bench_greeks(args.bench))}))
        return 0
    if args.jsonl:
        return run_jsonl(sys.stdin, sys.stdout)
    missing = [
        flag
        for flag, value in (
            ("--spot", args.spot),
            ("--strike", args.strike),
            ("--t-years", args.t_years),
        )
        if value is None
    ]
    if args.vol is None and args.price is None:
        missing.append("--vol (or --price)")
    if missing:
        print(json.dumps({"error": f"missing {', '.join(missing)}"}), file=sys.stderr)
        return 2
    try:
        out = evaluate(
            args.spot,
            args.strike,
            args.vol,
            args.t_years,
            args.rate,
            args.option_type == "call",
            args.price,
        )
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(out, allow_nan=False))
    return 0
