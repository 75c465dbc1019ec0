"""Supervision proofs: intensity escalates exactly once, and a host application is never harmed."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from depthkeeper.supervisor.otp.messages import Escalated
from depthkeeper.supervisor.service.facade import BookService

from .conftest import chaos_config, converge_exact, our_actors, wait_until

pytestmark = pytest.mark.chaos

ASK_S = 5.0


def low_intensity(max_restarts: int) -> Any:
    return chaos_config(supervisor={"max_restarts": max_restarts, "period_s": 30.0, "restart_backoff_min_s": 0.0,
                                    "restart_backoff_max_s": 0.0})


def kill_connection_until(svc: BookService, done: threading.Event, limit: int = 10) -> int:
    """Kill each new ConnectionActor as soon as it is up (faster than the restart intensity)."""
    kills = 0
    while not done.is_set() and kills < limit:
        ref = wait_until(lambda: done.is_set() or svc.chaos.ref("connection"), 5, "a connection actor")
        if done.is_set():
            break
        svc.chaos.kill("connection")
        kills += 1
        wait_until(lambda: done.is_set() or svc.chaos.ref("connection") not in (None, ref), 5, "the next incarnation")
    return kills


def test_killing_faster_than_intensity_escalates_exactly_once_and_leaves_no_storm() -> None:
    baseline_threads, baseline_actors = set(threading.enumerate()), set(pykka.ActorRegistry.get_all())
    escalations: list[Escalated] = []
    escalated = threading.Event()

    def parent(event: Escalated) -> None:
        escalations.append(event)
        escalated.set()

    svc = BookService.start(low_intensity(2), parent=parent)
    try:
        assert svc.wait_live(timeout=10)
        kills = kill_connection_until(svc, escalated)
        assert escalated.wait(5)
        assert kills == 3  # 2 restarts are allowed within the period; the 3rd exit is one too many
        assert svc.chaos.root_alive() or svc.escalation is not None
        wait_until(lambda: not svc.chaos.root_alive(), 5, "the root to die")
        # the root stopped every child before escalating: nothing of ours is left to restart
        wait_until(lambda: our_actors(baseline_actors) == [], 5, "our actors gone")
        assert "connection" in escalations[0].reason and escalations[0].restarts == 2
        health = svc.health()
        assert not health.ok and any("gave up" in p for p in health.problems)
    finally:
        svc.stop()
    assert len(escalations) == 1 and our_actors(baseline_actors) == []
    wait_until(lambda: set(threading.enumerate()) <= baseline_threads, 5, "our threads to end")


def test_a_book_crash_loop_escalates_once_to_the_root_which_rebuilds_the_books(service) -> None:
    """The books supervisor gives up (GAVE_UP to the root, once); the root restarts it; the host never hears."""
    host_calls: list[Escalated] = []
    svc = service(low_intensity(2), parent=host_calls.append)
    assert svc.wait_live(timeout=10)
    for _ in range(3):  # the 3rd crash within the period exceeds the books supervisor's intensity
        old = wait_until(lambda: svc.chaos.ref("book:BTCUSDT"), 5, "a BTC book")
        svc.chaos.kill("book:BTCUSDT")
        wait_until(lambda: svc.chaos.ref("book:BTCUSDT") is not old, 5, "the BTC book replaced")
    wait_until(lambda: svc.stats().supervisor.restarts.get("books", 0) == 1, 5, "the root to restart the books")
    assert svc.wait_live(timeout=10)
    stats = svc.stats()
    assert stats.supervisor.escalations == 1 and stats.supervisor.restarts.get("books") == 1
    assert host_calls == [] and svc.escalation is None and svc.chaos.root_alive()
    converge_exact(svc)


# -- a host application with its own actors ------------------------------------------------


class HostParent(pykka.ThreadingActor):
    """A host's own supervisor-like actor: embeds the service, receives its escalation."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.svc: BookService | None = None
        self.escalations: list[Escalated] = []
        self.others: list[Any] = []

    def on_start(self) -> None:
        self.svc = BookService.start(self.cfg, parent=self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Escalated):
            self.escalations.append(message)
        elif message == "svc":
            return self.svc
        elif message == "escalations":
            return list(self.escalations)
        else:
            self.others.append(message)
        return None

    def on_stop(self) -> None:
        if self.svc is not None:
            self.svc.stop()


class HostWorker(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        return None


def start_host(cfg: Any) -> tuple[pykka.ActorRef[Any], list[pykka.ActorRef[Any]], BookService]:
    parent = HostParent.start(cfg)
    workers = [HostWorker.start() for _ in range(2)]
    return parent, workers, parent.ask("svc", timeout=ASK_S)


def test_host_broadcasts_and_our_crashes_never_harm_either_side() -> None:
    parent, workers, svc = start_host(chaos_config())
    try:
        assert svc.wait_live(timeout=10)
        before = {code: svc.chaos.ref(f"book:{code}") for code in svc.subscriptions()}
        pykka.ActorRegistry.broadcast("host hello")
        pykka.ActorRegistry.broadcast({"host": "message"})
        for worker in workers:
            wait_until(lambda w=worker: len(w.ask("seen", timeout=ASK_S)) == 2, 5, "the host's broadcasts")
        stats = svc.stats()  # asked after the broadcasts: every one of our actors got past them
        assert stats.supervisor.restarts == {} and stats.supervisor.escalations == 0
        assert {code: svc.chaos.ref(f"book:{code}") for code in svc.subscriptions()} == before
        assert all(ref.is_alive() for ref in before.values())
        for target in ("connection", "subscription", "snapshot", "book:ETHUSDT"):
            svc.chaos.kill(target)
        wait_until(lambda: sum(svc.stats().supervisor.restarts.values()) == 4, 5, "our four restarts")
        assert parent.is_alive() and all(w.is_alive() for w in workers)
        assert parent.ask("escalations", timeout=ASK_S) == []
        converge_exact(svc)
    finally:
        parent.stop(timeout=30)
        for worker in workers:
            worker.stop()


def test_our_escalation_reaches_the_host_once_and_host_actors_keep_running() -> None:
    baseline_actors = set(pykka.ActorRegistry.get_all())
    parent, workers, svc = start_host(low_intensity(1))
    host = {parent, *workers}
    try:
        assert svc.wait_live(timeout=10)
        done = threading.Event()
        watcher = threading.Thread(target=lambda: done.set() if wait_until(
            lambda: parent.ask("escalations", timeout=ASK_S), 10, "Escalated at the host") else None)
        watcher.start()
        assert kill_connection_until(svc, done) == 2  # max_restarts=1: the 2nd exit gives up
        watcher.join(10)
        assert done.is_set()
        wait_until(lambda: set(our_actors(baseline_actors)) == host, 5, "only the host's actors left")
        assert len(parent.ask("escalations", timeout=ASK_S)) == 1
        for worker in workers:
            worker.tell("still there?")
            wait_until(lambda w=worker: w.ask("seen", timeout=ASK_S) == ["still there?"], 5, "a host worker")
    finally:
        parent.stop(timeout=30)
        for worker in workers:
            worker.stop()
    assert our_actors(baseline_actors) == []
