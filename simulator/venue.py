"""The venue's shared state and the contract every dialect implements.

One `Venue` per running simulator: the market (truth), the registry (connections and
subscriptions), the fault board, the frozen flag. It lives on the event-loop thread only; the
server, the pump, the dialects and the control endpoints all run there, so none of it needs a
lock. A `DialectHandler` turns that state into one wire protocol (article or alltick): it
answers client frames, renders business messages and REST snapshots, and shapes bad frames.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Iterable
from typing import Any

import attrs
import orjson

from depthkeeper.simulator.config import SimConfig
from depthkeeper.simulator.errors import FaultNotSupported
from depthkeeper.simulator.faults import FaultBoard, MalformedKind, RestFaults
from depthkeeper.simulator.market import DiffTuple, Market, SymbolMarket
from depthkeeper.simulator.registry import ConnState, Registry
from depthkeeper.simulator.wire import frame_text


def dumps(value: Any) -> bytes:
    """Compact JSON for replies, REST and control (not for the diff hot path)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


@attrs.frozen
class CloseRequest:
    """Close the connection with a close frame after sending the reply."""

    code: int
    reason: str


@attrs.frozen
class Reply:
    """What the server answers to one client frame."""

    payloads: tuple[bytes, ...] = ()
    close: CloseRequest | None = None


@attrs.frozen
class HttpReply:
    """A JSON HTTP answer (REST snapshots and control endpoints), with any extra headers."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


class Venue:
    """Shared state of one running simulator (event-loop thread only)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.market = Market(
            config.symbols, seed=config.seed, levels=config.levels, record_history=config.record_history
        )
        self.registry = Registry()
        self.faults = FaultBoard()
        self.frozen = False
        self.dirty: set[ConnState] = set()
        self.dialect: DialectHandler  # set by the server right after construction

    @staticmethod
    def now_s() -> float:
        """Monotonic seconds, the same clock asyncio's loop and the command log use."""
        return time.monotonic()

    def add_frames(self, conn: ConnState, frames: Iterable[bytes]) -> None:
        """Queue already-framed messages on a connection until the end of the batch."""
        for frame in frames:
            conn.outbox.add(frame)
        self.dirty.add(conn)

    def flush(self) -> None:
        """End of a batch: one transport write per connection that has something pending."""
        dirty, self.dirty = self.dirty, set()
        blackhole = self.faults.blackhole
        for conn in dirty:
            if blackhole and conn.conn_id in blackhole:  # lost on the path: see blackhole.py
                self.faults.counts["blackhole_frames_discarded"] += conn.outbox.discard()
                continue
            self.registry.count_sent(conn, conn.outbox.flush())

    def send_now(self, conn: ConnState, payloads: Iterable[bytes]) -> None:
        """Send replies immediately (acks, responses, injected frames)."""
        self.add_frames(conn, (frame_text(payload) for payload in payloads))
        self.flush()

    def deliver_routed(self, code: str, message: Any) -> None:
        """Deliver one business message, through the stream faults when any are armed."""
        if not self.faults.stream_active:
            self.dialect.deliver(code, message)
            return
        for routed in self.faults.route(code, message):
            self.dialect.deliver(code, routed)

    def publish(self, changes: list[tuple[SymbolMarket, list[DiffTuple]]]) -> None:
        """Fan a batch of generated diffs out to the subscribers, then flush once."""
        now_s = self.now_s()
        total = 0
        stalled = self.faults.stalled(now_s)
        for symbol, diffs in changes:
            total += len(diffs)
            if not diffs or symbol.code not in self.registry.subscribers:
                continue
            if stalled:
                self.registry.counters["pushes_suppressed_stall"] += 1
                continue
            self.dialect.publish(symbol, diffs)
        self.registry.counters["diffs_generated"] += total
        self.flush()

    def release_held(self) -> None:
        """Send messages an unfinished reorder still holds (freeze must let clients converge)."""
        for code, message in self.faults.release_held():
            self.dialect.deliver(code, message)
        self.flush()


class DialectHandler(abc.ABC):
    """One wire protocol on top of the venue (see ``protocols/*.md``)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.config = venue.config

    @abc.abstractmethod
    def on_text(self, conn: ConnState, text: str, now_s: float) -> Reply:
        """Handle one client frame (log it, count it, apply it) and say what to answer."""

    @abc.abstractmethod
    def publish(self, symbol: SymbolMarket, diffs: list[DiffTuple]) -> None:
        """Render a symbol's new diffs as business messages and deliver them (via faults)."""

    @abc.abstractmethod
    def deliver(self, code: str, message: Any) -> None:
        """Queue one rendered business message on every subscriber of ``code``."""

    @abc.abstractmethod
    def rest(self, params: dict[str, list[str]], faults: RestFaults) -> HttpReply:
        """Answer one REST snapshot request (after any injected delay)."""

    @abc.abstractmethod
    def rest_failure(self, status: int) -> HttpReply:
        """The body of an injected REST failure, in this dialect's error shape."""

    @abc.abstractmethod
    def malformed(self, kind: MalformedKind, conn: ConnState) -> bytes:
        """One bad frame payload of the given kind, aimed at this connection."""

    # -- issue 12 faults: optional, a dialect without the notion raises FaultNotSupported ----------

    def render_future(self, code: str, seq: int) -> Any:
        """One business message for ``code`` carrying ``seq`` (far ahead), in `deliver`'s format."""
        raise FaultNotSupported(f"{self.config.dialect.value}: no future-seq messages")

    def unknown_type_payload(self, index: int) -> bytes:
        """The ``index``-th well-formed frame of a message type the protocol does not define."""
        raise FaultNotSupported(f"{self.config.dialect.value}: no unknown-type frames")

    def code_payload(self, code: str) -> bytes:
        """One well-formed business frame for ``code``, a code the venue does not list."""
        raise FaultNotSupported(f"{self.config.dialect.value}: no distinct-code frames")

    # -- optional hooks (defaults: one WebSocket path, one REST path, nothing else) ---------------

    def accepts_ws_path(self, path: str) -> bool:
        """Whether a WebSocket upgrade to ``path`` (without the query) is served."""
        return path == self.config.ws_path

    def admit_ws(self, request_path: str, remote_ip: str) -> HttpReply | None:
        """Refuse an upgrade (limits, bad URL) with an HTTP answer, or None to go on."""
        return None

    def http_front(self, method: str, path: str, params: dict[str, list[str]], remote_ip: str) -> HttpReply | None:
        """Answer a plain HTTP request before the snapshot route (other endpoints, rate limits); None = go on."""
        return None

    def rest_headers(self, remote_ip: str) -> tuple[tuple[str, str], ...]:
        """Extra headers on the snapshot route's answers."""
        return ()

    def connection_class(self) -> type[Any] | None:
        """A websockets ``ServerConnection`` subclass for this dialect, or None for the default."""
        return None

    def on_open(self, conn: ConnState) -> list[asyncio.Task[None]]:
        """A connection was registered; return tasks that live as long as it (cancelled at close)."""
        return []

    def on_close(self, conn: ConnState) -> None:
        """A connection's handler is ending (after any fault or close)."""

    async def run(self) -> None:
        """A background task of the dialect for the server's lifetime (cancelled at stop)."""

    def target_code(self, conn: ConnState) -> str:
        """A code to put in injected frames: one the connection watches, else the first symbol."""
        return min(conn.subscriptions) if conn.subscriptions else self.config.symbols[0]
