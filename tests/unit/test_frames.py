"""The bulk frame reader: every framing case, and chunks split anywhere."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depthkeeper.actors.io.frames import ConnectionClosed, FrameError, FrameReader


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class Feed:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pongs: list[bytes] = []

    def recv(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def reader(self) -> FrameReader:
        return FrameReader(self.recv, self.pongs.append)


def read_all(feed: Feed) -> list[bytes]:
    reader, out = feed.reader(), []
    try:
        while True:
            out.extend(reader.read_messages())
    except ConnectionClosed:
        return out


def test_many_frames_in_one_chunk_and_all_length_forms() -> None:
    big, huge = b"x" * 300, b"y" * 70_000
    feed = Feed([frame(b'{"a":1}') + frame(big) + frame(huge, opcode=2)])
    assert read_all(feed) == [b'{"a":1}', big, huge]


def test_ping_answered_pong_ignored_close_ends() -> None:
    feed = Feed([frame(b"p1", opcode=9) + frame(b"", opcode=10) + frame(b"m") + frame(b"\x03\xe8bye", opcode=8)])
    reader = feed.reader()
    assert reader.read_messages() == [b"m"]  # data before the close frame is delivered
    assert feed.pongs == [b"p1"]
    with pytest.raises(ConnectionClosed, match="1000"):
        reader.read_messages()


def test_fragmented_message_and_masked_frame() -> None:
    mask = os.urandom(4)
    feed = Feed([frame(b"hel", fin=False) + frame(b"lo ", opcode=0, fin=False), frame(b"world", opcode=0),
                 frame(b"masked!", mask=mask)])
    assert read_all(feed) == [b"hello world", b"masked!"]


def test_protocol_errors() -> None:
    with pytest.raises(FrameError, match="continuation"):
        Feed([frame(b"x", opcode=0)]).reader().read_messages()
    with pytest.raises(FrameError, match="opcode"):
        Feed([frame(b"x", opcode=3)]).reader().read_messages()
    with pytest.raises(FrameError, match="inside a fragmented"):
        Feed([frame(b"a", fin=False) + frame(b"b")]).reader().read_messages()
    with pytest.raises(ConnectionClosed, match="EOF"):
        Feed([]).reader().read_messages()


@given(st.lists(st.binary(max_size=400), min_size=1, max_size=30), st.lists(st.integers(1, 500), max_size=40))
def test_any_split_of_the_stream_yields_the_same_messages(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    chunks, pos = [], 0
    for cut in cuts:
        if pos >= len(stream):
            break
        chunks.append(stream[pos:pos + cut])
        pos += cut
    if pos < len(stream):
        chunks.append(stream[pos:])
    assert read_all(Feed(chunks)) == payloads
