"""The real AllTick dialect on the wire (see shared/protocols/alltick.md).

Requests carry the envelope ``cmd_id / seq_id / trace / data``; responses echo them with
``ret`` and ``msg``; pushes are ``{"cmd_id": 22999, "data": {...}}`` with a full top-N
book. ``seq`` and ``tick_time`` may be strings or integers, ``tick_time`` seconds or
milliseconds. Decoding never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from depthkeeper.actors.codec_article import to_number
from depthkeeper.actors.wire import (
    Ack,
    DecodeError,
    DepthPush,
    HeartbeatAck,
    Ignored,
    Levels,
    MalformedKind,
    excerpt_of,
)

HEARTBEAT = 22000
HEARTBEAT_ACK = 22001
SUBSCRIBE_DEPTH = 22002
SUBSCRIBE_DEPTH_ACK = 22003
CANCEL = 22006
CANCEL_ACK = 22007
DEPTH_PUSH = 22999
TRADE_PUSH = 22998
CANCEL_DEPTH = 1
MAX_DEPTH_LEVEL = 5
TRADE_SUBSCRIBE_ACK = 22005
#: the server's responses to our requests (a frame with one of these and no ret is malformed)
_RESPONSES = frozenset((HEARTBEAT_ACK, SUBSCRIBE_DEPTH_ACK, TRADE_SUBSCRIBE_ACK, CANCEL_ACK))
#: tick_time values below this are seconds, at or above it milliseconds
_MS_THRESHOLD = 100_000_000_000

_loads = orjson.loads


def _envelope(cmd_id: int, seq_id: int, trace: str, data: dict[str, Any]) -> str:
    if len(trace) > 64:
        raise ValueError("trace must be at most 64 characters")
    return orjson.dumps({"cmd_id": cmd_id, "seq_id": seq_id, "trace": trace, "data": data}).decode()


def encode_subscribe(codes: Sequence[str], depth_level: int, seq_id: int, trace: str) -> str:
    """22002 with the WHOLE desired list: it replaces the connection's depth list."""
    if not codes:
        raise ValueError("an empty depth list is a cancel (22006), not a 22002")
    if not 1 <= depth_level <= MAX_DEPTH_LEVEL:
        raise ValueError(f"depth_level must be 1..{MAX_DEPTH_LEVEL}, got {depth_level}")
    data = {"symbol_list": [{"code": c, "depth_level": depth_level} for c in codes]}
    return _envelope(SUBSCRIBE_DEPTH, seq_id, trace, data)


def encode_cancel(seq_id: int, trace: str, cancel_type: int = CANCEL_DEPTH) -> str:
    return _envelope(CANCEL, seq_id, trace, {"cancel_type": cancel_type})


def encode_heartbeat(seq_id: int, trace: str) -> str:
    return _envelope(HEARTBEAT, seq_id, trace, {})


def encode_depth_query(codes: Sequence[str], trace: str) -> str:
    """The URL-encoded ``query`` parameter of REST ``depth-tick``."""
    body = orjson.dumps({"trace": trace, "data": {"symbol_list": [{"code": c} for c in codes]}})
    return quote(body.decode(), safe="")


