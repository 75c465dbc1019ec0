"""The Supervisor with real pykka actors: strategies, restart types, backoff, intensity, escalation,
zombies, dynamic children, embedding safety and clean shutdown."""

from __future__ import annotations

import ctypes
import inspect
import random
import sys
import threading
import time
from typing import Any

import attrs
import pykka
import pytest

from depthkeeper.supervisor.otp.messages import (
    ChildExited,
    ChildInfo,
    Crash,
    Escalated,
    GetChildren,
    GetStats,
    StartChild,
    SupervisorStats,
    TerminateChild,
)
from depthkeeper.supervisor.otp.supervisor import Supervisor
from depthkeeper.supervisor.otp.spec import ChildContext, ChildSpec, ExitReason, Restart, Strategy, SupervisorFlags

from .probes import (
    Cleaned,
    HookExited,
    HookStarted,
    MakeZombie,
    Ping,
    Recorder,
    RecordingSupervisor,
    Started,
    StopSelf,
    SupervisorUp,
    start_probe,
    wait_until,
    worker_spec,
)

FAST = SupervisorFlags(max_restarts=10, period_s=5.0, backoff_min_s=0.0, liveness_interval_s=0.05)
ASK_S = 5.0


class MaxRandom(random.Random):
    """Jitter always at its top: the equal-jitter delay becomes exactly the exponential base."""

    def uniform(self, a: float, b: float) -> float:
        return b


def start_tree(specs: list[ChildSpec], events: Recorder, flags: SupervisorFlags = FAST,
               **kwargs: Any) -> pykka.ActorRef[Any]:
    return RecordingSupervisor.start(None, flags, specs, name="root", events=events, **kwargs)


def children(sup: pykka.ActorRef[Any]) -> dict[str, ChildInfo]:
    infos: tuple[ChildInfo, ...] = sup.ask(GetChildren(), timeout=ASK_S)  # type: ignore[assignment]
    return {info.id: info for info in infos}


def stats(sup: pykka.ActorRef[Any]) -> SupervisorStats:
    result: SupervisorStats = sup.ask(GetStats(), timeout=ASK_S)  # type: ignore[assignment]
    return result


def started(events: Recorder, child_id: str, generation: int) -> Started:
    found: Started = events.wait_for(
        lambda e: isinstance(e, Started) and (e.child_id, e.generation) == (child_id, generation))
    return found


def hook_started(events: Recorder, child_id: str, generation: int) -> HookStarted:
    found: HookStarted = events.wait_for(
        lambda e: isinstance(e, HookStarted) and (e.child_id, e.generation) == (child_id, generation))
    return found


def hook_exited(events: Recorder, child_id: str, generation: int) -> HookExited:
    found: HookExited = events.wait_for(
        lambda e: isinstance(e, HookExited) and (e.child_id, e.generation) == (child_id, generation))
    return found


def cleaned_order(events: Recorder) -> list[str]:
    return [e.child_id for e in events.matching(Cleaned)]


def supervisor_thread(events: Recorder, name: str = "root") -> threading.Thread:
    up: SupervisorUp = events.wait_for(lambda e: isinstance(e, SupervisorUp) and e.name == name)
    return up.thread


def workers(ids: str, events: Recorder, **kwargs: Any) -> list[ChildSpec]:
    return [worker_spec(child_id, events, **kwargs) for child_id in ids.split()]


# -- start order and strategies ------------------------------------------------------------


def test_children_start_in_order_as_generation_one() -> None:
    events = Recorder()
    sup = start_tree(workers("a b c", events), events)
    hooks = events.wait_count(HookStarted, 3)
    assert [(h.child_id, h.generation, h.restarted) for h in hooks] == [("a", 1, False), ("b", 1, False),
                                                                        ("c", 1, False)]
    info = children(sup)
    assert list(info) == ["a", "b", "c"] and all(i.alive and i.generation == 1 for i in info.values())
    assert all(i.ref.ask(Ping(), timeout=ASK_S) == "pong" for i in info.values() if i.ref is not None)


