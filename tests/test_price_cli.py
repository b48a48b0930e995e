"""`deltasync price`: flags, --price inversion, --jsonl with bad lines, --bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deltasync.cli.main import main
from deltasync.exchange.pricing import black_scholes

KEYS = ["price", "delta", "gamma", "vega", "theta", "rho"]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(["price", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flags_print_price_and_greeks(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--spot 60 --strike 65 --vol 0.3 --t-years 0.25 --rate 0.08 --type call".split()
    code, out, _ = _run(capsys, argv)
    assert code == 0
    result = json.loads(out)
    assert list(result) == KEYS
    assert round(result["price"], 4) == 2.1334  # Haug 1.1.1
    assert result == dict(zip(KEYS, black_scholes(60.0, 65.0, 0.3, 0.25, 0.08, True), strict=True))


def test_put_and_default_rate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "--spot 100 --strike 110 --vol 0.5 --t-years 0.5 --type put".split()
    )
    assert code == 0
    result = json.loads(out)
    assert result["delta"] < 0 and result["rho"] < 0
    assert result["price"] == black_scholes(100.0, 110.0, 0.5, 0.5, 0.0, False).price


def test_price_flag_adds_implied_vol(capsys: pytest.CaptureFixture[str]) -> None:
    price = black_scholes(100.0, 90.0, 0.42, 0.3, 0.01, False).price
    argv = ["--spot", "100", "--strike", "90", "--t-years", "0.3", "--rate", "0.01"]
    code, out, _ = _run(capsys, [*argv, "--type", "put", "--price", repr(price)])
    assert code == 0
    result = json.loads(out)
    assert result["iv"] == pytest.approx(0.42, rel=1e-12)
    assert result["price"] == pytest.approx(price, rel=1e-13)  # Greeks taken at the iv


def test_price_outside_bounds_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--spot 100 --strike 90 --t-years 0.3 --type call --price 5".split()  # < intrinsic
    code, out, err = _run(capsys, argv)
    assert code == 1 and out == ""
    assert "below_lower_bound" in json.loads(err)["error"]


def test_missing_flags_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, ["--spot", "100"])
    assert code == 2
    message = json.loads(err)["error"]
    assert "--strike" in message and "--t-years" in message and "--vol" in message


def test_jsonl_in_process_with_bad_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    lines = [
        {"spot": 60, "strike": 65, "vol": 0.3, "t": 0.25, "rate": 0.08, "type": "call"},
        {"spot": 60, "strike": 65, "vol": 0.3, "t": 0.25, "type": "swap"},
        {"spot": 60, "strike": 65, "t": 0.25, "rate": 0.08, "type": "call", "price": 2.1334},
        {"spot": "60", "strike": 65, "vol": 0.3, "t": 0.25, "type": "call"},
        {"strike": 65, "vol": 0.3, "t": 0.25, "type": "call"},
        {"spot": 60, "strike": 65, "vol": 0.3, "t": 0.25, "type": "call", "color": "red"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n[1, 2]\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = _run(capsys, ["--jsonl"])
    assert code == 1
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 7
    assert round(results[0]["price"], 4) == 2.1334
    assert results[1] == {"line": 2, "error": "'type' must be 'call' or 'put', got 'swap'"}
    assert results[2]["iv"] == pytest.approx(0.3, abs=1e-5)
    assert "'spot' must be a number" in results[3]["error"]
    assert results[4] == {"line": 5, "error": "missing key 'spot'"}
    assert "unknown keys ['color']" in results[5]["error"]
    assert "expected a JSON object" in results[6]["error"]


def test_jsonl_all_good_exits_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    row = {"spot": 100, "strike": 100, "vol": 0.5, "t": 0.1, "rate": 0.0, "type": "put"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(row) + "\n\n"))
    code, out, _ = _run(capsys, ["--jsonl"])
    assert code == 0
    assert json.loads(out) == dict(
        zip(KEYS, black_scholes(100.0, 100.0, 0.5, 0.1, 0.0, False), strict=True)
    )


def test_jsonl_subprocess() -> None:
    rows = [
        {"spot": 42, "strike": 40, "vol": 0.2, "t": 0.5, "rate": 0.1, "type": "call"},
        {"spot": 42, "strike": 40, "vol": -0.2, "t": 0.5, "rate": 0.1, "type": "put"},
        {"spot": 42, "strike": 40, "vol": 0.2, "t": 0.5, "rate": 0.1, "type": "put"},
    ]
    src = Path(__file__).resolve().parent.parent / "src"
    completed = subprocess.run(
        [sys.executable, "-m", "deltasync.cli.main", "price", "--jsonl"],
        input="\n".join(json.dumps(row) for row in rows) + "\nnot json\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    assert round(results[0]["price"], 2) == 4.76 and round(results[2]["price"], 2) == 0.81  # Hull
    assert results[1] == {"line": 2, "error": "vol must be in [0, 1000], got -0.2"}
    assert results[3]["line"] == 4 and results[3]["error"].startswith("invalid JSON")


def test_bench_flag_reports_a_rate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ["--bench", "2000"])
    assert code == 0
    assert json.loads(out)["greeks_per_s"] > 0
