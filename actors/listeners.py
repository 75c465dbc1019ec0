"""Deliver book events to listeners without ever growing an unbounded queue.

A slow listener must not slow a BookActor or make memory grow. Each listener gets one
daemon dispatcher thread and two mailboxes:

- ``BookUpdated`` is conflated per code, and built lazily: a BookActor only *marks* its
  code dirty (a set insert, no view built on the hot path); when the dispatcher gets to
  it, it reads the newest consistent view itself through the book's seqlock read port
  (see readport.py). A listener always ends with the newest view, never a backlog;
- ``BookStatusChanged`` is kept in order (transitions matter), in a deque bounded by
  ``max_status_events``; if that ever overflows the oldest is dropped and *counted*.

Actor-ref listeners are fed with ``ask(block=False)`` and the dispatcher waits for each
reply before the next delivery, so their inbox holds at most one of our events.

An *inline* listener (``add(..., inline=True)``, a callable) has no thread: the BookActor calls it
at the end of its own turn, once the turn's writes are done and readable, with the turn's status
changes in order and then one ``BookUpdated`` of the newest view. No hand-over, no wake-up of
another thread, no second read through the seqlock: the lowest latency and CPU a hook can have,
as a callback of a library with its own event loop gets. Its view's levels are copied only when
the hook first reads them (``readport.PendingView``); a view the hook kept is copied right after it
returns, before the book can change (``deliver_inline``). The price is the owner's: while the
callable runs, this book (and, when the socket's reader thread runs the turn, the socket) waits,
so it must be quick and must not wait on the service (an ``ask`` to the same book would wait for
itself). Its exceptions are counted and logged (rate-limited), never raised into the book.
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from sys import getrefcount
from typing import Any, TypeAlias
from weakref import getweakrefcount

import pykka
from loguru import logger

from depthkeeper.actors.core.logthrottle import ThrottledLog
from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView
from depthkeeper.actors.readport import BookReadPort, ReadPorts, settle

#: inline hooks get a view whose levels are copied when first read (readport.PendingView); whether
#: a hook kept it is told by its reference count, exact only where a GIL serialises them
_PENDING = sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()

Event: TypeAlias = BookUpdated | BookStatusChanged
ListenerTarget: TypeAlias = pykka.ActorRef[Any] | Callable[[Event], Any]

_ids = itertools.count(1)
#: ``BookUpdated(view)`` through its slot (as readport's views): one is made per inline delivery
_new = object.__new__
_set_view = BookUpdated.__dict__["view"].__set__


class _Listener:
    def __init__(self, target: ListenerTarget, codes: frozenset[str] | None, max_status_events: int,
                 reply_timeout_s: float) -> None:
        self.id = next(_ids)
        self.target = target
        self.codes = codes
        self.updates: dict[str, BookUpdated] = {}
        #: codes whose book changed since the last delivery (insertion-ordered set)
        self.dirty: dict[str, None] = {}
        self.statuses: deque[BookStatusChanged] = deque()
        self.max_status_events = max_status_events
        self.reply_timeout_s = reply_timeout_s
        #: guards the mailboxes, ``waiting`` and ``closed``
        self.lock = threading.Lock()
        #: the dispatcher sleeps on this queue; one token wakes it (a C-level put, where
        #: ``Condition.notify`` is Python code worth ~1.5 us, paid per applied batch)
        self.wakeup: queue.SimpleQueue[None] = queue.SimpleQueue()
        #: the dispatcher is asleep (or about to be) and no token is on its way: the next event wakes it
        self.waiting = False
        self.closed = False
        self.delivered = 0
        self.conflated = 0
        self.unavailable = 0
        #: views at most this often (a listener that samples, like the archive, needs no more)
        self.min_interval_s = 0.0
        self.next_views_at = 0.0
        self.read_view: Callable[[str, int | None], BookView | None] | None = None
        #: levels a side in each delivered view (None: the whole book)
        self.depth: int | None = None
        self.dropped = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"depthkeeper-listener-{self.id}", daemon=True)
        self.log = logger.bind(actor="listeners", listener=self.id)

    def _wake(self) -> None:
        """Under ``lock``: wake the dispatcher if it sleeps (at most one token in flight)."""
        if self.waiting:
            self.waiting = False
            self.wakeup.put(None)

    def offer(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, BookUpdated):
                if event.view.code in self.updates:
                    self.conflated += 1
                self.updates[event.view.code] = event
            else:
                if len(self.statuses) >= self.max_status_events:
                    self.statuses.popleft()
                    self.dropped += 1
                    self.log.warning("listener too slow: dropped oldest status event ({} so far)", self.dropped)
                self.statuses.append(event)
            self._wake()

    def mark(self, code: str) -> None:
        # Called by a BookActor per applied batch: a busy dispatcher finds the code when it next
        # takes the dirty set, a sleeping one is woken (``waiting`` and the set share ``lock``).
        with self.lock:
            if code in self.dirty:
                self.conflated += 1
            else:
                self.dirty[code] = None
                self._wake()

    def _take(self) -> tuple[list[Event], list[str]] | None:
        while True:
            with self.lock:
                if self.closed:
                    return None
                views_due = bool(self.dirty) and time.monotonic() >= self.next_views_at
                if self.statuses or self.updates or views_due:
                    self.waiting = False
                    return self._drain(views_due)
                self.waiting = True
                # status events wake us at once; views wait for the listener's interval
                timeout = max(0.0, self.next_views_at - time.monotonic()) if self.dirty else None
            try:
                self.wakeup.get(timeout=timeout)  # a stale token only makes us look again
            except queue.Empty:
                pass

    def _drain(self, views_due: bool) -> tuple[list[Event], list[str]]:
        """Under ``lock``: take what is due."""
        batch: list[Event] = list(self.statuses)
        batch.extend(self.updates.values())
        self.statuses.clear()
        self.updates = {}
        dirty: list[str] = []
        if views_due:
            dirty = list(self.dirty)
            self.dirty = {}
            self.next_views_at = time.monotonic() + self.min_interval_s
        return batch, dirty

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            batch, dirty = taken
            for event in batch:
                self._deliver(event)
            for code in dirty:
                view = self.read_view(code, self.depth) if self.read_view is not None else None
                if view is None:
                    self.unavailable += 1  # unsubscribed meanwhile, or restarting
                else:
                    self._deliver(BookUpdated(view))

    def _deliver(self, event: Event) -> None:
        try:
            if isinstance(self.target, pykka.ActorRef):
                self.target.ask(event, block=False).get(timeout=self.reply_timeout_s)
            else:
                self.target(event)
            self.delivered += 1
        except pykka.ActorDeadError:
            self.closed = True
        except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop delivery to it
            self.errors += 1
            self.log.opt(exception=exc).error("listener raised; event dropped")

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.waiting = True  # wake it whatever it is doing: it must see ``closed``
            self._wake()


class _InlineListener:
    """A callable run on the book's own turn (see the module docstring)."""

    __slots__ = ("closed", "codes", "delivered", "depth", "errors", "id", "log", "target")

    def __init__(self, target: Callable[[Event], Any], codes: frozenset[str] | None, depth: int | None) -> None:
        self.id = next(_ids)
        self.target = target
        self.codes = codes
        self.depth = depth
        self.closed = False
        self.delivered = 0
        self.errors = 0
        self.log = ThrottledLog(logger.bind(actor="listeners", listener=self.id), "inline listener errors")

    def call(self, event: Event) -> None:
        try:
            self.target(event)
        except Exception as exc:  # noqa: BLE001 - a listener's bug must not fail the book that called it
            self.failed(exc)
        else:
            self.delivered += 1

    def failed(self, exc: Exception) -> None:
        """Counted, and logged rate-limited (a flood: one summary line per interval)."""
        self.errors += 1
        now = time.monotonic()
        if self.log.admit("raised", now):
            self.log.log.opt(exception=exc).error("inline listener raised; event dropped")
        else:
            self.log.tick(now)


