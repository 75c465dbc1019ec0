"""The reader thread: recv -> decode -> route, the only per-frame hot path.

A plain thread (not an actor handler, so the ConnectionActor stays responsive) owns the
receiving half of one socket incarnation. It reads the socket in large chunks (see
frames.py: one syscall for every frame already received), decodes each message, groups
the diffs per code, and tells each BookActor ONE batch per chunk: one thread hop per
batch, not per diff.

Backpressure: if a BookActor's inbox already holds ``inbox_limit`` batches, the reader
stops feeding it and counts what it skipped. Those diffs are lost, which the book sees as
a seq gap and answers with a resync from a snapshot — overflow is never silent, and a
flood never grows memory without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pykka
import websocket
from loguru import logger

from depthkeeper.actors.frames import ConnectionClosed, FrameError, FrameReader
from depthkeeper.actors.messages import AckReceived, DiffBatch, PushBatch, UnwantedData
from depthkeeper.actors.promise import SocketState
from depthkeeper.actors.routing import Peers, RoutingTable
from depthkeeper.actors.wire import Ack, DecodeError, DepthPush, DiffEvent, HeartbeatAck, Ignored



@attrs.define
class ReaderCounters:
    """Written by the reader thread only; read (racily, monotonic ints) by stats."""

    frames: int = 0
    business: int = 0
    batches: int = 0
    malformed: int = 0
    unwanted: int = 0
    overflow_skipped: int = 0
    heartbeat_acks: int = 0
    acks: int = 0
    ignored: int = 0
    dead_book: int = 0
    malformed_by_kind: dict[str, int] = attrs.Factory(dict)


class Reader:
    """One reader thread for one socket incarnation (epoch)."""

    def __init__(self, ws: websocket.WebSocket, epoch: int, *, decode: Callable[[bytes], Any],
                 routes: RoutingTable, peers: Peers, counters: ReaderCounters, inbox_limit: int,
                 on_closed: Callable[[int, str], None], socket: SocketState | None = None) -> None:
        self.ws = ws
        self._socket = socket
        self.epoch = epoch
        self._decode = decode
        self._routes = routes
        self._peers = peers
        self.counters = counters
        self._inbox_limit = inbox_limit
        self._on_closed = on_closed
        self._log = logger.bind(actor="reader", epoch=epoch)
        self.thread = threading.Thread(target=self._run, name=f"depthkeeper-reader-{epoch}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        reason = "closed by peer"
        try:
            self._loop()
        except ConnectionClosed as exc:
            reason = f"closed by peer: {exc}"
        except (FrameError, websocket.WebSocketException, OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the reader must always report its end
            reason = f"reader crashed: {exc!r}"
            self._log.opt(exception=exc).error("reader thread crashed")
        self._on_closed(self.epoch, reason)

    def _loop(self) -> None:
        sock = self.ws.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket already closed")
        frames = FrameReader(sock.recv, self.ws.pong)
        decode, counters = self._decode, self.counters
        other = self._other
        while True:
            messages = frames.read_messages()
            if not messages:
                continue
            diffs: dict[str, list[DiffEvent]] = {}
            pushes: dict[str, DepthPush] = {}
            for data in messages:
                event = decode(data)
                if type(event) is DiffEvent:
                    batch = diffs.get(event.code)
                    if batch is None:
                        diffs[event.code] = [event]
                    else:
                        batch.append(event)
                else:
                    other(event, pushes)
            counters.frames += len(messages)
            self._flush(diffs, pushes)

    def _other(self, event: Any, pushes: dict[str, DepthPush]) -> None:
        counters = self.counters
        if isinstance(event, DepthPush):
            pushes[event.code] = event  # a newer full book supersedes an older one
        elif isinstance(event, DecodeError):
            counters.malformed += 1
            kind = event.kind.value
            counters.malformed_by_kind[kind] = counters.malformed_by_kind.get(kind, 0) + 1
            self._log.bind(event="malformed_frame").warning("malformed frame dropped ({}): {} | {}", kind,
                                                            event.detail, event.excerpt)
        elif isinstance(event, HeartbeatAck):
            counters.heartbeat_acks += 1
        elif isinstance(event, Ack):
            counters.acks += 1
            self._peers.tell_subscription(AckReceived(self.epoch, event))
        elif isinstance(event, Ignored):
            counters.ignored += 1

    def _flush(self, diffs: dict[str, list[DiffEvent]], pushes: dict[str, DepthPush]) -> None:
        if not diffs and not pushes:
            return
        now = time.monotonic()
        if self._socket is not None:
            self._socket.fed(self.epoch, now)
        table = self._routes.table
        counters = self.counters
        epoch = self.epoch
        for code, events in diffs.items():
            counters.business += len(events)
            self._send(table.get(code), code, len(events), DiffBatch(epoch, tuple(events), now))
        for code, push in pushes.items():
            counters.business += 1
            self._send(table.get(code), code, 1, PushBatch(epoch, push, now))

    def _send(self, ref: pykka.ActorRef[Any] | None, code: str, frames: int, message: Any) -> None:
        counters = self.counters
        if ref is None:
            counters.unwanted += frames
            self._peers.tell_subscription(UnwantedData(self.epoch, code, frames))
            return
        if ref.actor_inbox.qsize() >= self._inbox_limit:  # type: ignore[attr-defined]  # a queue.Queue
            counters.overflow_skipped += frames
            return
        try:
            ref.tell(message)
            counters.batches += 1
        except pykka.ActorDeadError:
            counters.dead_book += frames  # restarting or unsubscribed; the tree re-routes
