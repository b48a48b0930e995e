"""The architecture's layer rules, enforced on the source tree.

Pure layers (core, consensus, commitment, exchange) do no I/O, read no clock and
draw no randomness; every layer imports only the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "deltasync"

ALLOWED = {
    "core": set(),
    "consensus": {"core"},
    "commitment": {"core"},
    "exchange": {"core", "commitment"},
    "storage": {"core", "consensus"},
    "net": {"core", "consensus"},
    "node": {"core", "consensus", "commitment", "exchange", "storage", "net"},
    "venue": {"core", "consensus", "commitment", "exchange", "storage", "net", "node"},
    "api": {"core", "venue"},
    "sim": {"core", "consensus", "commitment", "exchange", "storage", "node"},
    "client": {"core"},
    "demo": {"core", "consensus", "commitment", "exchange", "storage", "net", "node", "venue", "api", "client"},
    "cli": {"*"},
}
PURE = {"core", "consensus", "commitment", "exchange"}
FORBIDDEN_IN_PURE = {
    "asyncio", "socket", "time", "random", "os", "threading", "subprocess",
    "datetime", "secrets", "selectors", "signal", "multiprocessing", "pickle",
    "numpy", "io", "pathlib", "shutil", "tempfile", "uuid",
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if len(parts) >= 2:
            out.append((parts[0], path))
    return out


@pytest.mark.parametrize("layer,path", _modules(), ids=lambda v: str(v))
def test_layer_rules(layer: str, path: Path) -> None:
    assert layer in ALLOWED, f"{layer} is not a known layer: add it to ALLOWED"
    allowed = ALLOWED[layer]
    for lineno, module in _imports(path):
        top = module.split(".")[0]
        if layer in PURE:
            assert top not in FORBIDDEN_IN_PURE, (
                f"{path.relative_to(SRC)}:{lineno} imports {module}: pure layer {layer} "
                "must not do I/O, read clocks or draw randomness"
            )
        if top == "deltasync" and "." in module:
            target = module.split(".")[1]
            if target == layer or "*" in allowed:
                continue
            assert target in allowed, (
                f"{path.relative_to(SRC)}:{lineno} imports deltasync.{target}: "
                f"layer {layer} may import only {sorted(allowed)}"
            )


def test_no_pickle_anywhere() -> None:
    for _, path in _modules():
        for lineno, module in _imports(path):
            assert module.split(".")[0] not in {"pickle", "marshal", "shelve"}, (
                f"{path}:{lineno} imports {module}"
            )
