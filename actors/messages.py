"""Every message our book actors exchange: frozen attrs classes, grouped by sender.

Commands are imperatives (``Subscribe``, ``Resync``), events past tense (``SocketOpened``).
Collections inside are tuples or frozensets so a message can be shared between threads
without copying. Supervision messages (ChildExited, ...) live in the generic layer.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import attrs
import pykka

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.sync import ResyncReason
from depthkeeper.actors.core.wire import Ack, DepthPush, DiffEvent, Levels, RangeDiff, Snapshot

# --- service facade / tree -> actors ------------------------------------------------------


@attrs.frozen
class Subscribe:
    """Service -> tree: add these codes to the desired set."""

    codes: tuple[str, ...]


@attrs.frozen
class Unsubscribe:
    """Service -> tree: remove these codes from the desired set."""

    codes: tuple[str, ...]


@attrs.frozen
class DesiredChanged:
    """Tree -> SubscriptionActor: the complete desired set (it computes what to send)."""

    desired: frozenset[str]


@attrs.frozen
class Resync:
    """Tree -> BookActor: start a new sync (new connection epoch, restart, request)."""

    epoch: int
    reason: ResyncReason


@attrs.frozen
class SocketLost:
    """Tree -> BookActors and SnapshotActor: the socket of ``epoch`` is gone (closed, silent, or
    its ConnectionActor died). Books leave LIVE at once and fetch nothing until a new socket."""

    epoch: int
    reason: str


@attrs.frozen
class CodeRejected:
    """SubscriptionActor -> tree -> BookActor: the venue refused this code's subscription."""

    code: str
    reason: str


@attrs.frozen
class CheckRejected:
    """BooksSupervisor -> a BookActor it just (re)started and routed: compare your refusal with the
    tree's now. The factory read it before the route pointed here, so a CodeRejected (or a lift)
    the tree sent in between went to the predecessor and was lost."""


@attrs.frozen
class RetryRejected:
    """Tree -> SubscriptionActor: an explicit subscribe of rejected codes: ask the venue again."""

    codes: frozenset[str]


@attrs.frozen
class RetrySnapshot:
    """BookActor -> itself: the backoff before the next snapshot request (``token``) is over."""

    token: int


@attrs.frozen
class BridgeDeadline:
    """BookActor -> itself: a snapshot ahead of the stream (``token``) had its time to bridge."""

    token: int


@attrs.frozen
class SnapshotLost:
    """Tree -> BookActor: the SnapshotActor restarted; re-request a pending snapshot."""


@attrs.frozen
class Calibrate:
    """Timer -> BookActor: compare the book with a REST snapshot at the same seq."""


@attrs.frozen
class FetchDeadline:
    """BookActor -> itself: no diff arrived soon after a (re)start; fetch the snapshot anyway."""

    token: int


@attrs.frozen
class CheckStale:
    """Timer -> BookActor: flag the book STALE if it has not been updated for too long."""


@attrs.frozen
class GetView:
    """Outside -> BookActor (ask): the current BookView, cut to ``depth``."""

    depth: int | None = None


@attrs.frozen
class GetBookStats:
    """Outside -> BookActor (ask): a BookStats."""


@attrs.frozen
class GetLatencies:
    """Outside -> BookActor (ask): ``(samples ever recorded, the (venue send -> applied seconds,
    diffs) samples recorded after sample number ``since``)``, one per applied batch, timed from
    its oldest diff."""

    since: int = 0


# --- ConnectionActor (and its reader thread) -> others -------------------------------------


@attrs.frozen
class SocketOpened:
    """ConnectionActor -> tree and SubscriptionActor: a new socket incarnation is up."""

    epoch: int


@attrs.frozen
class SocketClosed:
    """Reader thread -> ConnectionActor: the socket of ``epoch`` ended."""

    epoch: int
    reason: str


class DiffBatch(NamedTuple):
    """Reader thread -> BookActor: every diff for one code already read, in order (one-level diffs
    or update-id range events, as the venue's codec decodes them). A NamedTuple, not attrs: one is
    made per code per hand-over, and a tuple is the cheapest immutable record to build."""

    epoch: int
    diffs: tuple[DiffEvent, ...] | tuple[RangeDiff, ...]
    received_at: float


@attrs.frozen
class PushBatch:
    """Reader thread -> BookActor: the newest full top-N push for one code."""

    epoch: int
    push: DepthPush
    received_at: float


@attrs.frozen
class UnwantedData:
    """Reader thread -> SubscriptionActor: frames for codes that have no book (maybe ghosts).

    One message per chunk read, however many codes it holds: a flood spread over thousands
    of distinct codes costs the reader one tell per chunk, not one per code.
    """

    epoch: int
    #: (code, frames) for each code without a book in one chunk
    counts: tuple[tuple[str, int], ...]

    @property
    def frames(self) -> int:
        return sum(frames for _, frames in self.counts)


@attrs.frozen
class AckReceived:
    """Reader thread -> SubscriptionActor: the venue answered one of our commands."""

    epoch: int
    ack: Ack


@attrs.frozen
class VenueFailure:
    """ConnectionActor -> tree: the venue refused us for good (bad token)."""

    reason: str


