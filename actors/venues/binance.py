"""The Binance spot venue (diff depth over one combined-stream socket), client side.

Facts and sources: ../shared/notes/binance-and-peers.md sections 1 and 2.

Wire. One socket on ``{url}/stream``; every event arrives wrapped ``{"stream", "data"}``. Depth
events are ``{"e": "depthUpdate", "E": ms, "s": "BTCUSDT", "U": first id, "u": last id,
"b": [["price", "qty"], ...], "a": [...]}`` with 8-decimal strings (qty is absolute, 0 deletes).
Requests are ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...],
"id": n}``; answers ``{"result": null, "id": n}``, ``{"result": [streams], "id": n}`` or
``{"error": {"code", "msg"}, "id": n}``. Streams are ``<symbol lower>@depth@100ms`` (the part
after the ``@`` is ``[venue] depth_stream``). The server pings every 20 s; the frame reader pongs.
Decoding never raises: a frame we cannot use is a :class:`DecodeError` the reader counts and drops.

Limits, and how each is kept:

- **5 client messages/s**, pings, pongs and JSON alike (over: close 1008). Every frame we send
  goes through the ConnectionActor's pacer at ``send_interval_s`` = 1/4 s (+ its jitter margin):
  at most 4 paced frames in any second, which leaves one for the pong the reader thread sends
  outside the pacer (the server pings once per 20 s). Bursts of sub/unsub are coalesced into
  one request with many params (``[subscription] min_interval_s`` defaults to 0.3 s here).
- **1024 streams per connection**: the SubscriptionActor refuses code #1025 (REJECTED, the
  reason names the limit).
- **300 connection attempts per 5 minutes per IP**: ``connect_limit`` (a rolling budget the
  ConnectionActor spends before each attempt).
- **24 h socket lifetime**: ``max_socket_age_s`` (23 h 45 min unless ``[venue] max_socket_age_s``)
  makes the ConnectionActor reconnect on its own terms first. It is a normal reconnect: the
  books read DISCONNECTED, then resync on the new socket (one socket at a time, always).
- **REST weight 6000/min per IP**: a depth snapshot costs 5/25/50/250 by ``limit``
  (``snapshot_weight``); the SnapshotActor spends at most ``rest_weight_per_min`` (90% of it)
  per rolling minute, adopts the venue's ``X-MBX-USED-WEIGHT-1M`` when larger, and on 429/418
  pauses every request for the ``Retry-After`` it was given.

Subscriptions. SUBSCRIBE is all-or-nothing: one invalid stream fails the whole request. An error
for a request of several codes splits them in halves to be asked again one group per request
(``AckVerdict.retry_groups``) until the refused code is alone; an error for one code rejects it
with the venue's message. After a (re)subscribe burst a LIST_SUBSCRIPTIONS reconciles what the
venue has with what we believe it has. Sync: Binance's documented algorithm (core/rangesync.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from email.message import Message
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import orjson

from depthkeeper.actors.core.decimals import checked_levels, plain_levels
from depthkeeper.actors.core.rangesync import RangeSync
from depthkeeper.actors.core.wire import (
    Ack,
    DecodeError,
    Ignored,
    MalformedKind,
    RangeDiff,
    Snapshot,
    excerpt_of,
)
from depthkeeper.actors.venues.base import AckVerdict, Request, SnapshotReply, Venue

if TYPE_CHECKING:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.core.sync import SyncPolicy
    from depthkeeper.actors.settings import BookConfig, SubscriptionConfig, VenueConfig

#: the venue's client message limit per second, and how many of them we leave to pongs
MAX_MESSAGES_PER_S = 5
PONG_HEADROOM = 1
MAX_STREAMS = 1024
#: stream names per SUBSCRIBE/UNSUBSCRIBE (a request of 1024 names is ~23 KB; keep frames modest)
PARAMS_PER_REQUEST = 200
#: the venue cuts every socket after 24 h; we reconnect this long before
LIFETIME_S = 24 * 3600.0
LIFETIME_MARGIN_S = 15 * 60.0
#: Binance's REST weight per minute per IP, and the share of it we allow ourselves
WEIGHT_PER_MIN = 6000
WEIGHT_SHARE = 0.9
#: the WebSocket API's error for an invalid stream (a whole request refused for one name)
ERROR_INVALID_REQUEST = 2

#: ``Ack.cmd_id`` of the three answer shapes (Binance answers carry no command id of their own)
ACK_RESULT = 1
ACK_LIST = 2
ACK_ERROR = 3

_loads = orjson.loads
_JSONError = orjson.JSONDecodeError
_new = tuple.__new__
#: well-formed events of streams we do not use (a bookTicker has no "e")
_IGNORED_EVENTS = frozenset(("trade", "aggTrade", "kline", "24hrTicker", "24hrMiniTicker", "avgPrice",
                             "serverShutdown"))

# -- the typed path ---------------------------------------------------------------------------
# A depth frame read by one msgspec decode into the types below, in C: the level strings become
# floats there ("lax" mode: a string read as a number where the type says float; correctly rounded,
# the value ``float(text)`` gives -- "-0" reads +0.0, equal to float's -0.0, a delete either way),
# checked there (price > 0, size >= 0, both finite), and the level pairs come out as the tuples a
# RangeDiff holds. Several times quicker than orjson and a ``float`` per value (bench/binance_decode.py).
# It reads a subset of what the general path reads, and reads it the same (tests/unit/test_binance_levels.py):
# anything else fails the decode or the checks after it and goes to the general path, which judges it
# as before -- a reply, another event, a text ``float`` takes but JSON does not write ("1_0", " 1.5"),
# and any key the structs do not name (msgspec would skip its value unread, where orjson refuses a
# 1e400 or invalid UTF-8; a field Binance adds one day would cost the speed until named here, never a
# frame). Integer fields are bounded to 64 bits (orjson reads a larger one as a
# float); the id fields admit a string or a float only so that such a frame fails our type check
# below rather than being coerced. The structs live for one call and nothing they hold can refer back
# to them: no cycle, so no GC tracking.
_MAX = sys.float_info.max
_Price = Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, le=_MAX)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]


class _DepthUpdate(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    e: Literal["depthUpdate"]
    s: str
    U: _Int64 | float | str
    u: _Int64 | float | str
    b: tuple[tuple[_Price, _Size], ...]
    a: tuple[tuple[_Price, _Size], ...]
    E: _Int64 | float | str | None = None
    x: float | _Int64 | str | None = None


class _Wrapped(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    data: _DepthUpdate
    stream: str | None = None


class _DepthSnapshot(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    lastUpdateId: _Int64 | float | str  # noqa: N815 - the venue's key
    bids: tuple[tuple[_Price, _Size], ...]
    asks: tuple[tuple[_Price, _Size], ...]


_typed_decode = msgspec.json.Decoder(_Wrapped, strict=False).decode
_typed_snapshot = msgspec.json.Decoder(_DepthSnapshot, strict=False).decode


def _typed_event(raw: bytes | str) -> RangeDiff | None:
    """A wrapped depthUpdate read by the typed path, or None: the general path reads the frame."""
    try:
        data = _typed_decode(raw).data
    except Exception:  # noqa: BLE001 - whatever it is (a str with a lone surrogate, deep nesting): the general path's
        return None
    code, first, last, event_ms, sent_at = data.s, data.U, data.u, data.E, data.x
    if not (type(first) is int and type(last) is int and 0 < first <= last and code):
        return None
    return _new(RangeDiff, (code, first, last, data.b, data.a, sent_at if type(sent_at) is float else 0.0,
                            event_ms / 1000.0 if type(event_ms) is int else 0.0))


def depth_weight(limit: int) -> int:
    """REST weight of ``GET /api/v3/depth`` by ``limit`` (rest-api.md, since 2023-10-19)."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _event(data: dict[str, Any], raw: bytes | str) -> RangeDiff | DecodeError:
    """A depthUpdate payload, on the general path: plain decimal strings first; anything odd takes
    ``_checked_event``."""
    code = data.get("s")
    first = data.get("U")
    last = data.get("u")
    bids = data.get("b")
    asks = data.get("a")
    if (type(code) is str and type(first) is int and type(last) is int and 0 < first <= last
            and type(bids) is list and type(asks) is list):
        try:
            bid_levels = plain_levels(bids)
            ask_levels = plain_levels(asks)
        except (ValueError, TypeError):
            bid_levels = ask_levels = None
        if bid_levels is not None and ask_levels is not None:
            event_ms = data.get("E")
            sent_at = data.get("x", 0.0)
            return _new(RangeDiff, (code, first, last, bid_levels, ask_levels,
                                    sent_at if type(sent_at) is float else 0.0,
                                    event_ms / 1000.0 if type(event_ms) is int else 0.0))
    return _checked_event(data, raw)


