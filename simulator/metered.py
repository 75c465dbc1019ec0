"""A websockets server connection that sees every incoming frame, and accepts long handshake URLs.

Binance counts PING and PONG frames toward its 5 messages/s limit, but the websockets asyncio API
answers pings inside the protocol and hands the application only data frames. Its
``ServerConnection.process_event`` (private, stable across 13..17; the binance tests cover it) is
where every parsed frame passes, so a subclass can count each one and refuse the rest of the
connection's input once a gate says no.

websockets also caps each handshake line at ``websockets.http11.MAX_LINE_LENGTH`` (8192, read from
``WEBSOCKETS_MAX_LINE_LENGTH`` at import). Clients such as cryptofeed put up to 1024 streams in the
URL (about 20 KB). Rather than change that process-wide setting (a library must not), each
connection of a binance server re-arms its own handshake parser with a larger line limit: the
parser has consumed nothing yet when the connection object is built.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from websockets import http11
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

#: Frames that count as incoming messages (close frames do not).
COUNTED_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG})

#: ``gate(connection, opcode) -> accept``; False drops this frame and every later counted one.
FrameGate = Callable[[ServerConnection, Opcode], bool]


def _raise_line_limit(protocol: ServerProtocol, max_line_bytes: int) -> None:
    """Restart the (still idle) handshake parser with a per-connection line limit."""
    read_line = protocol.reader.read_line

    def read_long_line(limit: int, too_long_exc_type: type[Exception] = RuntimeError) -> Generator[None, None, Any]:
        return read_line(max(limit, max_line_bytes), too_long_exc_type)

    protocol.reader.read_line = read_long_line  # type: ignore[method-assign,assignment]
    protocol.parser = protocol.parse()
    next(protocol.parser)


def metered_connection_class(gate: FrameGate, max_line_bytes: int) -> type[ServerConnection]:
    """A `ServerConnection` subclass bound to one server's gate and handshake line limit."""

    class MeteredConnection(ServerConnection):
        def __init__(self, protocol: ServerProtocol, server: Any, **kwargs: Any) -> None:
            super().__init__(protocol, server, **kwargs)
            self.refusing = False
            if max_line_bytes > http11.MAX_LINE_LENGTH:
                _raise_line_limit(protocol, max_line_bytes)

        def process_event(self, event: Any) -> None:
            if self.request is not None and isinstance(event, Frame) and event.opcode in COUNTED_OPCODES:
                if self.refusing:
                    return
                if not gate(self, event.opcode):
                    self.refusing = True
                    return
            super().process_event(event)

    return MeteredConnection


def close_now(ws: ServerConnection, code: int, reason: str) -> None:
    """Send a close frame and close the TCP connection at once (no wait for the peer's close).

    Usable from synchronous code on the loop (the frame gate runs inside ``data_received``).
    """
    try:
        ws.protocol.send_close(code, reason)
    except InvalidState:  # already closing
        ws.transport.abort()
        return
    for data in ws.protocol.data_to_send():
        if data:
            ws.transport.write(data)
    ws.transport.close()
