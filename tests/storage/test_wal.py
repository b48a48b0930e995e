from __future__ import annotations

import os
from pathlib import Path

import pytest

from deltasync.storage.errors import (
    CorruptRecordError,
    CorruptSegmentError,
    StorageUsageError,
    WalFailedError,
)
from deltasync.storage.wal import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    WriteAheadLog,
    encode_record,
    scan,
)


def _open(directory: Path, **kwargs):  # type: ignore[no-untyped-def]
    return WriteAheadLog.open(str(directory), **kwargs)


def _records(wal: WriteAheadLog) -> list[bytes]:
    return [payload for _, payload in wal.iter_records()]


def _segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_round_trip_across_restarts_and_segments(tmp_path: Path) -> None:
    wal, report = _open(tmp_path, segment_bytes_target=256)
    assert report.records == 0 and report.torn_tail is None
    written = []
    for batch in range(12):
        payloads = [b"batch%d-record%d" % (batch, i) * (i + 1) for i in range(3)]
        assert wal.append_batch(payloads) == len(written) + 3
        written += payloads
    assert wal.append(b"") == len(written) + 1  # empty payloads are records too
    written.append(b"")
    wal.close()
    assert len(_segment_files(tmp_path)) > 3

    wal, report = _open(tmp_path, segment_bytes_target=256)
    assert report.torn_tail is None
    assert (report.first_seq, report.last_seq) == (1, len(written))
    assert _records(wal) == written
    assert [seq for seq, _ in wal.iter_records(from_seq=30)] == list(range(30, len(written) + 1))
    wal.append(b"after restart")
    wal.close()
    wal, _ = _open(tmp_path, segment_bytes_target=256)
    assert _records(wal) == [*written, b"after restart"]


def test_records_are_checked_against_the_size_limit(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, record_bytes_max=100)
    with pytest.raises(StorageUsageError):
        wal.append(b"x" * 101)
    with pytest.raises(StorageUsageError):
        wal.append_batch([])
    wal.append(b"x" * 100)
    assert wal.last_seq == 1


def _log_of_five(directory: Path) -> tuple[list[bytes], list[int]]:
    """Five records in one segment; returns payloads and each record's byte offset."""
    wal, _ = _open(directory)
    payloads = [b"record-%d-" % i + bytes(range(i * 7)) for i in range(5)]
    offsets = []
    segment = _segment_files(directory)
    for payload in payloads:
        offsets.append(segment[0].stat().st_size if segment else SEGMENT_HEADER_BYTES)
        wal.append(payload)
        segment = _segment_files(directory)
    wal.close()
    return payloads, offsets


def test_torn_tail_is_cut_at_every_byte_offset_of_the_last_record(tmp_path: Path) -> None:
    source = tmp_path / "source"
    payloads, offsets = _log_of_five(source)
    original = _segment_files(source)[0].read_bytes()
    last_start = offsets[-1]
    for cut in range(last_start, len(original)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / _segment_files(source)[0].name).write_bytes(original[:cut])
        wal, report = _open(directory)
        assert _records(wal) == payloads[:4], cut
        if cut == last_start:
            assert report.torn_tail is None  # a clean record boundary is not damage
        else:
            assert report.torn_tail is not None and report.repaired, cut
            assert report.torn_tail.offset == last_start
            assert report.torn_tail.bytes_dropped == cut - last_start
        assert _segment_files(directory)[0].stat().st_size == last_start
        wal.append(b"new")  # the log is writable again, and the new record survives a restart
        wal.close()
        wal, report = _open(directory)
        assert report.torn_tail is None
        assert _records(wal) == [*payloads[:4], b"new"]


