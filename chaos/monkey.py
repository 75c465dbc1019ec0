"""Chaos tooling (``svc.chaos``): kill our actors, make zombies, break the venue -- all seedable.

Why each weapon is built the way it is (see notes/pykka-and-supervision.md §1.7, §5):

- **crash**: pykka has no kill. A told :class:`~depthkeeper.supervisor.otp.messages.Crash` makes
  the actor raise inside a told message, which is exactly the failure path a real bug takes
  (``on_failure`` -> ``ChildExited(CRASHED)`` -> restart). It waits behind the backlog,
  like a real failure in the next message would.
- **zombie**: the actor's thread dies *without* any report, so only the supervisor's
  liveness monitor can notice (see :func:`make_zombie`). Hence a separate weapon: it proves
  the safety net, not the reporting path.
- **venue faults** (:class:`~depthkeeper.chaos.faults.VenueFaults`): the simulator's
  fault API, with the parameters drawn from the same seeded RNG, so a failing schedule can be
  replayed from its seed.

Kill targets: ``"connection" | "subscription" | "snapshot" | "book:CODE" | "book" |
"archive"`` (when configured) ``| "random"``.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import inspect
import random
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from depthkeeper.chaos.faults import (  # noqa: F401 - re-exported: the monkey's public names
    CODE_FAULTS,
    SNAPSHOT_FAULTS,
    STREAM_FAULTS,
    FaultLimits,
    FaultResult,
    VenueFault,
    VenueFaults,
)
from depthkeeper.supervisor.otp.dispatch import Mailbox
from depthkeeper.supervisor.otp.errors import mark_injected
from depthkeeper.supervisor.otp.messages import Crash
from depthkeeper.supervisor.service.handle import BOOK, RANDOM

if TYPE_CHECKING:
    from depthkeeper.supervisor.service.facade import BookService



class KillMode(enum.Enum):
    """How a target is killed."""

    CRASH = "crash"  # a told Crash: the normal failure path
    ZOMBIE = "zombie"  # the thread dies silently; the liveness monitor must catch it


@attrs.frozen
class KillResult:
    """One kill: what was aimed at, what it resolved to, and whether it landed."""

    target: str  # resolved: "book:BTCUSDT", "connection", ...
    kind: str  # "book", "connection", ...
    mode: KillMode
    delivered: bool
    at_s: float  # time.monotonic() when it was sent
    ref: pykka.ActorRef[Any] | None = attrs.field(default=None, eq=False, repr=False)
    detail: str = ""


# -- zombies ---------------------------------------------------------------------------------


class ZombieBullet(Exception):
    """Raised asynchronously in an actor's thread. An ``Exception``, never a ``BaseException``:
    if it ever landed inside a handler pykka would treat a BaseException as fatal for *every*
    actor in the process, while an Exception is only a normal crash there."""

    #: a fault injected on purpose: the supervision layer logs what it causes at INFO (otp.errors)
    injected = True


class ZombieOutcome(enum.Enum):
    ZOMBIE = "zombie"  # the thread died outside pykka; the ref still claims to be alive
    CRASHED = "crashed"  # the bullet landed in a told handler: an ordinary crash instead
    NOT_RUNNING = "not_running"  # the actor was already gone
    BUSY = "busy"  # never idle within the timeout (nothing armed), or the bullet was spent on an ask
    UNSUPPORTED = "unsupported"  # not a pykka actor loop we can find, or an interpreter we cannot aim in


_LOOP_CODE = pykka.ThreadingActor._actor_loop_running.__code__


def _lines(func: Any, needle: str, *, after: str | None = None) -> frozenset[int]:
    """Source lines of ``func`` containing ``needle`` (only those after the first ``after`` line)."""
    try:
        lines, first = inspect.getsourcelines(func)
    except (OSError, TypeError):
        return frozenset()
    start = 0 if after is None else next((i for i, t in enumerate(lines) if t.strip().startswith(after)), len(lines))
    return frozenset(first + i for i, text in enumerate(lines) if i > start and needle in text)


#: pykka's ``envelope = self.actor_inbox.get()`` -- outside its try block
_GET_LINES = _lines(pykka.ThreadingActor._actor_loop_running, "actor_inbox.get(")
#: the *blocking* ``waiter.acquire`` calls inside ``Condition.wait``'s try (queue.Queue inboxes)
_ACQUIRE_LINES = _lines(threading.Condition.wait, "waiter.acquire(", after="try:")


def _parked_in_inbox(thread: threading.Thread) -> bool:
    """True when ``thread`` is blocked on its empty inbox in pykka's loop, outside the try block.

    A C inbox (``queue.SimpleQueue``, our actors') has no Python frame: the top frame is the
    loop itself, on its ``get`` line, and the exception fires as ``get`` returns. A
    ``queue.Queue`` inbox (a plain pykka actor's) blocks in ``Condition.wait`` at a blocking
    ``waiter.acquire``; the exception unwinds through ``wait``'s finally (re-taking the queue
    mutex) and ``get``'s with block (releasing it), so that inbox stays consistent.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return False
    if frame.f_code is _LOOP_CODE:
        return frame.f_lineno in _GET_LINES
    if frame.f_code.co_name != "wait" or frame.f_lineno not in _ACQUIRE_LINES:
        return False
    caller = frame.f_back
    if caller is None or caller.f_code.co_name != "get" or not caller.f_code.co_filename.endswith("queue.py"):
        return False
    return caller.f_back is not None and caller.f_back.f_code is _LOOP_CODE


def actor_thread(ref: pykka.ActorRef[Any]) -> Any:
    """The thread running ``ref``'s actor loop (pykka keeps no handle: find the loop's frame);
    for an actor on a dispatcher, its Lane (the thread stand-in its supervisor watches)."""
    if isinstance(ref.actor_inbox, Mailbox):
        return ref.actor_inbox.lane
    actor = ref._actor_weakref()  # the ref's own (weak) handle on its actor object
    if actor is None:
        return None
    threads = {t.ident: t for t in threading.enumerate()}
    for ident, top in sys._current_frames().items():
        frame: Any = top
        while frame is not None:
            if frame.f_code.co_name == "_actor_loop_running" and frame.f_locals.get("self") is actor:
                return threads.get(ident)
            frame = frame.f_back
    return None


@attrs.frozen
class _WakeUp:
    """Told after arming the bullet: the thread wakes from ``inbox.get`` and dies there."""


def make_zombie(ref: pykka.ActorRef[Any], timeout_s: float = 1.0) -> ZombieOutcome:
    """Make ``ref``'s actor a zombie: its thread ends, pykka still lists it alive and registered.

    The bullet is armed only while the thread is parked in its inbox ``get``; it fires when
    the next message (our wake-up) arrives, before pykka's try block, so no ``on_failure``
    and no report. With a ``queue.Queue`` inbox we hold its mutex meanwhile, so the actor
    cannot take a message between the check and the arming. A C ``SimpleQueue`` has no lock
    to hold: the check and the arming run back to back on one thread, and for the bullet to
    miss, the actor would have to be woken *and* scheduled in those microseconds -- then the
    bullet (an Exception) is an ordinary crash or an ask's error, reported as such.
    """
    if not ref.is_alive():
        return ZombieOutcome.NOT_RUNNING
    if isinstance(ref.actor_inbox, Mailbox):
        return _zombie_on_dispatcher(ref, ref.actor_inbox, timeout_s)
    thread = actor_thread(ref)
    if thread is None or not _GET_LINES or not _ACQUIRE_LINES:
        return ZombieOutcome.UNSUPPORTED
    mutex = getattr(ref.actor_inbox, "mutex", None)
    hold: Any = mutex if mutex is not None else contextlib.nullcontext()
    deadline = time.monotonic() + timeout_s
    idle = threading.Event()
    while True:
        if not ref.is_alive() or not thread.is_alive():
            return ZombieOutcome.NOT_RUNNING
        with hold:
            armed = _parked_in_inbox(thread) and ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident or 0), ctypes.py_object(ZombieBullet)) == 1
        if armed:
            mark_injected(thread)  # its death is ours: the liveness monitor logs the zombie at INFO
            break
        if time.monotonic() >= deadline:
            return ZombieOutcome.BUSY
        idle.wait(0.0005)  # poll again: the actor is handling a message right now
    try:
        ref.tell(_WakeUp())
    except pykka.ActorDeadError:
        pass  # it died on its own meanwhile; the armed bullet ends its thread anyway
    thread.join(timeout_s)
    if thread.is_alive():
        return ZombieOutcome.BUSY
    return ZombieOutcome.ZOMBIE if ref.is_alive() else ZombieOutcome.CRASHED