class ListenerHub:
    """The set of listeners; BookActors publish into it from their own threads."""

    def __init__(self, max_status_events: int = 10_000, reply_timeout_s: float = 5.0,
                 ports: ReadPorts | None = None) -> None:
        self._ports = ports
        self._lock = threading.Lock()
        #: listeners with a thread of their own; those the BookActors call at the end of their turn
        #: (plain tuples, replaced whole: a BookActor reads them once per update without a lock)
        self.threaded: tuple[_Listener, ...] = ()
        self.inline: tuple[_InlineListener, ...] = ()
        self._max_status_events = max_status_events
        self._reply_timeout_s = reply_timeout_s

    @property
    def active(self) -> bool:
        """True when anyone listens (BookActors skip building views otherwise)."""
        return bool(self.threaded or self.inline)

    def add(self, target: ListenerTarget, codes: Iterable[str] | None = None, *, min_interval_s: float = 0.0,
            depth: int | None = None, inline: bool = False) -> int:
        """Register a listener; ``min_interval_s`` > 0 delivers each code's newest view at most
        that often (status changes still immediately), so a sampling listener costs no more;
        ``depth`` limits each delivered view to that many levels a side (a bot that trades the top
        of the book need not pay for copying and sorting the whole book on every update);
        ``inline``: a callable run by the book itself at the end of each turn (module docstring)."""
        if depth is not None and depth < 1:
            raise ValueError(f"depth must be >= 1 or None, not {depth!r}")
        if inline:
            if isinstance(target, pykka.ActorRef) or not callable(target):
                raise ValueError("an inline listener must be a callable (an actor is fed from a thread of ours)")
            if min_interval_s:
                raise ValueError("an inline listener gets every update: min_interval_s applies to threaded ones")
            quick = _InlineListener(target, frozenset(codes) if codes is not None else None, depth)
            with self._lock:
                self.inline = (*self.inline, quick)
            return quick.id
        listener = _Listener(target, frozenset(codes) if codes is not None else None,
                             self._max_status_events, self._reply_timeout_s)
        listener.read_view = self._read_view
        listener.min_interval_s = min_interval_s
        listener.depth = depth
        listener.thread.start()
        with self._lock:
            self.threaded = (*self.threaded, listener)
        return listener.id

    def remove(self, listener_id: int) -> bool:
        with self._lock:
            gone = [x for x in self.threaded if x.id == listener_id]
            self.threaded = tuple(x for x in self.threaded if x.id != listener_id)
            quick = [x for x in self.inline if x.id == listener_id]
            self.inline = tuple(x for x in self.inline if x.id != listener_id)
        for listener in gone:
            listener.close()
        for inline in quick:
            inline.closed = True
        return bool(gone or quick)

    def deliver_inline(self, code: str, events: list[BookStatusChanged], port: BookReadPort | None) -> None:
        """Called by ``code``'s BookActor at the end of a turn: its status changes, then (``port``
        given: the book changed) one view of it, to every inline listener of the code."""
        views: dict[int | None, BookUpdated] | None = None
        for listener in self.inline:
            if listener.closed or (listener.codes is not None and code not in listener.codes):
                continue
            for event in events:
                listener.call(event)
            if port is not None:
                depth = listener.depth
                update = views.get(depth) if views is not None else None
                if update is None:
                    view = port.owner_pending_view(depth) if _PENDING else port.owner_view(depth)
                    update = _new(BookUpdated)
                    _set_view(update, view)
                    if views is None:
                        views = {}
                    views[depth] = update
                view = update.view
                held = getrefcount(update), getrefcount(view)
                listener.call(update)
                if _PENDING and ((getrefcount(update), getrefcount(view)) != held
                                 or getweakrefcount(update) or getweakrefcount(view)):
                    # kept, passed on, or reachable by a weak reference that may be made strong later
                    # (by another thread, or another listener of this delivery): it must show the book
                    # as it is now, not as it will be
                    try:
                        settle(view)
                    except Exception as exc:  # noqa: BLE001 - never fail the book that called us
                        listener.failed(exc)

    def _read_view(self, code: str, depth: int | None) -> BookView | None:
        port = self._ports.get(code) if self._ports is not None else None
        return port.read(depth) if port is not None else None

    def mark_updated(self, code: str) -> None:
        """A BookActor changed ``code``: each interested threaded listener will read the newest view."""
        for listener in self.threaded:
            if not listener.closed and (listener.codes is None or code in listener.codes):
                listener.mark(code)

    def publish(self, event: Event, code: str) -> None:
        """An event for the threaded listeners (inline ones get theirs from ``deliver_inline``)."""
        for listener in self.threaded:
            if listener.closed:
                continue
            if listener.codes is None or code in listener.codes:
                listener.offer(event)

    def stats(self) -> dict[int, dict[str, int]]:
        out = {x.id: {"delivered": x.delivered, "conflated": x.conflated, "dropped": x.dropped, "errors": x.errors,
                      "unavailable": x.unavailable} for x in self.threaded}
        out.update({x.id: {"delivered": x.delivered, "conflated": 0, "dropped": 0, "errors": x.errors,
                           "unavailable": 0} for x in self.inline})
        return out

    def close(self) -> None:
        with self._lock:
            listeners, self.threaded = self.threaded, ()
            for inline in self.inline:
                inline.closed = True
            self.inline = ()
        for listener in listeners:
            listener.close()
        for listener in listeners:
            listener.thread.join(timeout=2.0)
