"""One port, three doors: WebSocket upgrades, REST snapshots, and ``/_control``.

Built on ``websockets.asyncio.server``: every TCP connection starts as an HTTP request;
``process_request`` answers anything that is not a WebSocket upgrade with a JSON response (REST
and control), refuses upgrades to the wrong path or with the wrong token (404 / 401), and lets
the rest through to `SimServer._handle_ws`. The REST and control handlers therefore run on the
event loop between pump batches, and see a consistent venue.

The ``POST`` control endpoints rely on websockets handing non-GET requests to
``process_request`` (true of the installed 17.x; older releases refused other methods while
parsing, before any hook ran).

Server options, and why: compression off (the pump writes pre-framed, uncompressed frames);
no server pings (clients ping; a client that is slow to read must not be cut by our keepalive);
a short close timeout (fault tests close a lot); no open timeout (REST delays can be long).
The binance dialect adds its own pieces through the `DialectHandler` hooks: several WebSocket
paths, a gate before REST (weight), extra headers, a connection class that counts pings and pongs
and accepts long handshake URLs, per-connection tasks (server pings, the 24 h cut) and a
background task (its 100 ms windows). A recording replaces the generated market and the pump.
"""

from __future__ import annotations

import asyncio
import http
import urllib.parse

import attrs
from loguru import logger
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from depthkeeper.simulator.alltick import CLOSE_POLICY_VIOLATION, AlltickDialect
from depthkeeper.simulator.article import ArticleDialect
from depthkeeper.simulator.binance import BinanceDialect
from depthkeeper.simulator.config import Dialect, SimConfig
from depthkeeper.simulator.control import Controller
from depthkeeper.simulator.pump import Pump
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.replay import Replay, ReplayPump, load_replay
from depthkeeper.simulator.venue import DialectHandler, HttpReply, Venue, dumps

#: How long closing a connection may wait for the client's close frame.
CLOSE_TIMEOUT_S = 1.0
#: Largest client frame accepted (commands are small).
MAX_CLIENT_FRAME_BYTES = 1 << 20
#: How long `stop` waits for connection handlers to finish.
SHUTDOWN_TIMEOUT_S = 5.0

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


def _json_response(reply: HttpReply) -> Response:
    body = dumps(reply.body)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            ("Cache-Control", "no-store"),
            *reply.headers,
        ]
    )
    return Response(reply.status, http.HTTPStatus(reply.status).phrase, headers, body)


def _dialect(venue: Venue, replay: Replay | None) -> DialectHandler:
    if venue.config.dialect is Dialect.ARTICLE:
        return ArticleDialect(venue)
    if venue.config.dialect is Dialect.ALLTICK:
        return AlltickDialect(venue)
    return BinanceDialect(venue, replay)


def _report_pump_exit(task: asyncio.Task[None]) -> None:
    """The pump only ends by cancellation; anything else is a bug that must not pass silently."""
    if not task.cancelled() and task.exception() is not None:
        log.opt(exception=task.exception()).error("simulator pump crashed; the market is frozen")


