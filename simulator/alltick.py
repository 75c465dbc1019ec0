"""The real AllTick crypto depth protocol, as ``protocols/alltick.md`` documents it.

Written from the protocol page, independently of the client's codec. The rules that bite a
client, and that this module enforces on purpose:

- 22002 *replaces* the connection's whole depth list (``depth_level`` 1..5, absent -> 1);
  22006 with ``cancel_type`` 0 or 1 clears it.
- Pacing: every client frame (heartbeats included) must come at least
  ``alltick_min_interval_s`` after the previous one, else ``ret 606`` and the server closes.
- A 22000 heartbeat is required every ``alltick_heartbeat_timeout_s`` (the server enforces it).
- Pushes (22999) are complete top-N books for one code; ``seq`` is the book version (increasing,
  not contiguous per connection); numbers as strings or ints, ``tick_time`` in ms or s.
"""

from __future__ import annotations

import enum
import time
from typing import Any

import orjson

from depthkeeper.simulator.config import CODE_PATTERN, TickTimeUnit
from depthkeeper.simulator.faults import UNKNOWN_CODE, MalformedKind, RestFaults
from depthkeeper.simulator.market import LevelText, SymbolMarket, render_side
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.snapshot_faults import apply_shape
from depthkeeper.simulator.venue import CloseRequest, DialectHandler, HttpReply, Reply, Venue, dumps

#: Crypto depth is at most five levels.
MAX_DEPTH_LEVEL = 5
#: WebSocket close code after a pacing or heartbeat violation.
CLOSE_POLICY_VIOLATION = 1008
#: The ``cmd_id`` of an unknown-type flood: not in the protocol's table (22998, trades, is).
UNKNOWN_CMD_ID = 22777


class Cmd(enum.IntEnum):
    HEARTBEAT = 22000
    HEARTBEAT_ACK = 22001
    DEPTH_SUBSCRIBE = 22002
    DEPTH_ACK = 22003
    TRADE_SUBSCRIBE = 22004
    TRADE_ACK = 22005
    CANCEL = 22006
    CANCEL_ACK = 22007
    DEPTH_PUSH = 22999


class Ret(enum.IntEnum):
    OK = 200
    BAD_REQUEST = 400
    TOKEN_INVALID = 401
    QUERY_INVALID = 402
    CODE_INVALID = 600
    BODY_EMPTY = 601
    CODE_UNAUTHORIZED = 604
    TOO_MANY_REQUESTS_CLOSE = 606