def _checked_event(data: dict[str, Any], raw: bytes | str) -> RangeDiff | DecodeError:
    for key in ("s", "U", "u", "b", "a"):
        if key not in data:
            return DecodeError(MalformedKind.MISSING_FIELD, f"depthUpdate without {key!r}", excerpt_of(raw))
    code, first, last = data["s"], data["U"], data["u"]
    if type(code) is not str or type(first) is not int or type(last) is not int:
        return DecodeError(MalformedKind.WRONG_TYPE, "s must be a string, U and u integers", excerpt_of(raw))
    if not code or not 0 < first <= last:
        return DecodeError(MalformedKind.BAD_VALUE, f"bad symbol or update ids U={first} u={last}", excerpt_of(raw))
    bids, asks = checked_levels(data["b"]), checked_levels(data["a"])
    if bids is None or asks is None:
        kind = MalformedKind.WRONG_TYPE if type(data["b"]) is not list or type(data["a"]) is not list else \
            MalformedKind.BAD_VALUE
        return DecodeError(kind, "levels must be [price > 0, qty >= 0] decimal pairs", excerpt_of(raw))
    event_ms, sent_at = data.get("E"), data.get("x", 0.0)
    return RangeDiff(code, first, last, bids, asks, sent_at if type(sent_at) is float else 0.0,
                     event_ms / 1000.0 if type(event_ms) is int else 0.0)


