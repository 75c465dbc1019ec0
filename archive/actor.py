"""ArchiveActor: periodic top-N snapshots of every LIVE book, plus every status change, in SQLite.

Why it is shaped like this:

- It never blocks a BookActor, and costs the live books as little as possible. It listens
  through the ListenerHub with a *callable* (``_Mailbox``), not with its actor ref: the
  hub's dispatcher thread drops each view into a dict (newest view per symbol wins) and
  each status event into a list, under one short lock, and the actor drains both at each
  tick. An actor-ref listener would cost an ``ask`` round trip between two threads per
  book update, all of it GIL time taken from the reader and the books (measured: see
  ``bench/archive_bench.py``). Every view replaced before it reached the file, here or in
  the hub's own conflating mailbox, is counted (``skipped``).
- One transaction per ``interval_s`` (WAL mode), so a crash or kill loses at most the batch
  not yet committed, and the file is never left half-written: a crash inside a write rolls
  it back. A clean stop commits what it holds.
- If a write overruns its interval the missed ticks are not queued up behind it (that
  would only write many tiny batches late); the next tick is the next interval boundary,
  and the missed intervals are counted (``missed_intervals``).
- A restarted archive appends, never rewrites: it reads the last ``ts``/``seq`` per symbol
  back and keeps ``ts`` strictly increasing per symbol across both tables, so
  ``(symbol, ts)`` identifies a row (enforced by unique indexes). An unchanged book (same
  seq as its last row) is not written again.

The schema is documented in the README ("Archive") and is ``SCHEMA`` below.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView, GetCounters
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.archive.schema import insert_rows, last_rows, open_archive
from depthkeeper.supervisor.otp.base import SupervisedActor

if TYPE_CHECKING:
    from depthkeeper.actors.listeners import ListenerHub
    from depthkeeper.supervisor.otp.scheduler import Scheduler
    from depthkeeper.supervisor.otp.spec import ChildContext

#: status events held between two writes at most (the oldest beyond are dropped, counted)
MAX_PENDING_EVENTS = 100_000
#: the step that keeps two rows of one symbol apart when the clock has not moved (or moved back)
TS_STEP_S = 1e-6

@attrs.frozen
class ArchiveTick:
    """Timer -> ArchiveActor: write one batch."""


def event_kind(event: BookStatusChanged) -> str:
    """``gap`` / ``resync`` when the book left LIVE-able state to resync, else ``status``."""
    if event.new is BookStatus.RESYNCING:
        return "gap" if event.reason == "gap" else "resync"
    return "status"


class ArchiveMailbox:
    """Filled by the hub's dispatcher thread (or by tells), drained by the actor at each tick."""

    def __init__(self, max_events: int) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, BookView] = {}
        #: (received_at, symbol, kind, old, new, seq, reason), oldest first
        self._events: deque[tuple[Any, ...]] = deque(maxlen=max_events)
        self.received = 0
        self.superseded = 0
        self.events_dropped = 0

    def __call__(self, event: BookUpdated | BookStatusChanged) -> None:
        if isinstance(event, BookUpdated):
            with self._lock:
                self.received += 1
                if event.view.code in self._views:
                    self.superseded += 1
                self._views[event.view.code] = event.view
        else:
            row = (time.time(), event.code, event_kind(event), event.old.name, event.new.name, event.seq,
                   event.reason)
            with self._lock:
                if len(self._events) == self._events.maxlen:
                    self.events_dropped += 1  # only with a writer stalled for very long: counted
                self._events.append(row)

    def take(self) -> tuple[dict[str, BookView], list[tuple[Any, ...]]]:
        with self._lock:
            views, self._views = self._views, {}
            events = list(self._events)
            self._events.clear()
        return views, events

    @property
    def pending(self) -> int:
        return len(self._views)


@attrs.define
class ArchiveCounters:
    """What the ArchiveActor counts (cumulative)."""

    rows_written: int = 0
    events_written: int = 0
    batches: int = 0
    #: views not written: not LIVE, or the same seq as the symbol's last row
    not_live: int = 0
    unchanged: int = 0
    #: intervals skipped because the previous write overran
    missed_intervals: int = 0
    last_batch_s: float = 0.0


@attrs.frozen
class ArchiveReport:
    """The answer to GetCounters."""

    counters: ArchiveCounters
    #: views received, and views replaced before they were written (here or in the hub's mailbox)
    views: int
    skipped: int
    events_dropped: int
    pending: int
    path: str


