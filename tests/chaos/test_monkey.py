"""The chaos API: kills through the normal failure path, zombies, seeded venue faults."""

from __future__ import annotations

import random
from pathlib import Path

import pykka
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.chaos.faults import faults_for
from depthkeeper.chaos.monkey import (
    CODE_FAULTS,
    ChaosMonkey,
    FaultLimits,
    KillMode,
    VenueFault,
    ZombieOutcome,
    actor_thread,
    make_zombie,
)

from .conftest import chaos_config, converge_exact, wait_until

pytestmark = pytest.mark.chaos


def restarts(svc, kind: str) -> int:
    return svc.stats().supervisor.restarts_by_kind.get(kind, 0)


def current_ref(svc, target: str):
    if target.startswith("book:"):
        return svc.chaos.ref(target)
    if target == "archive":
        return svc.chaos.resolve("archive")[1]
    return svc.chaos.ref(target)


@pytest.mark.parametrize("target", ["connection", "subscription", "snapshot", "book:ETHUSDT", "archive"])
def test_a_kill_is_a_crash_the_supervisor_restarts(service, tmp_path: Path, target: str) -> None:
    """svc.chaos.kill: a told Crash -> ChildExited(CRASHED) -> a new incarnation; books end exact."""
    svc = service(chaos_config(archive={"path": str(tmp_path / "book.sqlite"), "interval_s": 0.1}))
    assert svc.wait_live(timeout=10)
    kind = target.split(":")[0]
    old = current_ref(svc, target)
    assert old is not None and restarts(svc, kind) == 0
    assert svc.chaos.kill(target) == target
    wait_until(lambda: not old.is_alive(), 5, f"{target} to die")
    wait_until(lambda: current_ref(svc, target) not in (None, old), 5, f"{target} to be restarted")
    assert restarts(svc, kind) == 1 and svc.chaos.kills[kind] == 1
    assert svc.escalation is None
    converge_exact(svc)


def test_book_and_random_targets_resolve_and_unknown_ones_are_refused(service) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    monkey = ChaosMonkey(svc, seed=4)
    assert monkey.targets() == ["connection", "subscription", "snapshot", "book:BTCUSDT", "book:ETHUSDT",
                                "book:SOLUSDT"]
    assert monkey.resolve("book")[0].startswith("book:")
    assert monkey.resolve("random")[0] in monkey.targets()
    with pytest.raises(ValueError):
        monkey.resolve("supervisor")
    result = monkey.crash("book")
    assert result.delivered and result.mode is KillMode.CRASH and result.kind == "book"
    gone = monkey.crash(result.target)  # its ref may still be the dying one: a kill lands on someone
    assert gone.target == result.target
    converge_exact(svc)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("threads", [1, 0], ids=["dispatcher", "thread-per-book"])
def test_a_zombie_book_is_detected_fenced_and_back_live_and_exact(service, threads: int) -> None:
    """The thread dies silently (no ChildExited): only the liveness monitor can restart it.
    On the dispatcher the book's Lane dies instead, and the dispatcher threads carry on."""
    svc = service(chaos_config(book={"max_levels": 100, "threads": threads}))
    assert svc.wait_live(timeout=10)
    old = svc.chaos.ref("book:BTCUSDT")
    thread = actor_thread(old)
    assert thread is not None and thread.is_alive()
    monkey = ChaosMonkey(svc)
    result = monkey.zombie("book:BTCUSDT")
    assert result.delivered and result.mode is KillMode.ZOMBIE and result.detail == "zombie"
    assert not thread.is_alive()  # dead thread ...
    # ... while pykka still believes in it, until the monitor fences it (0.5 s interval)
    wait_until(lambda: not old.is_alive() and old not in pykka.ActorRegistry.get_all(), 3, "the zombie fenced")
    wait_until(lambda: svc.chaos.ref("book:BTCUSDT") not in (None, old), 3, "a new BookActor")
    assert svc.wait_live(["BTCUSDT"], timeout=5)
    assert restarts(svc, "book") == 1 and monkey.kills["zombie:book"] == 1
    converge_exact(svc)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_make_zombie_reports_an_actor_that_is_not_running(service) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    ref = svc.chaos.ref("book:SOLUSDT")
    svc.unsubscribe(["SOLUSDT"])
    wait_until(lambda: not ref.is_alive(), 5, "the SOL book to stop")
    assert make_zombie(ref) is ZombieOutcome.NOT_RUNNING
    assert make_zombie(svc.chaos.ref("book:BTCUSDT"), timeout_s=2.0) is ZombieOutcome.ZOMBIE


def test_venue_faults_are_injected_counted_and_survived(service) -> None:
    """Every simulator fault through the monkey; the venue counts each; books end exact."""
    svc = service()
    assert svc.wait_live(timeout=10)
    limits = FaultLimits(stall_min_s=0.8, stall_max_s=0.9, rest_delay_max_s=0.1, slow_handshake_min_s=0.2,
                         slow_handshake_max_s=0.4, blackhole_min_s=0.3, blackhole_max_s=0.6, flood_frames_min=100,
                         flood_frames_max=300, flood_codes_min=20, flood_codes_max=50)
    monkey = ChaosMonkey(svc, random.Random(2), limits=limits)
    epoch = svc.stats().connection.epoch
    # while connected: malformed frames, floods and a far-future diff need a socket to go to
    first = (VenueFault.MALFORMED, VenueFault.UNKNOWN_TYPE_FLOOD, VenueFault.DISTINCT_CODE_FLOOD,
             VenueFault.FUTURE_DIFF)
    order = [*first, *(f for f in faults_for("article") if f not in first)]
    results = []
    for f in order:  # each fault meets a socket (under load a reconnect after the last one may still be going)
        wait_until(lambda: svc.stats().connection.connected, 10, f"a socket for {f.value}")
        results.append(monkey.fault(f))
    assert [r.fault for r in results] == order
    assert all(r.code in ("BTCUSDT", "ETHUSDT", "SOLUSDT") for r in results if r.fault in CODE_FAULTS)
    assert results[order.index(VenueFault.RESTART)].era == 2
    wait_until(lambda: svc.stats().connection.epoch > epoch, 5, "a reconnect after close/restart")
    rejected = results[order.index(VenueFault.REJECT)].code
    wait_until(lambda: svc.book(rejected).status is BookStatus.REJECTED, 5, f"{rejected} shown REJECTED")
    assert monkey.lift_reject(rejected) == 1
    counted = svc.simulator.counters()["faults"]
    for fault in (VenueFault.CLOSE, VenueFault.RESTART, VenueFault.STALL, VenueFault.MALFORMED,
                  VenueFault.BLACKHOLE, VenueFault.REJECT, VenueFault.UNKNOWN_TYPE_FLOOD,
                  VenueFault.DISTINCT_CODE_FLOOD, VenueFault.FUTURE_DIFF):
        assert counted[fault.value] >= 1, fault
    assert dict(monkey.faults) == {**{f.value: 1 for f in faults_for("article")}, "lift_reject": 1}
    converge_exact(svc)


def test_fault_parameters_are_drawn_from_the_seed(service) -> None:
    """Same seed, same parameters: a failing schedule can be replayed."""
    svc = service()
    amounts = []
    for _ in range(2):
        monkey = ChaosMonkey(svc, seed=13)
        amounts.append([(r.code, r.amount) for r in (monkey.fault(VenueFault.DROP), monkey.fault(VenueFault.STALL),
                                                      monkey.fault(VenueFault.REST_DELAY))])
        svc.simulator.faults.stall(0)
    assert amounts[0] == amounts[1] and amounts[0][0][1] >= 1