class SimServer:
    """The asyncio side of one simulator: server, pump and handlers (event-loop thread)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.venue = Venue(config)
        replay = load_replay(config) if config.replay_paths else None
        if replay is not None:
            self.venue.market = replay.market  # type: ignore[assignment]  # the same duck-typed surface
        self.venue.dialect = _dialect(self.venue, replay)
        self.pump: Pump = ReplayPump(self.venue, replay) if replay is not None else Pump(self.venue)
        self.controller = Controller(self.venue, self.pump)
        self.port = 0
        self._server: Server | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._dialect_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._server = await serve(
            self._handle_ws,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT_S,
            open_timeout=None,
            max_size=MAX_CLIENT_FRAME_BYTES,
            server_header="depthkeeper-simulator",
            create_connection=self.venue.dialect.connection_class(),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._pump_task = asyncio.create_task(self.pump.run(), name="depthkeeper-sim-pump")
        self._pump_task.add_done_callback(_report_pump_exit)
        self._dialect_task = asyncio.create_task(self.venue.dialect.run(), name="depthkeeper-sim-dialect")
        self._dialect_task.add_done_callback(_report_pump_exit)
        log.info(
            "simulator listening host={host} port={port} dialect={dialect} symbols={n}",
            host=self.config.host, port=self.port, dialect=self.config.dialect.value, n=len(self.config.symbols),
        )

    async def stop(self) -> None:
        """Abort every connection and wait for the handlers; safe to call once per start."""
        self._stopping.set()
        self.venue.faults.blackhole.lift()  # releases held handshakes too
        self.controller.stop_floods()
        for task in (self._pump_task, self._dialect_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for conn in list(self.venue.registry.open.values()):
            conn.abort()
        if self._server is not None:
            self._server.close(close_connections=False)
            try:
                await asyncio.wait_for(self._server.wait_closed(), SHUTDOWN_TIMEOUT_S)
            except TimeoutError:
                log.warning("simulator handlers did not finish within {t}s", t=SHUTDOWN_TIMEOUT_S)
        log.info("simulator stopped port={port}", port=self.port)

    # -- HTTP ------------------------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        method = getattr(request, "method", "GET")  # older websockets releases only pass GETs here
        dialect = self.venue.dialect
        remote_ip = str(ws.remote_address[0]) if ws.remote_address else "?"
        if "websocket" in request.headers.get("Upgrade", "").lower():
            if not dialect.accepts_ws_path(path):
                return ws.respond(http.HTTPStatus.NOT_FOUND, "no WebSocket endpoint here\n")
            refusal = dialect.admit_ws(request.path, remote_ip)
            if refusal is not None:
                return _json_response(refusal)
            token = self.config.token
            if token is not None and params.get("token", [None])[0] != token:
                self.venue.registry.counters["handshakes_rejected_token"] += 1
                return ws.respond(http.HTTPStatus.UNAUTHORIZED, "token invalid\n")
            await self._hold_handshake(ws)
            return None
        if path == "/_control" or path.startswith("/_control/"):
            return _json_response(self.controller.handle_http(method, path, params))
        front = dialect.http_front(method, path, params, remote_ip)
        if front is not None:
            return _json_response(front)
        if path == self.config.rest_path:
            if method != "GET":
                return _json_response(HttpReply(405, {"error": "use GET"}))
            reply = await self._rest(params)
            extra = dialect.rest_headers(remote_ip)
            return _json_response(attrs.evolve(reply, headers=reply.headers + extra) if extra else reply)
        return _json_response(HttpReply(404, {"error": "not found"}))

    async def _hold_handshake(self, ws: ServerConnection) -> None:
        """Blackholed new connections, then a slow handshake: the upgrade waits, ``connect()`` blocks."""
        faults = self.venue.faults
        await faults.blackhole.hold_handshake(ws.transport)
        delay_s = faults.take_slow_handshake()
        if delay_s and not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), delay_s)
            except TimeoutError:
                pass

    async def _rest(self, params: dict[str, list[str]]) -> HttpReply:
        venue = self.venue
        venue.registry.counters["rest_requests"] += 1
        faults = venue.faults.take_rest_faults()
        if faults.delay_s:
            try:  # a delayed answer must not hold up stop()
                await asyncio.wait_for(self._stopping.wait(), faults.delay_s)
            except TimeoutError:
                pass
        if faults.fail_status is not None:
            return venue.dialect.rest_failure(faults.fail_status)
        return venue.dialect.rest(params, faults)

    # -- WebSocket -------------------------------------------------------------------------------

    async def _handle_ws(self, ws: ServerConnection) -> None:
        venue = self.venue
        registry = venue.registry
        path = ws.request.path.partition("?")[0] if ws.request is not None else ""
        conn = registry.add(ws, path)
        log.debug("connection opened conn_id={conn_id} remote={remote}", conn_id=conn.conn_id, remote=conn.remote)
        watchdog = (
            asyncio.create_task(self._heartbeat_watchdog(conn)) if self.config.dialect is Dialect.ALLTICK else None
        )
        tasks = venue.dialect.on_open(conn)
        try:
            async for message in ws:
                await venue.faults.blackhole.wait(conn)  # a blackholed socket is not read (blackhole.py)
                if conn.conn_id not in registry.open:
                    break  # closed by a fault or a restart: ignore what is still in flight
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                reply = venue.dialect.on_text(conn, text, venue.now_s())
                if reply.payloads:
                    venue.send_now(conn, reply.payloads)
                if reply.close is not None:
                    registry.remove(conn)
                    await ws.close(reply.close.code, reply.close.reason)
                    break
        except ConnectionClosed:
            pass
        finally:
            if watchdog is not None:
                watchdog.cancel()
            venue.faults.blackhole.release(conn)
            for task in tasks:
                task.cancel()
            venue.dialect.on_close(conn)
            registry.remove(conn)
            log.debug("connection closed conn_id={conn_id}", conn_id=conn.conn_id)

    async def _heartbeat_watchdog(self, conn: ConnState) -> None:
        """AllTick closes a connection that sent no 22000 for the heartbeat timeout."""
        timeout_s = self.config.alltick_heartbeat_timeout_s
        while True:
            await self.venue.faults.blackhole.wait(conn)  # nothing is read meanwhile: no verdict
            remaining_s = conn.last_heartbeat_s + timeout_s - self.venue.now_s()
            if remaining_s <= 0:
                break
            await asyncio.sleep(remaining_s)
        if conn.conn_id in self.venue.registry.open:
            ws = conn.ws
            self.venue.registry.counters["heartbeat_timeouts"] += 1
            log.info("heartbeat timeout conn_id={conn_id}", conn_id=conn.conn_id)
            self.venue.registry.remove(conn)
            await ws.close(CLOSE_POLICY_VIOLATION, "heartbeat timeout")
