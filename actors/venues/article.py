"""The article venue: the seed article's protocol (shared/protocols/article.md), client side.

Wire: ``{"cmd_id": 22004, "action": "sub"|"unsub", "code": [...]}`` out; per-level diffs with a
per-symbol contiguous ``seq``, optional acks, and a REST ``/depth?code=`` snapshot in. Sync:
the contiguous-seq policy (contiguous.ContiguousSync). Subscriptions add and remove by difference.

Decoding never raises: a frame we cannot use becomes a :class:`DecodeError` that the
reader thread counts, logs and drops, so one bad frame never kills the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from depthkeeper.actors.core.contiguous import ContiguousSync
from depthkeeper.actors.core.decimals import checked_levels
from depthkeeper.actors.core.wire import (
    Ack,
    DecodeError,
    DiffEvent,
    Ignored,
    MalformedKind,
    Snapshot,
    excerpt_of,
    to_number,
)
from depthkeeper.actors.venues.base import AckVerdict, Request, SnapshotReply, Venue, decode_error

if TYPE_CHECKING:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.core.sync import SyncPolicy
    from depthkeeper.actors.settings import BookConfig

SUB_CMD_ID = 22004

_loads = orjson.loads
_JSONError = orjson.JSONDecodeError
_NUMBER_TYPES = (str, int, float)
_INF = float("inf")
# Building the NamedTuple through tuple.__new__ skips its generated Python-level __new__
# (measured: ~15% of the reader thread's time at 150k frames/s).
_new = tuple.__new__


def encode_command(action: str, codes: tuple[str, ...] | list[str]) -> str:
    """``{"cmd_id": 22004, "action": "sub"|"unsub", "code": [...]}``; never an empty list."""
    if action not in ("sub", "unsub"):
        raise ValueError(f"action must be 'sub' or 'unsub', got {action!r}")
    if not codes:
        raise ValueError("refusing to encode a command with an empty code list")
    return orjson.dumps({"cmd_id": SUB_CMD_ID, "action": action, "code": list(codes)}).decode()


def decode(raw: str | bytes) -> DiffEvent | Ack | DecodeError | Ignored:
    """One server frame -> a typed event or a typed error.

    The first branch is the hot path: a well-formed diff with string price/size. Anything
    else (numbers, missing or odd fields) takes the fully checked path below, so the fast
    path never accepts what the slow path would reject. A frame of an unknown type is cheap
    too (no second lookup, no exception): a venue may flood us with them.
    """
    try:
        obj = _loads(raw)
    except _JSONError:
        return DecodeError(MalformedKind.BAD_JSON, "not valid JSON", excerpt_of(raw))
    kind = obj.get("type") if type(obj) is dict else None
    if kind == "orderbook_diff":
        code = obj.get("code")
        seq = obj.get("seq")
        side = obj.get("side")
        price_raw = obj.get("price")
        size_raw = obj.get("size")
        if type(code) is str and type(seq) is int and type(price_raw) is str and type(size_raw) is str and seq >= 0:
            try:
                price = float(price_raw)
                size = float(size_raw)
            except ValueError:
                price = size = -1.0
            if 0.0 < price < _INF and 0.0 <= size < _INF and (side == "bid" or side == "ask"):
                sent_at = obj.get("ts", 0.0)
                return _new(DiffEvent, (code, seq, side == "bid", price, size,
                                        sent_at if type(sent_at) is float else 0.0))
        return _decode_diff(obj, raw)
    if kind == "ack":
        return _decode_ack(obj, raw)
    if type(obj) is not dict:
        return DecodeError(MalformedKind.NOT_OBJECT, "frame is not a JSON object", excerpt_of(raw))
    # an unknown type is one dict lookup, one small object and a 120-byte excerpt: a flood of
    # them costs about what a flood of diffs costs (bench/reader_flood.py); the reader counts
    # and throttles the logging
    return DecodeError(MalformedKind.UNKNOWN_MESSAGE, f"unknown frame type {kind!r}", excerpt_of(raw))


def _decode_diff(obj: dict[str, Any], raw: str | bytes) -> DiffEvent | DecodeError:
    try:
        code = obj["code"]
        seq = obj["seq"]
        side = obj["side"]
        price_raw = obj["price"]
        size_raw = obj["size"]
    except KeyError as missing:
        return DecodeError(MalformedKind.MISSING_FIELD, f"diff without {missing.args[0]!r}", excerpt_of(raw))
    if type(code) is not str or type(seq) is not int:
        return DecodeError(MalformedKind.WRONG_TYPE, "code must be a string and seq an integer", excerpt_of(raw))
    if side == "bid":
        is_bid = True
    elif side == "ask":
        is_bid = False
    else:
        return DecodeError(MalformedKind.BAD_VALUE, f"unknown side {side!r}", excerpt_of(raw))
    price = to_number(price_raw)
    size = to_number(size_raw)
    if price is None or size is None or price == 0.0 or seq < 0:
        if type(price_raw) not in _NUMBER_TYPES or type(size_raw) not in _NUMBER_TYPES:
            return DecodeError(MalformedKind.WRONG_TYPE, "price and size must be decimal strings or numbers",
                               excerpt_of(raw))
        return DecodeError(MalformedKind.BAD_VALUE, "price must be > 0, size >= 0, seq >= 0", excerpt_of(raw))
    sent_at = obj.get("ts", 0.0)
    return DiffEvent(code, seq, is_bid, price, size, sent_at if type(sent_at) is float else 0.0)


def _decode_ack(obj: dict[str, Any], raw: str | bytes) -> Ack | DecodeError:
    codes = obj.get("code", [])
    rejected = obj.get("rejected", [])
    ret = obj.get("ret", 200)
    if not isinstance(codes, list) or not isinstance(rejected, list) or type(ret) is not int:
        return DecodeError(MalformedKind.WRONG_TYPE, "ack fields have the wrong types", excerpt_of(raw))
    return Ack(
        cmd_id=obj.get("cmd_id", SUB_CMD_ID) if type(obj.get("cmd_id")) is int else SUB_CMD_ID,
        ret=ret,
        msg=str(obj.get("action", "")),
        codes=tuple(str(c) for c in codes),
        rejected=tuple(str(c) for c in rejected),
    )


def decode_snapshot(body: bytes | str, expected_code: str) -> Snapshot | DecodeError:
    """The REST ``/depth?code=`` reply; the code must be the one we asked for."""
    try:
        obj = _loads(body)
    except _JSONError:
        return DecodeError(MalformedKind.BAD_JSON, "snapshot is not valid JSON", excerpt_of(body))
    if type(obj) is not dict:
        return DecodeError(MalformedKind.NOT_OBJECT, "snapshot is not a JSON object", excerpt_of(body))
    code, seq = obj.get("code"), obj.get("seq")
    if code != expected_code or type(seq) is not int or seq < 0:
        return DecodeError(MalformedKind.WRONG_TYPE, "snapshot code/seq missing or wrong", excerpt_of(body))
    bids, asks = checked_levels(obj.get("bids")), checked_levels(obj.get("asks"))
    if bids is None or asks is None:
        return DecodeError(MalformedKind.BAD_VALUE, "snapshot levels malformed", excerpt_of(body))
    return Snapshot(code, seq, bids, asks)


class ArticleVenue(Venue):
    """See the module docstring."""

    name = "article"

    @property
    def decode(self) -> Callable[[bytes], Any]:
        return decode

    def plan(self, want: frozenset[str], active: frozenset[str], next_id: Callable[[], int],
             epoch: int) -> list[Request]:
        to_sub, to_unsub = sorted(want - active), sorted(active - want)
        requests = []
        if to_sub:
            requests.append(Request(encode_command("sub", to_sub), f"sub {to_sub}", added=frozenset(to_sub)))
        if to_unsub:
            requests.append(Request(encode_command("unsub", to_unsub), f"unsub {to_unsub}",
                                    removed=frozenset(to_unsub)))
        return requests

    def read_ack(self, ack: Ack, requests: dict[int, Request]) -> AckVerdict:
        rejected = tuple((code, "rejected by the venue") for code in ack.rejected)
        unsubscribed = (*ack.codes, *ack.rejected) if ack.msg == "unsub" else ()
        warning = None if ack.ret == 200 else f"venue answered {ack.msg or ack.cmd_id} with ret {ack.ret}"
        return AckVerdict(rejected=rejected, unsubscribed=tuple(unsubscribed), warning=warning)

    def snapshot_url(self, base_url: str, codes: Sequence[str], trace: str) -> str:
        return f"{base_url}?code={codes[0]}"

    def parse_snapshot(self, body: bytes, codes: Sequence[str]) -> SnapshotReply:
        snap = decode_snapshot(body, codes[0])
        if isinstance(snap, DecodeError):
            return SnapshotReply(error=f"bad snapshot: {decode_error(snap)}")
        return SnapshotReply((snap,))

    def make_policy(self, book: OrderBook, cfg: BookConfig) -> SyncPolicy:
        return ContiguousSync(book, cfg.snapshot_buffer)
