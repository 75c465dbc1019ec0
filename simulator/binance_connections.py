"""Binance connections: one session per socket, and the limits and clocks that act on sockets.

- **Admission** (the HTTP upgrade): 300 handshakes per IP per 5 minutes (HTTP 429 beyond; our
  choice, Binance does not document the answer), the URL length (HTTP 414) and the stream count in
  the URL (HTTP 400).
- **The frame gate**: every incoming text, binary, ping and pong frame counts toward the 5/s limit
  (simulator/metered.py shows them to us). Over it, the excess frame and everything after it are
  never processed and the connection is closed with 1008 "Too many requests", after the replies
  to the requests that came within the limit.
- **The clock**: a server ping every ``binance_ping_interval_s``; a ping unanswered for
  ``binance_pong_timeout_s`` closes with 1001 "Pong timeout"; every connection is closed with 1001
  "Connection lifetime expired" after 24 h times ``binance_lifetime_scale``.

In lenient mode (``binance_enforce_limits = false``) the message rate and handshake limits only
count. Everything runs on the event-loop thread.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

from loguru import logger
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from depthkeeper.simulator.binance_limits import ConnectionAttempts, MessageRate
from depthkeeper.simulator.binance_wire import MSG_TOO_MANY_SUBSCRIPTIONS, WsCode
from depthkeeper.simulator.metered import close_now
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.venue import HttpReply, Venue

CLOSE_TOO_MANY_REQUESTS = 1008
CLOSE_GOING_AWAY = 1001

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


class Session:
    """One connection's binance state: its streams (name -> (code, bit)), framing, message rate."""

    __slots__ = ("close_after", "combined", "conn", "rate", "streams", "texts_accepted", "texts_handled", "ws")

    def __init__(self, ws: Any, combined_frames: bool, rate_limit: int) -> None:
        self.ws = ws
        self.conn: ConnState | None = None
        self.combined = combined_frames
        self.streams: dict[str, tuple[str, int]] = {}
        self.rate = MessageRate(rate_limit)
        #: text frames let through by the gate / answered by on_text; close once this many are answered
        self.texts_accepted = 0
        self.texts_handled = 0
        self.close_after: int | None = None


def url_streams(request_path: str) -> list[str]:
    """Stream names given in the handshake URL (``/ws/a/b`` or ``/stream?streams=a/b``)."""
    path, _, query = request_path.partition("?")
    if path.startswith("/ws/"):
        return [urllib.parse.unquote(part) for part in path[4:].split("/") if part]
    if path.startswith("/stream"):
        value = urllib.parse.parse_qs(query).get("streams", [""])[0]
        return [name for name in value.split("/") if name]
    return []