def _reply(obj: dict[str, Any], raw: bytes | str) -> Ack | DecodeError:
    """``{"result": ..., "id"}`` or ``{"error": {"code", "msg"}, "id"}``."""
    request_id = obj.get("id")
    seq_id = request_id if type(request_id) is int else None
    error = obj.get("error")
    if error is not None:
        if type(error) is not dict or type(error.get("code")) is not int:
            return DecodeError(MalformedKind.WRONG_TYPE, "error reply without an integer code", excerpt_of(raw))
        return Ack(cmd_id=ACK_ERROR, ret=error["code"], msg=str(error.get("msg", "")), seq_id=seq_id)
    if "result" not in obj:
        return DecodeError(MalformedKind.MISSING_FIELD, "reply without result or error", excerpt_of(raw))
    result = obj["result"]
    if type(result) is list:
        if not all(type(name) is str for name in result):
            return DecodeError(MalformedKind.WRONG_TYPE, "LIST_SUBSCRIPTIONS result is not a list of names",
                               excerpt_of(raw))
        return Ack(cmd_id=ACK_LIST, ret=200, codes=tuple(result), seq_id=seq_id)
    return Ack(cmd_id=ACK_RESULT, ret=200, seq_id=seq_id)


def _payload(data: dict[str, Any], raw: bytes | str) -> RangeDiff | Ignored | DecodeError:
    kind = data.get("e")
    if kind == "depthUpdate":
        return _event(data, raw)
    if (type(kind) is str and kind in _IGNORED_EVENTS) or (kind is None and "u" in data and "B" in data):  # bookTicker
        return Ignored(f"{kind or 'bookTicker'} event")
    return DecodeError(MalformedKind.UNKNOWN_MESSAGE, f"unknown event type {kind!r}", excerpt_of(raw))


def decode(raw: bytes | str) -> RangeDiff | Ack | Ignored | DecodeError:
    """One server frame -> a typed event or a typed error (never raises)."""
    event = _typed_event(raw)
    return event if event is not None else _general(raw)


