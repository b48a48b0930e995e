"""An append-only write-ahead log of opaque records, in checksummed segment files.

Layout: a directory of segments named ``<first seq, 20 digits>.wal``. Records are
numbered densely from 1 (``seq``); a segment holds a contiguous run of them.

Segment header (32 bytes, little-endian)::

    magic "DSYNCWAL" | u32 version | u32 flags (0) | u64 first_seq | u32 crc32(bytes 0..24) | 4 zero bytes

Record (header 24 bytes, then the payload, then zero padding to a multiple of 8)::

    u32 header_crc | u32 payload_len | u64 seq | u32 payload_crc | u32 flags (0)

``header_crc`` covers the 20 header bytes after it, so a damaged length is never
trusted; ``payload_crc`` covers the payload. Both are CRC-32 (``zlib.crc32``, the
IEEE polynomial), the check etcd, LevelDB and PostgreSQL use in its Castagnoli
form (CRC-32C), which is not in the standard library. For the damage a log meets
(torn sector writes, zero-filled pages, flipped bits) the IEEE CRC catches every
burst of up to 32 bits, every error of up to 3 bits in records up to ~11 KiB and
of up to 2 bits up to 512 MiB, and lets random garbage through with odds of
2^-32 per check (a header and its payload are checked separately). CRC-32C has a
somewhat better Hamming distance on long records; a truncated hashlib digest
(blake2b/sha256) would detect no more accidental damage in practice and costs
several times more CPU per byte on the append path. Nothing here defends against
deliberate tampering; that is not the WAL's threat model. Records are
8-byte aligned so that recovery can search for valid records after damage.

Group commit: ``append_batch`` writes all its records with one ``write`` and
makes them durable with one ``fsync`` (plus one directory fsync when it created a
segment, and one more fsync of a full segment it rolled over from).

Recovery (``open``) reads every segment and checks every record. Damage at the
end of the log, with no valid record after it, is a torn tail: it is cut off
(and reported in ``RecoveryReport.torn_tail``). Damage with a valid record after
it cannot come from an interrupted append: it raises ``CorruptRecordError``
naming the segment file and byte offset, and nothing is changed on disk.
``scan`` runs the same checks without repairing anything (``deltasync verify``).
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from deltasync.core.limits import (
    wal_batch_records_max,
    wal_record_bytes_max,
    wal_segment_bytes_target,
    wal_segments_max,
)
from deltasync.storage.errors import (
    CorruptRecordError,
    CorruptSegmentError,
    StorageUsageError,
    WalFailedError,
)
from deltasync.storage.fs import FileSystem, OsFileSystem, WritableFile

SEGMENT_MAGIC = b"DSYNCWAL"
SEGMENT_VERSION = 1
SEGMENT_SUFFIX = ".wal"
_SEGMENT_HEADER = struct.Struct("<8sIIQI4x")
_RECORD_HEADER = struct.Struct("<IIQII")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size
RECORD_HEADER_BYTES = _RECORD_HEADER.size
ALIGN_BYTES = 8
_PADDING = tuple(b"\x00" * n for n in range(ALIGN_BYTES))

assert SEGMENT_HEADER_BYTES == 32 and RECORD_HEADER_BYTES == 24
assert SEGMENT_HEADER_BYTES % ALIGN_BYTES == 0 and RECORD_HEADER_BYTES % ALIGN_BYTES == 0


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def encode_segment_header(first_seq: int) -> bytes:
    body = _SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0, first_seq, 0)
    return _SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0, first_seq, zlib.crc32(body[:24]))


def encode_record(seq: int, payload: bytes) -> bytes:
    """One framed record: header, payload, zero padding to the alignment."""
    tail = struct.pack("<IQII", len(payload), seq, zlib.crc32(payload), 0)
    return (
        struct.pack("<I", zlib.crc32(tail)) + tail + payload + _PADDING[-len(payload) % ALIGN_BYTES]
    )


def _padded(size: int) -> int:
    return size + (-size % ALIGN_BYTES)


# --- what recovery found ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    path: str
    first_seq: int
    records: int
    size_bytes: int

    @property
    def last_seq(self) -> int:
        """The last record's seq; ``first_seq - 1`` for a segment with no records."""
        return self.first_seq + self.records - 1


@dataclass(frozen=True, slots=True)
class TornTail:
    """Damage at the end of the log with nothing valid after it."""

    segment: str  # the segment where the valid log ends
    offset: int  # the byte offset cut at (the end of the last valid record)
    bytes_dropped: int  # bytes removed, in this segment and any later ones
    segments_removed: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    segments: tuple[SegmentInfo, ...]
    first_seq: int  # first record held (next_seq when the log holds none)
    last_seq: int  # last record held (first_seq - 1 when none)
    torn_tail: TornTail | None
    repaired: bool  # whether the torn tail was cut off on disk (False for a read-only scan)

    @property
    def records(self) -> int:
        return self.last_seq - self.first_seq + 1


