"""What a supervisor is told to do, and the pure decisions it makes (no threads, no actors).

The shapes follow OTP's ``supervisor``: a child spec per child, one set of supervisor
flags, and three tiny pure functions the actor shell calls -- the restart window
(OTP ``add_restart``), the restart decision table (OTP ``do_restart``) and the victim
set of a strategy. Backoff between restarts is ours (OTP restarts at once; Akka's
``BackoffSupervisor`` inspired the shape). Keeping these pure lets the unit tests pin
every rule without starting a thread.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pykka


class Strategy(enum.Enum):
    """Which siblings go down with a failed child (children are kept in start order)."""

    ONE_FOR_ONE = "one_for_one"  # only the failed child
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # the failed child and every child started after it


class Restart(enum.Enum):
    """When a child that exited is started again."""

    PERMANENT = "permanent"  # after any exit the supervisor did not ask for (see should_restart)
    TRANSIENT = "transient"  # only after an abnormal exit
    TEMPORARY = "temporary"  # never, not even as the sibling of a failed child


class ExitReason(enum.Enum):
    """Why one incarnation of a child ended."""

    NORMAL = "normal"  # it stopped without the supervisor asking (its own stop, a host's stop_all)
    SHUTDOWN = "shutdown"  # the supervisor stopped it
    CRASHED = "crashed"  # an exception escaped a tell-delivered message
    START_FAILED = "start_failed"  # its init() raised, or its factory did
    ZOMBIE = "zombie"  # its thread died while its ref still claimed to be alive
    GAVE_UP = "gave_up"  # a child supervisor exceeded its restart intensity

    @property
    def is_abnormal(self) -> bool:
        """True for the exits a TRANSIENT child is restarted after (OTP: not normal/shutdown)."""
        return self not in (ExitReason.NORMAL, ExitReason.SHUTDOWN)


class Jitter(enum.Enum):
    """How :func:`backoff_delay` randomises the capped exponential delay ``base``."""

    NONE = "none"  # exactly base: deterministic, for tests and tools
    EQUAL = "equal"  # uniform in [base/2, base]: keeps half the spacing, still spreads a herd
    FULL = "full"  # uniform in [0, base]: the widest spread (AWS "full jitter")


def _non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class ChildContext:
    """Handed to a child's factory, and on to ``SupervisedActor.__init__``.

    ``generation`` names one incarnation of ``child_id``; reports carrying an older
    generation are stale and ignored, which fences messages from dead incarnations.
    """

    supervisor: pykka.ActorRef[Any]
    child_id: str
    generation: int


@attrs.frozen
class ChildSpec:
    """How to start (and restart) one child.

    ``factory`` must start and return a NEW actor on every call: a stopped pykka actor
    can never run again, so a restart is always a fresh actor with a fresh ref and inbox.
    ``kind`` groups children in the restart statistics (e.g. ``"book"``); it defaults to
    ``id``. A child that is itself a supervisor wants a ``shutdown_timeout_s`` long
    enough for its own children to stop (OTP gives supervisors ``infinity``).
    """

    id: str = attrs.field(validator=_non_empty)
    factory: Callable[[ChildContext], pykka.ActorRef[Any]] = attrs.field()
    restart: Restart = attrs.field(default=Restart.PERMANENT, validator=attrs.validators.instance_of(Restart))
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    kind: str = attrs.field(default="")

    @factory.validator
    def _check_factory(self, _attribute: attrs.Attribute[Any], value: object) -> None:
        if not callable(value):
            raise ValueError(f"factory of child {self.id!r} must be callable")

    @property
    def group(self) -> str:
        """The label restarts are counted under: ``kind`` or, when empty, ``id``."""
        return self.kind or self.id


@attrs.frozen
class SupervisorFlags:
    """Strategy, intensity and backoff for one supervisor.

    Intensity (``max_restarts`` within ``period_s``) decides when to stop trying;
    backoff only spaces the tries out. Long backoffs can keep restarts from ever
    crowding into ``period_s``: pick ``period_s`` larger than the backoff you expect
    to reach, or a crash loop will retry forever at ``backoff_max_s``.
    ``liveness_interval_s`` = 0 switches the zombie-thread monitor off.
    """

    strategy: Strategy = attrs.field(default=Strategy.ONE_FOR_ONE, validator=attrs.validators.instance_of(Strategy))
    max_restarts: int = attrs.field(default=3, validator=_non_negative)
    period_s: float = attrs.field(default=5.0, validator=_positive)
    backoff_min_s: float = attrs.field(default=0.0, validator=_non_negative)
    backoff_max_s: float = attrs.field(default=5.0, validator=_non_negative)
    backoff_reset_s: float = attrs.field(default=10.0, validator=_non_negative)
    liveness_interval_s: float = attrs.field(default=0.5, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_min_s ({self.backoff_min_s})")
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int):
            raise ValueError(f"max_restarts must be an int, got {self.max_restarts!r}")


class RestartWindow:
    """OTP's ``add_restart``: more than ``max_restarts`` restarts within ``period_s`` means give up.

    Timestamps are passed in (monotonic seconds), so the rule is tested without a clock.
    With ``max_restarts=0`` the very first restart gives up, as in OTP.
    """

    def __init__(self, max_restarts: int, period_s: float) -> None:
        if max_restarts < 0 or period_s <= 0:
            raise ValueError("max_restarts must be >= 0 and period_s > 0")
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._stamps and now - self._stamps[0] > self.period_s:
            self._stamps.popleft()

    def record(self, now: float) -> bool:
        """Count one restart at ``now``; False when that makes too many (the caller gives up)."""
        self._expire(now)
        self._stamps.append(now)
        return len(self._stamps) <= self.max_restarts

    def count(self, now: float) -> int:
        """Restarts recorded within the last ``period_s`` before ``now``."""
        self._expire(now)
        return len(self._stamps)


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random,
                  *, jitter: Jitter = Jitter.EQUAL) -> float:
    """Delay before restart number ``attempt`` (0-based): ``base = min(max_s, min_s * 2**attempt)``.

    The default EQUAL jitter returns a value in ``[base/2, base]``: restarts keep at least
    half the exponential spacing and a herd of children restarting at once is spread.
    The result never exceeds ``max_s``; ``min_s = 0`` gives 0 (restart at once).
    """
    if attempt < 0 or min_s < 0 or max_s < min_s:
        raise ValueError("need attempt >= 0 and 0 <= min_s <= max_s")
    base = min(max_s, min_s * 2.0 ** min(attempt, 64))
    match jitter:
        case Jitter.NONE:
            return base
        case Jitter.EQUAL:
            return base / 2 + rng.uniform(0.0, base / 2)
        case Jitter.FULL:
            return rng.uniform(0.0, base)
    raise ValueError(f"unknown jitter {jitter!r}")


def next_attempt(attempt: int, uptime_s: float, reset_after_s: float) -> int:
    """The backoff attempt to use for the restart after an incarnation lived ``uptime_s``.

    An incarnation that stayed up at least ``reset_after_s`` earned a fresh start (attempt 0,
    Akka's ``resetBackoffAfter``); a crash loop keeps climbing towards ``backoff_max_s``.
    """
    return 0 if uptime_s >= reset_after_s else attempt


def should_restart(restart: Restart, reason: ExitReason) -> bool:
    """OTP's ``do_restart`` table, with one deliberate change.

    A NORMAL exit the supervisor did not ask for is never restarted, not even for a
    PERMANENT child: a host's ``ActorRegistry.stop_all()`` stops children before their
    supervisor, and restarting them would only churn while the host shuts down.
    """
    if reason in (ExitReason.NORMAL, ExitReason.SHUTDOWN):
        return False
    match restart:
        case Restart.PERMANENT:
            return True
        case Restart.TRANSIENT:
            return reason.is_abnormal
        case Restart.TEMPORARY:
            return False
    raise ValueError(f"unknown restart type {restart!r}")


def victims(strategy: Strategy, order: Sequence[str], failed: str) -> tuple[str, ...]:
    """The children a failure of ``failed`` takes down, in start order (``failed`` included)."""
    if failed not in order:
        raise ValueError(f"{failed!r} is not one of the children {list(order)!r}")
    match strategy:
        case Strategy.ONE_FOR_ONE:
            return (failed,)
        case Strategy.ONE_FOR_ALL:
            return tuple(order)
        case Strategy.REST_FOR_ONE:
            return tuple(order[order.index(failed):])
    raise ValueError(f"unknown strategy {strategy!r}")


class Backoff:
    """The attempts of one retried thing and the delay before the next: capped exponential with
    jitter, never below ``floor_s`` (a venue's minimum). ``reset`` once it succeeded."""

    __slots__ = ("attempt", "floor_s", "jitter", "max_s", "min_s", "rng")

    def __init__(self, min_s: float, max_s: float, rng: random.Random, *, jitter: Jitter = Jitter.FULL,
                 floor_s: float = 0.0) -> None:
        self.min_s, self.max_s, self.rng, self.jitter, self.floor_s = min_s, max_s, rng, jitter, floor_s
        #: attempts made since the last success
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count it)."""
        delay = max(self.floor_s, backoff_delay(self.attempt, self.min_s, self.max_s, self.rng, jitter=self.jitter))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
