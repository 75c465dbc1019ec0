"""What the live terminal view needs to know, and where it gets it from.

The view never talks to a ``BookService`` directly: it asks a :class:`BookSource` for a
:class:`SourceSnapshot` once per frame. :class:`ServiceSource` is the source for a local
``BookService`` (through its public API only); ``depthkeeper.cluster.watch.RemoteSource`` fills
the same snapshot from remote books (``depthkeeper watch``), and the same screen then shows books
held by other processes, its link being the cluster's Redis instead of a venue socket. Everything
here is plain data (frozen attrs), so the view-model and the rendering are tested with hand-made
snapshots, no service, no terminal.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.wire import redact
from depthkeeper.actors.messages import BookStatusChanged

if TYPE_CHECKING:
    from depthkeeper.supervisor.service.facade import BookService

#: levels per side read for each book: a few prices are enough to learn a symbol's decimals
VIEW_DEPTH = 5
#: the listener wants status changes only: views (read for it at every update otherwise, ~6% of a
#: core at 10k diffs/s) at most this rarely
STATUS_ONLY_S = 3600.0
#: book status events kept between two snapshots (a slow screen must not grow memory)
MAX_PENDING_EVENTS = 1000


@attrs.frozen
class BookSample:
    """One book as the screen shows it."""

    code: str
    status: BookStatus
    #: why the book has its status (the view's ``reason``)
    reason: str
    seq: int
    #: seconds since the last change applied (inf: never)
    age_s: float
    #: diffs applied so far (a rate is the difference between two snapshots)
    applied: int
    gaps: int
    resyncs: int
    best_bid: float | None = None
    best_ask: float | None = None
    #: levels per side known complete (bids, asks)
    levels: tuple[int, int] = (0, 0)
    #: a few of its prices, best first, to learn how many decimals the symbol quotes
    prices: tuple[float, ...] = ()


@attrs.frozen
class LinkSample:
    """The one socket to the venue, and its counters (they only grow while the actor lives)."""

    connected: bool
    #: why there is no socket ("" while connected)
    down_reason: str
    #: the venue refused us for good (bad token): "" unless so
    failed: str
    epoch: int
    reconnects: int
    connect_failures: int
    heartbeat_timeouts: int
    malformed: int
    #: what the link is, as the header and the events pane call it: "connection" (the venue's socket),
    #: "redis" (a cluster's bus: the books come from other processes)
    name: str = "connection"
    #: said after UP instead of "epoch N" when set (a cluster: "3 shards, publisher epochs 4-7")
    detail: str = ""
    #: the counters line as (label, value) pairs, instead of the venue socket's four, when set
    counters: tuple[tuple[str, int], ...] = ()


@attrs.frozen
class StatusEvent:
    """A book changed status (a ``BookStatusChanged``, stamped with the wall time it was seen)."""

    at: float
    code: str
    old: BookStatus
    new: BookStatus
    #: machine-readable cause (a ResyncReason value, "disconnected", "rejected", ...)
    reason: str
    #: the same for a human
    detail: str


@attrs.frozen
class SourceSnapshot:
    """Everything one frame shows, read at one moment."""

    #: where the books come from (a URL, tokens redacted)
    venue: str
    dialect: str
    #: wall time the source started (uptime = now - started_at)
    started_at: float
    #: time.monotonic() when read (rates are differences between snapshots)
    taken_at: float
    link: LinkSample
    books: tuple[BookSample, ...]
    #: frame read -> applied, worst book, over its recent window
    apply_p50_s: float = 0.0
    apply_p99_s: float = 0.0
    #: status changes since the previous snapshot, oldest first
    events: tuple[StatusEvent, ...] = ()
    #: what the two latency figures measure (a cluster: "e2e", the shard's book -> this process' book)
    latency_label: str = "apply"


class BookSource(Protocol):
    """What the live view reads. ``snapshot`` is called from one thread, a few times a second."""

    def snapshot(self) -> SourceSnapshot: ...

    def close(self) -> None: ...


class ServiceSource:
    """A :class:`BookSource` over a local ``BookService``, through its public API only.

    Status changes come from a listener (the service calls it on its own thread: it only
    queues); counters and books are read at each :meth:`snapshot`.
    """

    def __init__(self, svc: BookService) -> None:
        self._svc = svc
        self._lock = threading.Lock()
        self._events: deque[StatusEvent] = deque(maxlen=MAX_PENDING_EVENTS)
        self._listener_id: int | None = svc.add_listener(self._on_event, )

    def _on_event(self, event: Any) -> None:
        if isinstance(event, BookStatusChanged):
            with self._lock:
                self._events.append(StatusEvent(time.time(), event.code, event.old, event.new, event.reason,
                                                event.detail))

    def _drain(self) -> tuple[StatusEvent, ...]:
        with self._lock:
            events = tuple(self._events)
            self._events.clear()
        return events

    def snapshot(self) -> SourceSnapshot:
        svc = self._svc
        stats = svc.stats()
        latencies = svc.book_stats()
        conn = stats.connection
        link = LinkSample(connected=conn.connected, down_reason=conn.down_reason, failed=conn.failed or "",
                          epoch=conn.epoch, reconnects=conn.reconnects, connect_failures=conn.connect_failures,
                          heartbeat_timeouts=conn.heartbeat_timeouts, malformed=conn.malformed)
        books = []
        for code, fig in stats.books.items():
            sample = BookSample(code=code, status=_status(fig.status), reason=fig.reason, seq=fig.seq,
                                age_s=fig.age_s, applied=fig.applied, gaps=fig.gaps, resyncs=fig.resyncs)
            try:
                view = svc.book(code, depth=VIEW_DEPTH, timeout_s=0.5)
            except Exception:  # noqa: BLE001 - a restarting book shows its figures without prices
                view = None
            if view is not None:
                sample = attrs.evolve(sample, best_bid=view.best_bid, best_ask=view.best_ask,
                                      levels=view.complete_levels,
                                      prices=tuple(p for p, _ in view.bids) + tuple(p for p, _ in view.asks))
            books.append(sample)
        url = getattr(svc, "url", "") or svc.cfg.venue.url
        return SourceSnapshot(
            venue=redact(url), dialect=svc.cfg.venue.dialect, started_at=svc.started_at, taken_at=time.monotonic(),
            link=link, books=tuple(books),
            apply_p50_s=max((b.apply_p50_s for b in latencies.values()), default=0.0),
            apply_p99_s=max((b.apply_p99_s for b in latencies.values()), default=0.0),
            events=self._drain())

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._listener_id is not None:
            self._svc.remove_listener(self._listener_id)
            self._listener_id = None


def _status(name: str) -> BookStatus:
    try:
        return BookStatus[name]
    except KeyError:
        return BookStatus.SYNCING