_RESPONSE_OF = {
    Cmd.HEARTBEAT: Cmd.HEARTBEAT_ACK,
    Cmd.DEPTH_SUBSCRIBE: Cmd.DEPTH_ACK,
    Cmd.TRADE_SUBSCRIBE: Cmd.TRADE_ACK,
    Cmd.CANCEL: Cmd.CANCEL_ACK,
}
_ACTION_OF = {
    Cmd.HEARTBEAT: "heartbeat",
    Cmd.DEPTH_SUBSCRIBE: "depth_subscribe",
    Cmd.TRADE_SUBSCRIBE: "trade_subscribe",
    Cmd.CANCEL: "cancel",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _known_cmd(value: Any) -> Cmd | None:
    return Cmd(value) if _is_int(value) and value in Cmd._value2member_map_ else None


def _listed_codes(data: Any) -> tuple[str, ...]:
    """The codes of ``data.symbol_list``, for the command log (whatever else is wrong)."""
    symbol_list = data.get("symbol_list") if isinstance(data, dict) else None
    if not isinstance(symbol_list, list):
        return ()
    return tuple(e["code"] for e in symbol_list if isinstance(e, dict) and isinstance(e.get("code"), str))


def _levels_json(levels: list[LevelText]) -> list[dict[str, str]]:
    return [{"price": price, "volume": volume} for price, volume in levels]


class AlltickDialect(DialectHandler):
    """Envelope commands, top-N pushes, depth-tick REST and bad frames of AllTick."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self._seconds = self.config.tick_time_unit is TickTimeUnit.SECONDS

    # -- client frames --------------------------------------------------------------------------

    def on_text(self, conn: ConnState, text: str, now_s: float) -> Reply:
        # Pacing counts every frame, heartbeats and garbage included (alltick.md).
        too_fast = conn.last_request_s is not None and now_s - conn.last_request_s < self.config.alltick_min_interval_s
        conn.last_request_s = now_s
        try:
            message: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        envelope = message if isinstance(message, dict) else {}
        cmd_id = envelope.get("cmd_id")
        known_cmd = _known_cmd(cmd_id)
        self.venue.registry.log_command(
            conn,
            now_s,
            cmd_id if _is_int(cmd_id) else None,
            _ACTION_OF.get(known_cmd) if known_cmd is not None else None,
            _listed_codes(envelope.get("data")),
            text,
        )
        if too_fast:
            self.venue.registry.counters["pacing_violations"] += 1
            reply = self._response(envelope, Ret.TOO_MANY_REQUESTS_CLOSE, "too many requests and connection will be closed")
            return Reply(reply.payloads, CloseRequest(CLOSE_POLICY_VIOLATION, "too many requests"))
        problem = self._envelope_problem(message)
        if problem:
            self.venue.registry.counters["invalid_commands"] += 1
            return self._response(envelope, Ret.BAD_REQUEST, f"bad request: {problem}")
        return self._dispatch(conn, envelope, known_cmd, now_s)

    def _dispatch(self, conn: ConnState, envelope: dict[str, Any], known_cmd: Cmd | None, now_s: float) -> Reply:
        if known_cmd is Cmd.HEARTBEAT:
            conn.last_heartbeat_s = now_s
            return self._response(envelope, Ret.OK, "ok")
        if known_cmd is Cmd.DEPTH_SUBSCRIBE:
            return self._depth_subscribe(conn, envelope)
        if known_cmd is Cmd.TRADE_SUBSCRIBE:
            return self._response(envelope, Ret.OK, "ok")  # trades are not simulated
        if known_cmd is Cmd.CANCEL:
            return self._cancel(conn, envelope)
        self.venue.registry.counters["invalid_commands"] += 1
        return self._response(envelope, Ret.BAD_REQUEST, f"bad request: unsupported cmd_id {envelope['cmd_id']}")

    @staticmethod
    def _envelope_problem(message: Any) -> str:
        if not isinstance(message, dict):
            return "not a JSON object"
        if not _is_int(message.get("cmd_id")):
            return "cmd_id must be an int"
        if not _is_int(message.get("seq_id")):
            return "seq_id must be an int"
        trace = message.get("trace")
        if not isinstance(trace, str) or not trace or len(trace) > 64:
            return "trace must be a non-empty str of at most 64 characters"
        if not isinstance(message.get("data"), dict):
            return "data must be an object"
        return ""

    def _response(self, envelope: dict[str, Any], ret: Ret, msg: str) -> Reply:
        cmd_id = envelope.get("cmd_id")
        known_cmd = _known_cmd(cmd_id)
        if known_cmd is not None:
            cmd_id = int(_RESPONSE_OF.get(known_cmd, known_cmd))
        response: dict[str, Any] = {
            "ret": int(ret),
            "msg": msg,
            "cmd_id": cmd_id if _is_int(cmd_id) else 0,
            "seq_id": envelope.get("seq_id"),
            "trace": envelope.get("trace"),
            "data": {},
        }
        return Reply(payloads=(dumps(response),))

    def _depth_subscribe(self, conn: ConnState, envelope: dict[str, Any]) -> Reply:
        registry = self.venue.registry
        symbol_list = envelope["data"].get("symbol_list")
        if not isinstance(symbol_list, list):
            registry.counters["invalid_commands"] += 1
            return self._response(envelope, Ret.BAD_REQUEST, "bad request: symbol_list must be a list")
        if not symbol_list:
            registry.counters["empty_lists"] += 1
            return self._response(envelope, Ret.BODY_EMPTY, "body empty")
        depths: dict[str, int] = {}
        invalid: list[str] = []
        malformed = 0
        limit = self.config.max_symbols_per_connection
        for entry in symbol_list:
            code = entry.get("code") if isinstance(entry, dict) else None
            depth: Any = entry.get("depth_level", 1) if isinstance(entry, dict) else None
            if not isinstance(code, str) or not _is_int(depth):
                malformed += 1
            elif not CODE_PATTERN.match(code) or code not in self.venue.market.symbols:
                invalid.append(code)
            elif code in depths:
                registry.counters["duplicate_subscribes"] += 1
            elif limit and len(depths) >= limit:
                registry.counters["ignored_over_limit"] += 1  # silently, like AllTick's plans
            else:
                depths[code] = max(1, min(MAX_DEPTH_LEVEL, depth))
        refused = self.venue.faults.take_rejected(list(depths))  # FaultKind.REJECT: 604, never pushed
        for code in refused:
            del depths[code]
        registry.replace(conn, depths)
        registry.counters["rejected_codes"] += len(invalid)
        if refused:
            return self._response(envelope, Ret.CODE_UNAUTHORIZED, f"code unauthorized: {','.join(refused)}")
        if invalid:
            return self._response(envelope, Ret.CODE_INVALID, f"code invalid: {','.join(invalid)}")
        if malformed:
            registry.counters["invalid_commands"] += 1
            return self._response(envelope, Ret.BAD_REQUEST, "bad request: symbol_list entries need code and int depth_level")
        return self._response(envelope, Ret.OK, "ok")

    def _cancel(self, conn: ConnState, envelope: dict[str, Any]) -> Reply:
        cancel_type = envelope["data"].get("cancel_type")
        if not _is_int(cancel_type) or cancel_type not in (0, 1, 2):
            self.venue.registry.counters["invalid_commands"] += 1
            return self._response(envelope, Ret.BAD_REQUEST, "bad request: cancel_type must be 0, 1 or 2")
        if cancel_type in (0, 1):
            self.venue.registry.clear(conn)
        return self._response(envelope, Ret.OK, "ok")

    # -- business messages ----------------------------------------------------------------------

    def _number(self, value: int) -> str:
        return f'"{value}"' if self.config.alltick_string_numbers else str(value)

    def _tick_time(self) -> int:
        now = time.time()
        return int(now) if self._seconds else int(now * 1000)

    def _push(self, symbol: SymbolMarket, depth: int, tick_time: int, seq: int | None = None) -> bytes:
        bids, asks = symbol.top(depth)
        body = orjson.dumps({"bids": _levels_json(bids), "asks": _levels_json(asks)})
        head = '{"cmd_id":22999,"data":{"code":"%s","seq":%s,"tick_time":%s,' % (
            symbol.code, self._number(symbol.seq if seq is None else seq), self._number(tick_time)
        )
        payload = head.encode() + body[1:] + b"}"
        length = len(payload)
        header = bytes((0x81, length)) if length < 126 else bytes((0x81, 126)) + length.to_bytes(2, "big")
        return header + payload

    def publish(self, symbol: SymbolMarket, diffs: list[Any]) -> None:
        """One push per changed code per batch: the top-N at the batch's last seq."""
        subscribers = self.venue.registry.subscribers.get(symbol.code, {})
        tick_time = self._tick_time()
        message = {depth: self._push(symbol, depth, tick_time) for depth in set(subscribers.values())}
        self.venue.deliver_routed(symbol.code, message)

    def deliver(self, code: str, message: Any) -> None:
        venue = self.venue
        for conn, depth in venue.registry.subscribers.get(code, {}).items():
            frame = message.get(depth)
            if frame is not None:  # a reordered push rendered before this depth was asked for
                conn.outbox.add(frame)
                venue.dirty.add(conn)
                venue.registry.counters["pushes_sent"] += 1

    # -- REST -----------------------------------------------------------------------------------

    def rest(self, params: dict[str, list[str]], faults: RestFaults) -> HttpReply:
        token = self.config.token
        if token is not None and params.get("token", [None])[0] != token:
            return HttpReply(200, {"ret": int(Ret.TOKEN_INVALID), "msg": "token invalid"})
        try:
            query = orjson.loads(params.get("query", [""])[0])
        except orjson.JSONDecodeError:
            query = None
        data = query.get("data") if isinstance(query, dict) else None
        symbol_list = data.get("symbol_list") if isinstance(data, dict) else None
        if not isinstance(symbol_list, list):
            return HttpReply(200, {"ret": int(Ret.QUERY_INVALID), "msg": "query invalid"})
        trace = query.get("trace") if isinstance(query, dict) else None
        if not symbol_list:
            return HttpReply(200, {"ret": int(Ret.BODY_EMPTY), "msg": "body empty", "trace": trace})
        ticks, invalid = [], []
        for entry in symbol_list:
            code = entry.get("code") if isinstance(entry, dict) else None
            if isinstance(code, str) and code in self.venue.market.symbols:
                ticks.append(self._rest_tick(code, faults.lag))
            else:
                invalid.append(str(code))
        ret, msg = (Ret.CODE_INVALID, f"code invalid: {','.join(invalid)}") if invalid else (Ret.OK, "ok")
        return HttpReply(200, {"ret": int(ret), "msg": msg, "trace": trace, "data": {"tick_list": ticks}})

    def _rest_tick(self, code: str, lag: int) -> dict[str, Any]:
        market = self.venue.market
        symbol = market.get(code)
        seq, bids, asks = symbol.levels_at(market.lagged_seq(code, lag) if lag else None)
        shape = self.venue.faults.shapes.take(code)
        if shape is not None:
            seq, bids, asks = apply_shape(shape, seq, bids, asks, symbol.tick_cents)
        return {
            "code": code,
            "seq": str(seq),
            "tick_time": str(self._tick_time()),
            "bids": _levels_json(render_side(bids, MAX_DEPTH_LEVEL, best_high=True)),
            "asks": _levels_json(render_side(asks, MAX_DEPTH_LEVEL, best_high=False)),
        }

    def rest_failure(self, status: int) -> HttpReply:
        return HttpReply(status, {"ret": status, "msg": "rate limit" if status == 429 else "injected failure"})

    # -- bad frames -----------------------------------------------------------------------------

    def malformed(self, kind: MalformedKind, conn: ConnState) -> bytes:
        code = self.target_code(conn)
        tick_time = self._tick_time()
        if kind is MalformedKind.BAD_JSON:
            return b'{"cmd_id":22999,"data":{"code":"%s","seq":' % code.encode()
        if kind is MalformedKind.MISSING_FIELD:
            return dumps({"cmd_id": 22999, "data": {"code": code, "tick_time": tick_time, "bids": [], "asks": []}})
        if kind is MalformedKind.WRONG_TYPE:
            return dumps({"cmd_id": 22999, "data": {"code": code, "seq": "oops", "tick_time": tick_time,
                                                   "bids": "garbage", "asks": []}})
        return dumps({"cmd_id": 22999, "data": {"code": UNKNOWN_CODE, "seq": 1, "tick_time": tick_time,
                                               "bids": [{"price": "1.00", "volume": "1"}], "asks": []}})


    # -- issue 12 faults -------------------------------------------------------------------------

    def render_future(self, code: str, seq: int) -> dict[int, bytes]:
        """The current top-N push of ``code`` (per subscribed depth) under a far-future ``seq``."""
        symbol = self.venue.market.get(code)
        tick_time = self._tick_time()
        depths = set(self.venue.registry.subscribers.get(code, {}).values())
        return {depth: self._push(symbol, depth, tick_time, seq) for depth in depths}

    def unknown_type_payload(self, index: int) -> bytes:
        return b'{"cmd_id":%d,"data":{"n":%d}}' % (UNKNOWN_CMD_ID, index)

    def code_payload(self, code: str) -> bytes:
        return dumps({"cmd_id": int(Cmd.DEPTH_PUSH), "data": {
            "code": code, "seq": self._number_value(1), "tick_time": self._number_value(self._tick_time()),
            "bids": [{"price": "1.00", "volume": "1"}], "asks": [{"price": "1.01", "volume": "1"}],
        }})

    def _number_value(self, value: int) -> int | str:
        return str(value) if self.config.alltick_string_numbers else value