class BinanceConnections:
    """The sessions of one venue's binance connections and the limits on them."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.config = venue.config
        self._attempts = ConnectionAttempts(
            self.config.binance_max_connections_per_window, self.config.binance_connection_window_s
        )
        self._by_ws: dict[Any, Session] = {}
        self._by_conn: dict[ConnState, Session] = {}

    def get(self, conn: ConnState) -> Session | None:
        return self._by_conn.get(conn)

    def admit(self, request_path: str, remote_ip: str) -> HttpReply | None:
        counters, config = self.venue.registry.counters, self.config
        if not self._attempts.hit(remote_ip, self.venue.now_s()):
            counters["binance_connection_attempts_over_limit"] += 1
            if config.binance_enforce_limits:
                limit = f"{config.binance_max_connections_per_window} per {config.binance_connection_window_s:g}s"
                return HttpReply(429, {"code": -1003, "msg": f"Too many connection attempts; limit is {limit} per IP."})
        if len(request_path) > config.binance_max_url_bytes:
            counters["binance_url_too_long"] += 1
            return HttpReply(414, {"code": -1, "msg": f"URL longer than {config.binance_max_url_bytes} bytes."})
        if len(set(url_streams(request_path))) > config.binance_max_streams_per_connection:
            counters["binance_url_too_many_streams"] += 1
            return HttpReply(400, {"code": WsCode.TOO_MANY_SUBSCRIPTIONS, "msg": MSG_TOO_MANY_SUBSCRIPTIONS})
        return None

    def session(self, ws: Any) -> Session:
        session = self._by_ws.get(ws)
        if session is None:
            path = ws.request.path if ws.request is not None else ""
            session = self._by_ws[ws] = Session(ws, path.startswith("/stream"), self.config.binance_max_messages_per_s)
        return session

    def gate(self, ws: Any, opcode: Opcode) -> bool:
        """Every incoming text/binary/ping/pong frame: count it; over the rate, close with 1008.

        Requests that came within the limit are still answered: when some are queued unanswered,
        the close follows the last one's reply (`BinanceDialect.on_text`); the excess frame and everything after
        it are never processed."""
        session = self.session(ws)
        counters = self.venue.registry.counters
        counters["binance_messages_received"] += 1
        conn = session.conn
        if conn is not None:
            conn.messages_received += 1
        if session.rate.hit(self.venue.now_s()):
            if opcode in (Opcode.TEXT, Opcode.BINARY):
                session.texts_accepted += 1
            return True
        counters["binance_message_rate_exceeded"] += 1
        if conn is not None:
            conn.messages_over_limit += 1
        if not self.config.binance_enforce_limits:
            return True
        counters["binance_message_rate_closes"] += 1
        log.info("binance message rate exceeded: closing conn_id={conn_id}", conn_id=conn.conn_id if conn else None)
        if session.texts_handled < session.texts_accepted:
            session.close_after = session.texts_accepted
            return False
        if conn is not None:
            self.venue.registry.remove(conn)
        close_now(ws, CLOSE_TOO_MANY_REQUESTS, "Too many requests")
        return False

    def opened(self, conn: ConnState) -> tuple[Session, list[asyncio.Task[None]]]:
        """Attach a registered connection to its session; start its clock if it has one."""
        session = self.session(conn.ws)
        session.conn = conn
        conn.messages_received, conn.messages_over_limit = session.rate.received, session.rate.excess
        self._by_conn[conn] = session
        if self.config.binance_ping_interval_s > 0 or self.config.binance_lifetime_s > 0:
            return session, [asyncio.create_task(self.clock(conn), name=f"binance-clock-{conn.conn_id}")]
        return session, []

    def closed(self, conn: ConnState) -> None:
        session = self._by_conn.pop(conn, None)
        if session is not None:
            self._by_ws.pop(session.ws, None)

    async def clock(self, conn: ConnState) -> None:
        """Server pings, the pong timeout and the connection's lifetime."""
        config, venue, ws = self.config, self.venue, conn.ws
        interval_s, timeout_s = config.binance_ping_interval_s, config.binance_pong_timeout_s
        opened_s = venue.now_s()
        cut_at_s = opened_s + config.binance_lifetime_s if config.binance_lifetime_s > 0 else float("inf")
        next_ping_s = opened_s + interval_s if interval_s > 0 else float("inf")
        pending: list[tuple[float, asyncio.Future[float]]] = []
        while conn.conn_id in venue.registry.open:
            now_s = venue.now_s()
            pending = [(sent_s, pong) for sent_s, pong in pending if not pong.done()]
            if now_s >= cut_at_s or (pending and now_s - pending[0][0] >= timeout_s):
                reason = "Connection lifetime expired" if now_s >= cut_at_s else "Pong timeout"
                venue.registry.counters["binance_lifetime_cuts" if now_s >= cut_at_s else "binance_pong_timeouts"] += 1
                venue.registry.remove(conn)
                await ws.close(CLOSE_GOING_AWAY, reason)
                return
            if now_s >= next_ping_s:
                try:
                    pending.append((now_s, await ws.ping(str(time.time_ns()))))
                except ConnectionClosed:
                    return
                venue.registry.counters["binance_pings_sent"] += 1
                next_ping_s = now_s + interval_s
                continue
            wake_s = min(cut_at_s, next_ping_s, pending[0][0] + timeout_s if pending else float("inf"))
            await asyncio.sleep(max(0.0, wake_s - now_s))