def test_one_for_one_restarts_only_the_failed_child() -> None:
    events = Recorder()
    sup = start_tree(workers("a b c", events, kind="worker"), events)
    events.wait_count(Started, 3)
    before = children(sup)
    assert before["b"].ref is not None
    before["b"].ref.tell(Crash())
    new_b = hook_started(events, "b", 2)
    assert new_b.restarted and new_b.ref != before["b"].ref
    started(events, "b", 2)
    after = children(sup)
    assert after["b"].ref == new_b.ref and after["b"].generation == 2 and after["b"].restarts == 1
    assert [(after[c].ref, after[c].generation) for c in "ac"] == [(before[c].ref, 1) for c in "ac"]
    assert cleaned_order(events) == ["b"]
    assert hook_exited(events, "b", 1).reason is ExitReason.CRASHED
    assert stats(sup) == SupervisorStats({"b": 1}, {"worker": 1}, 0, False)


def test_one_for_all_stops_siblings_in_reverse_and_restarts_all_in_order() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, strategy=Strategy.ONE_FOR_ALL)
    sup = start_tree(workers("a b c", events), events, flags)
    events.wait_count(Started, 3)
    before = children(sup)
    before["b"].ref.tell(Crash())  # type: ignore[union-attr]
    for child_id in "abc":
        started(events, child_id, 2)
        hook_started(events, child_id, 2)
    assert cleaned_order(events) == ["b", "c", "a"]
    restarted = [h.child_id for h in events.matching(HookStarted) if h.restarted]
    assert restarted == ["a", "b", "c"]
    reasons = {(h.child_id, h.reason) for h in events.matching(HookExited)}
    assert reasons == {("b", ExitReason.CRASHED), ("c", ExitReason.SHUTDOWN), ("a", ExitReason.SHUTDOWN)}
    after = children(sup)
    assert all(after[c].generation == 2 and after[c].ref != before[c].ref and after[c].alive for c in "abc")


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, strategy=Strategy.REST_FOR_ONE)
    sup = start_tree(workers("a b c d", events), events, flags)
    events.wait_count(Started, 4)
    before = children(sup)
    before["b"].ref.tell(Crash())  # type: ignore[union-attr]
    for child_id in "bcd":
        started(events, child_id, 2)
    assert cleaned_order(events) == ["b", "d", "c"]
    after = children(sup)
    assert after["a"].ref == before["a"].ref and after["a"].generation == 1
    assert [after[c].generation for c in "bcd"] == [2, 2, 2]


# -- restart types -------------------------------------------------------------------------


def test_transient_restarts_after_a_crash_but_not_after_a_normal_exit() -> None:
    events = Recorder()
    sup = start_tree(workers("t u", events, restart=Restart.TRANSIENT), events)
    events.wait_count(Started, 2)
    info = children(sup)
    info["t"].ref.tell(StopSelf())  # type: ignore[union-attr]
    assert hook_exited(events, "t", 1).reason is ExitReason.NORMAL
    after = children(sup)
    assert after["t"].generation == 1 and not after["t"].alive and after["t"].ref is None  # nothing scheduled
    info["u"].ref.tell(Crash())  # type: ignore[union-attr]
    started(events, "u", 2)
    assert stats(sup).restarts == {"u": 1}


def test_permanent_child_stopped_by_someone_else_is_not_restarted() -> None:
    events = Recorder()
    sup = start_tree(workers("p q", events), events)
    events.wait_count(Started, 2)
    info = children(sup)
    info["p"].ref.tell(StopSelf())  # type: ignore[union-attr]
    info["q"].ref.stop(block=True, timeout=ASK_S)  # type: ignore[union-attr]
    assert hook_exited(events, "p", 1).reason is ExitReason.NORMAL
    assert hook_exited(events, "q", 1).reason is ExitReason.NORMAL
    after = children(sup)
    assert [(after[c].generation, after[c].alive) for c in "pq"] == [(1, False), (1, False)]
    assert not [h for h in events.matching(HookStarted) if h.restarted]


