"""Many actors on a few threads: a pykka actor type with a shared dispatcher (Akka's model).

A ``pykka.ThreadingActor`` owns one OS thread. For a BookActor per symbol that is the cost
that dominates: every batch the reader hands over wakes *that* book's thread, ~30-40 us of
GIL hand-offs each, while applying the batch takes ~1 us (measured, ``bench/fanout.py``),
and a thousand symbols are a thousand threads. A :class:`Dispatcher` runs any number of
actors on ``threads`` shared threads instead, and an actor is still an actor: its own ref,
its own FIFO inbox, one message at a time, ``tell``/``ask``/``stop`` and pykka's failure
hooks exactly as before. Only the thread an actor runs on changes, from one of its own to
whichever dispatcher thread holds its turn.

How a turn works. Each dispatched actor's inbox is a :class:`Mailbox` (pykka's
``actor_inbox``). ``put`` appends under a small lock and, if the actor is not already
scheduled, puts the mailbox on the dispatcher's ready queue (the only wake-up). A dispatcher
thread takes a ready mailbox and delivers up to ``throughput`` messages, then reschedules it
behind the others if more are waiting (fairness), or marks it idle. An actor is never on two
threads at once: it is scheduled at most once at any time.

Failure semantics, mirroring pykka's loop message for message: an exception in a told
message calls ``on_failure`` (and stops the actor); in an ask it goes to the caller and
the actor lives; ``stop()`` drains the rest with ``ActorDeadError`` for waiting asks.
Where pykka would stop *every* actor in the process (a ``BaseException`` escaping), the
dispatcher loses only that actor: its :class:`Lane` (the stand-in for its thread, which
``ChildStarted`` reports to the supervisor) dies, no report is sent -- exactly a zombie --
and the supervisor's liveness monitor fences and replaces it. The dispatcher thread itself
carries on with the other actors.

Never ``ask`` another actor on the same dispatcher from inside a handler: with one thread
that is a deadlock (as it would be between two threading actors asking each other).
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
import time
from collections import deque
from typing import Any

import pykka
from loguru import logger
from pykka._envelope import Envelope as _Envelope  # what ActorRef.tell/ask put in an inbox

from depthkeeper.supervisor.otp.errors import is_injected, mark_injected

#: messages one actor handles per turn before the others get the thread
THROUGHPUT = 64

_ids = itertools.count(1)
_STOP = getattr(pykka.messages, "_ActorStop", None)  # pykka's stop message (teardown answers its asks)


class Lane:
    """A dispatched actor's stand-in for its thread, for liveness checks (duck-types a Thread)."""

    __slots__ = ("_ended", "daemon", "ident", "injected", "lost", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident: int | None = None
        self.daemon = True
        self.lost = False
        #: lost to a fault injected on purpose (errors.mark_injected): its zombie is logged at INFO
        self.injected = False
        self._ended = threading.Event()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)

    def end(self, *, lost: bool) -> None:
        self.lost = self.lost or lost
        self._ended.set()


