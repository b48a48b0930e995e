"""The sans-I/O frame codec, against a naive reference parser."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasync.core import limits
from deltasync.core.errors import LocalError, RemoteError
from deltasync.net.framing import (
    DecoderFailed,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
    encode_frames,
    split_frames,
)

bodies = st.lists(st.binary(min_size=1, max_size=300), max_size=20)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in zip(points, points[1:], strict=False)]


def reference_parse(data: bytes, frame_bytes_max: int) -> tuple[list[bytes], bool]:
    """Frames a correct decoder must yield, and whether it must then fail."""
    frames, position = [], 0
    while len(data) - position >= 4:
        (size,) = struct.unpack(">I", data[position : position + 4])
        if not 1 <= size <= frame_bytes_max:
            return frames, True
        if len(data) - position - 4 < size:
            break
        frames.append(data[position + 4 : position + 4 + size])
        position += 4 + size
    return frames, False


def decode_in_chunks(pieces: list[bytes], frame_bytes_max: int) -> tuple[list[bytes], bool]:
    decoder = FrameDecoder(frame_bytes_max)
    out: list[bytes] = []
    for piece in pieces:
        decoder.receive_data(piece)
        try:
            while (frame := decoder.next_frame()) is not None:
                out.append(frame)
        except FrameError:
            return out, True
    return out, False


@given(bodies, st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_a_stream_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = encode_frames(payloads)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for piece in chunks(stream, cuts):
        out += decoder.feed(piece)
    assert out == payloads
    assert decoder.buffered_bytes == 0
    decoder.end_of_stream()
    assert split_frames(stream) == payloads


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_arbitrary_bytes_match_the_reference_parser(data: bytes, cuts: list[int]) -> None:
    assert decode_in_chunks(chunks(data, cuts), frame_bytes_max=64) == reference_parse(data, 64)


@given(st.integers(min_value=1001, max_value=2**32 - 1), st.binary(max_size=50))
def test_oversize_length_refused_at_the_header(size: int, tail: bytes) -> None:
    decoder = FrameDecoder(frame_bytes_max=1000)
    decoder.receive_data(struct.pack(">I", size))
    with pytest.raises(FrameError) as caught:
        decoder.next_frame()  # no body byte was needed to refuse it
    assert isinstance(caught.value, RemoteError)
    assert caught.value.fields["size"] == size
    assert caught.value.fields["max"] == 1000
    with pytest.raises(DecoderFailed):
        decoder.receive_data(tail)
    with pytest.raises(DecoderFailed):
        decoder.next_frame()


def test_default_limit_is_the_wire_limit() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(FrameError):
        decoder.feed(struct.pack(">I", limits.frame_bytes_max + 1))


def test_garbage_refused() -> None:
    http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with pytest.raises(FrameError, match="too large"):
        FrameDecoder().feed(http)
    with pytest.raises(FrameError, match="too small"):
        FrameDecoder().feed(b"\x00\x00\x00\x00rest")


def test_stream_ending_inside_a_frame_is_the_peers_fault() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"abc")[:-1]) == []
    with pytest.raises(FrameError, match="stream ended"):
        decoder.end_of_stream()


def test_limit_can_rise_between_frames() -> None:
    stream = encode_frame(b"hi") + encode_frame(b"y" * 500)
    decoder = FrameDecoder(frame_bytes_max=16)
    decoder.receive_data(stream)
    assert decoder.next_frame() == b"hi"
    decoder.set_frame_bytes_max(1000)
    assert decoder.frames() == [b"y" * 500]


def test_encoders_refuse_oversize_as_our_bug() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        encode_frame(b"x" * 11, frame_bytes_max=10)
    assert isinstance(caught.value, LocalError)
    with pytest.raises(FrameTooLarge):
        encode_frames([b"ok", b"x" * 11], frame_bytes_max=10)


def test_split_frames_needs_whole_frames() -> None:
    stream = encode_frames([b"a", b"bc"])
    with pytest.raises(FrameError, match="truncated body"):
        split_frames(stream[:-1])
    with pytest.raises(FrameError, match="truncated header"):
        split_frames(stream + b"\x00\x00")
    with pytest.raises(FrameError, match="too large"):
        split_frames(encode_frame(b"x" * 20), frame_bytes_max=10)
    assert split_frames(encode_frames([b"", b"z"])) == [b"", b"z"]  # empty payloads are legal inside
