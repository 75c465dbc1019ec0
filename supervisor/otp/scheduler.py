"""A tiny timer service: tell an actor a message after a delay, once or every interval.

pykka has no scheduler (jodal/pykka#53), and a ``threading.Timer`` per restart or per
heartbeat tick means a thread each. One ``Scheduler`` is one daemon thread with a heap
of due times; many actors can share it. It only ever *tells*, so it can never deadlock
with an actor, and a tell to a dead actor is swallowed (a repeating timer to a dead
actor cancels itself). Timers due at the same instant fire in the order they were
scheduled, so restarts scheduled in start order are delivered in start order.

Never early: a message is told at or after its due time on ``time.monotonic()``.

Cancelled timers are freed, not kept until they would have been due (issue 12: a book's
30-minute calibration timer, cancelled on every unsubscribe, used to pin ~1 KB per
subscribe/unsubscribe cycle for half an hour). A cancel drops the timer's ref and message at
once; the heap entry goes lazily: when cancelled entries outnumber live ones the heap is
rebuilt without them, so it never holds more than twice the live timers (plus a small floor).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import pykka
from loguru import logger
from depthkeeper.supervisor.otp.tell import tell

_thread_counter = itertools.count(1)
#: below this many heap entries, cancelled ones are left for the thread to pop
_COMPACT_FLOOR = 64


class TimerHandle:
    """What ``schedule`` returns; pass it to ``Scheduler.cancel`` (or call ``cancel()``)."""

    __slots__ = ("_scheduler", "cancelled", "due_s", "interval_s", "message", "queued", "ref")

    def __init__(self, scheduler: Scheduler | None, due_s: float, interval_s: float | None,
                 ref: pykka.ActorRef[Any] | None, message: Any) -> None:
        self._scheduler = scheduler
        self.due_s = due_s
        self.interval_s = interval_s
        self.ref = ref
        self.message = message
        self.cancelled = scheduler is None
        #: in the scheduler's heap right now (guarded by the scheduler's lock)
        self.queued = False

    def cancel(self) -> None:
        """Stop this timer; harmless when it already fired or was cancelled."""
        if self._scheduler is not None:
            self._scheduler.cancel(self)
        else:
            self.cancelled = True

    def __repr__(self) -> str:
        if self.cancelled:
            return "<TimerHandle cancelled>"
        return f"<TimerHandle {type(self.message).__name__} due {self.due_s:.3f}>"


class Scheduler:
    """One daemon thread (started on first use) telling messages to refs at due times."""

    def __init__(self, name: str = "scheduler") -> None:
        self.name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        #: cancelled entries still in the heap
        self._cancelled = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._log = logger.bind(actor="scheduler", scheduler=name)

    # -- public API ---------------------------------------------------------------------

    def schedule(self, delay_s: float, ref: pykka.ActorRef[Any], message: Any) -> TimerHandle:
        """Tell ``message`` to ``ref`` once, ``delay_s`` from now (0 = as soon as possible)."""
        return self._add(max(0.0, delay_s), None, ref, message)

    def schedule_every(self, interval_s: float, ref: pykka.ActorRef[Any], message: Any, *,
                       first_delay_s: float | None = None) -> TimerHandle:
        """Tell ``message`` every ``interval_s`` (first after ``first_delay_s``, default one interval).

        Ticks do not pile up: after a stall the next tick is one interval after the late one.
        """
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        first = interval_s if first_delay_s is None else max(0.0, first_delay_s)
        return self._add(first, interval_s, ref, message)

    def cancel(self, handle: TimerHandle | None) -> None:
        """Cancel a timer (None and already-fired or cancelled handles are fine)."""
        if handle is None:
            return
        with self._cond:
            self._discard(handle)

    def close(self, timeout_s: float = 2.0) -> None:
        """Cancel every timer and end the thread. Idempotent; later schedules are no-ops."""
        with self._cond:
            self._closed = True
            for _, _, handle in self._heap:
                handle.cancelled = True
                handle.queued = False
                handle.ref = handle.message = None
            self._heap.clear()
            self._cancelled = 0
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    @property
    def pending(self) -> int:
        """Timers not yet fired nor cancelled (a repeating timer counts once)."""
        with self._cond:
            return sum(1 for _, _, handle in self._heap if not handle.cancelled)

    @property
    def held(self) -> int:
        """Heap entries, cancelled ones not yet compacted away included (memory, not work)."""
        with self._cond:
            return len(self._heap)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals ----------------------------------------------------------------------

    def _add(self, delay_s: float, interval_s: float | None, ref: pykka.ActorRef[Any], message: Any) -> TimerHandle:
        with self._cond:
            if self._closed:
                self._log.debug("scheduler closed: {} not scheduled", type(message).__name__)
                return TimerHandle(None, 0.0, None, None, message)
            handle = TimerHandle(self, time.monotonic() + delay_s, interval_s, ref, message)
            self._push(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"depthkeeper-{self.name}-{next(_thread_counter)}")
                self._thread.start()
            self._cond.notify()
            return handle

    def _run(self) -> None:
        """Fire due timers until closed. Tells happen under the lock (a tell never blocks),
        so once ``cancel`` returns that timer can no longer fire."""
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due_s, _, handle = self._heap[0]
                now = time.monotonic()
                if handle.cancelled:
                    heapq.heappop(self._heap)
                    handle.queued = False
                    self._cancelled -= 1
                elif due_s > now:
                    self._cond.wait(due_s - now)
                else:
                    heapq.heappop(self._heap)
                    handle.queued = False
                    self._fire(handle, due_s, now)

    def _push(self, handle: TimerHandle) -> None:
        heapq.heappush(self._heap, (handle.due_s, next(self._seq), handle))
        handle.queued = True

    def _discard(self, handle: TimerHandle) -> None:
        """Cancel under the lock: free the ref and message now, the heap entry lazily."""
        if handle.cancelled:
            return
        handle.cancelled = True
        handle.ref = handle.message = None  # do not keep a dead actor's ref (and its message) alive
        if handle.queued:
            self._cancelled += 1
            heap = self._heap
            if len(heap) >= _COMPACT_FLOOR and self._cancelled * 2 > len(heap):
                self._compact()

    def _compact(self) -> None:
        """Rebuild the heap without cancelled entries (O(n), amortised over >= n/2 cancels)."""
        live = []
        for entry in self._heap:
            if entry[2].cancelled:
                entry[2].queued = False
            else:
                live.append(entry)
        heapq.heapify(live)
        self._heap = live
        self._cancelled = 0

    def _fire(self, handle: TimerHandle, due_s: float, now: float) -> None:
        ref, message = handle.ref, handle.message
        if handle.interval_s is not None:
            next_due_s = due_s + handle.interval_s
            handle.due_s = next_due_s if next_due_s > now else now + handle.interval_s
            self._push(handle)
        if ref is not None and not tell(ref, message):
            self._discard(handle)  # the actor is gone: a repeating timer must not tick forever


class ActorTimers:
    """One actor's timers: repeating ones, and at most one pending one-shot per message type
    (scheduling a new one replaces the old). ``cancel_all`` in the actor's cleanup frees them all."""

    __slots__ = ("_oneshots", "_ref", "_repeating", "_scheduler")

    def __init__(self, scheduler: Scheduler, ref: pykka.ActorRef[Any]) -> None:
        self._scheduler = scheduler
        self._ref = ref
        self._repeating: list[TimerHandle] = []
        self._oneshots: dict[type, TimerHandle] = {}

    def every(self, interval_s: float, message: Any) -> None:
        self._repeating.append(self._scheduler.schedule_every(interval_s, self._ref, message))

    def once(self, delay_s: float, message: Any) -> None:
        """Tell ``message`` after ``delay_s``, replacing a pending one-shot of its type."""
        self.cancel(type(message))
        self._oneshots[type(message)] = self._scheduler.schedule(delay_s, self._ref, message)

    def pending(self, kind: type) -> bool:
        return kind in self._oneshots

    def fired(self, kind: type) -> None:
        """The one-shot of ``kind`` arrived (it is no longer pending)."""
        self._oneshots.pop(kind, None)

    def cancel(self, *kinds: type) -> None:
        for kind in kinds:
            timer = self._oneshots.pop(kind, None)
            if timer is not None:
                self._scheduler.cancel(timer)

    def cancel_all(self) -> None:
        for timer in (*self._repeating, *self._oneshots.values()):
            self._scheduler.cancel(timer)
        self._repeating.clear()
        self._oneshots.clear()