def test_temporary_child_is_dropped_not_restarted() -> None:
    events = Recorder()
    sup = start_tree([*workers("a", events), worker_spec("tmp", events, restart=Restart.TEMPORARY)], events)
    events.wait_count(Started, 2)
    children(sup)["tmp"].ref.tell(Crash())  # type: ignore[union-attr]
    assert hook_exited(events, "tmp", 1).reason is ExitReason.CRASHED
    assert list(children(sup)) == ["a"]
    assert stats(sup).restarts == {}


def test_temporary_sibling_of_a_one_for_all_restart_is_stopped_and_dropped() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, strategy=Strategy.ONE_FOR_ALL)
    specs = [*workers("a", events), worker_spec("tmp", events, restart=Restart.TEMPORARY), *workers("c", events)]
    sup = start_tree(specs, events, flags)
    events.wait_count(Started, 3)
    children(sup)["a"].ref.tell(Crash())  # type: ignore[union-attr]
    started(events, "a", 2)
    started(events, "c", 2)
    assert cleaned_order(events) == ["a", "c", "tmp"]
    assert list(children(sup)) == ["a", "c"]


# -- generations and scheduling ------------------------------------------------------------


def test_stale_and_unknown_exit_reports_are_ignored() -> None:
    events = Recorder()
    sup = start_tree(workers("a b", events), events)
    events.wait_count(Started, 2)
    children(sup)["b"].ref.tell(Crash())  # type: ignore[union-attr]
    started(events, "b", 2)
    current = children(sup)
    sup.tell(ChildExited("b", 1, ExitReason.CRASHED, "late report from the old incarnation"))
    sup.tell(ChildExited("nobody", 1, ExitReason.CRASHED))
    after = children(sup)  # an ask is a barrier: both tells were handled before it
    assert after["b"].ref == current["b"].ref and after["b"].generation == 2 and after["b"].alive
    assert stats(sup).restarts == {"b": 1}


def test_restart_waits_for_the_backoff_delay_which_grows() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, backoff_min_s=0.2, backoff_max_s=1.0)
    sup = start_tree(workers("a", events), events, flags, rng=MaxRandom())
    first = started(events, "a", 1)
    first.ref.tell(Crash())
    crashed_1 = events.wait_for(Cleaned)
    hook_exited(events, "a", 1)
    pending = children(sup)["a"]
    assert pending.ref is None and not pending.alive and pending.generation == 2  # scheduled, not inline
    second = started(events, "a", 2)
    assert second.at_s - crashed_1.at_s >= 0.2
    second.ref.tell(Crash())
    crashed_2 = events.wait_for(lambda e: isinstance(e, Cleaned) and e.generation == 2)
    third = started(events, "a", 3)
    assert third.at_s - crashed_2.at_s >= 0.4  # attempt 1: twice the delay (uptime < backoff_reset_s)


def test_a_queued_stop_wins_over_a_scheduled_restart() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, backoff_min_s=0.3, backoff_max_s=0.3)
    sup = start_tree(workers("a", events), events, flags)
    started(events, "a", 1).ref.tell(Crash())
    hook_exited(events, "a", 1)
    sup.stop(block=True, timeout=ASK_S)
    supervisor_thread(events).join(ASK_S)
    assert not [e for e in events.matching(Started) if e.generation == 2]
    assert pykka.ActorRegistry.get_all() == []


def test_a_failing_factory_on_restart_counts_and_is_retried() -> None:
    events = Recorder()
    spec = worker_spec("a", events, fail_factory=lambda ctx: ctx.generation == 2)
    sup = start_tree([spec], events)
    started(events, "a", 1).ref.tell(Crash())
    assert hook_exited(events, "a", 2).reason is ExitReason.START_FAILED
    started(events, "a", 3)
    assert stats(sup).restarts == {"a": 2}


