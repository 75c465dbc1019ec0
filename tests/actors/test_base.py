"""SupervisedActor (exactly-once exit reports), the Scheduler and the LivenessMonitor, with real actors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.dispatch import Dispatcher, Mailbox
from depthkeeper.supervisor.otp.errors import ChaosCrash
from depthkeeper.supervisor.otp.liveness import LivenessMonitor
from depthkeeper.supervisor.otp.messages import ChildExited, ChildStarted, Crash
from depthkeeper.supervisor.otp.scheduler import Scheduler
from depthkeeper.supervisor.otp.spec import ChildContext, ExitReason

from .probes import (
    Cleaned,
    MakeZombie,
    Ping,
    ProbeHandle,
    Recorder,
    Started,
    StopSelf,
    Worker,
    start_probe,
    wait_until,
)


@pytest.fixture(params=["own-thread", "dispatcher"])
def dispatcher(request: pytest.FixtureRequest) -> Iterator[Dispatcher | None]:
    """Every lifecycle test runs twice: on the actor's own thread and on a shared dispatcher."""
    if request.param == "own-thread":
        yield None
        return
    shared = Dispatcher("test", threads=2)
    yield shared
    for ref in pykka.ActorRegistry.get_all():  # a stop is a message: it needs the dispatcher
        if isinstance(ref.actor_inbox, Mailbox) and ref.actor_inbox.dispatcher is shared:
            ref.stop(block=True, timeout=5)
    assert shared.stop(5)


@pytest.fixture
def sup() -> ProbeHandle:
    """A probe standing in for the supervisor: it records ChildStarted / ChildExited."""
    return start_probe()


def start_worker(sup: ProbeHandle, events: Recorder, dispatcher: Dispatcher | None,
                 **kwargs: Any) -> tuple[pykka.ActorRef[Any], ChildStarted]:
    ref = Worker.start(ChildContext(sup.ref, "w", 7), events, dispatcher=dispatcher, **kwargs)
    started = sup.wait_for(ChildStarted)
    return ref, started


def exits(sup: ProbeHandle) -> list[ChildExited]:
    return [m for m in sup.messages if isinstance(m, ChildExited)]


def final_exits(sup: ProbeHandle, started: ChildStarted) -> list[ChildExited]:
    """Exit reports once the child's thread has ended (no further report can come after that)."""
    started.thread.join(5)
    assert not started.thread.is_alive()
    sup.ref.ask("barrier", timeout=5)  # FIFO: every report told before the thread ended is recorded
    return exits(sup)


# -- exactly-once exit reports -----------------------------------------------------------