# --- scanning -------------------------------------------------------------------


@dataclass(slots=True)
class _Segment:
    path: str
    first_seq: int
    offsets: array  # byte offset of each record
    end: int  # byte size of the valid content

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.offsets) - 1

    def info(self) -> SegmentInfo:
        return SegmentInfo(self.path, self.first_seq, len(self.offsets), self.end)


@dataclass(slots=True)
class _Damage:
    segment_index: int
    offset: int
    seq: int
    reason: str
    resume_at: int  # where to start looking for valid records after the damage


def _check_record(
    data: bytes | memoryview, offset: int, record_bytes_max: int
) -> tuple[str | None, int, int]:
    """(problem or None, seq, end offset) for the record at ``offset``."""
    size = len(data)
    if offset + RECORD_HEADER_BYTES > size:
        return "partial record header", 0, size
    header_crc, length, seq, payload_crc, flags = _RECORD_HEADER.unpack_from(data, offset)
    if zlib.crc32(data[offset + 4 : offset + RECORD_HEADER_BYTES]) != header_crc:
        return "record header checksum mismatch", 0, offset + ALIGN_BYTES
    if flags != 0:
        return f"unknown record flags {flags:#x}", seq, offset + ALIGN_BYTES
    if length > record_bytes_max:
        return (
            f"record length {length} over the limit {record_bytes_max}",
            seq,
            offset + ALIGN_BYTES,
        )
    start = offset + RECORD_HEADER_BYTES
    end = start + _padded(length)
    if end > size:
        return "partial record payload", seq, size  # the padding counts: records stay aligned
    if zlib.crc32(data[start : start + length]) != payload_crc:
        return "record payload checksum mismatch", seq, end
    return None, seq, end


def _valid_record_at_or_after(
    data: bytes, start: int, seq_min: int, record_bytes_max: int
) -> int | None:
    """Offset of the first whole valid record (seq >= seq_min) at an aligned offset >= start."""
    offset = _padded(start)
    last = len(data) - RECORD_HEADER_BYTES
    unpack = _RECORD_HEADER.unpack_from
    crc32 = zlib.crc32
    while offset <= last:
        header_crc, length, seq, payload_crc, flags = unpack(data, offset)
        if (
            seq >= seq_min
            and length <= record_bytes_max
            and crc32(data[offset + 4 : offset + RECORD_HEADER_BYTES]) == header_crc
        ):
            problem, _, _ = _check_record(data, offset, record_bytes_max)
            if problem is None:
                return offset
        offset += ALIGN_BYTES
    return None


def _parse_segment_header(data: bytes, path: str, name_seq: int) -> str | None:
    if len(data) < SEGMENT_HEADER_BYTES:
        return "partial segment header"
    magic, version, flags, first_seq, crc = _SEGMENT_HEADER.unpack_from(data, 0)
    if zlib.crc32(data[:24]) != crc or magic != SEGMENT_MAGIC:
        return "segment header checksum mismatch"
    if version != SEGMENT_VERSION or flags != 0:
        raise CorruptSegmentError(
            segment=path, reason="unsupported segment version", version=version, flags=flags
        )
    if first_seq != name_seq:
        raise CorruptSegmentError(
            segment=path,
            reason="header first_seq differs from file name",
            found=first_seq,
            expected=name_seq,
        )
    return None


def _list_segments(fs: FileSystem, directory: str) -> list[tuple[int, str]]:
    found = []
    for name in fs.listdir(directory):
        if not name.endswith(SEGMENT_SUFFIX):
            continue
        stem = name[: -len(SEGMENT_SUFFIX)]
        if len(stem) != 20 or not stem.isdigit():
            raise CorruptSegmentError(
                segment=f"{directory}/{name}", reason="unexpected segment file name"
            )
        found.append((int(stem), f"{directory}/{name}"))
    if len(found) > wal_segments_max:
        raise CorruptSegmentError(segment=directory, reason="too many segments", found=len(found))
    found.sort()
    return found


@dataclass(slots=True)
class _Scan:
    segments: list[_Segment]
    torn_tail: TornTail | None
    truncate: tuple[str, int] | None  # (segment path, size) to cut the torn tail
    remove: list[str]  # later segments holding nothing valid


