"""Length-prefixed frames, sans-I/O (the h11 shape: feed bytes in, take frames out).

Wire format of one frame::

    +----------------------+---------------------+
    | length: u32 big-end. | body: `length` bytes |
    +----------------------+---------------------+

``frame_bytes_min <= length <= frame_bytes_max``. The limit is checked as soon
as the 4 header bytes are in, before a single byte of the body is waited for,
so a peer cannot make us buffer more than one legal frame plus one read chunk.
A length out of range is the peer's fault: ``FrameError`` (a ``RemoteError``).
A decoder that raised refuses all further input (``DecoderFailed``), because
after one bad length the stream has no recoverable frame boundary.

The same format nests: a transport record's authenticated body is itself a run
of frames (``split_frames`` parses such a complete buffer).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from deltasync.core import limits
from deltasync.core.errors import LocalError, RemoteError

HEADER = struct.Struct(">I")
HEADER_BYTES = HEADER.size
LENGTH_MAX_ENCODABLE = 2**32 - 1

assert HEADER_BYTES == 4
assert limits.frame_bytes_max <= LENGTH_MAX_ENCODABLE


class FrameError(RemoteError):
    """Bytes from a peer are not a legal frame stream (fields: reason, size, min, max)."""


class FrameTooLarge(LocalError):
    """We tried to encode a frame over the limit (fields: size, max)."""


class DecoderFailed(LocalError):
    """Input was fed to a decoder after it raised (fields: first_error)."""


def encode_frame(body: bytes, frame_bytes_max: int = limits.frame_bytes_max) -> bytes:
    """One frame: header + body. Raises ``FrameTooLarge`` past the limit."""
    size = len(body)
    if size > frame_bytes_max:
        raise FrameTooLarge(size=size, max=frame_bytes_max)
    return HEADER.pack(size) + body


def encode_frames(bodies: Iterable[bytes], frame_bytes_max: int = limits.frame_bytes_max) -> bytes:
    """Many frames back to back, in one buffer (one write)."""
    pack = HEADER.pack
    parts: list[bytes] = []
    for body in bodies:
        size = len(body)
        if size > frame_bytes_max:
            raise FrameTooLarge(size=size, max=frame_bytes_max)
        parts.append(pack(size))
        parts.append(body)
    return b"".join(parts)


def split_frames(
    buffer: bytes, frame_bytes_max: int = limits.frame_bytes_max, frame_bytes_min: int = 0
) -> list[bytes]:
    """Parse a buffer that must hold whole frames and nothing else."""
    unpack_from = HEADER.unpack_from
    end = len(buffer)
    position = 0
    frames: list[bytes] = []
    while position < end:
        if end - position < HEADER_BYTES:
            raise FrameError(reason="truncated header", size=end - position, min=HEADER_BYTES)
        (size,) = unpack_from(buffer, position)
        if not frame_bytes_min <= size <= frame_bytes_max:  # hot loop: check inline
            _check_size(size, frame_bytes_min, frame_bytes_max)
        start = position + HEADER_BYTES
        position = start + size
        if position > end:
            raise FrameError(reason="truncated body", size=size, available=end - start)
        frames.append(buffer[start:position])
    return frames


def _check_size(size: int, frame_bytes_min: int, frame_bytes_max: int) -> None:
    if size > frame_bytes_max:
        raise FrameError(reason="frame too large", size=size, max=frame_bytes_max)
    if size < frame_bytes_min:
        raise FrameError(reason="frame too small", size=size, min=frame_bytes_min)


class FrameDecoder:
    """Incremental decoder: ``receive_data`` bytes, then pull frames.

    Call ``next_frame`` (or ``frames``) after every ``receive_data`` until it
    returns nothing; the buffer then holds at most one partial legal frame.
    ``set_frame_bytes_max`` may change the limit between two frames (the
    transport allows only tiny frames until a peer has authenticated).
    """

    __slots__ = ("_buffer", "_position", "_frame_bytes_max", "_frame_bytes_min", "_error")

    def __init__(
        self, frame_bytes_max: int = limits.frame_bytes_max, frame_bytes_min: int = 1
    ) -> None:
        assert 0 <= frame_bytes_min <= frame_bytes_max <= LENGTH_MAX_ENCODABLE
        self._buffer = bytearray()
        self._position = 0
        self._frame_bytes_max = frame_bytes_max
        self._frame_bytes_min = frame_bytes_min
        self._error: FrameError | None = None

    @property
    def frame_bytes_max(self) -> int:
        return self._frame_bytes_max

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._position

    @property
    def failed(self) -> bool:
        return self._error is not None

    def set_frame_bytes_max(self, frame_bytes_max: int) -> None:
        assert self._frame_bytes_min <= frame_bytes_max <= LENGTH_MAX_ENCODABLE
        self._frame_bytes_max = frame_bytes_max

    def receive_data(self, data: bytes) -> None:
        self._refuse_if_failed()
        if self._position:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame's body, or None if more bytes are needed."""
        self._refuse_if_failed()
        buffer = self._buffer
        start = self._position + HEADER_BYTES
        if len(buffer) < start:
            return None
        (size,) = HEADER.unpack_from(buffer, self._position)
        try:
            _check_size(size, self._frame_bytes_min, self._frame_bytes_max)
        except FrameError as error:
            self._error = error
            raise
        end = start + size
        if len(buffer) < end:
            return None
        self._position = end
        with memoryview(buffer) as view:
            return bytes(view[start:end])

    def frames(self) -> list[bytes]:
        """Every complete frame buffered now."""
        out: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    def feed(self, data: bytes) -> list[bytes]:
        """``receive_data`` then ``frames``."""
        self.receive_data(data)
        return self.frames()

    def end_of_stream(self) -> None:
        """The peer closed; a partial frame left in the buffer is its fault."""
        self._refuse_if_failed()
        if self.buffered_bytes:
            self._error = FrameError(reason="stream ended inside a frame", size=self.buffered_bytes)
            raise self._error

    def _refuse_if_failed(self) -> None:
        if self._error is not None:
            raise DecoderFailed(first_error=str(self._error))