def _general(raw: bytes | str) -> RangeDiff | Ack | Ignored | DecodeError:
    """Any frame, through orjson: the judge of everything the typed path leaves (never raises)."""
    try:
        obj = _loads(raw)
    except _JSONError:
        return DecodeError(MalformedKind.BAD_JSON, "not valid JSON", excerpt_of(raw))
    if type(obj) is not dict:
        return DecodeError(MalformedKind.NOT_OBJECT, "frame is not a JSON object", excerpt_of(raw))
    data = obj.get("data")
    if type(data) is dict:
        if data.get("e") == "depthUpdate":  # the hot path: one lookup more than a raw event
            return _event(data, raw)
        return _payload(data, raw)
    if "id" in obj:
        return _reply(obj, raw)
    if "e" in obj:  # an unwrapped event (a /ws socket, or combined switched off)
        return _payload(obj, raw)
    return DecodeError(MalformedKind.UNKNOWN_MESSAGE, "neither an event nor a reply", excerpt_of(raw))


def decode_snapshot(body: bytes | str, code: str) -> Snapshot | DecodeError:
    """``GET /api/v3/depth``: ``{"lastUpdateId", "bids", "asks"}``, best first. The typed path first
    (a snapshot holds up to 5000 levels a side), the general path for whatever it leaves."""
    try:
        typed: _DepthSnapshot | None = _typed_snapshot(body)
    except Exception:  # noqa: BLE001 - as in _typed_event: the general path judges it
        typed = None
    if typed is not None and type(typed.lastUpdateId) is int and typed.lastUpdateId >= 0:
        return Snapshot(code, typed.lastUpdateId, typed.bids, typed.asks)
    return _general_snapshot(body, code)


def _general_snapshot(body: bytes | str, code: str) -> Snapshot | DecodeError:
    try:
        obj = _loads(body)
    except _JSONError:
        return DecodeError(MalformedKind.BAD_JSON, "snapshot is not valid JSON", excerpt_of(body))
    if type(obj) is not dict:
        return DecodeError(MalformedKind.NOT_OBJECT, "snapshot is not a JSON object", excerpt_of(body))
    last_id = obj.get("lastUpdateId")
    if type(last_id) is not int or last_id < 0:
        return DecodeError(MalformedKind.WRONG_TYPE, "snapshot without an integer lastUpdateId", excerpt_of(body))
    bids, asks = checked_levels(obj.get("bids")), checked_levels(obj.get("asks"))
    if bids is None or asks is None:
        return DecodeError(MalformedKind.BAD_VALUE, "snapshot levels malformed", excerpt_of(body))
    return Snapshot(code, last_id, bids, asks)


def _request(method: str, streams: Sequence[str], request_id: int) -> str:
    return orjson.dumps({"method": method, "params": list(streams), "id": request_id}).decode()


