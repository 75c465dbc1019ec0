"""The reader thread: recv -> decode -> route, the only per-frame hot path.

A plain thread (not an actor handler, so the ConnectionActor stays responsive) owns the
receiving half of one socket incarnation. It reads the socket in large chunks (see
frames.py: one syscall for every frame already received), decodes each message, groups
the diffs per code, and tells each BookActor ONE batch per chunk: one thread hop per
batch, not per diff. A BookActor on a shared dispatcher gets its batch through the data lane
(``Mailbox.post``): no envelope, and when the book is idle its turn runs on this thread
instead of waking the dispatcher's (a GIL hand-off per batch saved; a failure in that turn
fails only that book, exactly as on its dispatcher).

Backpressure: if a BookActor's inbox already holds ``inbox_limit`` batches, the reader
stops feeding it and counts what it skipped. Those diffs are lost, which the book sees as
a seq gap and answers with a resync from a snapshot — overflow is never silent, and a
flood never grows memory without bound.

Bad input never slows the data path (issue 12): a malformed frame costs its decode plus a
list append; at the end of the chunk they are counted per kind and logged through a
throttle (the first few one by one, then one summary line per interval). Every batch is
stamped ``received_at`` when its chunk was read, before decoding, so time spent on junk
counts as lag for ``max_lag_s``. Frames for codes without a book go to the
SubscriptionActor as one message per chunk, whatever the number of codes.
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

from depthkeeper.actors.core.logthrottle import ThrottledLog
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.wire import (
    Ack,
    DecodeError,
    DepthPush,
    DiffEvent,
    HeartbeatAck,
    Ignored,
    MalformedKind,
    RangeDiff,
)
from depthkeeper.actors.io.frames import ConnectionClosed, FrameError, FrameReader
from depthkeeper.actors.messages import AckReceived, DiffBatch, PushBatch, UnwantedData
from depthkeeper.actors.routing import Peers, RoutingTable
from depthkeeper.supervisor.otp.dispatch import Mailbox
from depthkeeper.supervisor.otp.tell import tell

#: codes per hand-over to the books (see _loop)
HANDOVER_CODES = 128
#: ``DiffBatch(...)`` without the NamedTuple's Python-level ``__new__`` (one per code per hand-over)
_new_tuple = tuple.__new__
#: malformed frames logged one by one at the start of a flood ...
BAD_FRAME_BURST = 5
#: ... then one summary line (counts per kind) per this many seconds
BAD_FRAME_SUMMARY_INTERVAL_S = 10.0

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
                 on_closed: Callable[[int, str], None], socket: SocketState | None = None,
                 bad_frame_summary_interval_s: float = BAD_FRAME_SUMMARY_INTERVAL_S) -> None:
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
        self._bad_log = ThrottledLog(self._log.bind(event="malformed_frame"), "malformed frames",
                                     burst=BAD_FRAME_BURST, interval_s=bad_frame_summary_interval_s)
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
        except Exception as exc:  # noqa: BLE001 - the reader must always report its end
            reason = f"reader crashed: {exc!r}"
            self._log.opt(exception=exc).error("reader thread crashed")
        self._bad_log.close(time.monotonic())
        self._on_closed(self.epoch, reason)

    def _loop(self) -> None:
        sock = self.ws.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket already closed")
        frames = FrameReader(sock.recv, self.ws.pong)
        decode, counters = self._decode, self.counters
        other, bad_log = self._other, self._bad_log
        monotonic = time.monotonic
        while True:
            messages = frames.read_messages()
            # stamped when the chunk is read, before any decoding: a book's max_lag_s must see
            # time the reader spent on this chunk (or on junk before it) as lag
            now = monotonic()
            if not messages:
                bad_log.tick(now)
                continue
            # Handed over every HANDOVER_CODES codes, not once per 256 KB chunk: a chunk can hold a
            # burst of every symbol's 100 ms event (~1000), and the first must not wait for the
            # decoding of the last; a few busy codes still get one batch each per chunk.
            diffs: dict[str, list[Any]] = {}
            pushes: dict[str, DepthPush] = {}
            rare: list[Any] = []
            for data in messages:
                event = decode(data)
                kind = type(event)
                if kind is DiffEvent or kind is RangeDiff:  # one-level diffs, or update-id range events
                    batch = diffs.get(event.code)
                    if batch is not None:
                        batch.append(event)
                        continue
                    diffs[event.code] = [event]
                elif kind is DepthPush:
                    pushes[event.code] = event  # a newer full book supersedes an older one
                else:
                    other(event, rare)
                    continue
                if len(diffs) + len(pushes) >= HANDOVER_CODES:
                    self._flush(diffs, pushes, now)
                    if rare:
                        self._rare(rare, now)
                    diffs, pushes, rare = {}, {}, []
            self._flush(diffs, pushes, now)
            if rare:
                self._rare(rare, now)
            counters.frames += len(messages)
            bad_log.tick(now)

    def _other(self, event: Any, rare: list[Any]) -> None:
        """Everything but data: counted now, or (errors, acks) kept for the end of the chunk."""
        kind = type(event)
        if kind is HeartbeatAck:
            self.counters.heartbeat_acks += 1
        elif kind is Ignored:
            self.counters.ignored += 1
        else:
            rare.append(event)

    def _rare(self, rare: list[Any], now: float) -> None:
        """Bad frames (counted per kind, logged through the throttle) and acks of one chunk.

        Acks are told after the chunk's data (``_flush``), so the SubscriptionActor sees every
        frame that preceded an ack on the wire before the ack itself: after the ack of our
        unsubscribe, a frame for that code is a real ghost, never one still in flight.
        """
        counters = self.counters
        errors: dict[MalformedKind, list[DecodeError]] = {}
        for event in rare:
            if type(event) is DecodeError:
                same = errors.get(event.kind)
                if same is None:
                    errors[event.kind] = [event]
                else:
                    same.append(event)
            elif type(event) is Ack:
                counters.acks += 1
                if self._socket is not None:
                    self._socket.answered(self.epoch, now)
                self._peers.tell_subscription(AckReceived(self.epoch, event))
            else:
                counters.ignored += 1  # a decoder returns nothing else; never fail the stream on it
        by_kind = counters.malformed_by_kind
        bad_log = self._bad_log
        for kind, same in errors.items():
            count = len(same)
            counters.malformed += count
            by_kind[kind.value] = by_kind.get(kind.value, 0) + count
            for error in same[:bad_log.admit(kind.value, now, count)]:
                bad_log.log.warning("malformed frame dropped ({}): {} | {}", kind.value, error.detail, error.excerpt)

    def _flush(self, diffs: dict[str, list[Any]], pushes: dict[str, DepthPush], now: float) -> None:
        if not diffs and not pushes:
            return
        table = self._routes.table
        # Only data for a book feeds the socket: frames for codes nobody subscribed (ghosts, a
        # flood of invented codes) must not hide that every subscribed stream has gone silent.
        if self._socket is not None and (any(c in table for c in diffs) or any(c in table for c in pushes)):
            self._socket.fed(self.epoch, now)
        counters = self.counters
        epoch = self.epoch
        unwanted: list[tuple[str, int]] | None = None
        for code, events in diffs.items():
            counters.business += len(events)
            ref = table.get(code)
            if ref is None:
                unwanted = unwanted or []
                unwanted.append((code, len(events)))
            else:
                self._send(ref, len(events), _new_tuple(DiffBatch, (epoch, tuple(events), now)))
        for code, push in pushes.items():
            counters.business += 1
            ref = table.get(code)
            if ref is None:
                unwanted = unwanted or []
                unwanted.append((code, 1))
            else:
                self._send(ref, 1, PushBatch(epoch, push, now))
        if unwanted:
            self._unwanted(unwanted)

    def _unwanted(self, counts: list[tuple[str, int]]) -> None:
        """Data for codes without a book: counted, and ONE message per chunk to the
        SubscriptionActor (it decides which are ghosts), however many codes a flood spreads over."""
        self.counters.unwanted += sum(frames for _, frames in counts)
        self._peers.tell_subscription(UnwantedData(self.epoch, tuple(counts)))

    def _send(self, ref: pykka.ActorRef[Any], frames: int, message: Any) -> None:
        counters = self.counters
        inbox: Any = ref.actor_inbox  # a Mailbox (on a dispatcher) or a queue
        if inbox.qsize() >= self._inbox_limit:
            counters.overflow_skipped += frames
            return
        # a book on a dispatcher: the data lane, and its turn runs here when it is idle (Mailbox.post)
        if inbox.post(message) if type(inbox) is Mailbox else tell(ref, message):
            counters.batches += 1
        else:
            counters.dead_book += frames  # restarting or unsubscribed; the tree re-routes
