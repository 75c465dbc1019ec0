"""Bulk WebSocket frame reader: one ``recv`` per many frames, for the reader thread.

websocket-client reads each frame with at least two exact-length ``recv`` calls (header,
then payload), which caps one connection near 150k frames/s before any work is done. After
its handshake we read the socket ourselves in large chunks and cut every complete frame out
of the chunk: whatever one ``recv`` returned is, by definition, "already read", so a batch
costs one syscall however many frames it holds.

Only the receiving half is ours (RFC 6455 §5.2 framing, server -> client, so normally
unmasked; a masked frame is unmasked anyway). Pings are answered through websocket-client's
locked ``pong`` so writes from other threads stay safe. Fragmented messages are reassembled.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: bytes asked of the kernel per recv
CHUNK = 256 * 1024
#: a single message larger than this is a protocol error (a venue never sends one)
MAX_MESSAGE = 16 * 1024 * 1024

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


class FrameError(Exception):
    """The byte stream is not valid WebSocket framing; the connection must be dropped."""


class ConnectionClosed(Exception):
    """The peer closed (a close frame, or EOF)."""


class FrameReader:
    """Cut data messages out of a socket's byte stream, many per ``recv``."""

    def __init__(self, recv: Callable[[int], bytes], pong: Callable[[bytes], Any]) -> None:
        self._recv = recv
        self._pong = pong
        self._rest = b""
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        #: a close frame seen after data in the same chunk: deliver the data first
        self._closed: str | None = None

    def read_messages(self) -> list[bytes]:
        """Block for at least one chunk; return every complete data message it finished.

        May return an empty list (only control frames or a partial frame arrived).
        Raises ConnectionClosed on a close frame or EOF, FrameError on bad framing.
        """
        if self._closed is not None:
            raise ConnectionClosed(self._closed)
        data = self._recv(CHUNK)
        if not data:
            raise ConnectionClosed("EOF")
        if self._rest:
            data = self._rest + data
        messages: list[bytes] = []
        end = len(data)
        pos = 0
        while True:
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if end - head < 2:
                    break
                length = _U16.unpack_from(data, head)[0]
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = _U64.unpack_from(data, head)[0]
                head += 8
            mask = b""
            if b1 & 0x80:
                if end - head < 4:
                    break
                mask = data[head:head + 4]
                head += 4
            stop = head + length
            if stop > end:
                if length > MAX_MESSAGE:
                    raise FrameError(f"frame of {length} bytes exceeds {MAX_MESSAGE}")
                break
            payload = data[head:stop]
            pos = stop
            if mask:
                payload = _unmask(payload, mask)
            opcode = b0 & 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if b0 & 0x80:
                    if self._fragments:
                        raise FrameError("new data frame inside a fragmented message")
                    messages.append(payload)
                else:
                    self._start_fragment(payload)
            else:
                self._control(opcode, b0, payload, messages)
                if self._closed is not None:
                    break
        self._rest = data[pos:] if pos < end else b""
        return messages

    def _start_fragment(self, payload: bytes) -> None:
        if self._fragments:
            raise FrameError("new data frame inside a fragmented message")
        self._fragments = [payload]
        self._fragment_size = len(payload)

    def _control(self, opcode: int, b0: int, payload: bytes, messages: list[bytes]) -> None:
        if opcode == OP_CONTINUATION:
            if not self._fragments:
                raise FrameError("continuation frame without a message")
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if self._fragment_size > MAX_MESSAGE:
                raise FrameError("fragmented message too large")
            if b0 & 0x80:
                messages.append(b"".join(self._fragments))
                self._fragments = []
                self._fragment_size = 0
        elif opcode == OP_PING:
            self._pong(payload)
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CLOSE:
            code = _U16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
            self._closed = f"close frame {code} {payload[2:].decode('utf-8', 'replace')}".strip()
        else:
            raise FrameError(f"unknown opcode {opcode:#x}")


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