class ArchiveActor(SupervisedActor):
    """See the module docstring. Counters via ``ask(GetCounters())``."""

    log_name = "archive"

    def __init__(self, ctx: ChildContext | None, *, path: str, interval_s: float, depth: int, hub: ListenerHub,
                 scheduler: Scheduler, mailbox: ArchiveMailbox | None = None, listener_id: int | None = None) -> None:
        super().__init__(ctx)
        self._path = path
        self._interval_s = interval_s
        self._depth = depth
        self._hub = hub
        self._scheduler = scheduler
        self._db: sqlite3.Connection | None = None
        #: a mailbox the service registered before any book started (so the first status change of
        #: every book is archived, and none is lost while this actor restarts), or our own
        self._mailbox = mailbox if mailbox is not None else ArchiveMailbox(MAX_PENDING_EVENTS)
        self._owns_listener = mailbox is None
        self._written_seq: dict[str, int] = {}
        self._last_ts: dict[str, float] = {}
        self._listener_id: int | None = listener_id
        self._timer: Any = None
        self._due_s = 0.0
        self.counters = ArchiveCounters()

    # -- lifecycle ---------------------------------------------------------------------

    def init(self) -> None:
        self._db = open_archive(self._path)
        self._last_ts, self._written_seq = last_rows(self._db)
        if self._owns_listener:
            self._listener_id = self._hub.add(self._mailbox, min_interval_s=self._interval_s / 2)
        self._due_s = time.monotonic() + self._interval_s
        self._timer = self._scheduler.schedule(self._interval_s, self.actor_ref, ArchiveTick())
        self.log.info("archiving to {} every {}s (depth {}; {} symbols already archived)", self._path,
                       self._interval_s, self._depth, len(self._last_ts))

    def cleanup(self) -> None:
        if self._owns_listener and self._listener_id is not None:
            self._hub.remove(self._listener_id)
            self._listener_id = None
        self._scheduler.cancel(self._timer)
        db, self._db = self._db, None
        if db is not None:
            if db.in_transaction:
                db.rollback()  # a crash inside a write: never commit half a batch
            db.close()

    def on_stop(self) -> None:
        # A clean stop commits what it holds; a crash (on_failure -> cleanup) loses only this batch.
        try:
            self._flush()
        except Exception as exc:  # the exit must still be reported
            self.log.opt(exception=exc).error("final archive write failed: {!r}", exc)
        super().on_stop()

    def on_receive(self, message: Any) -> Any:
        match message:
            case BookUpdated() | BookStatusChanged():  # told directly (a host, a test): same path
                self._mailbox(message)
            case ArchiveTick():
                self._on_tick()
            case GetCounters():
                return self.counter_values()
            case _:
                return super().on_receive(message)
        return None

    def counter_values(self) -> ArchiveReport:
        """Counters plus ``skipped`` = views replaced here + views conflated in our hub mailbox."""
        hub = self._hub.stats().get(self._listener_id, {}) if self._listener_id is not None else {}
        box = self._mailbox
        return ArchiveReport(attrs.evolve(self.counters), box.received, box.superseded + hub.get("conflated", 0),
                             box.events_dropped, box.pending, self._path)

    # -- writing -------------------------------------------------------------------------

    def _on_tick(self) -> None:
        self._flush()
        now = time.monotonic()
        self._due_s += self._interval_s
        if self._due_s <= now:  # the write (or a busy inbox) overran: skip, do not queue, the missed ticks
            missed = int((now - self._due_s) // self._interval_s) + 1
            self.counters.missed_intervals += missed
            self._due_s += missed * self._interval_s
        self._timer = self._scheduler.schedule(self._due_s - now, self.actor_ref, ArchiveTick())

    def _stamp(self, symbol: str, when: float) -> float:
        """Strictly increasing per symbol, across restarts and wall-clock steps back."""
        ts = max(when, self._last_ts.get(symbol, float("-inf")) + TS_STEP_S)
        self._last_ts[symbol] = ts
        return ts

    def _snapshot_rows(self, views: dict[str, BookView]) -> list[tuple[Any, ...]]:
        rows = []
        for code, view in views.items():
            if view.status is not BookStatus.LIVE:
                self.counters.not_live += 1
            elif self._written_seq.get(code) == view.seq:
                self.counters.unchanged += 1
            else:
                bids = orjson.dumps(view.bids[: self._depth]).decode()
                asks = orjson.dumps(view.asks[: self._depth]).decode()
                rows.append((code, view.seq, view.updated_at, bids, asks))
        return rows

    def _flush(self) -> None:
        db = self._db
        if db is None:
            return
        views, received = self._mailbox.take()
        if not views and not received:
            return
        started = time.monotonic()
        now = time.time()
        pending = self._snapshot_rows(views)
        # Events happened before this sample: stamp them first, in arrival order.
        events = [(self._stamp(e[1], e[0]), *e[1:]) for e in received]
        rows = [(self._stamp(code, now), code, *rest) for code, *rest in pending]
        db.execute("BEGIN")
        insert_rows(db, "INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) VALUES ", rows)
        insert_rows(db, "INSERT INTO events(ts, symbol, kind, old_status, new_status, seq, reason) VALUES ", events)
        db.execute("COMMIT")
        for _, code, seq, *_rest in rows:
            self._written_seq[code] = seq
        self.counters.rows_written += len(rows)
        self.counters.events_written += len(events)
        self.counters.batches += 1
        self.counters.last_batch_s = time.monotonic() - started