def test_a_failing_init_is_restarted() -> None:
    events = Recorder()
    sup = start_tree([worker_spec("a", events, fail_init=lambda ctx: ctx.generation == 1)], events)
    assert hook_exited(events, "a", 1).reason is ExitReason.START_FAILED
    started(events, "a", 2)
    wait_until(lambda: children(sup)["a"].alive, what="a alive")


# -- intensity and escalation ----------------------------------------------------------------


def test_giving_up_stops_children_in_reverse_order_and_escalates_once_to_a_callable() -> None:
    events, escalations = Recorder(), Recorder()
    flags = attrs.evolve(FAST, max_restarts=1)
    sup = start_tree(workers("a b c d", events), events, flags, escalate=escalations)
    events.wait_count(Started, 4)
    children(sup)["b"].ref.tell(Crash())  # type: ignore[union-attr]
    started(events, "b", 2).ref.tell(Crash())  # the 2nd restart within period_s is one too many
    event = escalations.wait_for(Escalated)
    supervisor_thread(events).join(ASK_S)
    assert escalations.items == [event]
    assert event.supervisor == "root" and event.restarts == 1 and "more than 1" in event.reason
    assert cleaned_order(events) == ["b", "b", "d", "c", "a"]
    assert pykka.ActorRegistry.get_all() == []


def test_escalation_happens_once_even_with_many_queued_failures() -> None:
    events, escalations = Recorder(), Recorder()
    flags = attrs.evolve(FAST, max_restarts=1)
    sup = start_tree(workers("a b c d e", events), events, flags, escalate=escalations)
    events.wait_count(Started, 5)
    for info in children(sup).values():
        info.ref.tell(Crash())  # type: ignore[union-attr]
    escalations.wait_for(Escalated)
    supervisor_thread(events).join(ASK_S)
    assert len(escalations.items) == 1


def test_escalation_to_a_host_ref_leaves_host_actors_alone() -> None:
    events = Recorder()
    host_actor, host_parent = start_probe(), start_probe()
    flags = attrs.evolve(FAST, max_restarts=0)
    sup = start_tree(workers("a b", events), events, flags, escalate=host_parent.ref)
    events.wait_count(Started, 2)
    children(sup)["a"].ref.tell(Crash())  # type: ignore[union-attr]
    event = host_parent.wait_for(Escalated)
    supervisor_thread(events).join(ASK_S)
    host_parent.ref.ask("barrier", timeout=ASK_S)
    assert [m for m in host_parent.messages if isinstance(m, Escalated)] == [event]
    assert set(pykka.ActorRegistry.get_all()) == {host_actor.ref, host_parent.ref}
    host_actor.ref.ask("still here?", timeout=ASK_S)


def test_child_supervisor_gives_up_to_its_parent_which_restarts_it() -> None:
    events = Recorder()
    inner_flags = attrs.evolve(FAST, max_restarts=0)
    inner = Supervisor.child_spec("inner", inner_flags, [worker_spec("w", events)], shutdown_timeout_s=5.0)
    parent = start_tree([*workers("a", events), inner], events)
    first_w = started(events, "w", 1)
    first_w.ref.tell(Crash())
    assert hook_exited(events, "inner", 1).reason is ExitReason.GAVE_UP
    hook_started(events, "inner", 2)
    events.wait_count(lambda e: isinstance(e, Started) and e.child_id == "w", 2)
    assert stats(parent) == SupervisorStats({"inner": 1}, {"supervisor": 1}, 1, False)
    assert children(parent)["a"].generation == 1  # one_for_one: the sibling was untouched


def test_initial_factory_failure_fails_the_start_and_escalates() -> None:
    events, escalations = Recorder(), Recorder()
    specs = [*workers("a", events), worker_spec("b", events, fail_factory=lambda ctx: True), *workers("c", events)]
    start_tree(specs, events, escalate=escalations)
    event = escalations.wait_for(Escalated)
    supervisor_thread(events).join(ASK_S)
    assert "start_failed" in event.reason and "factory of b failed" in event.reason
    assert cleaned_order(events) == ["a"]
    assert not events.matching(lambda e: isinstance(e, Started) and e.child_id == "c")
    assert pykka.ActorRegistry.get_all() == []


