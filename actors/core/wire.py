"""Typed, immutable events decoded from the wire, shared by both dialect codecs.

The hot path decodes one diff per frame, so the per-diff event is a ``NamedTuple``: it is
immutable and typed like an attrs class but costs a third of the construction time, and
that matters at 100k frames/s. Everything that is rare (snapshots, acks, errors) is a
frozen attrs class.

Prices and sizes are floats. A venue sends decimal strings with at most ~15 significant
digits, and ``float(s)`` maps each such string to exactly one double, so two books built
from the same strings compare equal; Decimal would cost 3x per level on the hot path and
buy nothing for equality or ordering.
"""

from __future__ import annotations

import enum
import re
from typing import Any, NamedTuple

import attrs

#: One side of a book as sorted (price, size) pairs, best first.
Levels = tuple[tuple[float, float], ...]


class DiffEvent(NamedTuple):
    """One price-level change for one symbol (article dialect): the range ``seq..seq``."""

    code: str
    seq: int
    is_bid: bool
    price: float
    size: float
    #: the venue's send timestamp (seconds since the epoch) when present; else 0.0
    sent_at: float = 0.0

    @property
    def first(self) -> int:
        """The first update id the diff covers: a one-level diff covers only its own seq (see RangeDiff)."""
        return self.seq


class RangeDiff(NamedTuple):
    """One venue event for one symbol covering update ids ``first..seq`` (Binance ``depthUpdate``
    ``U``..``u``): every level that changed in that range, with its absolute new size (0 deletes).

    ``seq`` is the LAST id, so code that only needs "how far does this event take the book" reads
    ``seq`` for both kinds of diff; the sync policies read ``first`` too (a DiffEvent's is its seq).
    """

    code: str
    first: int
    seq: int
    bids: Levels
    asks: Levels
    #: the venue's send timestamp (a simulator stamp for latency benches) when present; else 0.0
    sent_at: float = 0.0
    #: the venue's event time, seconds since the epoch (Binance ``E``); 0.0 when unknown
    event_time: float = 0.0


@attrs.frozen
class DepthPush:
    """A complete top-N book for one code (alltick 22999 push or REST depth-tick row)."""

    code: str
    seq: int
    #: exchange time in seconds since the epoch (normalised from s or ms)
    tick_time_s: float
    bids: Levels
    asks: Levels


@attrs.frozen
class Snapshot:
    """A full book at version ``seq`` from the REST endpoint (article and binance dialects)."""

    code: str
    seq: int
    bids: Levels
    asks: Levels


@attrs.frozen
class Ack:
    """The venue's reply to one of our commands; ``ret`` 200 means ok."""

    cmd_id: int
    ret: int
    msg: str = ""
    codes: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    seq_id: int | None = None
    trace: str | None = None


@attrs.frozen
class HeartbeatAck:
    """alltick 22001."""


class MalformedKind(enum.Enum):
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_VALUE = "bad_value"
    UNKNOWN_MESSAGE = "unknown_message"


@attrs.frozen
class DecodeError:
    """A frame we could not use. Returned, never raised: the caller counts and logs it."""

    kind: MalformedKind
    detail: str
    #: the first bytes of the frame, for the log line
    excerpt: str = ""


@attrs.frozen
class Ignored:
    """A well-formed frame we have no use for (e.g. a trade ack); counted, not an error."""

    reason: str


def to_number(value: Any) -> float | None:
    """A price or size from a decimal string or a JSON number; None if unusable.

    Rejects bools, NaN, infinities and negatives (a negative size is malformed, not a delete).
    """
    if type(value) is str or type(value) is float or type(value) is int:
        try:
            number = float(value)
        except ValueError:
            return None
        if 0.0 <= number < float("inf"):
            return number
    return None


def excerpt_of(raw: str | bytes, limit: int = 120) -> str:
    """A short, printable prefix of a raw frame for log lines."""
    if isinstance(raw, bytes):
        raw = raw[:limit].decode("utf-8", "replace")
    return raw[:limit]


_TOKEN = re.compile(r"(token=)[^&\s\"']+")


def redact(text: str) -> str:
    """Replace the value of any ``token=`` query parameter with ``***`` (URLs in logs)."""
    return _TOKEN.sub(r"\1***", text)