def test_started_report_carries_the_actor_thread(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    assert (started.child_id, started.generation) == ("w", 7)
    runs_on = events.wait_for(Started).thread
    if dispatcher is None:
        assert started.thread is runs_on
    else:  # the supervisor watches the actor's Lane; its code runs on a dispatcher thread
        assert started.thread is ref.actor_inbox.lane and runs_on in dispatcher.threads
    assert started.thread.is_alive() and started.thread is not threading.current_thread()
    assert ref.ask(Ping(), timeout=2) == "pong"


def test_crash_reports_crashed_exactly_once_after_cleanup(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    ref.tell(Crash("boom"))
    exited = sup.wait_for(ChildExited)
    assert events.matching(Cleaned), "cleanup must run before the report goes out"
    assert not ref.is_alive(), "is_alive() is already False when the report arrives"
    assert (exited.child_id, exited.generation, exited.reason) == ("w", 7, ExitReason.CRASHED)
    assert "ChaosCrash" in (exited.error or "") and "boom" in (exited.error or "")
    assert len(final_exits(sup, started)) == 1


def test_requested_stop_reports_normal_exactly_once(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    assert ref.stop(block=True, timeout=5) is True
    assert [e.reason for e in final_exits(sup, started)] == [ExitReason.NORMAL]
    assert len(events.matching(Cleaned)) == 1


def test_self_stop_reports_normal_exactly_once(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    ref.tell(StopSelf())
    assert [e.reason for e in final_exits(sup, started)] == [ExitReason.NORMAL]


def test_failed_init_reports_start_failed_exactly_once(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher, fail_init=lambda ctx: True)
    reports = final_exits(sup, started)
    assert [e.reason for e in reports] == [ExitReason.START_FAILED]
    assert "refuses to start" in (reports[0].error or "")
    assert len(events.matching(Cleaned)) == 1, "cleanup also runs after a failed init"
    assert not ref.is_alive() and ref not in pykka.ActorRegistry.get_all()


class BadCleanup(SupervisedActor):
    def cleanup(self) -> None:
        raise OSError("socket already closed")


def test_failing_cleanup_still_reports(sup: ProbeHandle) -> None:
    ref = BadCleanup.start(ChildContext(sup.ref, "bad", 1))
    started = sup.wait_for(ChildStarted)
    ref.tell(Crash())
    assert [e.reason for e in final_exits(sup, started)] == [ExitReason.CRASHED]


def test_report_to_a_dead_supervisor_is_swallowed(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    sup.ref.stop(block=True, timeout=5)
    ref.tell(Crash())  # its ChildExited tell meets a dead supervisor: ActorDeadError swallowed
    started.thread.join(5)
    assert not started.thread.is_alive() and events.matching(Cleaned)


def test_without_supervisor_nothing_is_reported() -> None:
    events = Recorder()
    ref = Worker.start(None, events)  # type: ignore[arg-type]
    assert ref.ask(Ping(), timeout=2) == "pong"
    ref.stop(block=True, timeout=5)
    assert events.matching(Cleaned)


def test_unknown_messages_and_broadcasts_are_ignored(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, _ = start_worker(sup, events, dispatcher)
    ref.tell("unknown")
    ref.tell({"type": "host-message"})
    pykka.ActorRegistry.broadcast("host broadcast")
    assert ref.ask(Ping(), timeout=2) == "pong"
    assert ref.ask("asked unknown", timeout=2) is None
    assert ref.is_alive() and not exits(sup)


def test_crash_sent_as_ask_goes_to_the_caller_and_the_actor_lives(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, _ = start_worker(sup, events, dispatcher)
    with pytest.raises(ChaosCrash):
        ref.ask(Crash(), timeout=2)
    assert ref.ask(Ping(), timeout=2) == "pong"  # pykka: ask failures do not kill -- send Crash with tell


def test_make_zombie_kills_only_that_thread(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    """The zombie recipe the supervisor tests rely on: thread gone, ref still alive, nobody told."""
    host = start_probe()
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    ref.tell(MakeZombie())
    started.thread.join(5)
    assert not started.thread.is_alive()
    assert ref.is_alive() and ref in pykka.ActorRegistry.get_all()
    assert not exits(sup) and not events.matching(Cleaned)
    assert host.ref.is_alive() and sup.ref.is_alive()
    pykka.ActorRegistry.unregister(ref)  # fence it so the suite's stop_all does not wait on it
    ref.actor_stopped.set()


# -- Scheduler ---------------------------------------------------------------------------


def test_schedule_tells_once_after_the_delay() -> None:
    probe, scheduler = start_probe(), Scheduler("t")
    try:
        t0 = time.monotonic()
        scheduler.schedule(0.05, probe.ref, "tick")
        probe.wait_for(lambda m: m == "tick")
        assert time.monotonic() - t0 >= 0.05
        assert scheduler.pending == 0
    finally:
        scheduler.close()


def test_same_due_time_fires_in_schedule_order() -> None:
    probe, scheduler = start_probe(), Scheduler("t")
    try:
        for i in range(20):
            scheduler.schedule(0.0, probe.ref, i)
        assert probe.wait_count(lambda m: isinstance(m, int), 20) == list(range(20))
    finally:
        scheduler.close()


def test_cancel_prevents_the_tell() -> None:
    probe, scheduler = start_probe(), Scheduler("t")
    try:
        handle = scheduler.schedule(0.05, probe.ref, "cancelled")
        scheduler.cancel(handle)
        scheduler.schedule(0.1, probe.ref, "later")
        probe.wait_for(lambda m: m == "later")
        assert "cancelled" not in probe.messages
    finally:
        scheduler.close()


def test_schedule_every_repeats_until_cancelled() -> None:
    probe, scheduler = start_probe(), Scheduler("t")
    try:
        handle = scheduler.schedule_every(0.01, probe.ref, "tick")
        probe.wait_count(lambda m: m == "tick", 3)
        handle.cancel()
        count = probe.messages.count("tick")
        scheduler.schedule(0.05, probe.ref, "barrier")
        probe.wait_for(lambda m: m == "barrier")
        assert probe.messages.count("tick") == count  # nothing after cancel returned
    finally:
        scheduler.close()


def test_repeating_timer_to_a_dead_actor_cancels_itself() -> None:
    probe, scheduler = start_probe(), Scheduler("t")
    try:
        handle = scheduler.schedule_every(0.01, probe.ref, "tick")
        probe.wait_for(lambda m: m == "tick")
        probe.ref.stop(block=True, timeout=5)
        wait_until(lambda: handle.cancelled, what="timer cancelled itself")
        assert scheduler.pending == 0
    finally:
        scheduler.close()


def test_close_ends_the_thread_and_later_schedules_are_noops() -> None:
    probe, scheduler = start_probe(), Scheduler("closing")
    scheduler.schedule(10.0, probe.ref, "never")
    thread = next(t for t in threading.enumerate() if t.name.startswith("depthkeeper-closing-"))
    scheduler.close()
    assert not thread.is_alive()
    assert scheduler.schedule(0.0, probe.ref, "after close").cancelled
    with pytest.raises(ValueError):
        scheduler.schedule_every(0.0, probe.ref, "bad")


# -- LivenessMonitor ---------------------------------------------------------------------


def test_liveness_reports_a_zombie_and_fences_its_ref(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    monitor = LivenessMonitor(sup.ref, interval_s=0.02, name="t")
    monitor.watch("w", 7, ref, started.thread)
    monitor.start()
    try:
        ref.tell(MakeZombie())
        exited = sup.wait_for(ChildExited, timeout_s=2)
        assert (exited.child_id, exited.generation, exited.reason) == ("w", 7, ExitReason.ZOMBIE)
        assert not ref.is_alive() and ref not in pykka.ActorRegistry.get_all()
        assert monitor.watched == ()
    finally:
        monitor.stop()


def test_liveness_leaves_healthy_and_cleanly_dead_children_alone(sup: ProbeHandle, dispatcher: Dispatcher | None) -> None:
    events = Recorder()
    ref, started = start_worker(sup, events, dispatcher)
    monitor = LivenessMonitor(sup.ref, interval_s=10.0, name="t")
    monitor.watch("w", 7, ref, started.thread)
    assert monitor.check_once() == []
    ref.stop(block=True, timeout=5)
    started.thread.join(5)
    assert monitor.check_once() == []  # a normal death is reported by the child, not by us
    assert [m.reason for m in final_exits(sup, started)] == [ExitReason.NORMAL]


def test_liveness_stop_is_prompt_and_joins() -> None:
    probe = start_probe()
    monitor = LivenessMonitor(probe.ref, interval_s=30.0, name="prompt")
    monitor.start()
    thread = next(t for t in threading.enumerate() if t.name.startswith("depthkeeper-liveness-prompt-"))
    monitor.stop(timeout_s=2)
    assert not thread.is_alive()
