"""Core bugs the chaos runs found: regression tests once fixed, strict xfails until then."""

from __future__ import annotations

import threading

import pykka
import pytest

from depthkeeper.supervisor.otp.liveness import fence_zombie

from .conftest import converge_exact, wait_until

pytestmark = pytest.mark.chaos


def test_a_subscription_restart_sends_no_duplicate_subscribe(service) -> None:
    """A restarted SubscriptionActor used to replay the whole desired set on the live socket (fixed in a62b4a4)."""
    svc = service()
    assert svc.wait_live(timeout=10)
    old = svc.peers.subscription
    svc.chaos.kill("subscription")
    wait_until(lambda: svc.peers.subscription not in (None, old), 5, "a new SubscriptionActor")
    svc.subscribe(["XRPUSDT"])  # a real change after the restart: proves the new actor has flushed
    assert svc.wait_live(["XRPUSDT"], timeout=10)
    converge_exact(svc)
    assert svc.simulator.counters()["duplicate_subscribes"] == 0
    subs = [r for r in svc.simulator.command_log() if r.action == "sub"]
    assert [set(r.codes) for r in subs] == [{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, {"XRPUSDT"}]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_zombie_connection_leaves_no_socket_behind(service) -> None:
    """A zombie runs no cleanup of its own: its socket and reader used to stay open (fixed in a62b4a4)."""
    svc = service()
    assert svc.wait_live(timeout=10)
    old, epoch = svc.peers.connection, svc.epochs.current
    assert svc.chaos.zombie("connection").delivered
    wait_until(lambda: svc.peers.connection not in (None, old), 5, "a new ConnectionActor")
    wait_until(lambda: svc.epochs.current > epoch, 5, "the new ConnectionActor's socket")
    assert svc.wait_live(timeout=10)
    wait_until(lambda: len(svc.simulator.connections()) == 1, 3, "the zombie's socket to close")
    wait_until(lambda: [t.name for t in threading.enumerate() if t.name.startswith("depthkeeper-reader-")]
               == [f"depthkeeper-reader-{svc.epochs.current}"], 3, "one reader thread")
    converge_exact(svc)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_zombie_book_unsubscribed_before_the_sweep_is_still_fenced(service) -> None:
    """Chaos seed 101: a zombie BookActor whose code was unsubscribed before the liveness sweep."""
    svc = service()
    assert svc.wait_live(timeout=10)
    ref = svc.routes.get("SOLUSDT")
    assert svc.chaos.zombie("book:SOLUSDT").delivered
    svc.unsubscribe(["SOLUSDT"])  # within the monitor's 0.5 s interval: it stops watching the book
    try:
        wait_until(lambda: list(svc.simulator.subscriptions().values()) == [svc.subscriptions()], 5, "the unsub")
        wait_until(lambda: not ref.is_alive() and ref not in pykka.ActorRegistry.get_all(), 3, "the zombie fenced")
    finally:
        fence_zombie(ref)  # hygiene only (after the verdict): a leaked zombie would stall every later teardown