def test_a_crashed_top_level_supervisor_stops_its_children_and_escalates() -> None:
    events, escalations = Recorder(), Recorder()
    sup = start_tree(workers("a b", events), events, escalate=escalations)
    events.wait_count(Started, 2)
    sup.tell(Crash())
    assert "crashed" in escalations.wait_for(Escalated).reason
    supervisor_thread(events).join(ASK_S)
    assert cleaned_order(events) == ["b", "a"] and len(escalations.items) == 1


def test_escalate_with_a_parent_is_rejected() -> None:
    probe = start_probe()
    with pytest.raises(ValueError):
        Supervisor.start(ChildContext(probe.ref, "x", 1), FAST, [], escalate=lambda e: None)
    with pytest.raises(ValueError):
        Supervisor.start(None, FAST, workers("a a", Recorder()))


# -- zombies -------------------------------------------------------------------------------


def zombie_by_event_swap(ref: pykka.ActorRef[Any], thread: threading.Thread) -> None:
    ref.tell(MakeZombie())


_LOOP_CODE = pykka.ThreadingActor._actor_loop_running.__code__
_GET_LINE = next(_LOOP_CODE.co_firstlineno + i for i, line in enumerate(
    inspect.getsourcelines(pykka.ThreadingActor._actor_loop_running)[0]) if "actor_inbox.get()" in line)


def zombie_by_async_exception(ref: pykka.ActorRef[Any], thread: threading.Thread) -> None:
    """SystemExit injected while the actor idles in inbox.get(), then a wake-up tell.

    Raised as ``inbox.get()`` returns -- outside pykka's try block -- so pykka never sees it (a
    BaseException *inside* a handler would make pykka call stop_all). We wait until the
    thread is parked in the inbox get (our inboxes are C ``SimpleQueue``s, so the top Python
    frame is pykka's loop, on its ``get`` line) so the exception cannot land in a handler.
    """
    def idle() -> bool:
        frame = sys._current_frames().get(thread.ident or 0)
        return frame is not None and frame.f_code is _LOOP_CODE and frame.f_lineno == _GET_LINE

    wait_until(idle, what="actor idle in its inbox")
    assert ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0),
                                                      ctypes.py_object(SystemExit)) == 1
    ref.tell("wake up")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("make_zombie", [zombie_by_event_swap, zombie_by_async_exception])
def test_a_zombie_is_detected_fenced_and_restarted(make_zombie: Any) -> None:
    events, host = Recorder(), start_probe()
    sup = start_tree(workers("a z", events), events)
    events.wait_count(Started, 2)
    victim = started(events, "z", 1)
    assert victim.ref.ask(Ping(), timeout=ASK_S) == "pong"
    t0 = time.monotonic()
    make_zombie(victim.ref, victim.thread)
    victim.thread.join(ASK_S)
    assert not victim.thread.is_alive()
    assert hook_exited(events, "z", 1).reason is ExitReason.ZOMBIE
    assert time.monotonic() - t0 < 1.0
    assert not victim.ref.is_alive() and victim.ref not in pykka.ActorRegistry.get_all()
    started(events, "z", 2)
    assert children(sup)["z"].alive and children(sup)["a"].generation == 1
    assert host.ref.is_alive()
    # the safety net ran the zombie's cleanup for it (its own thread could not): exactly once
    assert [(c.child_id, c.generation) for c in events.matching(Cleaned)] == [("z", 1)]


# -- dynamic children ------------------------------------------------------------------------


