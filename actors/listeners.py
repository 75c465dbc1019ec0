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
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import pykka
from loguru import logger

from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView
from depthkeeper.actors.readport import ReadPorts

Event: TypeAlias = BookUpdated | BookStatusChanged
ListenerTarget: TypeAlias = pykka.ActorRef[Any] | Callable[[Event], Any]

_ids = itertools.count(1)


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


class ListenerHub:
    """The set of listeners; BookActors publish into it from their own threads."""

    def __init__(self, max_status_events: int = 10_000, reply_timeout_s: float = 5.0,
                 ports: ReadPorts | None = None) -> None:
        self._ports = ports
        self._lock = threading.Lock()
        self._listeners: tuple[_Listener, ...] = ()
        self._max_status_events = max_status_events
        self._reply_timeout_s = reply_timeout_s

    @property
    def active(self) -> bool:
        """True when anyone listens (BookActors skip building views otherwise)."""
        return bool(self._listeners)

    def add(self, target: ListenerTarget, codes: Iterable[str] | None = None, *, min_interval_s: float = 0.0,
            depth: int | None = None) -> int:
        """Register a listener; ``min_interval_s`` > 0 delivers each code's newest view at most
        that often (status changes still immediately), so a sampling listener costs no more;
        ``depth`` limits each delivered view to that many levels a side (a bot that trades the top
        of the book need not pay for copying and sorting the whole book on every update)."""
        if depth is not None and depth < 1:
            raise ValueError(f"depth must be >= 1 or None, not {depth!r}")
        listener = _Listener(target, frozenset(codes) if codes is not None else None,
                             self._max_status_events, self._reply_timeout_s)
        listener.read_view = self._read_view
        listener.min_interval_s = min_interval_s
        listener.depth = depth
        listener.thread.start()
        with self._lock:
            self._listeners = (*self._listeners, listener)
        return listener.id

    def remove(self, listener_id: int) -> bool:
        with self._lock:
            keep = tuple(x for x in self._listeners if x.id != listener_id)
            gone = [x for x in self._listeners if x.id == listener_id]
            self._listeners = keep
        for listener in gone:
            listener.close()
        return bool(gone)

    def _read_view(self, code: str, depth: int | None) -> BookView | None:
        port = self._ports.get(code) if self._ports is not None else None
        return port.read(depth) if port is not None else None

    def mark_updated(self, code: str) -> None:
        """A BookActor changed ``code``: each interested listener will read the newest view."""
        for listener in self._listeners:
            if not listener.closed and (listener.codes is None or code in listener.codes):
                listener.mark(code)

    def publish(self, event: Event, code: str) -> None:
        for listener in self._listeners:
            if listener.closed:
                continue
            if listener.codes is None or code in listener.codes:
                listener.offer(event)

    def stats(self) -> dict[int, dict[str, int]]:
        return {x.id: {"delivered": x.delivered, "conflated": x.conflated, "dropped": x.dropped, "errors": x.errors,
                       "unavailable": x.unavailable} for x in self._listeners}

    def close(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, ()
        for listener in listeners:
            listener.close()
        for listener in listeners:
            listener.thread.join(timeout=2.0)
