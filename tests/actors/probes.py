"""Fakes for actor tests: a ``Recorder`` that waits on a condition, a ``Probe`` actor, and
small real SupervisedActor children (``Worker``) and a hook-recording Supervisor.

No sleeps anywhere: every wait is on a ``threading.Condition`` with a deadline, and a
timeout fails the test with what was recorded so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pykka

from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.dispatch import Dispatcher
from depthkeeper.supervisor.otp.supervisor import Supervisor
from depthkeeper.supervisor.otp.spec import ChildContext, ChildSpec, ExitReason, Restart

Match = type | Callable[[Any], bool]


def _matcher(match: Match) -> Callable[[Any], bool]:
    if isinstance(match, type):
        kind = match
        return lambda item: isinstance(item, kind)
    return match


class Recorder:
    """A thread-safe list of events; anything can append, tests wait for matches.

    Also usable directly as a callable sink (e.g. a supervisor's ``escalate``).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []

    def __call__(self, item: Any) -> None:
        self.record(item)

    def record(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    @property
    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def matching(self, match: Match) -> list[Any]:
        test = _matcher(match)
        return [item for item in self.items if test(item)]

    def wait_for(self, match: Match, timeout_s: float = 5.0) -> Any:
        """The first recorded item matching (waiting up to ``timeout_s`` for one)."""
        return self.wait_count(match, 1, timeout_s)[0]

    def wait_count(self, match: Match, count: int, timeout_s: float = 5.0) -> list[Any]:
        """The first ``count`` matching items, waiting up to ``timeout_s`` for them."""
        test = _matcher(match)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [item for item in self._items if test(item)]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout_s}s waiting for {count} x {match!r}; "
                                         f"recorded: {self._items!r}")
                self._cond.wait(remaining)


class Probe(pykka.ThreadingActor):
    """An actor that records every message it receives into its ``recorder``."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def on_receive(self, message: Any) -> Any:
        self.recorder.record(message)
        return None


class ProbeHandle:
    """A started Probe: ``ref`` to hand out, ``wait_for`` / ``messages`` to assert with."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.ref: pykka.ActorRef[Probe] = Probe.start(self.recorder)

    @property
    def messages(self) -> list[Any]:
        return self.recorder.items

    def wait_for(self, match: Match, timeout_s: float = 5.0) -> Any:
        return self.recorder.wait_for(match, timeout_s)

    def wait_count(self, match: Match, count: int, timeout_s: float = 5.0) -> list[Any]:
        return self.recorder.wait_count(match, count, timeout_s)


def start_probe() -> ProbeHandle:
    return ProbeHandle()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` until true (an Event wait between polls, never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        pause.wait(0.005)


# -- test children ------------------------------------------------------------------------
# Real SupervisedActors (no mocks of our classes): they record their life into a Recorder.

@attrs.frozen(eq=False)
class Started:
    child_id: str
    generation: int
    at_s: float
    ref: pykka.ActorRef[Any]
    thread: threading.Thread


@attrs.frozen
class Cleaned:
    child_id: str
    generation: int
    at_s: float


@attrs.frozen(eq=False)
class HookStarted:
    child_id: str
    generation: int
    ref: pykka.ActorRef[Any]
    restarted: bool


@attrs.frozen
class HookExited:
    child_id: str
    generation: int
    reason: ExitReason


@attrs.frozen(eq=False)
class SupervisorUp:
    name: str
    thread: threading.Thread


@attrs.frozen
class Ping:
    """Ask: replies "pong" (a barrier: everything told before it was handled)."""


@attrs.frozen
class StopSelf:
    """The child stops itself: an exit the supervisor did not ask for (NORMAL)."""


@attrs.frozen
class MakeZombie:
    """The child's thread ends behind pykka's back, without any exception.

    The handler swaps ``self.actor_stopped`` for a new, already-set Event: pykka's loop
    (``while not self.actor_stopped.is_set()``) ends normally and the thread exits, but the
    ref still holds the *original* Event, so ``ref.is_alive()`` stays True and the actor stays
    registered. No on_stop, no on_failure, no report, no stop_all -- a textbook zombie.
    """


class Worker(SupervisedActor):
    """A test child: records starts/cleanups, can fail its init, crash, stop itself, become a zombie."""

    def __init__(self, ctx: ChildContext, events: Recorder,
                 fail_init: Callable[[ChildContext], bool] | None = None, *,
                 dispatcher: Dispatcher | None = None) -> None:
        super().__init__(ctx, dispatcher=dispatcher)
        self._events = events
        self._fail_init = fail_init

    def init(self) -> None:
        self._events.record(Started(self.child_id, self.generation, time.monotonic(), self.actor_ref,
                                    threading.current_thread()))
        if self._fail_init is not None and self.ctx is not None and self._fail_init(self.ctx):
            raise RuntimeError(f"{self.child_id} refuses to start")

    def cleanup(self) -> None:
        self._events.record(Cleaned(self.child_id, self.generation, time.monotonic()))

    def on_receive(self, message: Any) -> Any:
        match message:
            case Ping():
                return "pong"
            case StopSelf():
                self.stop()
            case MakeZombie():
                self.actor_stopped = threading.Event()  # the ref keeps the old, unset one
                self.actor_stopped.set()
            case _:
                return super().on_receive(message)
        return None


def worker_spec(child_id: str, events: Recorder, *, restart: Restart = Restart.PERMANENT,
                fail_init: Callable[[ChildContext], bool] | None = None,
                fail_factory: Callable[[ChildContext], bool] | None = None, kind: str = "",
                shutdown_timeout_s: float = 5.0) -> ChildSpec:
    def factory(ctx: ChildContext) -> pykka.ActorRef[Any]:
        if fail_factory is not None and fail_factory(ctx):
            raise RuntimeError(f"factory of {ctx.child_id} failed")
        return Worker.start(ctx, events, fail_init)

    return ChildSpec(child_id, factory, restart=restart, kind=kind, shutdown_timeout_s=shutdown_timeout_s)


class RecordingSupervisor(Supervisor):
    """A Supervisor subclass recording its hooks (and its own thread) into ``events``."""

    def __init__(self, *args: Any, events: Recorder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events = events

    def init(self) -> None:
        self._events.record(SupervisorUp(self.name, threading.current_thread()))
        super().init()

    def child_started(self, child_id: str, ref: pykka.ActorRef[Any], generation: int, restarted: bool) -> None:
        self._events.record(HookStarted(child_id, generation, ref, restarted))

    def child_exited(self, child_id: str, generation: int, reason: ExitReason) -> None:
        self._events.record(HookExited(child_id, generation, reason))
