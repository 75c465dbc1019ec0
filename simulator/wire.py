"""Server-side WebSocket text framing and per-connection batched writes.

Why not ``await connection.send()`` per frame: at 100k+ diffs/s the per-call overhead
(a coroutine, a send context, a drain, one ``transport.write`` -> one syscall per frame) is the
bottleneck. A server frame is unmasked and, with compression disabled on the server, is just a
2- or 4-byte header plus the payload, so the pump renders every frame once, appends the bytes to
each subscriber's `Outbox`, and flushes each outbox with ONE ``transport.write`` per batch.

This is safe next to websockets' own writes (pongs, close frames) because everything runs on
the one event-loop thread and every write is a whole number of frames; we never write once the
protocol has left the OPEN state, so nothing follows a close frame.
"""

from __future__ import annotations

import asyncio

from websockets.protocol import State

#: First header byte of a final, unfragmented text frame (FIN + opcode 0x1).
_FIN_TEXT = 0x81


def frame_text(payload: bytes) -> bytes:
    """One unmasked text frame carrying ``payload`` (already UTF-8)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 65536:
        return bytes((_FIN_TEXT, 126)) + length.to_bytes(2, "big") + payload
    return bytes((_FIN_TEXT, 127)) + length.to_bytes(8, "big") + payload


class Outbox:
    """Frames waiting for the end of the current batch, for one connection."""

    __slots__ = ("_buffer", "_count", "_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: object) -> None:
        self._buffer = bytearray()
        self._count = 0
        self._transport: asyncio.Transport | None = transport
        self._protocol = protocol

    def detach(self) -> None:
        """The connection is gone: drop pending frames and the references to its socket."""
        self._buffer.clear()
        self._count = 0
        self._transport = None
        self._protocol = None

    def add(self, frame: bytes) -> None:
        self._buffer += frame
        self._count += 1

    def add_many(self, frames: bytes, count: int) -> None:
        """Append ``count`` frames already concatenated into one bytes object."""
        self._buffer += frames
        self._count += count

    @property
    def pending(self) -> int:
        return self._count

    def is_open(self) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        return getattr(self._protocol, "state", None) is State.OPEN

    def flush(self) -> int:
        """Write everything pending in one go; return the number of frames actually written."""
        count = self._count
        if not count:
            return 0
        data = bytes(self._buffer)
        self._buffer.clear()
        self._count = 0
        if self._transport is None or not self.is_open():
            return 0
        self._transport.write(data)
        return count

    def discard(self) -> int:
        """Drop everything pending unsent (a blackholed connection); return the frames dropped."""
        count = self._count
        self._buffer.clear()
        self._count = 0
        return count

    def buffered_bytes(self) -> int:
        """Bytes the transport has not handed to the kernel yet (backpressure signal)."""
        if self._transport is None or self._transport.is_closing():
            return 0
        return self._transport.get_write_buffer_size()
