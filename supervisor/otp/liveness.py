"""The thread-liveness safety net: find children whose thread died behind pykka's back.

A pykka actor's thread can end without pykka noticing -- an exception raised outside
its try block (e.g. an async exception landing while it waits on its inbox). pykka then
still lists the actor as alive and registered: tells vanish, asks hang, and no
``ChildExited`` is ever sent. Every pykka exit path sets ``actor_stopped`` before the
thread ends, so "thread dead while ``ref.is_alive()``" can only mean a zombie.

The monitor is a small daemon thread owned by one supervisor. It only inspects
threads and refs and *tells* the supervisor, so it cannot deadlock with it. For a
zombie it fences the ref (``ActorRegistry.unregister`` + ``actor_stopped.set()``, so
tells fail fast and a host's ``stop_all`` does not wait on it) and reports
``ChildExited(ZOMBIE)``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pykka
from loguru import logger

from depthkeeper.supervisor.otp.errors import is_injected
from depthkeeper.supervisor.otp.messages import ChildExited
from depthkeeper.supervisor.otp.spec import ExitReason
from depthkeeper.supervisor.otp.tell import tell

_thread_counter = itertools.count(1)


@attrs.frozen(eq=False)
class Watched:
    """One incarnation under watch."""

    child_id: str
    generation: int
    ref: pykka.ActorRef[Any]
    thread: threading.Thread
    cleanup: Callable[[], None] | None = None


def fence_zombie(ref: pykka.ActorRef[Any]) -> None:
    """Make a zombie's ref behave as dead: out of the registry, ``is_alive()`` False."""
    pykka.ActorRegistry.unregister(ref)
    ref.actor_stopped.set()


def release_zombie(cleanup: Callable[[], None] | None) -> None:
    """Run a zombie's cleanup from here: its own thread is dead, so nothing else touches its
    state, and without this a zombie ConnectionActor would keep its socket and reader alive."""
    if cleanup is None:
        return
    try:
        cleanup()
    except Exception as exc:  # noqa: BLE001 - best effort on a half-dead actor
        logger.bind(actor="liveness").opt(exception=exc).warning("zombie cleanup failed: {!r}", exc)


@attrs.frozen(eq=False)
class Incarnation:
    """One child incarnation being stopped: enough to fence it if it turned zombie, and to wait."""

    child_id: str
    generation: int
    ref: pykka.ActorRef[Any]
    thread: Any
    cleanup: Callable[[], None] | None
    shutdown_timeout_s: float

    def fence_if_zombie(self) -> None:
        """Its thread died behind pykka's back: fence its ref and release its resources. (A zombie
        never processes a stop, so every stop path calls this before and after waiting.)"""
        thread = self.thread
        if thread is not None and not thread.is_alive() and self.ref.is_alive():
            fence_zombie(self.ref)
            release_zombie(self.cleanup)

    def stop(self) -> bool:
        """Stop it and wait up to its shutdown timeout; False if it did not stop in time."""
        self.fence_if_zombie()
        try:
            self.ref.stop(block=True, timeout=self.shutdown_timeout_s)
        except pykka.Timeout:
            return False
        self.fence_if_zombie()  # it may have been lost meanwhile
        return True


class Draining:
    """Incarnations told to stop that have not reported their exit yet (their supervisor waits for
    them at its own shutdown, and fences any that turned zombie meanwhile)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], Incarnation] = {}

    def add(self, incarnation: Incarnation) -> None:
        self._items[(incarnation.child_id, incarnation.generation)] = incarnation

    def pop(self, child_id: str, generation: int) -> bool:
        """Forget it (its exit arrived); True if it was draining."""
        return self._items.pop((child_id, generation), None) is not None

    def stop_all(self) -> list[str]:
        """Wait for every one; return the ids of those that did not stop in time (leaked)."""
        leaked = [inc.child_id for inc in list(self._items.values()) if not inc.stop()]
        self._items.clear()
        return leaked


class LivenessMonitor:
    """Checks watched (ref, thread) pairs every ``interval_s``; reports zombies to ``supervisor``."""

    def __init__(self, supervisor: pykka.ActorRef[Any], interval_s: float, name: str = "supervisor") -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._supervisor = supervisor
        self.interval_s = interval_s
        self.name = name
        self._lock = threading.Lock()
        #: keyed by (child_id, generation): a terminated incarnation stays watched while a new
        #: one of the same id runs, until its exit report arrives
        self._watched: dict[tuple[str, int], Watched] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = logger.bind(actor="liveness", supervisor=name)

    def start(self) -> None:
        """Start the monitor thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"depthkeeper-liveness-{self.name}-{next(_thread_counter)}")
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop promptly (the wait is on an Event) and join. Idempotent."""
        self._stopping.set()
        with self._lock:
            self._watched.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def watch(self, child_id: str, generation: int, ref: pykka.ActorRef[Any], thread: threading.Thread,
              cleanup: Callable[[], None] | None = None) -> None:
        """Watch this incarnation of ``child_id``."""
        with self._lock:
            self._watched[(child_id, generation)] = Watched(child_id, generation, ref, thread, cleanup)

    def forget(self, child_id: str, generation: int | None = None) -> None:
        """Stop watching ``child_id`` (one incarnation, or all of them): it has exited."""
        with self._lock:
            for key in [k for k in self._watched if k[0] == child_id and generation in (None, k[1])]:
                del self._watched[key]

    @property
    def watched(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(dict.fromkeys(child_id for child_id, _ in self._watched))

    def check_once(self) -> list[Watched]:
        """One sweep: fence and report every zombie found; returns them."""
        with self._lock:
            zombies = [w for w in self._watched.values() if not w.thread.is_alive() and w.ref.is_alive()]
            for zombie in zombies:
                del self._watched[(zombie.child_id, zombie.generation)]
        for zombie in zombies:
            injected = is_injected(zombie.thread)  # killed on purpose (chaos): INFO, not ERROR
            self._log.bind(child_id=zombie.child_id, generation=zombie.generation).log(
                "INFO" if injected else "ERROR", "zombie{}: thread {} of {} is dead while its ref claims to be alive",
                " (injected)" if injected else "", zombie.thread.name, zombie.child_id)
            fence_zombie(zombie.ref)
            release_zombie(zombie.cleanup)
            error = f"thread {zombie.thread.name} died outside pykka"
            exited = ChildExited(zombie.child_id, zombie.generation, ExitReason.ZOMBIE, error, injected)
            if not tell(self._supervisor, exited):
                self._stopping.set()  # our supervisor is gone; nothing left to watch for
        return zombies

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.check_once()
