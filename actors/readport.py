"""Lock-free reads of a live book from outside the tree (``svc.book``), validated by a seqlock.

An ``ask`` to the BookActor costs two thread wake-ups and waits behind the book's backlog.
Instead the BookActor bumps ``gen`` before and after every message it handles (odd =
writing). A reader copies the two price maps (``dict.copy`` of float keys runs entirely in
C, so under the GIL it is atomic) plus the version fields, then checks ``gen`` did not
move; if it did, it retries. The copy is sorted in the *caller's* thread. The BookActor
never waits for a reader.

Stats are read the same way: the port holds the book's counter records and latency rings,
``stats()`` copies them (ints and C-level array copies) inside the retry loop and computes
the percentiles outside it. The port is the whole read side of a book: nobody outside the
tree touches the BookActor object.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from depthkeeper.actors.core.orderbook import BookStatus, levels_of
from depthkeeper.actors.core.promise import shown_status
from depthkeeper.actors.core.samples import Latencies, pairs, percentile, split
from depthkeeper.actors.core.sync import SyncCounters
from depthkeeper.actors.messages import BookStats, BookView

if TYPE_CHECKING:
    from depthkeeper.actors.core.calibration import Calibration
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.core.promise import SocketState

T = TypeVar("T")

#: attempts before the caller falls back to asking the actor
MAX_ATTEMPTS = 16
#: what a copy taken while the owner writes can raise ("mutated during iteration", a price removed
#: between reading the prices and their sizes): a torn read, retried like a moved ``gen``
_TORN = (RuntimeError, KeyError, IndexError)


@attrs.define
class BookCounters:
    """What a BookActor counts beyond its sync policy."""

    #: batches from an older (or lost) socket epoch, ignored
    old_epoch_batches: int = 0


class BookReadPort:
    """The read side of one book: its state, counters and latencies, written by its actor."""

    __slots__ = ("book", "calibration", "code", "counters", "epoch", "gen", "inbox", "latencies", "levels_held",
                 "socket", "sync", "updated_at")

    def __init__(self, code: str, book: OrderBook, *, sync: SyncCounters | None = None,
                 calibration: Calibration | None = None, latencies: Latencies | None = None,
                 inbox: Any = None) -> None:
        self.code = code
        self.book = book
        self.gen = 0
        self.updated_at = 0.0
        #: the socket epoch the book syncs on, and the shared socket state (the LIVE promise)
        self.epoch = 0
        self.socket: SocketState | None = None
        self.sync = sync if sync is not None else SyncCounters()
        self.counters = BookCounters()
        self.calibration = calibration
        self.latencies = latencies if latencies is not None else Latencies(16)
        #: the actor's inbox (a queue: ``qsize()`` is thread-safe)
        self.inbox = inbox
        #: levels per side the book last held LIVE (its policy's; a restarted book inherits them)
        self.levels_held: Callable[[], tuple[int, int]] = lambda: (0, 0)

    def status(self) -> BookStatus:
        """The status a reader may be shown (one attribute read per field: no copy, no sort)."""
        book = self.book
        return shown_status(book.status, book.reason, self.epoch, self.socket)[0]

    def consistent(self, read: Callable[[], T]) -> T | None:
        """``read()`` run between two messages of the owner (retried if one was handled meanwhile).

        Used for views and for stats: an ask queued behind a book's backlog answers late, and a
        thousand of them at once hold up every book's data on a shared dispatcher; this reads in
        the caller's thread instead. ``read`` must only copy (C-level copies are atomic under the
        GIL); work on the copy belongs outside it."""
        for attempt in range(MAX_ATTEMPTS):
            gen = self.gen
            if not gen & 1:
                try:
                    result = read()
                except _TORN:  # the owner got in between
                    result = None
                else:
                    if self.gen == gen:
                        return result
            if attempt:
                time.sleep(0)
        return None

    def read(self, depth: int | None) -> BookView | None:
        """A consistent view, or None if the book kept changing under us."""
        # the first attempt inline (``consistent``'s, without its closure and loop): a listener
        # reads a view per update, and nearly every first attempt succeeds
        gen = self.gen
        if not gen & 1:
            try:
                copied = self._copy(depth)
            except _TORN:  # the owner got in between
                pass
            else:
                if self.gen == gen:
                    return self._view(copied, depth)
        retried = self.consistent(lambda: self._copy(depth))
        return None if retried is None else self._view(retried, depth)

    def owner_view(self, depth: int | None) -> BookView:
        """The view from the book's own actor (the writer: nothing can change under it)."""
        return self._view(self._copy(depth), depth)

    def owner_pending_view(self, depth: int | None) -> BookView:
        """``owner_view`` with its levels left to copy until first read (``PendingView``): for an inline
        hook, called by the owner, which must ``settle`` the view before the book changes again."""
        book = self.book
        status, reason = shown_status(book.status, book.reason, self.epoch, self.socket)
        view = _new(PendingView)
        _set_code(view, self.code)
        _set_status(view, status)
        _set_seq(view, book.last_seq)
        _set_bids(view, _Source(self, depth, self.gen))  # where the levels come from, until copied
        _set_updated_at(view, self.updated_at)
        _set_reason(view, reason)
        _set_event_time(view, book.event_time)
        return view

    def _levels(self, depth: int | None) -> tuple[Any, ...]:
        return self._copy(depth)[:3]

    def _view(self, copied: tuple[Any, ...], depth: int | None) -> BookView:
        bids, asks, complete, status, reason, seq, updated_at, epoch, event_time = copied
        status, reason = shown_status(status, reason, epoch, self.socket)
        return _new_view(self.code, status, seq, bids, asks, updated_at, complete, reason, event_time)

    def _copy(self, depth: int | None) -> tuple[Any, ...]:
        # The book keeps each side's prices in order (orderbook.py): a view slices the complete levels
        # it shows (best first) and pairs each with its size. Each slice and each ``tuple(zip(...))``
        # runs in C, so under the GIL it is as atomic as a dict copy; between them the owner may get
        # in, and the seqlock (``gen``) tells (a size looked up for a price removed meanwhile raises
        # KeyError: the caller retries).
        book = self.book
        complete = nb, na = book.complete_levels()
        if depth is not None:
            nb, na = min(nb, depth), min(na, depth)
        bid_prices = book.bid_prices[:-nb - 1:-1] if nb else ()
        ask_prices = book.ask_prices[:na]
        return (levels_of(book.bids, bid_prices), levels_of(book.asks, ask_prices), complete,
                book.status, book.reason, book.last_seq, self.updated_at, self.epoch, book.event_time)

    def stats(self) -> BookStats | None:
        """A consistent BookStats, or None if the book kept changing under us."""
        copied = self.consistent(self._copy_stats)
        return None if copied is None else self._stats(copied)

    def owner_stats(self) -> BookStats:
        """BookStats from the book's own actor (it is the writer: nothing can change under it)."""
        return self._stats(self._copy_stats())

    def _stats(self, copied: tuple[Any, ...]) -> BookStats:
        status, reason, seq, updated_at, epoch, sync, counters, drift, calibrations, samples = copied
        e2e, hop = split(samples)  # outside the retry loop
        e2e_sorted, hop_sorted = sorted(e2e), sorted(hop)
        status, reason = shown_status(status, reason, epoch, self.socket)
        inbox = self.inbox.qsize() if self.inbox is not None else 0
        return BookStats(
            code=self.code, status=status, reason=reason, seq=seq, epoch=epoch, updated_at=updated_at,
            age_s=max(0.0, time.time() - updated_at) if updated_at else float("inf"), inbox=inbox,
            applied=sync.applied, gaps=sync.gaps, resyncs=sync.resyncs, duplicates=sync.duplicates,
            overflows=sync.overflows, crossed=sync.crossed, stale_dropped=sync.stale_dropped,
            bad_snapshots=sync.bad_snapshots, ahead_snapshots=sync.ahead_snapshots, suspect_diffs=sync.suspect_diffs,
            drifted_levels=drift, calibrations=calibrations, old_epoch_batches=counters.old_epoch_batches,
            latency_p50_s=percentile(e2e_sorted, 0.5), latency_p99_s=percentile(e2e_sorted, 0.99),
            latency_max_s=e2e_sorted[-1] if e2e_sorted else 0.0,
            apply_p50_s=percentile(hop_sorted, 0.5), apply_p99_s=percentile(hop_sorted, 0.99))

    def _copy_stats(self) -> tuple[Any, ...]:
        book, cal, lat = self.book, self.calibration, self.latencies
        return (book.status, book.reason, book.last_seq, self.updated_at, self.epoch, attrs.evolve(self.sync),
                attrs.evolve(self.counters), cal.drifted_levels if cal else 0, cal.completed if cal else 0,
                lat.copy())

    def latency_window(self, since: int = 0) -> tuple[int, list[tuple[float, int]]] | None:
        """``Latencies.window`` read consistently (None if the book kept changing under us)."""

        def copy() -> tuple[int, array[float]]:
            lat = self.latencies
            count = lat.count
            return count, lat.last(count - since)

        copied = self.consistent(copy)
        if copied is None:
            return None
        count, samples = copied
        return count, pairs(samples)


