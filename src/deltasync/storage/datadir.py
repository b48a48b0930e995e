"""A node's data directory: one folder per node, with a fixed layout.

::

    DATA_DIR/
      node.json      who owns this folder: {"format": 1, "node_id": N, "cluster": "..."};
                     written once by ``DataDir.init``, checked on every open
      LOCK           held with flock by the running node: one process per folder
      raft/          the Raft log (raft_log.RaftStorage):
        raft.state     compaction point and a copy of the hard state
        wal/           WAL segments <first seq>.wal: hard-state and entry records
      snapshots/     <index>-<term>.snap, the newest few (snapshot.SnapshotStore)
      reports/       JSON reports a node writes when it halts, e.g. a state-root
                     divergence naming the height and the first divergent keys

``deltasync verify DATA_DIR`` checks all of it offline.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from deltasync.core.errors import ConfigError
from deltasync.core.limits import (
    report_name_chars_max,
    snapshots_kept_default,
    wal_segment_bytes_target,
)
from deltasync.storage.atomic import write_atomic
from deltasync.storage.errors import CorruptStateError, StorageUsageError
from deltasync.storage.fs import FileSystem, OsFileSystem
from deltasync.storage.raft_log import STATE_FILENAME, WAL_DIRNAME, RaftStorage, RecoveredLog
from deltasync.storage.snapshot import SnapshotStore

LAYOUT_FORMAT = 1
NODE_FILENAME = "node.json"
LOCK_FILENAME = "LOCK"
RAFT_DIRNAME = "raft"
SNAPSHOTS_DIRNAME = "snapshots"
REPORTS_DIRNAME = "reports"
_REPORT_NAME_CHARS = f"[A-Za-z0-9_.-]{{1,{report_name_chars_max}}}"
_REPORT_NAME = re.compile(f"^{_REPORT_NAME_CHARS}$")


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: int
    cluster: str
    format: int = LAYOUT_FORMAT

    def to_json(self) -> bytes:
        body = {"format": self.format, "node_id": self.node_id, "cluster": self.cluster}
        return (json.dumps(body, sort_keys=True, indent=2) + "\n").encode()


class DataDir:
    def __init__(self, root: str, fs: FileSystem | None = None) -> None:
        self.root = root.rstrip("/") or "/"
        self.fs = fs or OsFileSystem()
        self._lock_fd: int | None = None

    # --- paths -----------------------------------------------------------------------

    @property
    def node_file(self) -> str:
        return f"{self.root}/{NODE_FILENAME}"

    @property
    def raft_dir(self) -> str:
        return f"{self.root}/{RAFT_DIRNAME}"

    @property
    def raft_state_file(self) -> str:
        return f"{self.raft_dir}/{STATE_FILENAME}"

    @property
    def wal_dir(self) -> str:
        return f"{self.raft_dir}/{WAL_DIRNAME}"

    @property
    def snapshots_dir(self) -> str:
        return f"{self.root}/{SNAPSHOTS_DIRNAME}"

    @property
    def reports_dir(self) -> str:
        return f"{self.root}/{REPORTS_DIRNAME}"

    # --- lifecycle ---------------------------------------------------------------------

    @classmethod
    def init(
        cls, root: str, node_id: int, cluster: str = "", fs: FileSystem | None = None
    ) -> DataDir:
        """Create the layout (idempotent). An existing folder must belong to the same node."""
        if not 0 < node_id < 2**63:
            raise ConfigError(key="node_id", reason="must be a positive integer", value=node_id)
        data_dir = cls(root, fs)
        data_dir.fs.makedirs(data_dir.root)
        if data_dir.fs.exists(data_dir.node_file):
            found = data_dir.identity()
            if (found.node_id, found.cluster) != (node_id, cluster):
                raise ConfigError(
                    key="data_dir",
                    reason="folder belongs to another node",
                    path=data_dir.root,
                    found=(found.node_id, found.cluster),
                    expected=(node_id, cluster),
                )
        else:
            write_atomic(data_dir.fs, data_dir.node_file, NodeIdentity(node_id, cluster).to_json())
        for directory in (data_dir.wal_dir, data_dir.snapshots_dir, data_dir.reports_dir):
            data_dir.fs.makedirs(directory)
        data_dir.fs.sync_dir(data_dir.root)
        return data_dir

    def is_initialized(self) -> bool:
        return self.fs.exists(self.node_file)

    def identity(self) -> NodeIdentity:
        try:
            body = json.loads(self.fs.read(self.node_file))
        except FileNotFoundError:
            raise CorruptStateError(
                path=self.node_file, reason="missing: not a deltasync data dir"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptStateError(
                path=self.node_file, reason="not valid JSON", detail=str(exc)
            ) from None
        if not isinstance(body, dict) or body.get("format") != LAYOUT_FORMAT:
            raise CorruptStateError(path=self.node_file, reason="unknown layout format", found=body)
        node_id, cluster = body.get("node_id"), body.get("cluster")
        if type(node_id) is not int or node_id <= 0 or type(cluster) is not str:
            raise CorruptStateError(
                path=self.node_file, reason="node_id/cluster malformed", found=body
            )
        return NodeIdentity(node_id, cluster)

    def lock(self) -> None:
        """Take the folder's exclusive lock (real disks only); refuse if another process holds it."""
        if not isinstance(self.fs, OsFileSystem) or self._lock_fd is not None:
            return
        fd = os.open(f"{self.root}/{LOCK_FILENAME}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageUsageError(
                reason="data dir is in use by another process", path=self.root
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # --- the stores ------------------------------------------------------------------------

    def open_raft(
        self, *, segment_bytes_target: int = wal_segment_bytes_target
    ) -> tuple[RaftStorage, RecoveredLog]:
        return RaftStorage.open(self.raft_dir, self.fs, segment_bytes_target=segment_bytes_target)

    def snapshots(self, *, keep: int = snapshots_kept_default) -> SnapshotStore:
        return SnapshotStore(self.snapshots_dir, self.fs, keep=keep)

    def write_report(self, name: str, report: dict[str, Any]) -> str:
        """Write ``reports/<name>.json`` atomically; returns its path."""
        if not _REPORT_NAME.match(name):
            raise StorageUsageError(reason=f"report name must be {_REPORT_NAME_CHARS}", name=name)
        self.fs.makedirs(self.reports_dir)
        path = f"{self.reports_dir}/{name}.json"
        write_atomic(self.fs, path, (json.dumps(report, sort_keys=True, indent=2) + "\n").encode())
        return path

    def reports(self) -> list[str]:
        if not self.fs.is_dir(self.reports_dir):
            return []
        return [
            f"{self.reports_dir}/{n}"
            for n in self.fs.listdir(self.reports_dir)
            if n.endswith(".json")
        ]
