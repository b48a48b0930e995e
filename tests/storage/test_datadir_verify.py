from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from deltasync.cli.main import main
from deltasync.consensus import Entry, EntryType, HardState
from deltasync.core.errors import ConfigError
from deltasync.storage.datadir import DataDir
from deltasync.storage.errors import StorageUsageError
from deltasync.storage.snapshot import StoredSnapshot


def state_root(state: bytes) -> bytes:
    """Used by the CLI test through --state-root-fn."""
    return hashlib.sha256(b"root:" + state).digest()


def wrong_root(state: bytes) -> bytes:
    return b"\x00" * 32


def make_node(
    root: Path, *, entries: int = 20, compact_to: int = 0, snapshot_at: int = 0
) -> DataDir:
    data_dir = DataDir.init(str(root), node_id=2, cluster="test")
    storage, _ = data_dir.open_raft()
    storage.save(
        HardState(term=3, vote=2, commit=entries),
        [Entry(i, 3, EntryType.NORMAL, b"block %d" % i) for i in range(1, entries + 1)],
    )
    if snapshot_at:
        state = b"state at %d" % snapshot_at
        data_dir.snapshots().save(
            StoredSnapshot(snapshot_at, 3, state_root(state), b"1,2,3", state)
        )
    if compact_to:
        storage.compact(compact_to)
    storage.close()
    return data_dir


def verify(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", *args])
    return code, out.getvalue()


def test_init_creates_the_layout_and_checks_ownership(tmp_path: Path) -> None:
    data_dir = DataDir.init(str(tmp_path / "n1"), node_id=1, cluster="c")
    for sub in ("raft/wal", "snapshots", "reports"):
        assert (tmp_path / "n1" / sub).is_dir()
    assert json.loads((tmp_path / "n1" / "node.json").read_text()) == {
        "cluster": "c",
        "format": 1,
        "node_id": 1,
    }
    assert data_dir.identity().node_id == 1
    DataDir.init(str(tmp_path / "n1"), node_id=1, cluster="c")  # idempotent
    with pytest.raises(ConfigError):
        DataDir.init(str(tmp_path / "n1"), node_id=2, cluster="c")


def test_one_process_per_data_dir(tmp_path: Path) -> None:
    first = DataDir.init(str(tmp_path), node_id=1)
    first.lock()
    second = DataDir(str(tmp_path))
    with pytest.raises(StorageUsageError):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


def test_reports(tmp_path: Path) -> None:
    data_dir = DataDir.init(str(tmp_path), node_id=1)
    path = data_dir.write_report("divergence-h42", {"height": 42, "keys": ["a"]})
    assert json.loads(Path(path).read_text()) == {"height": 42, "keys": ["a"]}
    assert data_dir.reports() == [path]
    with pytest.raises(StorageUsageError):
        data_dir.write_report("../escape", {})


def test_verify_healthy_dir(tmp_path: Path) -> None:
    make_node(tmp_path, entries=30, snapshot_at=10, compact_to=10)
    code, out = verify(str(tmp_path))
    assert code == 0, out
    assert "healthy" in out
    code, out = verify(str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["errors"] == []
    assert report["node"] == {"node_id": 2, "cluster": "test"}
    assert report["raft"]["first_index"] == 11 and report["raft"]["last_index"] == 30
    assert report["raft"]["hard_state"] == {"term": 3, "vote": 2, "commit": 30}
    assert report["wal"]["records"] == 31 and report["wal"]["torn_tail"] is None
    assert [s["index"] for s in report["snapshots"]] == [10]


def test_verify_recomputes_snapshot_roots(tmp_path: Path) -> None:
    make_node(tmp_path, snapshot_at=5)
    fn = f"{__name__}:state_root"
    code, out = verify(str(tmp_path), "--json", "--state-root-fn", fn)
    assert code == 0, out
    assert json.loads(out)["snapshots"][0]["root_verified"] is True
    code, _ = verify(str(tmp_path), "--state-root-fn", f"{__name__}:hashlib.md5")
    assert code == 2  # not MODULE:FUNCTION resolvable
    code, out = verify(str(tmp_path), "--json", "--state-root-fn", f"{__name__}:wrong_root")
    assert code == 1 and "state root mismatch" in out
    code, out = verify(str(tmp_path), "--json", "--state-root-fn", "hashlib:sha256")
    assert code == 1 and "must return bytes" in out


def test_verify_torn_tail_is_a_warning_and_changes_nothing(tmp_path: Path) -> None:
    make_node(tmp_path)
    segment = sorted((tmp_path / "raft" / "wal").glob("*.wal"))[0]
    segment.write_bytes(segment.read_bytes()[:-5])
    before = segment.read_bytes()
    code, out = verify(str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["wal"]["torn_tail"] is not None
    assert any("torn" in warning for warning in report["warnings"])
    assert segment.read_bytes() == before
    code, _ = verify(str(tmp_path), "--strict")
    assert code == 1


def test_verify_corrupt_middle_record_names_the_offset(tmp_path: Path) -> None:
    make_node(tmp_path)
    segment = sorted((tmp_path / "raft" / "wal").glob("*.wal"))[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x10
    segment.write_bytes(bytes(data))
    code, out = verify(str(tmp_path))
    assert code == 1
    assert "corrupt WAL record" in out and str(segment) in out and "byte offset" in out
    code, out = verify(str(tmp_path), "--json")
    corrupt = json.loads(out)["wal"]["corrupt"]
    assert corrupt["segment"] == str(segment) and 32 <= corrupt["offset"] < len(data) // 2


def test_verify_damaged_snapshot(tmp_path: Path) -> None:
    make_node(tmp_path, snapshot_at=10, compact_to=10)
    snap = next((tmp_path / "snapshots").glob("*.snap"))
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0x01
    snap.write_bytes(bytes(data))
    code, out = verify(str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["snapshots"][0]["ok"] is False
    assert any("no valid snapshot covers it" in error for error in report["errors"])


def test_verify_compacted_log_without_a_snapshot(tmp_path: Path) -> None:
    make_node(tmp_path, compact_to=10)
    code, out = verify(str(tmp_path))
    assert code == 1 and "compacted up to index 10" in out


def test_verify_missing_or_foreign_dir(tmp_path: Path) -> None:
    code, out = verify(str(tmp_path / "nope"))
    assert code == 1 and "no such directory" in out
    code, out = verify(str(tmp_path))
    assert code == 1 and "not a deltasync data dir" in out


def test_verify_dir_without_node_json(tmp_path: Path) -> None:
    make_node(tmp_path)
    (tmp_path / "node.json").unlink()
    code, out = verify(str(tmp_path))
    assert code == 0 and "node.json is missing" in out
    (tmp_path / "node.json").write_text("{not json")
    code, out = verify(str(tmp_path))
    assert code == 1 and "not valid JSON" in out


def test_verify_reports_a_halt_report_as_a_warning(tmp_path: Path) -> None:
    data_dir = make_node(tmp_path)
    data_dir.write_report("halt", {"reason": "state root mismatch"})
    code, out = verify(str(tmp_path))
    assert code == 0 and "halt.json" in out
