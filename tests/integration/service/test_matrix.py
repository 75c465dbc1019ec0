"""The restart/resync matrix of DESIGN.md §2, and the robustness rules, against the real simulator."""

from __future__ import annotations

import pytest

from depthkeeper.actors.venues import article as codec_article
from depthkeeper.actors.messages import SendFrame

from tests.support import converge_exact, server_sets, wait_until

pytestmark = pytest.mark.integration


def test_connection_killed_new_epoch_books_resync_subscriptions_replayed(service) -> None:
    """Connection restarted -> new epoch; every book resyncs; the desired set is replayed."""
    svc = service()
    assert svc.wait_live(timeout=10)
    epoch, old = svc.stats().connection.epoch, svc.chaos.ref("connection")
    svc.chaos.kill("connection")
    wait_until(lambda: svc.chaos.ref("connection") is not None and svc.chaos.ref("connection") is not old
               and svc.stats().connection.epoch > epoch, 5, "a new connection on a new epoch")
    wait_until(lambda: server_sets(svc) == [svc.subscriptions()], 5, "subscriptions replayed on the new socket")
    assert svc.stats().supervisor.restarts["connection"] == 1
    converge_exact(svc)
    assert svc.simulator.counters()["duplicate_subscribes"] == 0


def test_subscription_killed_reconciles_without_duplicates(service) -> None:
    """Subscription restarted -> rebuilt from the tree's desired set; nothing sent twice."""
    svc = service()
    assert svc.wait_live(timeout=10)
    old = svc.chaos.ref("subscription")
    svc.chaos.kill("subscription")
    wait_until(lambda: svc.chaos.ref("subscription") not in (None, old), 5, "a new subscription actor")
    svc.subscribe(["SOLUSDT"])
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    wait_until(lambda: server_sets(svc) == [svc.subscriptions()], 5, "server set == desired set")
    converge_exact(svc)


def test_snapshot_killed_waiting_books_rerequest(service) -> None:
    """Snapshot restarted while books wait -> they re-request and end exact."""
    svc = service()
    assert svc.wait_live(timeout=10)
    svc.simulator.faults.rest_delay(1.0, count=5)
    svc.simulator.faults.drop(2, code="BTCUSDT")  # BTC now needs a snapshot, which is slow
    wait_until(lambda: svc.stats().books["BTCUSDT"].resyncs >= 1, 5, "BTC to start a resync")
    svc.chaos.kill("snapshot")
    wait_until(lambda: svc.stats().supervisor.restarts.get("snapshot") == 1, 5, "a snapshot restart")
    converge_exact(svc)


def test_book_killed_routes_to_the_new_ref_and_others_untouched(service) -> None:
    """A book restarted -> routing points at the new ref; the other book never resyncs."""
    svc = service()
    assert svc.wait_live(timeout=10)
    old = svc.chaos.ref("book:BTCUSDT")
    svc.chaos.kill("book:BTCUSDT")
    wait_until(lambda: svc.chaos.ref("book:BTCUSDT") not in (None, old), 5, "a new BTC book")
    assert svc.wait_live(["BTCUSDT"], timeout=10)
    assert svc.stats().books["ETHUSDT"].resyncs == 0
    converge_exact(svc)


def test_ghost_subscription_is_reaped(service) -> None:
    """A code we subscribed and left on this socket, whose data keeps coming after the venue
    acked our unsubscribe (the server thinks we are subscribed), is unsubscribed again, once."""
    svc = service()
    assert svc.wait_live(timeout=10)
    svc.subscribe(["XRPUSDT"])
    assert svc.wait_live(["XRPUSDT"], timeout=10)
    svc.unsubscribe(["XRPUSDT"])
    wait_until(lambda: server_sets(svc) == [svc.subscriptions()], 5, "our unsubscribe processed")
    epoch = svc.stats().connection.epoch
    ghost = codec_article.encode_command("sub", ["XRPUSDT"])  # the server "forgets" our unsub
    svc.chaos.ref("connection").tell(SendFrame(epoch, ghost, "test ghost"))
    wait_until(lambda: svc.stats().subscription.counters.ghost_unsubscribes >= 1, 5, "the ghost to be reaped")
    wait_until(lambda: server_sets(svc) == [svc.subscriptions()], 5, "server set == desired set")
    assert "XRPUSDT" not in svc.subscriptions()
    assert svc.stats().subscription.counters.ghost_unsubscribes == 1


def test_malformed_frames_are_counted_and_the_stream_continues(service) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    for kind in ("bad_json", "missing_field", "wrong_type", "unknown_code"):
        svc.simulator.faults.malformed(kind, count=2)
    wait_until(lambda: svc.stats().connection.malformed >= 6, 5, "malformed frames counted")
    conn = svc.stats().connection
    assert set(conn.malformed_by_kind) >= {"bad_json", "missing_field", "wrong_type"}
    assert conn.reconnects == 0 and conn.unwanted >= 1  # the unknown code is data nobody asked for
    converge_exact(svc)


def test_tick_flood_stays_bounded_and_recovers_exact(service) -> None:
    """The venue at full speed: inboxes never exceed the limit, views carry their age, books end exact."""
    svc = service(book={"inbox_limit": 4}, simulator={"rate_per_symbol": 0.0})
    wait_until(lambda: svc.stats().connection.frames > 20_000, 20, "a flood of frames")
    for _ in range(20):
        assert max(b.inbox for b in svc.stats().books.values()) <= 4 + 1  # +1: a stats ask in the queue
    view = svc.book("BTCUSDT")
    assert view.updated_at > 0 and view.age_s < 5
    converge_exact(svc, timeout=20)