class ReadPorts:
    """code -> the live BookActor's port; each actor registers itself and removes only its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ports: dict[str, BookReadPort] = {}
        #: code -> levels per side its book last held LIVE, left by a stopped incarnation for the
        #: next one (a restarted book must still know a short snapshot when it sees one)
        self._levels_held: dict[str, tuple[int, int]] = {}

    def register(self, port: BookReadPort) -> None:
        with self._lock:
            self._ports[port.code] = port

    def unregister(self, port: BookReadPort) -> None:
        with self._lock:
            if self._ports.get(port.code) is port:
                del self._ports[port.code]
                self._levels_held[port.code] = port.levels_held()

    def levels_held(self, code: str) -> tuple[int, int]:
        """What the previous incarnation of ``code``'s book last held LIVE: from its port if it is
        still registered (a zombie runs no cleanup), else what it left when it stopped."""
        with self._lock:
            port = self._ports.get(code)
            if port is not None:
                return port.levels_held()
            return self._levels_held.get(code, (0, 0))

    def get(self, code: str) -> BookReadPort | None:
        return self._ports.get(code)


_new = object.__new__
(_set_code, _set_status, _set_seq, _set_bids, _set_asks, _set_updated_at, _set_complete, _set_reason,
 _set_event_time) = (BookView.__dict__[field.name].__set__ for field in attrs.fields(BookView))
_get_bids = BookView.__dict__["bids"].__get__
_set_class = object.__setattr__


class _Source:
    """Where a pending view's levels come from: the book's port, the depth, and the port's ``gen`` when
    the view was made (one object in one slot: a reader sees all three or none)."""

    __slots__ = ("depth", "gen", "port")

    def __init__(self, port: BookReadPort, depth: int | None, gen: int) -> None:
        self.port = port
        self.depth = depth
        self.gen = gen


class PendingView(BookView):
    """A BookView whose levels are copied from the book when first read.

    An inline hook runs on the book's own turn, while the book cannot change: copying its levels
    can wait until the hook reads them, and a hook that looks only at ``seq`` or ``status`` (or
    drops most updates) never pays for the copy. Once the levels are copied (``settle``) the object
    *becomes* a plain BookView (its class is swapped; the layouts are the same): equal, hashable,
    printable and picklable as one. Until then ``bids`` holds a ``_Source`` and ``asks`` is unset;
    every read of a level field, and ``==``, ``hash``, ``repr``, copies first.

    The owner settles the view right after the hook returns if anyone still holds it, even weakly (see
    ``ListenerHub.deliver_inline``), so a view kept or passed on shows the book as it was at that
    turn. A copy is stored only if the book's ``gen`` is still the one the view was made at (the owner
    has not moved on) and the view is still pending; a copy that can no longer be right raises
    ``StaleViewError`` instead of showing another turn's levels."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> BookView:  # type: ignore[misc]
        return BookView(*args, **kwargs)  # ``attrs.evolve`` of a pending view: a plain one

    bids = property(lambda self: settle(self).bids)  # type: ignore[assignment]
    asks = property(lambda self: settle(self).asks)  # type: ignore[assignment]
    complete_levels = property(lambda self: settle(self).complete_levels)  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return settle(self) == other

    def __ne__(self, other: object) -> bool:
        return settle(self) != other

    def __hash__(self) -> int:
        return hash(settle(self))

    def __repr__(self) -> str:
        return repr(settle(self))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return settle(self).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return settle(self).__reduce_ex__(2)