def _scan(fs: FileSystem, directory: str, record_bytes_max: int) -> _Scan:
    listed = _list_segments(fs, directory)
    segments: list[_Segment] = []
    contents: list[bytes] = []
    damage: _Damage | None = None
    for index, (name_seq, path) in enumerate(listed):
        data = fs.read(path)
        problem = _parse_segment_header(data, path, name_seq)
        if problem is not None:
            damage = _Damage(index, 0, name_seq, problem, SEGMENT_HEADER_BYTES)
            segments.append(_Segment(path, name_seq, array("Q"), 0))
            contents.append(data)
            break
        if segments and name_seq != segments[-1].last_seq + 1:
            raise CorruptSegmentError(
                segment=path,
                reason="segments do not follow each other",
                expected=segments[-1].last_seq + 1,
                found=name_seq,
            )
        segment = _Segment(path, name_seq, array("Q"), SEGMENT_HEADER_BYTES)
        segments.append(segment)
        contents.append(data)
        offset = SEGMENT_HEADER_BYTES
        expected = name_seq
        while offset < len(data):
            problem, seq, end = _check_record(data, offset, record_bytes_max)
            if problem is None and seq != expected:
                problem = f"record seq {seq} where {expected} was expected"
            if problem is not None:
                resume = end if problem.startswith("record payload") else offset + ALIGN_BYTES
                damage = _Damage(index, offset, expected, problem, resume)
                break
            segment.offsets.append(offset)
            offset = end
            expected += 1
            segment.end = end
        if damage is not None:
            break

    if damage is None:
        return _Scan(segments, None, None, [])
    return _classify(fs, listed, segments, contents, damage, record_bytes_max)


def _classify(
    fs: FileSystem,
    listed: list[tuple[int, str]],
    segments: list[_Segment],
    contents: list[bytes],
    damage: _Damage,
    record_bytes_max: int,
) -> _Scan:
    """Torn tail if nothing valid follows the damage, else a corrupt record (raised)."""
    where = damage.segment_index
    path = listed[where][1]
    follower = _valid_record_at_or_after(
        contents[where], damage.resume_at, damage.seq, record_bytes_max
    )
    follower_path = path
    if follower is None:
        for _, later_path in listed[where + 1 :]:
            data = fs.read(later_path)
            follower = _valid_record_at_or_after(
                data, SEGMENT_HEADER_BYTES, damage.seq, record_bytes_max
            )
            if follower is not None:
                follower_path = later_path
                break
    if follower is not None:
        error = CorruptSegmentError if damage.offset == 0 else CorruptRecordError
        raise error(
            segment=path,
            offset=damage.offset,
            seq=damage.seq,
            reason=damage.reason,
            valid_record_after=f"{follower_path}@{follower}",
        )
    removed = tuple(later for _, later in listed[where + 1 :])
    dropped = sum(fs.file_size(later) for later in removed)
    segment = segments[where]
    if damage.offset == 0:
        # A segment whose header never reached the disk: drop the whole file.
        segments.pop()
        removed = (path, *removed)
        dropped += len(contents[where])
        cut_segment = segments[-1].path if segments else path
        cut_offset = segments[-1].end if segments else 0
        truncate = None
    else:
        dropped += len(contents[where]) - segment.end
        cut_segment, cut_offset = path, segment.end
        truncate = (path, segment.end)
    torn = TornTail(
        segment=cut_segment,
        offset=cut_offset,
        bytes_dropped=dropped,
        segments_removed=removed,
        reason=f"{damage.reason} at {path}@{damage.offset}",
    )
    return _Scan(segments, torn, truncate, list(removed))


def _report(
    segments: list[_Segment], torn: TornTail | None, repaired: bool, next_seq: int
) -> RecoveryReport:
    with_records = [s for s in segments if len(s.offsets)]
    first = with_records[0].first_seq if with_records else next_seq
    last = with_records[-1].last_seq if with_records else next_seq - 1
    return RecoveryReport(tuple(s.info() for s in segments), first, last, torn, repaired)


def scan(
    directory: str, fs: FileSystem | None = None, *, record_bytes_max: int = wal_record_bytes_max
) -> RecoveryReport:
    """Check a WAL directory without changing it (raises on corruption, as ``open`` does)."""
    fs = fs or OsFileSystem()
    result = _scan(fs, directory, record_bytes_max)
    next_seq = result.segments[-1].last_seq + 1 if result.segments else 1
    return _report(result.segments, result.torn_tail, False, next_seq)


# --- the log --------------------------------------------------------------------


