"""A real Reader thread on one end of a real socket pair; the test writes WebSocket frames into the other.

For reader-level tests that need a frame mix the simulator does not produce (thousands of
distinct codes, floods of unknown frame types): the Reader, its frame splitter and the codecs
are the real ones, and so is the socket; only the venue is the test.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from depthkeeper.actors.io.reader import Reader, ReaderCounters
from depthkeeper.actors.routing import Peers, RoutingTable


def ws_frame(payload: bytes) -> bytes:
    """One unmasked server text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class _Ws:
    """What the Reader needs of a websocket-client WebSocket: the socket and a pong."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def pong(self, payload: bytes) -> None:
        pass


class WirePair:
    """``send`` frames to a running Reader; ``close`` gives it EOF and waits for its end."""

    def __init__(self, *, decode: Callable[[bytes], Any], routes: RoutingTable | None = None,
                 peers: Peers | None = None, epoch: int = 1, inbox_limit: int = 10_000,
                 **reader_kwargs: Any) -> None:
        self.venue, client = socket.socketpair()
        self.counters = ReaderCounters()
        self.ended = threading.Event()
        self.reason = ""

        def closed(_epoch: int, reason: str) -> None:
            self.reason = reason
            self.ended.set()

        self.reader = Reader(_Ws(client), epoch, decode=decode, routes=routes or RoutingTable(),  # type: ignore[arg-type]
                             peers=peers or Peers(), counters=self.counters, inbox_limit=inbox_limit,
                             on_closed=closed, **reader_kwargs)
        self._client = client
        self.reader.start()

    def send(self, payloads: list[bytes]) -> None:
        self.venue.sendall(b"".join(ws_frame(p) for p in payloads))

    def close(self, timeout_s: float = 10.0) -> None:
        """EOF for the reader; returns once the reader thread reported its end."""
        try:
            self.venue.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        assert self.ended.wait(timeout_s), "the reader did not end at EOF"
        self.reader.thread.join(timeout_s)
        self.venue.close()
        self._client.close()