def test_dynamic_children_start_and_terminate() -> None:
    events = Recorder()
    sup = start_tree(workers("a", events), events)
    ref = sup.ask(StartChild(worker_spec("book:X", events, kind="book")), timeout=ASK_S)
    assert ref is not None and hook_started(events, "book:X", 1).ref == ref
    assert list(children(sup)) == ["a", "book:X"]
    assert sup.ask(StartChild(worker_spec("book:X", events)), timeout=ASK_S) is None  # duplicate id
    sup.tell(TerminateChild("book:X"))
    assert hook_exited(events, "book:X", 1).reason is ExitReason.SHUTDOWN
    events.wait_for(lambda e: isinstance(e, Cleaned) and e.child_id == "book:X")
    assert list(children(sup)) == ["a"]
    assert sup.ask(TerminateChild("book:X"), timeout=ASK_S) is False
    sup.tell(StartChild(worker_spec("book:X", events, kind="book")))
    started(events, "book:X", 2)  # generations are never reused: late reports of #1 stay stale
    assert children(sup)["book:X"].generation == 2 and stats(sup).restarts == {}


def test_terminating_a_child_cancels_its_pending_restart() -> None:
    events = Recorder()
    flags = attrs.evolve(FAST, backoff_min_s=0.2, backoff_max_s=0.2)
    sup = start_tree(workers("a b", events), events, flags, rng=MaxRandom())
    events.wait_count(Started, 2)
    info = children(sup)
    info["b"].ref.tell(Crash())  # type: ignore[union-attr]
    hook_exited(events, "b", 1)
    sup.tell(TerminateChild("b"))
    info["a"].ref.tell(Crash())  # type: ignore[union-attr]  # a's restart is due after b's would have been
    hook_started(events, "a", 2)  # hooks run on the supervisor thread, in order: b's would be first
    assert not [e for e in events.matching(HookStarted) if e.child_id == "b" and e.generation > 1]
    assert list(children(sup)) == ["a"]


# -- embedding ---------------------------------------------------------------------------------


def test_a_host_broadcast_harms_none_of_our_actors() -> None:
    events, host = Recorder(), start_probe()
    inner = Supervisor.child_spec("inner", FAST, [worker_spec("w", events)], shutdown_timeout_s=5.0)
    sup = start_tree([*workers("a", events), inner], events)
    started(events, "w", 1)
    before = children(sup)
    pykka.ActorRegistry.broadcast("unknown")
    pykka.ActorRegistry.broadcast({"host": "message"})
    host.wait_for(lambda m: m == "unknown")
    after = children(sup)
    assert {k: (v.ref, v.generation, v.alive) for k, v in after.items()} == \
        {k: (v.ref, v.generation, True) for k, v in before.items()}
    assert not events.matching(HookExited) and started(events, "w", 1).ref.ask(Ping(), timeout=ASK_S) == "pong"


def test_a_host_stop_all_does_not_cause_restart_churn() -> None:
    events, escalations = Recorder(), Recorder()
    start_tree(workers("a b c", events), events, escalate=escalations)
    events.wait_count(Started, 3)
    pykka.ActorRegistry.stop_all(block=True, timeout=ASK_S)  # the host's call (tests only; never ours)
    supervisor_thread(events).join(ASK_S)
    assert not [h for h in events.matching(HookStarted) if h.restarted]
    assert escalations.items == [] and pykka.ActorRegistry.get_all() == []


def test_stopping_the_root_leaves_no_threads_and_no_actors() -> None:
    baseline = set(threading.enumerate())
    events = Recorder()
    flags = attrs.evolve(FAST, backoff_min_s=5.0, backoff_max_s=5.0)
    inner = Supervisor.child_spec("inner", FAST, workers("w1 w2", events), shutdown_timeout_s=5.0)
    sup = start_tree([*workers("a b", events), inner], events, flags)
    events.wait_count(Started, 4)
    children(sup)["b"].ref.tell(Crash())  # type: ignore[union-attr]
    hook_exited(events, "b", 1)  # leaves a restart timer pending on the scheduler thread
    assert len(set(threading.enumerate()) - baseline) >= 7  # 5 actors + restarts/liveness helpers
    assert sup.stop(block=True, timeout=10) is True
    wait_until(lambda: set(threading.enumerate()) <= baseline, what="our threads to end")
    assert pykka.ActorRegistry.get_all() == []
    assert cleaned_order(events) == ["b", "w2", "w1", "a"]  # reverse start order, depth first
