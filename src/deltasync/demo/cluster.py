"""The demo's cluster: node processes on loopback, and what the demo sees of them.

The demo sits below the CLI, so it does not start processes itself: the CLI passes
in ``deltasync.cli.cluster`` (the code behind ``deltasync cluster up|status|kill|down``)
as a ``NodeProcesses``. ``Watch`` follows the nodes through their status files and
compares their state roots through the API.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from deltasync.client import ApiError, Client
from deltasync.node.status import pid_alive, read_pid

CATCHING_UP_BLOCKS = 100  # a node this far behind is catching up: left out of live root checks


class NodeProcesses(Protocol):
    """Starting, inspecting and stopping the node processes of a local cluster."""

    def free_base_port(self, nodes: int) -> int: ...

    def write_configs(self, data_dir: Path, nodes: int, base_port: int, demo_mode: bool,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def start_node(self, data_dir: Path, node_id: int) -> int: ...

    def collect_status(self, data_dir: Path) -> list[dict[str, Any]]: ...

    def down(self, data_dir: Path) -> int: ...


def node_dir(data_dir: Path, node_id: int) -> Path:
    return data_dir / f"node{node_id}"


def node_running(data_dir: Path, node_id: int) -> bool:
    pid = read_pid(node_dir(data_dir, node_id))
    return pid is not None and pid_alive(pid)


def kill_node(data_dir: Path, node_id: int) -> bool:
    """SIGKILL a node process; False if it was not running."""
    pid = read_pid(node_dir(data_dir, node_id))
    if pid is None or not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


@dataclass
class Watch:
    """What the demo knows about the nodes (status files) and their state roots (API)."""

    data_dir: Path
    urls: dict[int, str]
    processes: NodeProcesses
    rows: list[dict[str, Any]] = field(default_factory=list)
    leader: int | None = None
    root_checks: int = 0
    root_disagreements: list[dict[str, Any]] = field(default_factory=list)
    last_root_check: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> None:
        self.rows = self.processes.collect_status(self.data_dir)
        leaders = [row["id"] for row in self.rows if row["role"] == "leader"]
        self.leader = leaders[0] if leaders else None

    def heights(self) -> dict[int, int]:
        return {row["id"]: row["height"] for row in self.rows
                if row["alive"] and isinstance(row["height"], int)}

    def comparable_height(self) -> int | None:
        """The lowest height of the nodes that are not far behind: a node replaying its
        log after a restart has no root there yet and is left out of the check."""
        heights = self.heights()
        if not heights:
            return None
        top = max(heights.values())
        return min(h for h in heights.values() if h >= top - CATCHING_UP_BLOCKS)

    async def compare_roots(self, height: int | None = None) -> dict[str, Any]:
        """Every reachable node's state root at one height (default: ``comparable_height``)."""
        if height is None:
            height = self.comparable_height()
            if height is None:
                return {}
        roots: dict[int, str] = {}

        async def ask(node: int, url: str) -> None:
            try:
                async with Client(url, timeout_s=2.0) as client:
                    result = await client.call("public/deltasync_state_root", {"height": height})
                roots[node] = str(result["state_root"])
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
                return  # down, or not at that height: left out of this comparison

        await asyncio.gather(*(ask(node, url) for node, url in sorted(self.urls.items())))
        check = {"height": height, "roots": {str(k): v for k, v in sorted(roots.items())},
                 "agree": len(set(roots.values())) <= 1, "nodes_compared": len(roots)}
        if roots:
            self.root_checks += 1
            self.last_root_check = check
            if not check["agree"]:
                self.root_disagreements.append(check)
        return check

    def halts(self) -> list[str]:
        """Halt reports a node wrote (its root differed from the leader's), and halted nodes."""
        found = sorted(str(p) for p in self.data_dir.glob("node*/reports/halt-*.json"))
        found += [f"node {row['id']} reports halted: {row['halted']}"[:300]
                  for row in self.rows if row.get("halted")]
        return found
