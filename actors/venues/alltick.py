"""The AllTick venue (the real AllTick API, shared/protocols/alltick.md), client side.

Wire: requests carry the envelope ``cmd_id / seq_id / trace / data``; responses echo them
with ``ret`` and ``msg``; pushes are ``{"cmd_id": 22999, "data": {...}}`` with a full top-N
book. ``seq`` and ``tick_time`` may be strings or integers, ``tick_time`` seconds or
milliseconds. Decoding never raises.

Subscriptions: a 22002 carries the WHOLE wanted list (it replaces the server's list); 22006
cancels all. Every client frame (heartbeats included) counts against the venue's 1 request/s
pacing, so one pacer spaces them all. The client sends a 22000 heartbeat each interval and a
missing 22001 answer is silence. REST depth-tick batches up to 50 codes per request.

Sync (each push is a complete top-N book): replace when the push's seq is newer, drop (and
count) stale or duplicate pushes; ``SUSPECT_AFTER`` stale pushes in a row mean the book's own
seq is the outlier (one push with a far-future seq), so the next push replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.sync import SUSPECT_AFTER, ResyncReason, SyncAction, SyncPolicy
from depthkeeper.actors.core.wire import (
    Ack,
    DecodeError,
    DepthPush,
    DiffEvent,
    HeartbeatAck,
    Ignored,
    Levels,
    MalformedKind,
    excerpt_of,
    to_number,
)
from depthkeeper.actors.venues.base import AckVerdict, Request, SnapshotReply, Venue, decode_error

if TYPE_CHECKING:
    from depthkeeper.actors.settings import BookConfig, SubscriptionConfig

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


class AlltickSync(SyncPolicy):
    """Full top-N replace when the push is newer; stale and duplicate pushes dropped."""

    snapshot_type = DepthPush

    def __init__(self, book: OrderBook) -> None:
        super().__init__(book)
        self._stale_in_row = 0

    def on_push(self, push: DepthPush) -> SyncAction:
        book = self.book
        if push.seq <= book.last_seq:
            self.counters.stale_dropped += 1
            self._stale_in_row += 1
            if self._stale_in_row < SUSPECT_AFTER:
                return SyncAction.NONE
            # The venue keeps sending older quotes than ours: our seq is the outlier.
            self.counters.suspect_diffs += 1
        self._stale_in_row = 0
        book.replace(push.bids, push.asks, push.seq)
        book.event_time = push.tick_time_s
        # Only the pushed top-N is known; deeper levels may exist at the venue.
        book.mark_partial(
            push.bids[-1][0] if push.bids else None,
            push.asks[-1][0] if push.asks else None,
        )
        self.counters.applied += 1
        if book.is_crossed():
            self.counters.crossed += 1
            return self.start(ResyncReason.CROSSED, f"crossed push at seq {push.seq}")
        if book.status is not BookStatus.LIVE:
            self._note(ResyncReason.IN_SYNC, "in sync")
        book.status = BookStatus.LIVE
        self.awaiting_snapshot = False
        return SyncAction.NONE

    def on_diffs(self, diffs: Sequence[DiffEvent]) -> SyncAction:
        raise TypeError("the alltick dialect has no incremental diffs")

    def _use_snapshot(self, snap: DepthPush) -> SyncAction:
        return self.on_push(snap)

    def start(self, reason: ResyncReason, detail: str | None = None) -> SyncAction:
        action = super().start(reason, detail)
        # Seq is a per-code quote number; after a resync accept whatever is newest.
        self.book.last_seq = 0
        self._stale_in_row = 0
        return action


#: ret codes that mean "this code is not for you"
_CODE_REJECTED = (600, 604)
#: responses to the requests that set our depth list (their seq_id is one of ours)
_LIST_RESPONSES = (SUBSCRIBE_DEPTH_ACK, CANCEL_ACK)


class AlltickVenue(Venue):
    """See the module docstring."""

    name = "alltick"
    snapshot_batch = 50
    heartbeat_acks = True
    default_min_interval_s = 1.0

    @classmethod
    def check_config(cls, heartbeat_interval_s: float, subscription: SubscriptionConfig) -> str | None:
        if heartbeat_interval_s < subscription.min_interval_s:
            return (f"[heartbeat] interval_s: alltick counts heartbeats against the request pacing; "
                    f"must be >= [subscription] min_interval_s ({subscription.min_interval_s})")
        return None

    @property
    def decode(self) -> Callable[[bytes], Any]:
        return decode

    def heartbeat(self, number: int, epoch: int) -> str | None:
        return encode_heartbeat(number, f"hb-{epoch}-{number}")

    def send_interval_s(self, subscription: SubscriptionConfig) -> float:
        return subscription.min_interval_s

    def plan(self, want: frozenset[str], active: frozenset[str], next_id: Callable[[], int],
             epoch: int) -> list[Request]:
        if want == active:
            return []
        seq_id = next_id()
        trace = f"dk-sub-{epoch}-{seq_id}"
        added, removed = want - active, active - want
        if want:
            text = encode_subscribe(sorted(want), self.cfg.depth_level, seq_id, trace)
            return [Request(text, f"22002 ({len(want)} codes)", added, removed, seq_id)]
        return [Request(encode_cancel(seq_id, trace), "22006 cancel depth", added, removed, seq_id)]

    def read_ack(self, ack: Ack, requests: dict[int, Request]) -> AckVerdict:
        settled = ack.seq_id if ack.cmd_id in _LIST_RESPONSES and ack.seq_id is not None else 0
        if ack.ret == 200:
            return AckVerdict(settled_through=settled)
        if ack.ret in _CODE_REJECTED:
            request = requests.get(ack.seq_id or -1)
            added = sorted(request.added) if request is not None else []
            return AckVerdict(rejected=tuple((code, f"ret {ack.ret} {ack.msg}") for code in added),
                              settled_through=settled)
        if ack.ret == 401:
            return AckVerdict(fatal=f"ret 401 {ack.msg}", settled_through=settled)
        if ack.ret == 603:
            return AckVerdict(warning=f"the plan's symbol limit is reached (ret 603 {ack.msg}); extra codes ignored",
                              settled_through=settled)
        return AckVerdict(warning=f"venue answered cmd {ack.cmd_id} with ret {ack.ret} {ack.msg}",
                          settled_through=settled)

    def snapshot_url(self, base_url: str, codes: Sequence[str], trace: str) -> str:
        return f"{base_url}?token={self.cfg.token or ''}&query={encode_depth_query(codes, trace)}"

    def parse_snapshot(self, body: bytes, codes: Sequence[str]) -> SnapshotReply:
        rows = decode_depth_tick(body)
        if isinstance(rows, Ack):
            return SnapshotReply(error=f"ret {rows.ret} {rows.msg}", fatal=rows.ret == 401)
        if isinstance(rows, DecodeError):
            return SnapshotReply(error=f"bad depth-tick reply: {decode_error(rows)}")
        return SnapshotReply(rows)

    def make_policy(self, book: OrderBook, cfg: BookConfig) -> SyncPolicy:
        return AlltickSync(book)
