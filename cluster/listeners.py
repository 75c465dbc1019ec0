"""Deliver a consumer's BookUpdated / BookStatusChanged events to listeners, never queueing unboundedly.

The same contract as BookService.add_listener: a listener is a callable or a pykka actor ref;
views are conflated per code and built lazily by the listener's own thread (the reader only marks
a code dirty), status changes are delivered in order from a bounded deque (overflow drops the
oldest and counts it). A slow or failing listener never slows the reader or other listeners.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pykka
from loguru import logger

from depthkeeper.cluster.compat import BookStatusChanged, BookUpdated, BookView

_ids = itertools.count(1)
MAX_STATUS_EVENTS = 10_000
REPLY_TIMEOUT_S = 5.0


class _Listener:
    def __init__(self, target: Any, codes: frozenset[str] | None,
                 read_view: Callable[[str, int | None], BookView | None], depth: int | None = None) -> None:
        self.id = next(_ids)
        self.depth = depth
        self.target = target
        self.codes = codes
        self.read_view = read_view
        self.dirty: dict[str, None] = {}
        self.statuses: deque[BookStatusChanged] = deque()
        self.cond = threading.Condition()
        self.closed = False
        self.delivered = self.dropped = self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"depthkeeper-remote-listener-{self.id}", daemon=True)

    def wants(self, code: str) -> bool:
        return not self.closed and (self.codes is None or code in self.codes)

    def mark(self, code: str) -> None:
        with self.cond:
            if code not in self.dirty:
                self.dirty[code] = None
                self.cond.notify()

    def offer(self, event: BookStatusChanged) -> None:
        with self.cond:
            if len(self.statuses) >= MAX_STATUS_EVENTS:
                self.statuses.popleft()
                self.dropped += 1
            self.statuses.append(event)
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not (self.closed or self.statuses or self.dirty):
                    self.cond.wait()
                if self.closed:
                    return
                statuses, self.statuses = list(self.statuses), deque()
                dirty, self.dirty = list(self.dirty), {}
            for event in statuses:
                self._deliver(event)
            for code in dirty:
                view = self.read_view(code, self.depth)
                if view is not None:
                    self._deliver(BookUpdated(view))

    def _deliver(self, event: Any) -> None:
        try:
            if isinstance(self.target, pykka.ActorRef):
                self.target.ask(event, block=False).get(timeout=REPLY_TIMEOUT_S)
            else:
                self.target(event)
            self.delivered += 1
        except pykka.ActorDeadError:
            self.closed = True
        except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop delivery to it
            self.errors += 1
            logger.bind(actor="remote-listeners").opt(exception=exc).error("listener raised; event dropped")

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()


class Fanout:
    def __init__(self, read_view: Callable[[str, int | None], BookView | None]) -> None:
        self._read_view = read_view
        self._lock = threading.Lock()
        self._listeners: tuple[_Listener, ...] = ()

    def add(self, target: Any, codes: Iterable[str] | None = None, depth: int | None = None) -> int:
        if depth is not None and depth < 1:
            raise ValueError(f"depth must be >= 1 or None, not {depth!r}")
        listener = _Listener(target, frozenset(codes) if codes is not None else None, self._read_view, depth)
        listener.thread.start()
        with self._lock:
            self._listeners = (*self._listeners, listener)
        return listener.id

    def remove(self, listener_id: int) -> bool:
        with self._lock:
            gone = [x for x in self._listeners if x.id == listener_id]
            self._listeners = tuple(x for x in self._listeners if x.id != listener_id)
        for listener in gone:
            listener.close()
        return bool(gone)

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def mark(self, code: str) -> None:
        for listener in self._listeners:
            if listener.wants(code):
                listener.mark(code)

    def status(self, event: BookStatusChanged) -> None:
        for listener in self._listeners:
            if listener.wants(event.code):
                listener.offer(event)

    def stats(self) -> dict[int, dict[str, int]]:
        return {x.id: {"delivered": x.delivered, "dropped": x.dropped, "errors": x.errors} for x in self._listeners}

    def close(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, ()
        for listener in listeners:
            listener.close()
        for listener in listeners:
            listener.thread.join(timeout=2.0)