# --- SubscriptionActor -> ConnectionActor --------------------------------------------------


@attrs.frozen
class SendFrame:
    """SubscriptionActor -> ConnectionActor: send this text frame on ``epoch`` (paced)."""

    epoch: int
    text: str
    what: str


# --- BookActor <-> SnapshotActor -----------------------------------------------------------


@attrs.frozen
class RequestSnapshot:
    """BookActor -> SnapshotActor: fetch a snapshot of ``code`` and reply with ``token``."""

    code: str
    token: int
    reply_to: pykka.ActorRef[Any] = attrs.field(eq=False)


@attrs.frozen
class SnapshotReady:
    """SnapshotActor -> BookActor: the reply to RequestSnapshot (exactly one per request)."""

    code: str
    token: int
    snapshot: Snapshot | DepthPush


# --- BookActor -> listeners ----------------------------------------------------------------


@attrs.frozen
class BookView:
    """An immutable picture of one book. ``bids``/``asks`` are (price, size), best first."""

    code: str
    status: BookStatus
    seq: int
    bids: Levels
    asks: Levels
    #: wall-clock time (time.time()) of the last change applied
    updated_at: float
    #: levels per side known complete at the venue (a view never shows more)
    complete_levels: tuple[int, int] = (0, 0)
    #: why the book has this status ("in sync" when LIVE)
    reason: str = ""
    #: the venue's time of the last event applied, seconds since the epoch (Binance ``E``, AllTick
    #: ``tick_time``); 0.0 when the venue does not say (article) or nothing was applied since a sync
    event_time: float = 0.0

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.updated_at) if self.updated_at else float("inf")

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None


@attrs.frozen
class BookUpdated:
    """BookActor -> listener: the book changed (conflated: the newest view wins)."""

    view: BookView


@attrs.frozen
class BookStatusChanged:
    """BookActor -> listener: status moved (never conflated away)."""

    code: str
    old: BookStatus
    new: BookStatus
    seq: int
    #: machine-readable cause: a ResyncReason value, or "disconnected", "rejected", "stale", "caught_up"
    reason: str
    #: the same for a human (shown in views and logs)
    detail: str = ""


@attrs.frozen(kw_only=True)
class BookStats:
    """One book's figures for stats(), metrics and the live view (read without a message: readport.py)."""

    code: str
    status: BookStatus
    #: why the book has its status ("in sync" when LIVE)
    reason: str
    seq: int
    #: the socket epoch the book syncs on
    epoch: int
    #: wall-clock time of the last change applied (0: never), and seconds since then (inf: never)
    updated_at: float
    age_s: float
    #: batches waiting in the book's inbox
    inbox: int
    applied: int
    gaps: int
    resyncs: int
    duplicates: int
    overflows: int
    crossed: int
    stale_dropped: int
    #: snapshots refused (empty or short), ahead of the stream, and buffered diffs skipped as not in the chain
    bad_snapshots: int = 0
    ahead_snapshots: int = 0
    suspect_diffs: int = 0
    drifted_levels: int = 0
    calibrations: int = 0
    #: batches from an older socket epoch that were ignored (late frames of a dead socket)
    old_epoch_batches: int = 0
    #: venue send timestamp -> applied, over the last <= 1024 batches (0 when not stamped)
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    latency_max_s: float = 0.0
    #: frame read by the reader thread -> applied (the in-process hop), same window
    apply_p50_s: float = 0.0
    apply_p99_s: float = 0.0


# --- internal (an actor to itself, or a worker thread to its actor) ------------------------


@attrs.frozen
class FetchDone:
    """Snapshot worker -> SnapshotActor: the result of one REST request."""

    codes: tuple[str, ...]
    results: tuple[Snapshot | DepthPush, ...]
    error: str | None = None
    #: a permanent refusal (HTTP 401 / ret 401): do not retry
    fatal: bool = False
    #: the venue said to stop (HTTP 429/418 with ``Retry-After``): no request at all for this long
    retry_after_s: float | None = None
    #: the REST weight the venue says we used this window (``Venue.used_weight``), when it says
    used_weight: int | None = None


@attrs.frozen
class RetryFetch:
    """SnapshotActor -> itself: the backoff after a failed fetch of ``code`` is over."""

    code: str


@attrs.frozen
class DrainQueue:
    """SnapshotActor -> itself: the request budget has room again."""


@attrs.frozen
class ConnectNow:
    """ConnectionActor -> itself: (re)connect; scheduled with backoff."""

    attempt: int


@attrs.frozen
class HeartbeatTick:
    """Timer -> ConnectionActor: one heartbeat interval elapsed."""


@attrs.frozen
class SocketAgeLimit:
    """Timer -> ConnectionActor: the socket of ``epoch`` reached the venue's maximum age; replace it
    (a planned reconnect, before the venue cuts it)."""

    epoch: int


@attrs.frozen
class FlushSends:
    """ConnectionActor -> itself: the pacing interval has elapsed; send what is queued."""


@attrs.frozen
class FlushSubscriptions:
    """SubscriptionActor -> itself: the coalescing window / min interval is over."""


@attrs.frozen
class GetCounters:
    """Outside -> Connection/Subscription/Snapshot actor (ask): a dict of counters."""