class WriteAheadLog:
    """Append, sync, truncate and compact a log of opaque records. Not thread-safe."""

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        segments: list[_Segment],
        next_seq: int,
        segment_bytes_target: int,
        record_bytes_max: int,
    ) -> None:
        self._fs = fs
        self._directory = directory
        self._segments = segments
        self._next_seq = next_seq
        self._segment_bytes_target = segment_bytes_target
        self._record_bytes_max = record_bytes_max
        self._active: WritableFile | None = None
        self._unsynced = False  # bytes written to the active segment since its last fsync
        self._dir_unsynced = False  # a segment was created since the last directory fsync
        self._read_only = False
        self._failed: str | None = None  # set by a failed write/fsync: the log is then unusable

    @classmethod
    def open(
        cls,
        directory: str,
        fs: FileSystem | None = None,
        *,
        segment_bytes_target: int = wal_segment_bytes_target,
        record_bytes_max: int = wal_record_bytes_max,
        first_seq: int = 1,
        read_only: bool = False,
    ) -> tuple[WriteAheadLog, RecoveryReport]:
        """Open (creating if needed) and recover the log in ``directory``.

        ``first_seq`` numbers the first record of a brand-new log. Raises
        ``CorruptRecordError`` / ``CorruptSegmentError`` on damage that is not a
        torn tail; the files are then left untouched. With ``read_only`` nothing
        is created or repaired (a torn tail is only reported) and writes refuse.
        """
        assert first_seq >= 1 and segment_bytes_target > SEGMENT_HEADER_BYTES
        fs = fs or OsFileSystem()
        if read_only and not fs.is_dir(directory):
            wal = cls(fs, directory, [], first_seq, segment_bytes_target, record_bytes_max)
            wal._read_only = True
            return wal, _report([], None, False, first_seq)
        if not read_only:
            fs.makedirs(directory)
        result = _scan(fs, directory, record_bytes_max)
        repaired = False
        if result.torn_tail is not None and not read_only:
            for path in reversed(result.remove):  # newest first: a crash leaves a valid prefix
                fs.remove(path)
            if result.remove:
                fs.sync_dir(directory)
            if result.truncate is not None:
                path, size = result.truncate
                handle = fs.open_append(path)
                handle.truncate(size)
                handle.sync()
                handle.close()
            repaired = True
        segments = result.segments
        next_seq = segments[-1].last_seq + 1 if segments else first_seq
        wal = cls(fs, directory, segments, next_seq, segment_bytes_target, record_bytes_max)
        wal._read_only = read_only
        return wal, _report(segments, result.torn_tail, repaired, next_seq)

    # --- reads --------------------------------------------------------------------

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def first_seq(self) -> int:
        for segment in self._segments:
            if len(segment.offsets):
                return segment.first_seq
        return self._next_seq

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def segments(self) -> list[SegmentInfo]:
        return [segment.info() for segment in self._segments]

    def iter_records(self, from_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) for every record from ``from_seq`` (default: the first held)."""
        start = self.first_seq if from_seq is None else max(from_seq, self.first_seq)
        for segment in list(self._segments):
            if segment.last_seq < start or not len(segment.offsets):
                continue
            data = self._fs.read(segment.path)
            for position in range(max(0, start - segment.first_seq), len(segment.offsets)):
                offset = segment.offsets[position]
                problem, seq, _ = _check_record(data, offset, self._record_bytes_max)
                if problem is not None or seq != segment.first_seq + position:
                    raise CorruptRecordError(
                        segment=segment.path,
                        offset=offset,
                        seq=segment.first_seq + position,
                        reason=problem or "record seq changed since recovery",
                    )
                length = _RECORD_HEADER.unpack_from(data, offset)[1]
                payload_start = offset + RECORD_HEADER_BYTES
                yield seq, data[payload_start : payload_start + length]

    # --- writes -------------------------------------------------------------------

    def append(self, payload: bytes, *, sync: bool = True) -> int:
        return self.append_batch((payload,), sync=sync)

    def append_batch(self, records: Sequence[bytes], *, sync: bool = True) -> int:
        """Append ``records`` with one write per segment touched; with ``sync``, make them
        durable with one fsync before returning. Returns the seq of the last record."""
        self._check_writable()
        if not 0 < len(records) <= wal_batch_records_max:
            raise StorageUsageError(
                reason="batch size out of range", size=len(records), max=wal_batch_records_max
            )
        for payload in records:
            if type(payload) is not bytes or len(payload) > self._record_bytes_max:
                raise StorageUsageError(
                    reason="record must be bytes within the size limit",
                    size=len(payload),
                    max=self._record_bytes_max,
                )
        with self._io("append"):
            segment = self._writable_segment()
            chunks: list[bytes] = []
            end = segment.end
            seq = self._next_seq
            for payload in records:
                if end >= self._segment_bytes_target and len(segment.offsets):
                    self._write(segment, chunks, end)
                    chunks = []
                    segment = self._roll(seq)
                    end = segment.end
                record = encode_record(seq, payload)
                segment.offsets.append(end)
                chunks.append(record)
                end += len(record)
                seq += 1
            self._write(segment, chunks, end)
            self._next_seq = seq
        if sync:
            self.sync()
        return seq - 1

    def sync(self) -> None:
        """Make every appended record durable."""
        if not (self._unsynced or self._dir_unsynced):
            return
        with self._io("sync"):
            if self._unsynced and self._active is not None:
                self._active.sync()
                self._unsynced = False
            if self._dir_unsynced:
                self._fs.sync_dir(self._directory)
                self._dir_unsynced = False

    def truncate_after(self, seq: int) -> None:
        """Remove every record after ``seq`` (Raft log conflict), durably."""
        self._check_writable()
        if seq >= self.last_seq:
            return
        if seq < self.first_seq - 1:
            raise StorageUsageError(
                reason="cannot truncate below the first record held",
                seq=seq,
                first_seq=self.first_seq,
            )
        with self._io("truncate"):
            removed = False
            while len(self._segments) > 1 and self._segments[-1].first_seq > seq:
                self._close_active()
                self._fs.remove(self._segments.pop().path)  # newest first: a valid prefix remains
                removed = True
            if removed:
                self._fs.sync_dir(self._directory)
                self._dir_unsynced = False
            segment = self._segments[-1]
            keep = seq - segment.first_seq + 1
            if keep < len(segment.offsets):
                segment.end = segment.offsets[keep]
                del segment.offsets[keep:]
            self._close_active()
            handle = self._fs.open_append(segment.path)
            handle.truncate(segment.end)
            handle.sync()
            self._active = handle
            self._unsynced = False
            self._next_seq = seq + 1

    def drop_before(self, seq: int) -> list[str]:
        """Delete segments whose records all precede ``seq`` (after a snapshot covers them).

        The newest segment is always kept, so the numbering survives a restart.
        Returns the paths removed.
        """
        self._check_writable()
        self.sync()  # never let a directory fsync publish a segment whose header is not durable
        removed: list[str] = []
        with self._io("drop segments"):
            while len(self._segments) > 1 and self._segments[0].last_seq < seq:
                path = self._segments.pop(0).path
                self._fs.remove(path)
                removed.append(path)
            if removed:
                self._fs.sync_dir(self._directory)
        return removed

    def close(self) -> None:
        """Sync (unless the log failed or is read-only) and release the file handle."""
        if self._failed is None and not self._read_only:
            self.sync()
        self._close_active()

    # --- internals ----------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._read_only:
            raise StorageUsageError(reason="WAL opened read-only", directory=self._directory)
        if self._failed is not None:
            raise WalFailedError(
                reason="an earlier WAL operation failed; reopen the log to recover",
                directory=self._directory,
                failure=self._failed,
            )

    @contextmanager
    def _io(self, operation: str) -> Iterator[None]:
        """Run file operations; after any OSError the log refuses all further writes.

        A failed write or fsync leaves the disk in an unknown state (and a retried
        fsync may report success for pages the kernel already dropped), so the only
        safe continuation is a restart that recovers from what is really on disk.
        """
        self._check_writable()
        try:
            yield
        except OSError as exc:
            self._failed = f"{operation}: {exc!r}"
            raise WalFailedError(
                reason="WAL I/O failed; restart the node to recover from the disk",
                directory=self._directory,
                operation=operation,
                detail=repr(exc),
            ) from exc

    def _writable_segment(self) -> _Segment:
        if not self._segments:
            return self._roll(self._next_seq)
        if self._active is None:
            self._active = self._fs.open_append(self._segments[-1].path)
        return self._segments[-1]

    def _roll(self, first_seq: int) -> _Segment:
        if self._active is not None and self._unsynced:
            self._active.sync()  # a segment is complete and durable before the next one starts
            self._unsynced = False
        self._close_active()
        path = f"{self._directory}/{segment_name(first_seq)}"
        handle = self._fs.create(path)
        handle.write(encode_segment_header(first_seq))
        self._active = handle
        self._unsynced = True
        self._dir_unsynced = True
        segment = _Segment(path, first_seq, array("Q"), SEGMENT_HEADER_BYTES)
        self._segments.append(segment)
        return segment

    def _write(self, segment: _Segment, chunks: list[bytes], end: int) -> None:
        assert self._active is not None
        if chunks:
            self._active.write(b"".join(chunks))
            self._unsynced = True
        segment.end = end

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
