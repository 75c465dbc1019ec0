"""The Binance spot diff-depth dialect's handler. The protocol page (endpoints, methods, limits,
config keys, faults) is ``simulator/binance.md``, written from Binance's spot docs independently of
depthkeeper's client."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from depthkeeper.simulator.binance_commands import Command, parse_request
from depthkeeper.simulator.binance_connections import CLOSE_TOO_MANY_REQUESTS, BinanceConnections, Session, url_streams
from depthkeeper.simulator.binance_rest import BinanceRest, GeneratedDepth
from depthkeeper.simulator.binance_windows import DepthWindows, EventRenderer
from depthkeeper.simulator.binance_wire import (
    BOOK_TICKER,
    DEPTH_1S,
    DEPTH_100MS,
    DEPTH_1000MS,
    GENERATED_KINDS,
    MSG_INVALID_STREAM,
    MSG_TOO_MANY_SUBSCRIPTIONS,
    StreamMessage,
    WsCode,
    book_ticker,
    combined,
    depth_update,
    error_reply,
    parse_stream,
    price_text,
    render_levels,
    result_reply,
    size_text,
)
from depthkeeper.simulator.faults import UNKNOWN_CODE, MalformedKind, RestFaults
from depthkeeper.simulator.market import DiffTuple, SymbolMarket
from depthkeeper.simulator.metered import metered_connection_class
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.replay import Record, Replay
from depthkeeper.simulator.send_log import FLUSH_INTERVAL_S, SendLog
from depthkeeper.simulator.venue import CloseRequest, DialectHandler, HttpReply, Reply, Venue

#: Counters this dialect adds (present from the start, so readers see 0 rather than a missing key).
COUNTERS = (
    "binance_messages_received", "binance_message_rate_exceeded", "binance_message_rate_closes",
    "binance_connection_attempts_over_limit", "binance_url_too_long", "binance_url_too_many_streams",
    "binance_pings_sent", "binance_pong_timeouts", "binance_lifetime_cuts", "binance_rest_429", "binance_rest_418",
    "replay_records_sent", "replay_finished",
)
#: Handshake line slack beyond the URL itself ("GET ", " HTTP/1.1", CRLF).
_REQUEST_LINE_SLACK = 64
#: ``binance_collect_between_windows``: a full collection once this many younger ones ran since the
#: last (the collector's own default cadence, ``gc.get_threshold()[2]``), but at a moment of our choosing
FULL_COLLECTION_EVERY = 10


class BinanceDialect(DialectHandler):
    """Binance spot over the simulator's venue (generated market or a recording)."""

    def __init__(self, venue: Venue, replay: Replay | None = None) -> None:
        super().__init__(venue)
        config = self.config
        self._replay = replay
        self.kind_bits = {kind: 1 << i for i, kind in enumerate(replay.kinds)} if replay else dict(GENERATED_KINDS)
        self.rest_api = BinanceRest(venue, replay.market if replay is not None else GeneratedDepth(venue))
        self.connections = BinanceConnections(venue)
        self._fast, self._slow = DepthWindows(), DepthWindows()
        self._renderer = EventRenderer(config.symbols, config.stamp)
        self._send_log = SendLog(config.binance_send_log, config.symbols) if config.binance_send_log else None
        self._tops: dict[str, tuple[int, int, int, int, int]] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        for name in COUNTERS:
            venue.registry.counters[name] += 0
        self._connection_class = metered_connection_class(
            self.connections.gate, config.binance_max_url_bytes + _REQUEST_LINE_SLACK
        )

    # -- handshake and connections (binance_connections.py) ------------------------------------

    def accepts_ws_path(self, path: str) -> bool:
        return path in ("/ws", "/stream", "/stream/") or path.startswith("/ws/")

    def admit_ws(self, request_path: str, remote_ip: str) -> HttpReply | None:
        return self.connections.admit(request_path, remote_ip)

    def connection_class(self) -> type[Any]:
        return self._connection_class

    def on_open(self, conn: ConnState) -> list[asyncio.Task[None]]:
        session, tasks = self.connections.opened(conn)
        names = url_streams(conn.ws.request.path if conn.ws.request is not None else "")
        self._add(session, [name for name in names if parse_stream(name) is not None])
        return tasks

    def on_close(self, conn: ConnState) -> None:
        self.connections.closed(conn)

    # -- requests -------------------------------------------------------------------------------

    def on_text(self, conn: ConnState, text: str, now_s: float) -> Reply:
        parsed = parse_request(text)
        registry = self.venue.registry
        registry.log_command(conn, now_s, parsed.log_id, parsed.log_method, parsed.log_codes, text)
        if parsed.command is None:
            registry.counters["invalid_commands"] += 1
        session = self.connections.get(conn) or self.connections.session(conn.ws)
        session.texts_handled += 1
        reply = self._execute(session, parsed.command) if parsed.command is not None else Reply(
            payloads=(parsed.error,) if parsed.error else ()
        )
        if session.close_after is not None and session.texts_handled >= session.close_after:
            return Reply(reply.payloads, CloseRequest(CLOSE_TOO_MANY_REQUESTS, "Too many requests"))
        return reply

    def _execute(self, session: Session, command: Command) -> Reply:
        method, request_id = command.method, command.request_id
        if method == "LIST_SUBSCRIPTIONS":
            return Reply(payloads=(result_reply(list(session.streams), request_id),))
        if method == "GET_PROPERTY":
            return Reply(payloads=(result_reply(session.combined, request_id),))
        if method == "SET_PROPERTY":
            session.combined = bool(command.value)
            return Reply(payloads=(result_reply(None, request_id),))
        if not command.streams:
            self.venue.registry.counters["empty_lists"] += 1  # legal, and a waste of the 5 messages/s
        problem = self._subscribe(session, command.streams) if method == "SUBSCRIBE" else None
        if problem is not None:
            self.venue.registry.counters["invalid_commands"] += 1
            return Reply(payloads=(error_reply(*problem, request_id),))
        if method == "UNSUBSCRIBE":
            self._unsubscribe(session, command.streams)
        return Reply(payloads=(result_reply(None, request_id),) if self.config.send_acks else ())

    def _subscribe(self, session: Session, names: tuple[str, ...]) -> tuple[int, str] | None:
        registry, codes = self.venue.registry, self.venue.market.symbols
        parsed = [parse_stream(name) for name in names]
        if any(stream is None for stream in parsed):
            return WsCode.INVALID_REQUEST, MSG_INVALID_STREAM
        unknown = [s.code for s in parsed if s is not None and s.code not in codes]
        registry.counters["rejected_codes"] += len(unknown)
        if unknown and self.config.binance_reject_unknown_symbols:
            return WsCode.INVALID_REQUEST, MSG_INVALID_STREAM
        if self.venue.faults.take_rejected(list(dict.fromkeys(s.code for s in parsed if s is not None))):
            return WsCode.INVALID_REQUEST, MSG_INVALID_STREAM  # FaultKind.REJECT: the whole request fails
        new = list(dict.fromkeys(name for name in names if name not in session.streams))
        registry.counters["duplicate_subscribes"] += len(names) - len(new)
        if len(session.streams) + len(new) > self.config.binance_max_streams_per_connection:
            return WsCode.TOO_MANY_SUBSCRIPTIONS, MSG_TOO_MANY_SUBSCRIPTIONS
        self._add(session, new)
        return None

    def _add(self, session: Session, names: list[str]) -> None:
        codes = self.venue.market.symbols
        limit = self.config.binance_max_streams_per_connection
        for name in names:
            stream = parse_stream(name)
            if stream is None or name in session.streams or len(session.streams) >= limit:
                continue
            bit = self.kind_bits.get(stream.kind, 0) if stream.code in codes else 0
            session.streams[name] = (stream.code, bit)
        self._sync(session)

    def _unsubscribe(self, session: Session, names: tuple[str, ...]) -> None:
        for name in names:
            if session.streams.pop(name, None) is None:
                self.venue.registry.counters["unsubscribes_not_subscribed"] += 1
        self._sync(session)

    def _sync(self, session: Session) -> None:
        """Mirror the session's data streams into the registry: code -> mask of stream bits."""
        conn = session.conn
        if conn is None:
            return
        masks: dict[str, int] = {}
        for code, bit in session.streams.values():
            if bit:
                masks[code] = masks.get(code, 0) | bit
        registry = self.venue.registry
        for code in [c for c in conn.subscriptions if c not in masks]:
            registry.unsubscribe(conn, code)
        for code, mask in masks.items():
            if conn.subscriptions.get(code) != mask:
                registry.subscribe(conn, code, mask)

    # -- business messages ----------------------------------------------------------------------

    def _name(self, code: str, kind: str) -> bytes:
        name = self._names.get((code, kind))
        if name is None:
            name = self._names[(code, kind)] = f"{code.lower()}@{kind}".encode()
        return name

    def publish(self, symbol: SymbolMarket, diffs: list[DiffTuple]) -> None:
        """Accumulate a batch into the windows of the streams somebody watches (generated market)."""
        subscribers = self.venue.registry.subscribers.get(symbol.code)
        if not subscribers or not diffs:
            return
        wanted = 0
        for mask in subscribers.values():
            wanted |= mask
        era, bits = self.venue.market.era, GENERATED_KINDS
        if wanted & bits[DEPTH_100MS]:
            self._fast.add(symbol.code, era, diffs)
        if wanted & (bits[DEPTH_1S] | bits[DEPTH_1000MS]):
            self._slow.add(symbol.code, era, diffs)
        if self.config.binance_interval_scale == 0:
            self._flush(self._fast, (DEPTH_100MS,))
            self._flush(self._slow, (DEPTH_1S, DEPTH_1000MS))
        if wanted & bits[BOOK_TICKER]:
            self._book_ticker(symbol, era)

    def _book_ticker(self, symbol: SymbolMarket, era: int) -> None:
        if not symbol.bids or not symbol.asks:
            return
        bid, ask = max(symbol.bids), min(symbol.asks)
        top = (era, bid, symbol.bids[bid], ask, symbol.asks[ask])
        if self._tops.get(symbol.code) == top:
            return
        self._tops[symbol.code] = top
        payload = book_ticker(symbol.seq, symbol.code.encode(), (price_text(bid), size_text(top[2])),
                              (price_text(ask), size_text(top[4])))
        self.deliver(symbol.code, StreamMessage.of(GENERATED_KINDS[BOOK_TICKER], self._name(symbol.code, BOOK_TICKER),
                                                   payload))

    def _flush(self, windows: DepthWindows, kinds: tuple[str, ...]) -> None:
        """Turn every pending window into one event per stream kind somebody watches."""
        pending = windows.take()
        if not pending:
            return
        venue = self.venue
        if venue.faults.stalled(venue.now_s()):
            venue.registry.counters["pushes_suppressed_stall"] += len(pending)
            return
        era, now_s = venue.market.era, time.time()
        event_ms = int(now_s * 1000)
        for code, window in pending.items():
            subscribers = venue.registry.subscribers.get(code)
            if window.era != era or not subscribers:
                continue
            payload = self._renderer.render(code, window, event_ms, now_s)
            if self._send_log is not None:
                self._send_log.add(code, era, window.last, now_s)
            for kind in kinds:
                bit = GENERATED_KINDS[kind]
                if any(mask & bit for mask in subscribers.values()):
                    venue.deliver_routed(code, StreamMessage.of(bit, self._name(code, kind), payload))

    def recorded_message(self, record: Record) -> StreamMessage:
        """A recorded frame as sent: the recorded line (combined) or its data part (raw)."""
        return StreamMessage.of(self.kind_bits.get(record.kind, 0), b"", record.raw, record.combined)

    def deliver(self, code: str, message: Any) -> None:
        subscribers = self.venue.registry.subscribers.get(code)
        if not subscribers:
            return
        sent = 0
        for conn, mask in subscribers.items():
            if mask & message.bit:
                session = self.connections.get(conn)
                conn.outbox.add(message.combined_frame if session is None or session.combined else message.raw_frame)
                self.venue.dirty.add(conn)
                sent += 1
        self.venue.registry.counters["pushes_sent"] += sent

    async def run(self) -> None:
        """The window clock of the generated market (and the send log's writer, when one is kept)."""
        try:
            if self._replay is None and self.config.binance_interval_scale > 0:
                await self._window_clock()
            elif self._send_log is not None:
                while True:
                    await asyncio.sleep(FLUSH_INTERVAL_S)
                    self._send_log.flush()
        finally:
            if self._send_log is not None:
                self._send_log.close()

    async def _window_clock(self) -> None:
        """Flush 100 ms and 1 s windows on time."""
        scale = self.config.binance_interval_scale
        fast_s, slow_s = 0.1 * scale, 1.0 * scale
        collect = self.config.binance_collect_between_windows
        venue = self.venue
        next_fast_s, next_slow_s = venue.now_s() + fast_s, venue.now_s() + slow_s
        while True:
            await asyncio.sleep(max(0.0, min(next_fast_s, next_slow_s) - venue.now_s()))
            now_s = venue.now_s()
            if now_s >= next_fast_s:
                self._flush(self._fast, (DEPTH_100MS,))
                next_fast_s = max(next_fast_s + fast_s, now_s)
            if now_s >= next_slow_s:
                self._flush(self._slow, (DEPTH_1S, DEPTH_1000MS))
                next_slow_s = max(next_slow_s + slow_s, now_s)
            venue.flush()
            if self._send_log is not None:
                self._send_log.tick()
            if collect and gc.get_count()[2] >= FULL_COLLECTION_EVERY:
                gc.collect()  # the window just sent: a pause now delays nothing already stamped

    # -- REST -----------------------------------------------------------------------------------

    def http_front(self, method: str, path: str, params: dict[str, list[str]], remote_ip: str) -> HttpReply | None:
        return self.rest_api.front(method, path, params, remote_ip)

    def rest_headers(self, remote_ip: str) -> tuple[tuple[str, str], ...]:
        return self.rest_api.headers(remote_ip)

    def rest(self, params: dict[str, list[str]], faults: RestFaults) -> HttpReply:
        return self.rest_api.depth(params, faults)

    def rest_failure(self, status: int) -> HttpReply:
        return self.rest_api.failure(status)

    # -- bad frames -----------------------------------------------------------------------------

    def malformed(self, kind: MalformedKind, conn: ConnState) -> bytes:
        code = self.target_code(conn)
        event_ms = int(time.time() * 1000)
        if kind is MalformedKind.BAD_JSON:
            payload = b'{"e":"depthUpdate","E":%d,"s":"%s","U":' % (event_ms, code.encode())
        elif kind is MalformedKind.MISSING_FIELD:
            payload = b'{"e":"depthUpdate","E":%d,"s":"%s","b":[],"a":[]}' % (event_ms, code.encode())
        elif kind is MalformedKind.WRONG_TYPE:
            payload = b'{"e":"depthUpdate","E":%d,"s":"%s","U":"oops","u":"oops","b":"garbage","a":[]}' % (
                event_ms, code.encode())
        else:
            code = UNKNOWN_CODE
            payload = (b'{"e":"depthUpdate","E":%d,"s":"%s","U":1,"u":1,"b":[["1.00000000","1.00000000"]],"a":[]}'
                       % (event_ms, code.encode()))
        session = self.connections.get(conn)
        if session is None or not session.combined:
            return payload
        stream = self._name(code, DEPTH_100MS)
        if kind is MalformedKind.BAD_JSON:
            return b'{"stream":"%s","data":%s' % (stream, payload)
        return combined(stream, payload)

    # -- issue 12 faults -------------------------------------------------------------------------

    def _depth_bits(self) -> int:
        bits = 0
        for kind, bit in self.kind_bits.items():
            if kind.startswith("depth"):
                bits |= bit
        return bits

    def render_future(self, code: str, seq: int) -> StreamMessage:
        """A depth event ``U = u = seq`` that re-states the best level (no real change)."""
        symbol = self.venue.market.get(code)
        bids: list[tuple[bytes, bytes]] = []
        asks: list[tuple[bytes, bytes]] = []
        if symbol.bids:
            price = max(symbol.bids)
            bids.append((price_text(price), size_text(symbol.bids[price])))
        elif symbol.asks:
            price = min(symbol.asks)
            asks.append((price_text(price), size_text(symbol.asks[price])))
        payload = depth_update(int(time.time() * 1000), code.encode(), seq, seq, render_levels(bids),
                               render_levels(asks))
        return StreamMessage.of(self._depth_bits(), self._name(code, DEPTH_100MS), payload)

    def unknown_type_payload(self, index: int) -> bytes:
        return b'{"stream":"!depthkeeperUnknown","data":{"e":"depthkeeperUnknown","E":0,"n":%d}}' % index

    def code_payload(self, code: str) -> bytes:
        payload = (b'{"e":"depthUpdate","E":%d,"s":"%s","U":1,"u":1,"b":[["1.00000000","1.00000000"]],"a":[]}'
                   % (int(time.time() * 1000), code.encode()))
        return combined(self._name(code, DEPTH_100MS), payload)