@pytest.mark.parametrize("garbage", [b"\x00" * 4096, bytes(range(256)) * 3, b"\xff" * 23])
def test_garbage_after_the_last_record_is_a_torn_tail(tmp_path: Path, garbage: bytes) -> None:
    payloads, _ = _log_of_five(tmp_path)
    segment = _segment_files(tmp_path)[0]
    size = segment.stat().st_size
    segment.write_bytes(segment.read_bytes() + garbage)
    wal, report = _open(tmp_path)
    assert report.torn_tail is not None and report.torn_tail.bytes_dropped == len(garbage)
    assert _records(wal) == payloads
    assert segment.stat().st_size == size


def test_checksum_failure_in_the_final_record_is_a_torn_tail(tmp_path: Path) -> None:
    payloads, offsets = _log_of_five(tmp_path)
    segment = _segment_files(tmp_path)[0]
    _flip(segment, offsets[-1] + RECORD_HEADER_BYTES + 3)  # inside the last payload
    wal, report = _open(tmp_path)
    assert report.torn_tail is not None
    assert "payload checksum" in report.torn_tail.reason
    assert _records(wal) == payloads[:4]


@pytest.mark.parametrize("where", ["payload", "length", "header_crc", "seq"])
def test_corrupt_middle_record_refuses_and_names_the_offset(tmp_path: Path, where: str) -> None:
    _log_of_five(tmp_path)
    segment = _segment_files(tmp_path)[0]
    offsets = _log_offsets(tmp_path)
    position = {"payload": RECORD_HEADER_BYTES + 2, "length": 4, "header_crc": 0, "seq": 8}[where]
    _flip(segment, offsets[2] + position)
    before = segment.read_bytes()
    with pytest.raises(CorruptRecordError) as caught:
        _open(tmp_path)
    assert caught.value.segment == str(segment)
    assert caught.value.offset == offsets[2]
    assert caught.value.fields["seq"] == 3
    assert segment.read_bytes() == before  # nothing was repaired or skipped
    with pytest.raises(CorruptRecordError):
        scan(str(tmp_path))


def _log_offsets(directory: Path) -> list[int]:
    wal, _ = _open(directory, read_only=True)
    offsets = list(wal._segments[0].offsets)
    return offsets


def test_corruption_in_an_earlier_segment_is_not_a_torn_tail(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes_target=128)
    for i in range(10):
        wal.append(b"payload %d" % i)
    wal.close()
    first = _segment_files(tmp_path)[0]
    data = first.read_bytes()
    # The first segment's last record: damage it; later segments hold valid records.
    last_offset = _log_offsets(tmp_path)[-1]
    _flip(first, last_offset + RECORD_HEADER_BYTES)
    assert len(data) > last_offset
    with pytest.raises(CorruptRecordError) as caught:
        _open(tmp_path, segment_bytes_target=128)
    assert caught.value.segment == str(first)
    assert caught.value.offset == last_offset


def test_missing_segment_is_refused(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes_target=128)
    for i in range(12):
        wal.append(b"payload %d" % i)
    wal.close()
    segments = _segment_files(tmp_path)
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(CorruptSegmentError):
        _open(tmp_path, segment_bytes_target=128)


def test_segment_with_a_torn_header_at_the_end_is_removed(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path)
    wal.append_batch([b"a", b"b"])
    wal.close()
    torn = tmp_path / "00000000000000000003.wal"
    torn.write_bytes(b"DSYNCWAL\x01\x00")  # a new segment whose header never fully reached disk
    wal, report = _open(tmp_path)
    assert report.torn_tail is not None
    assert report.torn_tail.segments_removed == (str(torn),)
    assert not torn.exists()
    assert _records(wal) == [b"a", b"b"]
    assert wal.append(b"c") == 3


def test_read_only_open_reports_but_does_not_repair(tmp_path: Path) -> None:
    payloads, _ = _log_of_five(tmp_path)
    segment = _segment_files(tmp_path)[0]
    segment.write_bytes(segment.read_bytes()[:-3])
    before = segment.read_bytes()
    wal, report = _open(tmp_path, read_only=True)
    assert report.torn_tail is not None and not report.repaired
    assert _records(wal) == payloads[:4]
    assert segment.read_bytes() == before
    with pytest.raises(StorageUsageError):
        wal.append(b"x")


