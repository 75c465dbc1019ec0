"""The shared dispatcher: many pykka actors on a few threads, each still one-message-at-a-time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.dispatch import Dispatcher, Mailbox

from .probes import wait_until


class Hold:
    """Block the handling thread until ``release`` is set (to line messages up behind it)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class Fatal(BaseException):
    """What pykka would answer by stopping every actor in the process."""


class Echo(SupervisedActor):
    """Records what it handled, on which thread, and whether it was ever run twice at once."""

    def __init__(self, name: str, log: list[tuple[str, Any]], dispatcher: Dispatcher | None) -> None:
        super().__init__(None, dispatcher=dispatcher)
        self.name = name
        self.record = log
        self.inside = False
        self.overlaps = 0
        self.threads: set[threading.Thread] = set()

    def on_receive(self, message: Any) -> Any:
        if self.inside:
            self.overlaps += 1
        self.inside = True
        try:
            self.threads.add(threading.current_thread())
            match message:
                case Hold():
                    message.entered.set()
                    assert message.release.wait(10)
                case Fatal():
                    raise message
                case ValueError():
                    raise message
                case ("stats",):
                    return self.overlaps, set(self.threads)
                case _:
                    self.record.append((self.name, message))
                    return message
            return None
        finally:
            self.inside = False


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    shared = Dispatcher("t", threads=2, throughput=8)
    yield shared
    for ref in started:
        if ref.is_alive():
            ref.stop(block=True, timeout=5)
    started.clear()
    assert shared.stop(5)


started: list[pykka.ActorRef[Any]] = []


def echo(name: str, log: list[tuple[str, Any]], dispatcher: Dispatcher | None) -> pykka.ActorRef[Any]:
    ref = Echo.start(name, log, dispatcher)
    started.append(ref)
    return ref


def test_many_actors_keep_their_own_fifo_order_and_never_run_twice_at_once(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    refs = [echo(f"a{i}", log, dispatcher) for i in range(20)]
    producers = [threading.Thread(target=lambda r=ref: [r.tell(n) for n in range(500)]) for ref in refs]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(10)
    for ref in refs:
        assert ref.ask("barrier", timeout=10) == "barrier"
    for i in range(20):
        assert [m for name, m in log if name == f"a{i}"] == [*range(500), "barrier"]
    seen_threads: set[threading.Thread] = set()
    for ref in refs:
        overlaps, threads = ref.ask(("stats",), timeout=5)
        assert overlaps == 0
        seen_threads |= threads
    assert seen_threads <= set(dispatcher.threads), "20 actors, and only the dispatcher's 2 threads ran them"
    assert len(threading.enumerate()) < 20


def test_a_long_queue_does_not_starve_another_actor(dispatcher: Dispatcher) -> None:
    single = Dispatcher("fair", threads=1, throughput=8)
    try:
        log: list[tuple[str, Any]] = []
        busy, quiet = echo("busy", log, single), echo("quiet", log, single)
        hold = Hold()
        busy.tell(hold)
        assert hold.entered.wait(5)
        for n in range(1000):
            busy.tell(n)
        quiet.tell("hello")
        hold.release.set()
        assert quiet.ask("done", timeout=10) == "done" and busy.ask("done", timeout=10) == "done"
        position = log.index(("quiet", "hello"))
        assert position < 50, f"quiet waited behind {position} of busy's messages (a turn is 8)"
        for ref in (busy, quiet):
            ref.stop(block=True, timeout=5)
    finally:
        assert single.stop(5)


def test_stop_answers_the_asks_queued_behind_it_with_actor_dead(dispatcher: Dispatcher) -> None:
    ref = echo("x", [], dispatcher)
    hold = Hold()
    ref.tell(hold)
    assert hold.entered.wait(5)
    before = ref.ask("before", block=False)
    stopping = ref.stop(block=False)
    after = ref.ask("after", block=False)  # still alive when asked: queued behind the stop
    hold.release.set()
    assert before.get(timeout=5) == "before"
    assert stopping.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=5)
    assert not ref.is_alive()
    assert not ref.actor_inbox.lane.is_alive() and not ref.actor_inbox.lane.lost
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("later", timeout=1)