class Mailbox:
    """A dispatched actor's inbox and run state; pykka sees ``put``/``get``/``empty``/``qsize``."""

    __slots__ = ("_actor", "_closed", "_dispatcher", "_lock", "_lost", "_queue", "_scheduled", "_started", "_starting",
                 "bullet", "lane")

    def __init__(self, actor: pykka.Actor, dispatcher: Dispatcher) -> None:
        self._actor = actor
        self._dispatcher = dispatcher
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        #: start() was called: before it, put() only queues (on_start must run first)
        self._started = False
        self._starting = False
        self._closed = False
        #: gone without a stop (lost or abandoned): its stop is answered "dead", never "stopped"
        self._lost = False
        #: chaos: an exception that fires between two messages, outside any handler (a zombie)
        self.bullet: type[BaseException] | None = None
        self.lane = Lane(f"{type(actor).__name__}@{dispatcher.name}-{next(_ids)}")

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    # -- the inbox protocol pykka uses -------------------------------------------------------

    def put(self, envelope: Any) -> None:
        idle = self._enqueue(envelope)
        if idle is None:
            _refuse(envelope, self._actor, lost=self._lost)
        elif idle:
            self._dispatcher.schedule(self)

    def _enqueue(self, item: Any) -> bool | None:
        """Queue ``item``: None when the mailbox is closed (nothing queued), True when the actor was
        idle and the caller must start its turn (the scheduled flag is now taken), else False."""
        with self._lock:
            if self._closed:
                return None
            self._queue.append(item)
            if self._scheduled or not self._started:
                return False
            self._scheduled = True
            return True

    def post(self, message: Any) -> bool:
        """The data lane: tell ``message`` without pykka's envelope, and if the actor is idle run
        its turn on the calling thread ("caller runs"). False when the actor is gone.

        Waking a dispatcher thread costs a GIL hand-off (~30-40 us) per batch, several times the
        work of a small batch. A caller that only reads and hands over (the reader thread) runs
        the turn itself instead, through the same ``run`` a dispatcher thread uses: one message at
        a time, never two threads in one actor (the scheduled flag is taken under the lock), a
        handler's failure fails only this actor (``_deliver``: ``on_failure``, supervision) and
        anything escaping loses only this actor (``_lose``: a zombie for the liveness monitor), so
        the caller always survives. A turn already scheduled (or running) gets the message queued."""
        actor = self._actor
        if actor.actor_stopped.is_set():
            return False
        with self._lock:
            if self._closed:
                return False
            if self._scheduled or not self._started or self._queue or self.bullet is not None:
                self._queue.append(message)
                if self._scheduled or not self._started:
                    return True
                self._scheduled = True
                quick = False
            else:  # idle with nothing queued: the usual case of a book between two 100 ms events
                self._scheduled = True
                quick = True
        if not quick:
            self.run(self._dispatcher.throughput)
            return True
        # ``run`` for this one message, without passing it through the queue
        try:
            _deliver(actor, message)
        except BaseException as exc:  # noqa: BLE001 - lose this actor only, never the caller
            self._lose(exc)
            return True
        if actor.actor_stopped.is_set():
            self._finish()
            return True
        with self._lock:
            if not self._queue:
                self._scheduled = False
                return True
        self._dispatcher.schedule(self)
        return True

    def get(self) -> Any:
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def qsize(self) -> int:
        return len(self._queue)

    # -- run state ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run ``on_start`` on a dispatcher thread before the first message (even one that a
        host's broadcast queued between pykka's registration and this call)."""
        with self._lock:
            self._started = self._starting = True
            self._scheduled = True  # nothing could be scheduled before: put() only queued
        self._dispatcher.schedule(self)

    def run(self, budget: int) -> None:
        """One turn on the calling dispatcher thread: up to ``budget`` messages."""
        actor = self._actor
        popleft = self._queue.popleft
        try:
            if self._starting:
                self._starting = False
                actor._actor_loop_setup()  # on_start; a failure there stops the actor (pykka's rule)
            for _ in range(budget):
                if actor.actor_stopped.is_set():  # re-read each time, as pykka's loop does
                    break
                if self.bullet is not None:
                    raise self.bullet  # outside any handler, as a thread dying in inbox.get() would
                try:
                    envelope = popleft()
                except IndexError:
                    break
                _deliver(actor, envelope)
        except BaseException as exc:  # noqa: BLE001 - lose this actor only, never the dispatcher
            self._lose(exc)
            return
        if actor.actor_stopped.is_set():
            self._finish()
            return
        with self._lock:
            if not self._queue:
                self._scheduled = False
                return
        self._dispatcher.schedule(self)

    def _close(self) -> list[Any]:
        with self._lock:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
        return left

    def _refuse_rest(self, *, lost: bool) -> None:
        """Answer what is still queued, and whatever arrives later (as pykka's teardown does)."""
        with self._lock:
            self._lost = lost
        for envelope in self._close():
            _refuse(envelope, self._actor, lost=lost)

    def _finish(self) -> None:
        """The actor stopped."""
        self._refuse_rest(lost=False)
        self.lane.end(lost=False)

    def _lose(self, exc: BaseException) -> None:
        """Something escaped the message handling: this actor is gone, without any report.
        Its asks fail at once instead of hanging (a thread-zombie's would hang), and a stop is
        answered "already dead" (``stop()`` returns False): its cleanup never ran, so whoever
        stops it must fence it and run the cleanup (the supervisor does)."""
        injected = is_injected(exc)
        if injected:
            mark_injected(self.lane)  # before it ends: the liveness monitor reads it when it sees the end
        self._refuse_rest(lost=True)
        self.lane.end(lost=True)
        logger.bind(actor="dispatcher", lane=self.lane.name).log(
            "INFO" if injected else "ERROR",
            "{} lost on its dispatcher ({!r}): no report sent; the liveness monitor takes over", self._actor, exc)

    def abandon(self) -> None:
        """The dispatcher is gone: nothing will ever run this actor again (a lost actor)."""
        self._refuse_rest(lost=True)
        self.lane.end(lost=True)


def _deliver(actor: pykka.Actor, item: Any) -> None:
    """One message (an envelope, or a bare told message of the data lane, ``Mailbox.post``), with
    pykka's own semantics for results and failures."""
    if type(item) is _Envelope:
        message, reply_to = item.message, item.reply_to
        handle = actor._handle_receive
    else:
        # a data-lane message is never one of pykka's own (stop, proxy calls): straight to the handler
        message, reply_to = item, None
        handle = actor.on_receive
    try:
        response = handle(message)
        if reply_to is not None:
            reply_to.set(response)
    except Exception:  # noqa: BLE001 - a handler's failure is the actor's, not the dispatcher's
        if reply_to is not None:
            reply_to.set_exception()  # an ask: the caller gets it, the actor lives
        else:
            exc_info = sys.exc_info()
            actor._handle_failure(*exc_info)
            try:
                actor.on_failure(*exc_info)
            except Exception:  # noqa: BLE001
                actor._handle_failure(*sys.exc_info())


def _refuse(envelope: Any, actor: pykka.Actor, *, lost: bool) -> None:
    if type(envelope) is not _Envelope:
        return  # a bare told message (the data lane): nobody waits for an answer
    reply_to = envelope.reply_to
    if reply_to is None:
        return
    if not lost and _STOP is not None and isinstance(envelope.message, _STOP):
        reply_to.set(None)  # stopped: a stop queued behind the first one has nothing left to do
    else:
        error = pykka.ActorDeadError(f"{actor} {'was lost' if lost else 'stopped'} before handling the message")
        reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))


class Dispatcher:
    """``threads`` daemon threads running the turns of every actor started on it."""

    def __init__(self, name: str, threads: int = 1, throughput: int = THROUGHPUT) -> None:
        if threads < 1:
            raise ValueError("a dispatcher needs at least one thread")
        self.name = name
        self.throughput = throughput
        self._ready: queue.SimpleQueue[Mailbox | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"depthkeeper-{name}-{i + 1}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def schedule(self, mailbox: Mailbox) -> None:
        with self._lock:  # so nothing lands behind the stop sentinels
            if not self._closed:
                self._ready.put(mailbox)
                return
        mailbox.abandon()

    def _run(self) -> None:
        get, budget = self._ready.get, self.throughput
        while True:
            mailbox = get()
            if mailbox is None:
                return
            mailbox.run(budget)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop the threads after the turns already queued; True if they all ended in time.

        Stop the actors first (their stop is a message a dispatcher thread must handle).
        """
        with self._lock:
            if self._closed:
                return not any(t.is_alive() for t in self._threads)
            self._closed = True
            for _ in self._threads:
                self._ready.put(None)  # behind every turn already queued; nothing can follow
        current = threading.current_thread()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads if t is not current)
