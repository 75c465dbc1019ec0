"""``Supervisor``: OTP supervision (strategies, restart types, intensity) on pykka, plus backoff.

A supervisor is itself a ``SupervisedActor``, so trees compose: when one gives up it
raises ``RestartIntensityExceeded`` inside a told message, pykka calls ``on_failure``,
and its parent receives ``ChildExited(GAVE_UP)`` like any other child exit. A
top-level supervisor (``ctx=None``) instead tells ``Escalated`` to a host ref or calls
a host callable -- after it is dead, exactly once, for any abnormal end. It never exits
the process, never raises a ``BaseException`` and never touches actors it did not start.

Rules that keep it safe on pykka (see DESIGN.md §2):

- children and helpers only *tell* the supervisor; it never asks a child;
- a restart is a ``RestartDue`` told to self by the scheduler (even with 0 delay), and
  its generation is checked again on arrival, so stale timers and a queued stop win;
- generations are per child id and never reused, which fences every late report;
- stops it asks for block up to the spec's ``shutdown_timeout_s`` (children only tell us: no
  deadlock) except ``TerminateChild``, which does not wait; hooks run on the supervisor thread.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import pykka

from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.errors import RestartIntensityExceeded
from depthkeeper.supervisor.otp.liveness import Draining, Incarnation, LivenessMonitor
from depthkeeper.supervisor.otp.messages import (
    ChildExited,
    ChildInfo,
    ChildStarted,
    Escalated,
    GetChildren,
    GetStats,
    RestartDue,
    StartChild,
    SupervisorStats,
    TerminateChild,
)
from depthkeeper.supervisor.otp.scheduler import Scheduler, TimerHandle
from depthkeeper.supervisor.otp.spec import (
    ChildContext,
    ChildSpec,
    ExitReason,
    Restart,
    RestartWindow,
    SupervisorFlags,
    backoff_delay,
    next_attempt,
    should_restart,
    victims,
)
from depthkeeper.supervisor.otp.tell import tell

EscalationTarget = pykka.ActorRef[Any] | Callable[[Escalated], object]


@attrs.frozen
class _GiveUp:
    """Told to self after giving up: raising here, in a *told* message, is what reaches on_failure."""

    reason: str


@attrs.define(eq=False)
class _Child:
    """Runtime state of one child: running (ref), restarting (restart_timer) or down (neither)."""

    spec: ChildSpec
    generation: int
    ref: pykka.ActorRef[Any] | None = None
    thread: Any = None  # threading.Thread from ChildStarted, for zombie checks on stop
    cleanup: Any = None  # the child's guarded cleanup, run for it if it becomes a zombie
    started_at_s: float = 0.0
    attempt: int = 0
    restart_timer: TimerHandle | None = None

    def incarnation(self) -> Incarnation | None:
        """The running incarnation (None while down or restarting)."""
        return None if self.ref is None else Incarnation(self.spec.id, self.generation, self.ref, self.thread,
                                                          self.cleanup, self.spec.shutdown_timeout_s)


class Supervisor(SupervisedActor):
    """Start with ``Supervisor.start(ctx, flags, specs, name=..., escalate=..., rng=...)``."""

    log_name = "supervisor"

    def __init__(self, ctx: ChildContext | None, flags: SupervisorFlags, specs: Sequence[ChildSpec], *,
                 name: str = "root", escalate: EscalationTarget | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(ctx)
        ids = [spec.id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids!r}")
        if ctx is not None and escalate is not None:
            raise ValueError("a supervised supervisor escalates to its parent; do not pass escalate")
        if ctx is None:
            self.child_id = name
        self.name = name
        self.flags = flags
        self._initial_specs = tuple(specs)
        self._escalate = escalate
        self._backoff_rng = rng if rng is not None else random.Random()
        self._children: dict[str, _Child] = {}
        self._generations: dict[str, int] = {}
        #: stopped but not yet reported: (ref, shutdown timeout, thread, cleanup), awaited at shutdown
        self._draining = Draining()
        self._restart_window = RestartWindow(flags.max_restarts, flags.period_s)
        self._restarts_by_id: Counter[str] = Counter()
        self._restarts_by_kind: Counter[str] = Counter()
        self._escalations = 0
        self._gave_up = False
        self._give_up_reason = ""
        self._escalated = False
        self._restart_timers = Scheduler(name=f"restarts-{name}")
        self._liveness: LivenessMonitor | None = None
        self.bind_log(supervisor=name)

    @classmethod
    def child_spec(cls, child_id: str, flags: SupervisorFlags, specs: Sequence[ChildSpec], *,
                   restart: Restart = Restart.PERMANENT, shutdown_timeout_s: float = 30.0,
                   kind: str = "supervisor") -> ChildSpec:
        """A spec that starts this class (no extra constructor args) as a child supervisor named ``child_id``."""
        return ChildSpec(child_id, lambda ctx: cls.start(ctx, flags, specs, name=child_id), restart=restart,
                         shutdown_timeout_s=shutdown_timeout_s, kind=kind)

    # -- hooks for subclasses (run on the supervisor thread) -----------------------------

    def child_started(self, child_id: str, ref: pykka.ActorRef[Any], generation: int, restarted: bool) -> None:
        """A new incarnation's factory returned ``ref`` (its on_start may still be running)."""

    def child_exited(self, child_id: str, generation: int, reason: ExitReason) -> None:
        """An incarnation is gone (or being stopped by us: SHUTDOWN). Not called during our own shutdown."""

    # -- lifecycle ----------------------------------------------------------------------

    def init(self) -> None:
        if self.flags.liveness_interval_s > 0:
            self._liveness = LivenessMonitor(self.actor_ref, self.flags.liveness_interval_s, self.name)
            self._liveness.start()
        for spec in self._initial_specs:
            # OTP: a child that cannot even be started fails the supervisor's own start.
            self._start_incarnation(self._add_child(spec), restarted=False)

    def cleanup(self) -> None:
        self._restart_timers.close()
        if self._liveness is not None:
            self._liveness.stop()
        self._stop_all_children()

    def stop_reason(self) -> ExitReason:
        return ExitReason.GAVE_UP if self._gave_up else ExitReason.NORMAL

    def exit_without_supervisor(self, reason: ExitReason, error: str | None) -> None:
        if reason.is_abnormal:
            self._escalate_to_host(reason, error)

    # -- dispatch -----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case _GiveUp(reason=reason):
                raise RestartIntensityExceeded(reason)
            case GetChildren():
                return self._children_info()
            case GetStats():
                return self._stats()
            case _ if self._gave_up:
                return None  # dying: ignore everything queued behind the give-up
            case ChildStarted():
                self._on_child_started(message)
            case ChildExited():
                self._on_child_exited(message)
            case RestartDue(child_id=child_id, generation=generation):
                self._on_restart_due(child_id, generation)
            case StartChild(spec=spec):
                return self._on_start_child(spec)
            case TerminateChild(child_id=child_id):
                return self._on_terminate_child(child_id)
            case _:
                return super().on_receive(message)
        return None

    # -- handlers -----------------------------------------------------------------------

    def _on_child_started(self, msg: ChildStarted) -> None:
        child = self._children.get(msg.child_id)
        if child is None or child.generation != msg.generation or child.ref is None:
            return
        child.thread = msg.thread
        child.cleanup = msg.cleanup
        if self._liveness is not None:
            self._liveness.watch(msg.child_id, msg.generation, child.ref, msg.thread, msg.cleanup)

    def _on_child_exited(self, msg: ChildExited) -> None:
        if self._draining.pop(msg.child_id, msg.generation) and self._liveness is not None:
            self._liveness.forget(msg.child_id, msg.generation)
        child = self._children.get(msg.child_id)
        if child is None or child.generation != msg.generation or child.ref is None:
            self.log.debug("stale exit of {} generation {} ignored", msg.child_id, msg.generation)
            return
        self._handle_exit(child, msg.reason, msg.error, injected=msg.injected)

    def _on_restart_due(self, child_id: str, generation: int) -> None:
        child = self._children.get(child_id)
        if child is None or child.generation != generation or child.restart_timer is None:
            return  # cancelled, terminated or superseded meanwhile
        child.restart_timer = None
        self._restarts_by_id[child_id] += 1
        self._restarts_by_kind[child.spec.group] += 1
        try:
            self._start_incarnation(child, restarted=True)
        except Exception as exc:
            self._handle_exit(child, ExitReason.START_FAILED, repr(exc))

    def _on_start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any] | None:
        if spec.id in self._children:
            self.log.bind(context="start_error", offender=spec.id).error("duplicate child id {}", spec.id)
            return None
        child = self._add_child(spec)
        try:
            return self._start_incarnation(child, restarted=False)
        except Exception as exc:
            self._handle_exit(child, ExitReason.START_FAILED, repr(exc))
            return None

    def _on_terminate_child(self, child_id: str) -> bool:
        child = self._children.pop(child_id, None)
        if child is None:
            return False
        self._restart_timers.cancel(child.restart_timer)
        incarnation = child.incarnation()
        if incarnation is not None:
            # a zombie never processes the stop: fence it now, or it leaks until shutdown; and
            # keep watching it (see _on_child_exited), in case it dies behind pykka's back later
            incarnation.fence_if_zombie()
            child.ref = None
            incarnation.ref.stop(block=False)  # not behind its backlog; cleanup() waits for stragglers
            self._draining.add(incarnation)
            self.child_exited(child_id, incarnation.generation, ExitReason.SHUTDOWN)
        self.log.info("terminated child {}", child_id)
        return True

    # -- restart logic ------------------------------------------------------------------

    def _handle_exit(self, child: _Child, reason: ExitReason, error: str | None, *, injected: bool = False) -> None:
        """One incarnation ended: decide (restart type, intensity), take down victims, schedule."""
        now_s = time.monotonic()
        uptime_s = now_s - child.started_at_s if child.ref is not None else 0.0
        self._unwatch(child)
        self._log_exit(child, reason, error, injected)
        self.child_exited(child.spec.id, child.generation, reason)
        if reason is ExitReason.GAVE_UP:
            self._escalations += 1
        if not should_restart(child.spec.restart, reason):
            if child.spec.restart is Restart.TEMPORARY:
                del self._children[child.spec.id]
            return
        if not self._restart_window.record(now_s):
            self._give_up(child, reason)
            return
        child.attempt = next_attempt(child.attempt, uptime_s, self.flags.backoff_reset_s)
        delay_s = backoff_delay(child.attempt, self.flags.backoff_min_s, self.flags.backoff_max_s, self._backoff_rng)
        child.attempt += 1
        for victim in self._take_down_siblings(child):
            self._schedule_restart(victim, delay_s)

    def _take_down_siblings(self, failed: _Child) -> list[_Child]:
        """Stop the strategy's sibling victims (reverse start order); return who restarts, in start order."""
        names = victims(self.flags.strategy, list(self._children), failed.spec.id)
        chosen = {failed.spec.id}
        for child_id in reversed(names):
            sibling = self._children[child_id]
            if child_id == failed.spec.id:
                continue
            if sibling.ref is not None:
                self._stop_incarnation(sibling, final=False)
                if sibling.spec.restart is Restart.TEMPORARY:
                    del self._children[child_id]  # OTP: temporary children are never restarted
                    continue
            elif sibling.restart_timer is not None:
                self._restart_timers.cancel(sibling.restart_timer)
                sibling.restart_timer = None
            else:
                continue  # down for good: a sibling's failure does not revive it
            chosen.add(child_id)
        return [self._children[child_id] for child_id in names if child_id in chosen]

    def _schedule_restart(self, child: _Child, delay_s: float) -> None:
        child.generation = self._next_generation(child.spec.id)
        message = RestartDue(child.spec.id, child.generation)
        child.restart_timer = self._restart_timers.schedule(delay_s, self.actor_ref, message)
        self.log.bind(offender=child.spec.id).info("restarting {} in {:.3f}s (generation {})",
                                                    child.spec.id, delay_s, child.generation)

    def _give_up(self, child: _Child, reason: ExitReason) -> None:
        total = sum(self._restarts_by_id.values())
        self._give_up_reason = (f"supervisor {self.name!r}: child {child.spec.id!r} exited ({reason.value}) "
                                f"more than {self.flags.max_restarts} times in {self.flags.period_s}s")
        self.log.bind(context="shutdown", offender=child.spec.id, reason=reason.value).error(
            "restart intensity exceeded ({} restarts so far); stopping children and escalating", total)
        self._gave_up = True
        self._restart_timers.close()
        self._stop_all_children()
        self.actor_ref.tell(_GiveUp(self._give_up_reason))

    def _escalate_to_host(self, reason: ExitReason, error: str | None) -> None:
        if self._escalated:
            return
        self._escalated = True
        text = self._give_up_reason if reason is ExitReason.GAVE_UP else f"{reason.value}: {error}"
        event = Escalated(self.name, text, sum(self._restarts_by_id.values()))
        target = self._escalate
        if target is None:
            self.log.error("top-level supervisor died ({}) and has no escalation target", text)
        elif isinstance(target, pykka.ActorRef):
            if not tell(target, event):
                self.log.error("escalation target is dead; dropped {!r}", event)
        else:
            try:
                target(event)
            except Exception as exc:  # the host's callback must not break our shutdown
                self.log.opt(exception=exc).error("escalation callback raised: {!r}", exc)

    # -- starting and stopping incarnations ---------------------------------------------

    def _add_child(self, spec: ChildSpec) -> _Child:
        child = _Child(spec, self._next_generation(spec.id))
        self._children[spec.id] = child
        return child

    def _next_generation(self, child_id: str) -> int:
        generation = self._generations.get(child_id, 0) + 1
        self._generations[child_id] = generation
        return generation

    def _start_incarnation(self, child: _Child, *, restarted: bool) -> pykka.ActorRef[Any]:
        """Call the factory (its exceptions propagate to the caller) and record the new ref."""
        child_id = child.spec.id
        ref = child.spec.factory(ChildContext(self.actor_ref, child_id, child.generation))
        child.ref, child.thread, child.cleanup, child.started_at_s = ref, None, None, time.monotonic()
        self.log.bind(offender=child_id).debug("started {} generation {}", child_id, child.generation)
        self.child_started(child_id, ref, child.generation, restarted)
        return ref

    def _stop_incarnation(self, child: _Child, *, final: bool) -> None:
        """Blocking stop with the spec's timeout. Fences the incarnation first, so its report is stale.

        ``final`` is our own shutdown: no hook call, and no second wait for a child that timed out.
        """
        incarnation = child.incarnation()
        if incarnation is None:
            return
        self._unwatch(child)
        if not incarnation.stop():
            self.log.bind(context="shutdown_error", offender=child.spec.id).warning(
                "{} did not stop within {}s; leaked", child.spec.id, child.spec.shutdown_timeout_s)
            if not final:
                self._draining.add(incarnation)
        if not final:
            self.child_exited(child.spec.id, incarnation.generation, ExitReason.SHUTDOWN)

    def _stop_all_children(self) -> None:
        for child in reversed(list(self._children.values())):
            self._restart_timers.cancel(child.restart_timer)
            child.restart_timer = None
            self._stop_incarnation(child, final=True)
        for child_id in self._draining.stop_all():
            self.log.bind(context="shutdown_error", offender=child_id).warning("{} leaked", child_id)

    def _unwatch(self, child: _Child) -> None:
        child.ref = None
        if self._liveness is not None:
            self._liveness.forget(child.spec.id, child.generation)

    # -- reporting ----------------------------------------------------------------------

    def _log_exit(self, child: _Child, reason: ExitReason, error: str | None, injected: bool) -> None:
        # a fault injected on purpose (chaos) is logged at INFO: the operator asked for it
        self.log.bind(context="child_terminated", offender=child.spec.id, reason=reason.value).log(
            "WARNING" if reason.is_abnormal and not injected else "INFO", "{} generation {} exited: {}{} {}",
            child.spec.id, child.generation, reason.value, " (injected)" if injected else "", error or "")

    def _children_info(self) -> tuple[ChildInfo, ...]:
        return tuple(
            ChildInfo(child_id, child.spec.group, child.ref, child.generation, self._restarts_by_id[child_id],
                      child.ref is not None and child.ref.is_alive())
            for child_id, child in self._children.items())

    def _stats(self) -> SupervisorStats:
        return SupervisorStats(MappingProxyType(dict(self._restarts_by_id)),
                               MappingProxyType(dict(self._restarts_by_kind)), self._escalations, self._gave_up)
