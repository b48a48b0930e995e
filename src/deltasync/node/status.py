"""Node status files: how `deltasync cluster status` sees a node without a network call.

A running node rewrites ``DATA_DIR/status.json`` atomically a few times a
second. A reader judges freshness by ``updated_ns`` and liveness by the pid.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
PID_FILE = "node.pid"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    id: int
    role: str
    term: int
    leader: int
    commit_index: int
    applied_index: int
    height: int
    state_root: str
    api: str | None
    pid: int
    updated_ns: int
    halted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_status(data_dir: Path, status: NodeStatus) -> None:
    path = data_dir / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status.to_dict()))
    os.replace(tmp, path)


def read_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state where /proc exists.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
