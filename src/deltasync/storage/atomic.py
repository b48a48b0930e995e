"""Small files replaced atomically and checked on read.

``write_atomic`` writes a temporary file, fsyncs it, renames it over the target
and fsyncs the directory: after a crash the target holds either the old or the
new content, never a mix. ``write_checked`` / ``read_checked`` add a header
(magic, length, CRC-32) so that a damaged file is reported, not misread.
"""

from __future__ import annotations

import posixpath
import struct
import zlib

from deltasync.storage.errors import CorruptStateError
from deltasync.storage.fs import FileSystem

TEMP_SUFFIX = ".tmp"
_HEADER = struct.Struct("<8sII")  # magic, payload length, crc32(payload)


def write_atomic(fs: FileSystem, path: str, data: bytes) -> None:
    temp = path + TEMP_SUFFIX
    handle = fs.create(temp)
    try:
        handle.write(data)
        handle.sync()
    finally:
        handle.close()
    fs.rename(temp, path)
    fs.sync_dir(posixpath.dirname(path) or ".")


def write_checked(fs: FileSystem, path: str, magic: bytes, payload: bytes) -> None:
    assert len(magic) == 8
    write_atomic(fs, path, _HEADER.pack(magic, len(payload), zlib.crc32(payload)) + payload)


def read_checked(fs: FileSystem, path: str, magic: bytes) -> bytes:
    """The payload of a file written by ``write_checked``; raises ``CorruptStateError``."""
    data = fs.read(path)
    if len(data) < _HEADER.size:
        raise CorruptStateError(path=path, reason="file shorter than its header", size=len(data))
    found_magic, length, crc = _HEADER.unpack_from(data, 0)
    if found_magic != magic:
        raise CorruptStateError(path=path, reason="wrong magic", found=found_magic, expected=magic)
    payload = data[_HEADER.size :]
    if len(payload) != length:
        raise CorruptStateError(
            path=path, reason="wrong length", found=len(payload), expected=length
        )
    if zlib.crc32(payload) != crc:
        raise CorruptStateError(path=path, reason="checksum mismatch")
    return payload