def to_int(value: Any) -> int | None:
    """An integer sent as an int or a digit string; None otherwise."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is str and value.isdigit():
        return int(value)
    return None


def tick_time_seconds(value: int) -> float:
    """Normalise a tick_time in s or ms to seconds (values < 1e11 are seconds)."""
    return value / 1000.0 if value >= _MS_THRESHOLD else float(value)


def decode(raw: str | bytes) -> DepthPush | Ack | HeartbeatAck | DecodeError | Ignored:
    try:
        obj = _loads(raw)
    except orjson.JSONDecodeError:
        return DecodeError(MalformedKind.BAD_JSON, "not valid JSON", excerpt_of(raw))
    if type(obj) is not dict:
        return DecodeError(MalformedKind.NOT_OBJECT, "frame is not a JSON object", excerpt_of(raw))
    cmd_id = obj.get("cmd_id")
    if type(cmd_id) is not int:
        return DecodeError(MalformedKind.MISSING_FIELD, "frame without an integer cmd_id", excerpt_of(raw))
    if cmd_id == DEPTH_PUSH:
        data = obj.get("data")
        if type(data) is not dict:
            return DecodeError(MalformedKind.MISSING_FIELD, "push without data", excerpt_of(raw))
        return decode_tick(data, raw)
    if cmd_id == TRADE_PUSH:
        return Ignored("trade push")
    ret = obj.get("ret")
    if type(ret) is not int:
        if cmd_id not in _RESPONSES:  # neither a push nor a response we know: its own kind, cheaply
            return DecodeError(MalformedKind.UNKNOWN_MESSAGE, f"unknown cmd_id {cmd_id}", excerpt_of(raw))
        return DecodeError(MalformedKind.MISSING_FIELD, f"response {cmd_id} without integer ret", excerpt_of(raw))
    if cmd_id == HEARTBEAT_ACK and ret == 200:
        return HeartbeatAck()
    seq_id = obj.get("seq_id")
    trace = obj.get("trace")
    return Ack(
        cmd_id=cmd_id,
        ret=ret,
        msg=str(obj.get("msg", "")),
        seq_id=seq_id if type(seq_id) is int else None,
        trace=trace if type(trace) is str else None,
    )


def _levels(rows: Any) -> Levels | None:
    if not isinstance(rows, list):
        return None
    out = []
    for row in rows:
        if type(row) is not dict:
            return None
        price, size = to_number(row.get("price")), to_number(row.get("volume"))
        if price is None or size is None or price == 0.0:
            return None
        out.append((price, size))
    return tuple(out)


def decode_tick(data: dict[str, Any], raw: str | bytes = b"") -> DepthPush | DecodeError:
    """One depth row (push ``data`` or a REST ``tick_list`` entry)."""
    code = data.get("code")
    if type(code) is not str or not code:
        return DecodeError(MalformedKind.MISSING_FIELD, "depth without code", excerpt_of(raw))
    seq, tick = to_int(data.get("seq")), to_int(data.get("tick_time"))
    if seq is None or tick is None:
        return DecodeError(MalformedKind.WRONG_TYPE, "seq/tick_time must be integers or digit strings", excerpt_of(raw))
    bids, asks = _levels(data.get("bids")), _levels(data.get("asks"))
    if bids is None or asks is None:
        return DecodeError(MalformedKind.BAD_VALUE, "levels malformed", excerpt_of(raw))
    return DepthPush(code, seq, tick_time_seconds(tick), bids, asks)


def decode_depth_tick(body: bytes | str) -> tuple[DepthPush, ...] | Ack | DecodeError:
    """The REST depth-tick reply: the rows, an error Ack (ret != 200), or a DecodeError."""
    try:
        obj = _loads(body)
    except orjson.JSONDecodeError:
        return DecodeError(MalformedKind.BAD_JSON, "depth-tick reply is not JSON", excerpt_of(body))
    if type(obj) is not dict or type(obj.get("ret")) is not int:
        return DecodeError(MalformedKind.MISSING_FIELD, "depth-tick reply without ret", excerpt_of(body))
    if obj["ret"] != 200:
        return Ack(cmd_id=0, ret=obj["ret"], msg=str(obj.get("msg", "")))
    rows = (obj.get("data") or {}).get("tick_list") if type(obj.get("data")) is dict else None
    if not isinstance(rows, list):
        return DecodeError(MalformedKind.MISSING_FIELD, "depth-tick reply without tick_list", excerpt_of(body))
    out = []
    for row in rows:
        push = decode_tick(row, body) if type(row) is dict else DecodeError(MalformedKind.WRONG_TYPE, "row", "")
        if isinstance(push, DecodeError):
            return push
        out.append(push)
    return tuple(out)