class BinanceVenue(Venue):
    """See the module docstring."""

    name = "binance"
    max_streams = MAX_STREAMS
    can_list = True
    #: 300 per 5 min per IP, less a margin for the clocks not agreeing on the window's edges
    connect_limit = (290, 300.0)
    rest_weight_per_min = int(WEIGHT_PER_MIN * WEIGHT_SHARE)
    default_url = "wss://stream.binance.com:9443"
    default_snapshot_url = "https://api.binance.com"
    #: subscription requests no closer than the pacer lets frames out: bursts coalesce, nothing queues
    default_min_interval_s = 0.3
    #: levels the book keeps per side: as deep as a snapshot (see core/rangesync.py, "Depth")
    default_max_levels = 1000

    def __init__(self, cfg: VenueConfig) -> None:
        super().__init__(cfg)
        self._suffix = "@" + cfg.depth_stream
        self._weight = depth_weight(cfg.snapshot_limit)

    @classmethod
    def check_config(cls, heartbeat_interval_s: float, subscription: SubscriptionConfig) -> str | None:
        return None

    # -- wire ------------------------------------------------------------------------------

    @property
    def decode(self) -> Callable[[bytes], Any]:
        return decode

    def socket_url(self, url: str) -> str:
        base = url.rstrip("/")
        return base if base.endswith("/stream") else f"{base}/stream"

    def send_interval_s(self, subscription: SubscriptionConfig) -> float:
        return 1.0 / (MAX_MESSAGES_PER_S - PONG_HEADROOM)

    def max_socket_age_s(self) -> float:
        return self.cfg.max_socket_age_s or LIFETIME_S - LIFETIME_MARGIN_S

    # -- subscriptions ---------------------------------------------------------------------

    def stream(self, code: str) -> str:
        return code.lower() + self._suffix

    def code_of(self, stream: str) -> str | None:
        """The code of one of OUR stream names (another kind of stream: None)."""
        return stream[: -len(self._suffix)].upper() if stream.endswith(self._suffix) else None

    def plan(self, want: frozenset[str], active: frozenset[str], next_id: Callable[[], int],
             epoch: int) -> list[Request]:
        requests = []
        # unsubscribe first: at the stream limit, a swap must free the slot before it is taken
        for method, codes in (("UNSUBSCRIBE", sorted(active - want)), ("SUBSCRIBE", sorted(want - active))):
            for start in range(0, len(codes), PARAMS_PER_REQUEST):
                chunk = codes[start:start + PARAMS_PER_REQUEST]
                request_id = next_id()
                what = f"{method} {len(chunk)} streams (id {request_id})"
                text = _request(method, [self.stream(code) for code in chunk], request_id)
                if method == "SUBSCRIBE":
                    requests.append(Request(text, what, added=frozenset(chunk), request_id=request_id))
                else:
                    requests.append(Request(text, what, removed=frozenset(chunk), request_id=request_id))
        return requests

    def list_request(self, next_id: Callable[[], int]) -> Request | None:
        request_id = next_id()
        text = orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}).decode()
        return Request(text, f"LIST_SUBSCRIPTIONS (id {request_id})", request_id=request_id)

    def read_ack(self, ack: Ack, requests: dict[int, Request]) -> AckVerdict:
        settled = ack.seq_id or 0
        if ack.cmd_id == ACK_RESULT:
            return AckVerdict(settled_through=settled)
        if ack.cmd_id == ACK_LIST:
            listed = frozenset(code for code in map(self.code_of, ack.codes) if code is not None)
            return AckVerdict(settled_through=settled, listed=listed)
        request = requests.get(ack.seq_id) if ack.seq_id is not None else None
        why = f"error {ack.ret}: {ack.msg}"
        if request is None or not request.added:
            return AckVerdict(settled_through=settled,
                              warning=f"venue refused {request.what if request else f'request {ack.seq_id}'} ({why})")
        added = sorted(request.added)
        if ack.ret == ERROR_INVALID_REQUEST and len(added) > 1:
            half = len(added) // 2
            return AckVerdict(settled_through=settled, retry_groups=(frozenset(added[:half]), frozenset(added[half:])),
                              warning=f"venue refused {request.what} ({why}); asking again in halves to find the code")
        return AckVerdict(settled_through=settled, rejected=tuple((code, why) for code in added))

    # -- REST snapshots ----------------------------------------------------------------------

    def snapshot_url(self, base_url: str, codes: Sequence[str], trace: str) -> str:
        return f"{base_url.rstrip('/')}/api/v3/depth?symbol={codes[0]}&limit={self.cfg.snapshot_limit}"

    def parse_snapshot(self, body: bytes, codes: Sequence[str]) -> SnapshotReply:
        snap = decode_snapshot(body, codes[0])
        if isinstance(snap, DecodeError):
            return SnapshotReply(error=f"bad snapshot: {snap.kind.value}: {snap.detail}")
        return SnapshotReply((snap,))

    def snapshot_weight(self, codes: Sequence[str]) -> int:
        return self._weight * len(codes)

    def used_weight(self, headers: Message) -> int | None:
        value = headers.get("X-MBX-USED-WEIGHT-1M")  # header names are case-insensitive here
        return int(value) if isinstance(value, str) and value.isdigit() else None

    # -- sync ----------------------------------------------------------------------------------

    def make_policy(self, book: OrderBook, cfg: BookConfig) -> SyncPolicy:
        return RangeSync(book, cfg.snapshot_buffer)
