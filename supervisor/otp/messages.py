"""The supervision protocol: frozen messages between children, supervisors and hosts.

Between actors of the tree everything is a ``tell``. Only ``GetChildren``, ``GetStats``
(and optionally ``StartChild`` / ``TerminateChild``) may be *asked*, and only from
outside the tree (a service facade, a test), always with a timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from depthkeeper.supervisor.otp.spec import ChildSpec, ExitReason

if TYPE_CHECKING:
    from depthkeeper.supervisor.otp.dispatch import Lane

# -- child -> supervisor ----------------------------------------------------------------


@attrs.frozen(eq=False)
class ChildStarted:
    """Told from the child's on_start: hands over its thread for the liveness monitor
    (on a dispatcher: its ``Lane``, which quacks like a thread: ``is_alive``, ``join``, ``name``)."""

    child_id: str
    generation: int
    thread: threading.Thread | Lane
    #: the child's guarded cleanup, run by the supervisor side if the thread dies as a zombie
    #: (its own thread can no longer release its sockets and threads)
    cleanup: Callable[[], None] | None = None


@attrs.frozen
class ChildExited:
    """Told exactly once per incarnation, as the last thing the child does (or by the monitor)."""

    child_id: str
    generation: int
    reason: ExitReason
    error: str | None = None
    #: the exit was a fault injected on purpose (chaos): the supervisor logs it at INFO
    injected: bool = False


# -- supervisor -> itself ---------------------------------------------------------------


@attrs.frozen
class RestartDue:
    """A scheduled restart; stale when the child's generation moved on meanwhile."""

    child_id: str
    generation: int


# -- anyone -> supervisor ---------------------------------------------------------------


@attrs.frozen
class StartChild:
    """Add a dynamic child at the end of the start order and start it.

    Told: fire and forget. Asked: the reply is the new ref, or None (duplicate id or a
    factory that raised).
    """

    spec: ChildSpec


@attrs.frozen
class TerminateChild:
    """Forget the spec, then stop the child; it is never restarted. Asked: replies whether it existed."""

    child_id: str


@attrs.frozen
class GetChildren:
    """Ask (from outside the tree): a tuple of :class:`ChildInfo` in start order."""


@attrs.frozen
class GetStats:
    """Ask (from outside the tree): a :class:`SupervisorStats`."""


# -- anyone -> any SupervisedActor ------------------------------------------------------


@attrs.frozen
class Crash:
    """Chaos: the receiver raises ``ChaosCrash`` -- the normal failure path. Send it with tell.
    ``injected``: a fault injected on purpose (the chaos tooling sets it): logged at INFO, not ERROR."""

    reason: str = "chaos"
    injected: bool = False


# -- replies and host notifications -----------------------------------------------------


@attrs.frozen
class Escalated:
    """What a host's ref or callable receives when a top-level supervisor dies abnormally."""

    supervisor: str
    reason: str
    restarts: int


@attrs.frozen(eq=False)
class ChildInfo:
    """One child as the supervisor sees it. ``ref`` is None while it is down or restarting."""

    id: str
    kind: str
    ref: pykka.ActorRef[Any] | None
    generation: int
    restarts: int
    alive: bool


@attrs.frozen
class SupervisorStats:
    """Restart counters of one supervisor.

    ``restarts`` is per child id and ``restarts_by_kind`` per spec kind (attempts: a restart
    whose factory raised counts too). ``escalations`` counts GAVE_UP exits of child
    supervisors this one received; ``gave_up`` is whether this supervisor itself gave up.
    """

    restarts: Mapping[str, int]
    restarts_by_kind: Mapping[str, int]
    escalations: int
    gave_up: bool


def child_ref(children: Iterable[ChildInfo], child_id: str) -> pykka.ActorRef[Any] | None:
    """The current ref of ``child_id`` among a supervisor's ``GetChildren`` answer (None: none/down)."""
    return next((c.ref for c in children if c.id == child_id), None)
