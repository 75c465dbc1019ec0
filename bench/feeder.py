"""A replay feeder for "max" runs: just enough Binance spot to feed a client as fast as it reads.

    python bench/feeder.py --symbols 50 [--steps K] [--port 0]     # serve; first stdout line: the URLs (JSON)
    python bench/feeder.py --sink ws://127.0.0.1:P --symbols 50 --seconds 5   # a reader that discards

Why: at "max" the simulator itself is the bottleneck (it generates the market, accumulates windows and
renders every event, at 100% of a core before the client is), so the client's ceiling is unknown. The
cheapest correct fix is a second server that does nothing but send pre-rendered events from memory
(feeder_market.py: a book-neutral cycle per symbol, only the ids and stamps formatted per send), on a
raw asyncio protocol (no websockets library, no per-frame coroutine): one ``transport.write`` per
connection per round of events, and backpressure (``pause_writing``) instead of unbounded buffers.
It paces itself (``--warm-rate`` events/s per symbol) until every symbol is subscribed and has been
snapshotted, plus a second: a client that subscribes symbol by symbol must be able to sync before the
flood, or "max" measures its start-up, not its ceiling (``max_since`` in ``/_control/state``).
``--rate`` replaces the flood by a paced rate (events/s in all): the sustained-rate probe for clients
that read a flood into an unbounded queue instead of letting TCP push back (peers_bench.py's sweep).

What it speaks (one port, the simulator's binance dialect cut to what the peers use at start):
``GET /api/v3/exchangeInfo`` (same symbol entries as the simulator), ``/api/v3/depth`` (the book at the
last event sent), ``/api/v3/ping`` and ``/api/v3/time`` (with the weight and ``Date`` headers unicorn
reads); WebSocket on ``/ws[/<streams>]`` (raw) and ``/stream[?streams=...]`` (combined), SUBSCRIBE /
UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY answered and acked before the first event,
pings answered; ``/_control/state``, ``truth``, ``freeze``, ``unfreeze``, ``counters`` like the
simulator's, so the peer harnesses run unchanged. No limits are enforced (lenient for everyone).
With ``--send-log`` it writes the simulator's send-log records (simulator/send_log.py) for the
latency join. Every event is stamped (``"x"``). Only ``@depth@100ms``/``@depth`` carry data.

Not a venue: no faults, no restart, no pings from the server, no lifetime. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import hashlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from feeder_market import SymbolCycle, build_market, render_snapshot

from depthkeeper.simulator.binance_rest import symbol_info
from depthkeeper.simulator.send_log import RECORD
from depthkeeper.simulator.wire import frame_text

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: bytes one production round may queue per connection before yielding to the loop
ROUND_BYTES = 256 << 10
#: a connection above this many unsent bytes pauses production (transport high-water mark)
HIGH_WATER = 1 << 20
MAX_HEADER_BYTES = 256 << 10
#: paced warm-up ends this long after every symbol was subscribed and snapshotted
MAX_GRACE_S = 1.0


class Feeder:
    """The shared state: symbols, connections, counters, the producer."""

    def __init__(self, cycles: list[SymbolCycle], send_log: str | None, warm_rate: float = 50.0,
                 rate: float = 0.0) -> None:
        self.cycles = cycles
        self.warm_rate = warm_rate
        #: events/s in all after the warm-up (0 = as fast as the readers drain)
        self.rate = rate
        self._next_round_s: float | None = None
        self.snapshotted: set[str] = set()
        self._all_synced_at: float | None = None
        #: wall time the flood began (None: still paced)
        self.max_since: float | None = None
        self.by_code = {c.code: c for c in cycles}
        self.by_stream = {c.code.lower(): c for c in cycles}
        self.conns: set[Conn] = set()
        self.frozen = False
        self.counters = dict.fromkeys(("rest_requests", "connections_opened", "connections_closed",
                                       "commands_received_total", "frames_sent_total"), 0)
        self._log = open(send_log, "ab") if send_log else None
        self._log_buffer = bytearray()
        self.wake = asyncio.Event()

    # -- production ------------------------------------------------------------------------------

    async def produce(self) -> None:
        """Paced rounds until every symbol is subscribed and snapshotted, then as fast as readers drain."""
        while True:
            watching = [c for c in self.conns if c.subs and c.open]
            if not watching and not self.frozen:
                self.wake.clear()
                await self.wake.wait()
                continue
            if self.frozen or any(c.paused for c in watching):
                await asyncio.sleep(0.0005)
                continue
            if self.max_since is None and not self._ready_for_max(watching):
                self._round(watching, 1)
                await asyncio.sleep(1.0 / self.warm_rate)
                continue
            if self.rate > 0:
                await self._paced(watching)
                continue
            self._round(watching, 0)
            await asyncio.sleep(0)

    async def _paced(self, watching: list[Conn]) -> None:
        """After the warm-up with ``--rate``: rounds spaced so the watched symbols get ``rate`` events/s
        in all (a sustained-rate probe for clients that read a flood into an unbounded queue)."""
        symbols = len(set().union(*(c.subs for c in watching)))
        interval_s = symbols / self.rate
        now_s = time.monotonic()
        if self._next_round_s is None or now_s - self._next_round_s > 0.5:  # start, or a hiccup: no burst
            self._next_round_s = now_s
        due = 1 + int((now_s - self._next_round_s) / interval_s) if now_s >= self._next_round_s else 0
        if due:
            self._round(watching, due)
            self._next_round_s += due * interval_s
        await asyncio.sleep(max(0.0, min(0.01, self._next_round_s - time.monotonic())))

    def _ready_for_max(self, watching: list[Conn]) -> bool:
        """Every symbol subscribed and snapshotted at least once, then ``MAX_GRACE_S``: a client must be
        able to sync before the flood (a client that falls behind its own start never syncs at all)."""
        now_s = time.monotonic()
        if self._all_synced_at is None:
            subscribed = set().union(*(c.subs for c in watching))
            if len(subscribed) == len(self.cycles) and len(self.snapshotted) == len(self.cycles):
                self._all_synced_at = now_s
            return False
        if now_s - self._all_synced_at >= MAX_GRACE_S:
            self.max_since = time.time()
            return True
        return False

    def _round(self, watching: list[Conn], rounds: int) -> None:
        """``rounds`` events per watched symbol (0: until ``ROUND_BYTES`` are queued), one write per connection."""
        pack = RECORD.pack
        readers: dict[int, list[Conn]] = {}
        for conn in watching:
            for index in conn.subs:
                readers.setdefault(index, []).append(conn)
        cycles = [(self.cycles[i], readers[i]) for i in sorted(readers)]
        outputs: dict[Conn, list[bytes]] = {conn: [] for conn in watching}
        produced = done = 0
        while (done < rounds) if rounds else (produced < ROUND_BYTES):
            done += 1
            now_s = time.time()
            event_ms = int(now_s * 1000)
            for cycle, conns in cycles:
                payload = cycle.next_payload(event_ms, now_s)
                raw = combined = b""
                for conn in conns:
                    if conn.combined:
                        combined = combined or frame_text(b'{"stream":"%s","data":%s}' % (cycle.stream, payload))
                        outputs[conn].append(combined)
                    else:
                        raw = raw or frame_text(payload)
                        outputs[conn].append(raw)
                produced += len(payload)
                if self._log is not None:
                    self._log_buffer += pack(cycle.index, 1, cycle.last_id, now_s)
        for conn, frames in outputs.items():
            if frames and conn.open:
                conn.transport.write(b"".join(frames))
                self.counters["frames_sent_total"] += len(frames)
        if self._log is not None and len(self._log_buffer) > (1 << 20):
            self.flush_log()

    def flush_log(self) -> None:
        if self._log is not None and self._log_buffer:
            self._log.write(self._log_buffer)
            self._log.flush()
            self._log_buffer.clear()

    async def log_flusher(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.flush_log()

    # -- REST and control ------------------------------------------------------------------------

    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path.startswith("/api/"):
            self.counters["rest_requests"] += 1
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": int(time.time() * 1000)}
        if path == "/api/v3/exchangeInfo":
            wanted = [c.code for c in self.cycles]
            if "symbol" in query:
                wanted = [query["symbol"][0]]
            elif "symbols" in query:
                wanted = json.loads(query["symbols"][0])
            if any(code not in self.by_code for code in wanted):
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
                "exchangeFilters": [], "symbols": [symbol_info(code, *self.by_code[code].precision())
                                                   for code in wanted]}
        if path == "/api/v3/depth":
            cycle = self.by_code.get(query.get("symbol", [""])[0])
            if cycle is None:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            self.snapshotted.add(cycle.code)
            return 200, render_snapshot(cycle, min(5000, int(query.get("limit", ["100"])[0])))
        return self.control(path, query)

    def control(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/_control/state":
            return 200, {"era": 1, "frozen": self.frozen, "dialect": "binance-feeder", "max_since": self.max_since,
                         "symbols": [c.code for c in self.cycles], "seqs": {c.code: c.last_id for c in self.cycles}}
        if path == "/_control/truth":
            cycle = self.by_code.get(query.get("code", [""])[0])
            if cycle is None:
                return 404, {"error": "unknown code"}
            snap = render_snapshot(cycle, 1_000_000)
            return 200, {"code": cycle.code, "seq": snap["lastUpdateId"], "bids": snap["bids"], "asks": snap["asks"]}
        if path == "/_control/freeze":
            self.frozen = True
            return 200, {"ok": True}
        if path == "/_control/unfreeze":
            self.frozen = False
            self.wake.set()
            return 200, {"ok": True}
        if path == "/_control/counters":
            return 200, dict(self.counters)
        return 404, {"error": f"no endpoint {path}"}


def _headers(block: bytes) -> tuple[str, str, dict[str, str]]:
    lines = block.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


class Conn(asyncio.Protocol):
    """One TCP connection: HTTP requests (keep-alive) until it upgrades to a WebSocket."""

    def __init__(self, feeder: Feeder) -> None:
        self.feeder = feeder
        self.buffer = bytearray()
        self.ws = False
        self.open = False
        self.paused = False
        self.combined = False
        self.subs: set[int] = set()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.feeder.counters["connections_closed"] += 1
        self.open = False
        self.feeder.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer and not self.transport.is_closing():
            if not (self._frame() if self.ws else self._request()):
                break

    # -- HTTP ------------------------------------------------------------------------------------

    def _request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self.transport.close()
            return False
        method, target, headers = _headers(bytes(self.buffer[:end]))
        del self.buffer[:end + 4]
        url = urlsplit(target)
        if headers.get("upgrade", "").lower() == "websocket":
            self._upgrade(url.path, parse_qs(url.query), headers)
            return True
        status, body = self.feeder.http(url.path, parse_qs(url.query))
        payload = json.dumps(body).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"X-MBX-USED-WEIGHT: 1\r\nX-MBX-USED-WEIGHT-1M: 1\r\nDate: %s\r\n\r\n%s"
            % (status, b"OK" if status == 200 else b"ERR", len(payload), email.utils.formatdate(usegmt=True).encode(),
               payload))
        return True

    def _upgrade(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> None:
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept)
        self.ws = self.open = True
        self.combined = path.startswith("/stream")
        names = query.get("streams", [""])[0].split("/") if self.combined else unquote(path).split("/")[2:]
        self._subscribe(names)
        self.feeder.counters["connections_opened"] += 1
        self.feeder.conns.add(self)
        self.feeder.wake.set()

    # -- WebSocket -------------------------------------------------------------------------------

    def _frame(self) -> bool:
        buf = self.buffer
        if len(buf) < 2:
            return False
        opcode, length, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return False
            length, at = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length, at = int.from_bytes(buf[2:10], "big"), 10
        masked = buf[1] & 0x80
        if len(buf) < at + (4 if masked else 0) + length:
            return False
        mask = bytes(buf[at:at + 4]) if masked else b"\0\0\0\0"
        at += 4 if masked else 0
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[at:at + length]))
        del buf[:at + length]
        if opcode == 0x9:
            self.transport.write(bytes((0x8A, len(data))) + data if len(data) < 126 else b"")
        elif opcode == 0x8:
            self.transport.write(bytes((0x88, len(data))) + data if len(data) < 126 else b"\x88\x00")
            self.open = False
            self.transport.close()
        elif opcode == 0x1:
            self._command(data)
        return True

    def _subscribe(self, names: list[str]) -> None:
        for name in names:
            symbol, _, kind = name.partition("@")
            cycle = self.feeder.by_stream.get(symbol)
            if cycle is not None and kind in ("depth@100ms", "depth"):
                self.subs.add(cycle.index)

    def _command(self, data: bytes) -> None:
        self.feeder.counters["commands_received_total"] += 1
        try:
            request = json.loads(data)
            method, params, request_id = request.get("method"), request.get("params") or [], request.get("id")
        except (ValueError, AttributeError):
            return
        result: Any = None
        if method == "SUBSCRIBE":
            self._subscribe(params)
            self.feeder.wake.set()
        elif method == "UNSUBSCRIBE":
            for name in params:
                cycle = self.feeder.by_stream.get(name.partition("@")[0])
                if cycle is not None:
                    self.subs.discard(cycle.index)
        elif method == "LIST_SUBSCRIPTIONS":
            result = [f"{self.feeder.cycles[i].code.lower()}@depth@100ms" for i in sorted(self.subs)]
        elif method == "SET_PROPERTY":
            self.combined = bool(params[1]) if len(params) > 1 else self.combined
        elif method == "GET_PROPERTY":
            result = self.combined
        self.transport.write(frame_text(json.dumps({"result": result, "id": request_id}).encode()))


async def serve(args: argparse.Namespace) -> None:
    codes = [f"SYM{i:04d}USDT" for i in range(args.symbols)]
    cycles = build_market(codes, seed=args.seed, levels=args.levels, steps=args.steps, events=args.events)
    feeder = Feeder(cycles, args.send_log or None, args.warm_rate, args.rate)
    if args.max_now:
        feeder.max_since = time.time()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(feeder), "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"ws://127.0.0.1:{port}", "rest_url": f"http://127.0.0.1:{port}",
                      "control_url": f"http://127.0.0.1:{port}/_control",
                      "steps_per_event": cycles[0].events[0][0] if cycles else 0}), flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(feeder.produce()), asyncio.create_task(feeder.log_flusher())]
    await stop.wait()
    for task in tasks:
        task.cancel()
    server.close()
    feeder.flush_log()


def sink(args: argparse.Namespace) -> None:
    """Read and discard as fast as possible for ``--seconds``; print bytes and seconds (JSON)."""
    if not args.sink.startswith("ws://127.0.0.1:"):
        raise SystemExit("the sink connects to 127.0.0.1 only")
    port = int(args.sink.rsplit(":", 1)[1].split("/")[0])
    streams = "/".join(f"sym{i:04d}usdt@depth@100ms" for i in range(args.symbols))
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(b"depthkeeper-sink")
    sock.sendall(b"GET /stream?streams=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 % (streams.encode(), key))
    buffer = bytearray(1 << 20)
    view, total = memoryview(buffer), 0
    started = time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        total += sock.recv_into(view)
    print(json.dumps({"bytes": total, "seconds": time.perf_counter() - started}), flush=True)
    sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feeder", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--steps", type=int, default=None, help="level changes per event (default 2048/symbols)")
    parser.add_argument("--events", type=int, default=64, help="events per cycle (plus the closing one)")
    parser.add_argument("--send-log", default="", help="append simulator send-log records here")
    parser.add_argument("--warm-rate", type=float, default=50.0,
                        help="events/s per symbol until every symbol is subscribed and snapshotted (then max)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events/s in all after the warm-up (0 = max: as fast as the readers drain)")
    parser.add_argument("--max-now", action="store_true", help="no paced warm-up (ceiling measurements)")
    parser.add_argument("--sink", default="", help="act as a discarding reader of this ws://127.0.0.1:P")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.sink:
        sink(args)
        return 0
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
