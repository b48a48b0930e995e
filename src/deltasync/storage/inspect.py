"""Offline checks of a node's data directory (``deltasync verify``). Changes nothing on disk.

``verify_data_dir`` returns a JSON-ready dict: what was found (WAL segments and
records, the Raft hard state and log range, snapshots), and two lists, ``errors``
(the node would refuse to start, or data is damaged) and ``warnings`` (the node
will repair it on start, e.g. a torn WAL tail, or it halted and left a report).
``ok`` is true when there are no errors.
"""

from __future__ import annotations

from typing import Any

from deltasync.consensus import NO_NODE
from deltasync.storage.datadir import NODE_FILENAME, RAFT_DIRNAME, DataDir
from deltasync.storage.errors import (
    CorruptRecordError,
    CorruptSnapshotError,
    StorageError,
    StorageUsageError,
)
from deltasync.storage.fs import FileSystem
from deltasync.storage.raft_log import RaftStorage, RecoveredLog
from deltasync.storage.snapshot import RootFunction


def verify_data_dir(
    root: str, fs: FileSystem | None = None, *, verify_root: RootFunction | None = None
) -> dict[str, Any]:
    data_dir = DataDir(root, fs)
    errors: list[str] = []
    warnings: list[str] = []
    out: dict[str, Any] = {"data_dir": data_dir.root}

    if not data_dir.fs.is_dir(data_dir.root):
        errors.append(f"{data_dir.root}: no such directory")
        return {**out, "ok": False, "errors": errors, "warnings": warnings}
    out["node"] = None
    if data_dir.is_initialized():
        try:
            identity = data_dir.identity()
            out["node"] = {"node_id": identity.node_id, "cluster": identity.cluster}
        except StorageError as exc:
            errors.append(_describe(exc))
    elif data_dir.fs.is_dir(data_dir.raft_dir):
        warnings.append(f"{data_dir.node_file} is missing: the node's identity is unknown")
    else:
        errors.append(
            f"{data_dir.root}: not a deltasync data dir (neither {NODE_FILENAME} nor"
            f" {RAFT_DIRNAME}/ found)"
        )
        return {**out, "ok": False, "errors": errors, "warnings": warnings}

    recovered = _check_raft(data_dir, out, errors, warnings)
    _check_snapshots(data_dir, recovered, verify_root, out, errors)

    out["reports"] = data_dir.reports()
    for path in out["reports"]:
        warnings.append(f"the node left a report: {path}")
    return {**out, "ok": not errors, "errors": errors, "warnings": warnings}


def _check_raft(
    data_dir: DataDir, out: dict[str, Any], errors: list[str], warnings: list[str]
) -> RecoveredLog | None:
    try:
        storage, recovered = RaftStorage.open(data_dir.raft_dir, data_dir.fs, read_only=True)
    except CorruptRecordError as exc:
        out["wal"] = {"corrupt": _fields(exc)}
        errors.append(
            f"corrupt WAL record in {exc.segment} at byte offset {exc.offset}"
            f" (record {exc.fields.get('seq')}): {exc.fields.get('reason')};"
            " valid records follow it, so it is not a torn tail. The node refuses to start."
        )
        return None
    except StorageError as exc:
        errors.append(_describe(exc))
        return None

    report = recovered.wal
    torn = report.torn_tail
    out["wal"] = {
        "segments": [
            {"path": s.path, "first_seq": s.first_seq, "records": s.records, "bytes": s.size_bytes}
            for s in report.segments
        ],
        "records": report.records,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "torn_tail": None
        if torn is None
        else {
            "segment": torn.segment,
            "offset": torn.offset,
            "bytes_dropped": torn.bytes_dropped,
            "segments_removed": list(torn.segments_removed),
            "reason": torn.reason,
        },
        "corrupt": None,
    }
    hard = recovered.hard_state
    out["raft"] = {
        "hard_state": {
            "term": hard.term,
            "vote": None if hard.vote == NO_NODE else hard.vote,
            "commit": hard.commit,
        },
        "snapshot_index": recovered.snapshot_index,
        "snapshot_term": recovered.snapshot_term,
        "first_index": storage.first_index(),
        "last_index": storage.last_index(),
        "entries": len(recovered.entries),
        "repairs_on_start": list(recovered.repairs),
    }
    for repair in recovered.repairs:
        warnings.append(f"on start the node {repair.removeprefix('would ')}")
    return recovered


def _check_snapshots(
    data_dir: DataDir,
    recovered: RecoveredLog | None,
    verify_root: RootFunction | None,
    out: dict[str, Any],
    errors: list[str],
) -> None:
    found: list[dict[str, Any]] = []
    out["snapshots"] = found
    if not data_dir.fs.is_dir(data_dir.snapshots_dir):
        return
    store = data_dir.snapshots()  # the directory exists, so this creates nothing
    newest_ok_index = None
    for info in store.list():
        entry: dict[str, Any] = {
            "path": info.path,
            "index": info.index,
            "term": info.term,
            "bytes": info.size_bytes,
        }
        try:
            snapshot = store.load(info, verify_root=verify_root)
            entry.update(
                ok=True,
                state_root=snapshot.state_root.hex(),
                root_verified=verify_root is not None,
            )
            newest_ok_index = info.index
        except CorruptSnapshotError as exc:
            entry.update(ok=False, error=_describe(exc))
            errors.append(f"snapshot {info.path}: {exc.fields.get('reason')}")
        except StorageUsageError as exc:
            entry.update(ok=False, error=str(exc))
            errors.append(f"snapshot {info.path}: could not recompute its root: {exc}")
        found.append(entry)
    if recovered is not None and recovered.snapshot_index > 0:
        if newest_ok_index is None or newest_ok_index < recovered.snapshot_index:
            errors.append(
                f"the log is compacted up to index {recovered.snapshot_index} but no valid"
                f" snapshot covers it (newest valid: {newest_ok_index}); entries are missing"
            )


def _fields(exc: StorageError) -> dict[str, Any]:
    return {
        key: value if isinstance(value, int | str) else repr(value)
        for key, value in exc.fields.items()
    }


def _describe(exc: StorageError) -> str:
    fields = exc.fields
    where = fields.get("path") or fields.get("segment") or ""
    rest = ", ".join(
        f"{k}={v!r}" for k, v in fields.items() if k not in ("path", "segment", "reason")
    )
    return f"{where}: {fields.get('reason', type(exc).__name__)}" + (f" ({rest})" if rest else "")