def test_group_commit_is_one_fsync_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    wal, _ = _open(tmp_path)
    wal.append_batch([b"first"])
    assert len(calls) == 2  # the new segment file, then its directory
    calls.clear()
    wal.append_batch([b"r%d" % i for i in range(500)])
    assert len(calls) == 1
    calls.clear()
    wal.append_batch([b"x"], sync=False)
    wal.append_batch([b"y"], sync=False)
    assert calls == []
    wal.sync()
    assert len(calls) == 1
    wal.sync()  # nothing new to make durable
    assert len(calls) == 1


def test_rolling_segments_inside_a_batch_syncs_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    wal, _ = _open(tmp_path, segment_bytes_target=200)
    wal.append_batch([b"p" * 60 for _ in range(10)])
    segments = len(_segment_files(tmp_path))
    assert segments >= 3
    # each full segment once when rolling, the last one once, and the directory once
    assert len(calls) == segments + 1


def test_truncate_after_across_segments(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes_target=128)
    payloads = [b"entry %d" % i for i in range(1, 21)]
    for payload in payloads:
        wal.append(payload)
    segments_before = len(_segment_files(tmp_path))
    wal.truncate_after(5)
    assert wal.last_seq == 5
    assert len(_segment_files(tmp_path)) < segments_before
    assert wal.append(b"replacement") == 6
    wal.close()
    wal, report = _open(tmp_path, segment_bytes_target=128)
    assert report.torn_tail is None
    assert _records(wal) == [*payloads[:5], b"replacement"]
    wal.truncate_after(0)
    assert _records(wal) == [] and wal.next_seq == 1
    wal.truncate_after(0)  # idempotent
    with pytest.raises(StorageUsageError):
        wal.truncate_after(-1)


def test_drop_before_removes_only_whole_segments(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes_target=128)
    for i in range(1, 31):
        wal.append(b"entry %d" % i)
    infos = wal.segments()
    cut = infos[2].first_seq + 1  # in the middle of the third segment
    removed = wal.drop_before(cut)
    assert removed == [info.path for info in infos[:2]]
    assert wal.first_seq == infos[2].first_seq
    wal.close()
    wal, report = _open(tmp_path, segment_bytes_target=128)
    assert report.first_seq == infos[2].first_seq and report.last_seq == 30
    assert [seq for seq, _ in wal.iter_records()] == list(range(infos[2].first_seq, 31))
    wal.drop_before(10_000)  # the newest segment is always kept: numbering survives restarts
    assert len(wal.segments()) == 1
    assert wal.append(b"next") == 31


def test_stale_record_number_is_corruption(tmp_path: Path) -> None:
    payloads, _ = _log_of_five(tmp_path)
    segment = _segment_files(tmp_path)[0]
    # A valid-looking record numbered 9 where 6 is expected, followed by a valid record 10.
    segment.write_bytes(segment.read_bytes() + encode_record(9, b"stale") + encode_record(10, b"x"))
    with pytest.raises(CorruptRecordError) as caught:
        _open(tmp_path)
    assert "seq 9" in caught.value.fields["reason"]


def test_a_failed_fsync_makes_the_log_refuse_further_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal, _ = _open(tmp_path)
    wal.append(b"durable")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(WalFailedError) as caught:
        wal.append(b"maybe lost")
    assert caught.value.fields["operation"] == "sync"
    monkeypatch.undo()
    # Even though fsync works again, a retry could report success for lost pages: refuse.
    with pytest.raises(WalFailedError):
        wal.append(b"retry")
    with pytest.raises(WalFailedError):
        wal.sync()
    wal, report = _open(tmp_path)  # reopening recovers from what is on disk
    assert _records(wal)[0] == b"durable"