def test_an_ask_failure_goes_to_the_caller_and_a_told_one_stops_only_that_actor(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    a, b = echo("a", log, dispatcher), echo("b", log, dispatcher)
    with pytest.raises(ValueError, match="asked"):
        a.ask(ValueError("asked"), timeout=5)
    assert a.ask("still here", timeout=5) == "still here"
    a.tell(ValueError("told"))
    wait_until(lambda: not a.is_alive(), 5, "a stopped by its failure")
    assert b.ask("fine", timeout=5) == "fine"


def test_a_base_exception_loses_that_actor_only_never_the_process(dispatcher: Dispatcher) -> None:
    """pykka would stop_all(); the dispatcher turns it into a zombie the liveness monitor can fence."""
    log: list[tuple[str, Any]] = []
    a, b = echo("a", log, dispatcher), echo("b", log, dispatcher)
    lane = a.actor_inbox.lane
    a.tell(Fatal())
    lane.join(5)
    assert not lane.is_alive() and lane.lost
    assert a.is_alive(), "pykka does not know: a zombie (thread gone, ref alive)"
    assert b.ask("fine", timeout=5) == "fine" and all(t.is_alive() for t in dispatcher.threads)
    a.tell("dropped")  # a lost actor's mailbox is closed: nothing piles up
    assert a.actor_inbox.qsize() == 0
    with pytest.raises(pykka.ActorDeadError):
        a.ask("hello", timeout=1)  # fails at once (a thread zombie's ask would hang)
    assert a.stop(timeout=1) is False, "never 'stopped': its on_stop did not run; the supervisor must fence it"
    pykka.ActorRegistry.unregister(a)
    a.actor_stopped.set()


class Starter(Echo):
    def on_start(self) -> None:
        self.record.append((self.name, "on_start"))


def test_a_message_queued_before_start_waits_for_on_start(dispatcher: Dispatcher) -> None:
    """pykka registers an actor before starting its loop: a host's broadcast can land in between."""
    log: list[tuple[str, Any]] = []
    actor = Starter("s", log, dispatcher)
    actor.actor_ref.tell("early")  # registered-but-not-started is what pykka.Actor.start() passes through
    assert log == [] and actor.actor_inbox.qsize() == 1
    actor._start_actor_loop()
    ref = actor.actor_ref
    started.append(ref)
    assert ref.ask("late", timeout=5) == "late"
    assert log == [("s", "on_start"), ("s", "early"), ("s", "late")]


def test_a_stopped_dispatcher_abandons_its_actors(dispatcher: Dispatcher) -> None:
    lonely = Dispatcher("gone", threads=1)
    ref = echo("x", [], lonely)
    assert ref.ask("hi", timeout=5) == "hi"
    assert lonely.stop(5)
    assert all(not t.is_alive() for t in lonely.threads)
    ref.tell("nobody runs this")
    mailbox = ref.actor_inbox
    assert isinstance(mailbox, Mailbox) and mailbox.lane.lost and not mailbox.lane.is_alive()
    assert ref.stop(timeout=1) is False  # answered at once, and never as a clean stop
    pykka.ActorRegistry.unregister(ref)
    ref.actor_stopped.set()


def test_no_dispatcher_means_a_thread_of_its_own() -> None:
    ref = Echo.start("solo", [], None)
    try:
        _, threads = ref.ask(("stats",), timeout=5)
        (thread,) = threads
        assert thread.name.startswith("Echo-") and not isinstance(ref.actor_inbox, Mailbox)
    finally:
        ref.stop(block=True, timeout=5)


def test_a_dispatcher_needs_a_thread() -> None:
    with pytest.raises(ValueError):
        Dispatcher("none", threads=0)


def _idle(ref: pykka.ActorRef[Any]) -> None:
    assert ref.ask("sync", timeout=5) == "sync"
    mailbox = ref.actor_inbox
    wait_until(lambda: not mailbox._scheduled, 5, "its turn over")


def test_post_runs_an_idle_actors_turn_on_the_callers_thread_in_order(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    ref = echo("a", log, dispatcher)
    _idle(ref)
    mailbox = ref.actor_inbox
    assert isinstance(mailbox, Mailbox)
    for n in range(100):
        assert mailbox.post(n)
    assert [m for _, m in log if m != "sync"] == list(range(100)), "handled before post returned, in order"
    overlaps, threads = ref.ask(("stats",), timeout=5)
    assert overlaps == 0 and threading.current_thread() in threads


def test_post_only_queues_while_the_actor_has_a_turn_elsewhere(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    ref = echo("a", log, dispatcher)
    hold = Hold()
    ref.tell(hold)
    assert hold.entered.wait(5)
    assert ref.actor_inbox.post("queued")
    assert ("a", "queued") not in log, "never two threads in one actor"
    hold.release.set()
    assert ref.ask("after", timeout=5) == "after"
    assert log == [("a", "queued"), ("a", "after")]


def test_a_failure_in_a_callers_turn_fails_that_actor_only_and_the_caller_carries_on(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    a, b = echo("a", log, dispatcher), echo("b", log, dispatcher)
    _idle(a)
    assert a.actor_inbox.post(ValueError("in the caller's turn")) is True  # no exception reaches the caller
    wait_until(lambda: not a.is_alive(), 5, "a stopped by its failure (on_failure, as on its dispatcher)")
    assert a.actor_inbox.post("late") is False, "a dead actor refuses the data lane"
    assert b.ask("fine", timeout=5) == "fine"


def test_a_base_exception_in_a_callers_turn_loses_that_actor_only(dispatcher: Dispatcher) -> None:
    log: list[tuple[str, Any]] = []
    a = echo("a", log, dispatcher)
    _idle(a)
    lane = a.actor_inbox.lane
    a.actor_inbox.post(Fatal())  # escapes the handler: caught by the turn, never the caller's
    assert not lane.is_alive() and lane.lost, "a zombie for the liveness monitor, as on its dispatcher"
    assert a.actor_inbox.post("dropped") is False
    with pytest.raises(pykka.ActorDeadError):
        a.ask("hello", timeout=1)
    pykka.ActorRegistry.unregister(a)
    a.actor_stopped.set()