class StaleViewError(RuntimeError):
    """A pending view read after its book moved on without it being settled (never, unless something
    reached the view in a way its owner could not see: a debugger, ``gc.get_objects``)."""


_settling = threading.Lock()


def settle(view: BookView) -> BookView:
    """``view`` with its levels copied, a plain BookView (a no-op for one that is already)."""
    while type(view) is PendingView:
        source = _get_bids(view)
        levels = None
        if type(source) is _Source:  # (else another thread is storing its copy: wait for it below)
            port = source.port
            if port.gen != source.gen:
                with _settling:
                    if _get_bids(view) is source:  # not settled before the book moved: no copy can be right
                        raise StaleViewError(f"a view of {port.code} at seq {view.seq} read after its book moved on")
                continue  # settled meanwhile (by the owner, before it moved on)
            try:
                levels = port._levels(source.depth)
            except _TORN:  # not the owner, and the owner moved on meanwhile: the gen check says so
                continue
        with _settling:
            # stored only while still pending and while the book has not moved since the view was made
            if levels is not None and _get_bids(view) is source and port.gen == source.gen:
                _set_bids(view, levels[0])
                _set_asks(view, levels[1])
                _set_complete(view, levels[2])
                _set_class(view, "__class__", BookView)
    return view


def _new_view(code: str, status: BookStatus, seq: int, bids: Any, asks: Any, updated_at: float,
              complete: tuple[int, int], reason: str, event_time: float) -> BookView:
    """``BookView(...)`` at ~60% of the cost: a frozen attrs class sets each field through
    ``object.__setattr__`` (~1.6 us for nine); its slots' descriptors set them directly. BookView has
    no validators or converters, so the result is the same object (tests/actors compare the two)."""
    view = _new(BookView)
    _set_code(view, code)
    _set_status(view, status)
    _set_seq(view, seq)
    _set_bids(view, bids)
    _set_asks(view, asks)
    _set_updated_at(view, updated_at)
    _set_complete(view, complete)
    _set_reason(view, reason)
    _set_event_time(view, event_time)
    return view