def _zombie_on_dispatcher(ref: pykka.ActorRef[Any], mailbox: Mailbox, timeout_s: float) -> ZombieOutcome:
    """The same death for an actor on shared dispatcher threads: the bullet fires in its next
    turn *between* two messages, outside any handler, and the dispatcher loses the actor (its
    Lane ends, no report) while the dispatcher thread goes on with the others."""
    mailbox.bullet = ZombieBullet
    try:
        ref.tell(_WakeUp())
    except pykka.ActorDeadError:
        return ZombieOutcome.NOT_RUNNING
    mailbox.lane.join(timeout_s)
    if mailbox.lane.is_alive():
        mailbox.bullet = None  # counted as a miss: it must not fire later ...
        if mailbox.lane.is_alive():  # ... unless it fired just now
            return ZombieOutcome.BUSY
    return ZombieOutcome.ZOMBIE if mailbox.lane.lost else ZombieOutcome.NOT_RUNNING


class ChaosMonkey(VenueFaults):
    """Seedable chaos against one running :class:`BookService` (``svc.chaos``).

    ``simulator`` defaults to the service's embedded one; pass a handle when the service
    talks to a simulator started elsewhere (the chaos runner does).
    """

    def __init__(self, svc: BookService, rng: random.Random | None = None, *, seed: int | None = None,
                 simulator: Any = None, limits: FaultLimits | None = None) -> None:
        self._svc = svc
        self.rng = rng if rng is not None else random.Random(seed)
        self._simulator = simulator
        self.limits = limits or FaultLimits()
        #: delivered kills per kind ("book", "connection", "zombie:book", ...)
        self.kills: Counter[str] = Counter()
        #: kills that found no target (restarting, already dead) or, for zombies, no idle moment
        self.missed: Counter[str] = Counter()
        #: injected venue faults per kind
        self.faults: Counter[str] = Counter()

    @property
    def simulator(self) -> Any:
        sim = self._simulator if self._simulator is not None else self._svc.simulator
        if sim is None:
            raise RuntimeError("no simulator: venue faults need the embedded simulator or simulator=...")
        return sim

    # -- targets -------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Every concrete target right now (books in code order)."""
        return self._svc.tree.targets()

    def resolve(self, target: str) -> tuple[str, pykka.ActorRef[Any] | None]:
        """``target`` -> (concrete name, current ref or None while it restarts); see svc.tree."""
        tree = self._svc.tree
        tree.rng = self.rng  # seeded choices: a failing schedule replays from its seed
        return tree.resolve(target)

    # -- kills ---------------------------------------------------------------------------

    def kill(self, target: str = RANDOM) -> str:
        """Crash ``target`` through the normal failure path; return the concrete target name."""
        return self.crash(target).target

    def crash(self, target: str = RANDOM) -> KillResult:
        """Tell the target ``Crash``; it raises inside that told message (ChildExited CRASHED)."""
        name, ref = self.resolve(target)
        kind = name.split(":", 1)[0]
        at_s = time.monotonic()
        if ref is None:
            self.missed[kind] += 1
            return KillResult(name, kind, KillMode.CRASH, False, at_s, None, "not running")
        try:
            ref.tell(Crash("chaos kill", injected=True))  # logged at INFO: we asked for it
        except pykka.ActorDeadError:
            self.missed[kind] += 1
            return KillResult(name, kind, KillMode.CRASH, False, at_s, ref, "already dead")
        self.kills[kind] += 1
        return KillResult(name, kind, KillMode.CRASH, True, at_s, ref)

    def zombie(self, target: str = BOOK, timeout_s: float = 1.0) -> KillResult:
        """Kill the target's thread behind pykka's back; only the liveness monitor can see it.

        The zombie runs none of its own cleanup: the safety net must fence it, release what it
        held (a ConnectionActor's socket and reader thread) and restart it.
        """
        name, ref = self.resolve(target)
        kind = name.split(":", 1)[0]
        at_s = time.monotonic()
        if ref is None:
            self.missed[f"zombie:{kind}"] += 1
            return KillResult(name, kind, KillMode.ZOMBIE, False, at_s, None, "not running")
        outcome = make_zombie(ref, timeout_s)
        if outcome is ZombieOutcome.CRASHED:  # the bullet hit a handler: it went the normal way
            self.kills[kind] += 1
            return KillResult(name, kind, KillMode.CRASH, True, at_s, ref, outcome.value)
        delivered = outcome is ZombieOutcome.ZOMBIE
        (self.kills if delivered else self.missed)[f"zombie:{kind}"] += 1
        return KillResult(name, kind, KillMode.ZOMBIE, delivered, at_s, ref, outcome.value)
