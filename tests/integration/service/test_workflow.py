"""The article's workflow table and its four production issues, against the real simulator."""

from __future__ import annotations

import random

import pytest

from depthkeeper.supervisor.service.facade import BookUnavailable
from tests.support import converge_exact, server_sets, wait_until

pytestmark = pytest.mark.integration


def test_batch_subscribe_at_start_sent_once_from_on_open(service) -> None:
    """Initial codes go out as one sub on the first socket; each gets its own book."""
    svc = service()
    assert svc.wait_live(timeout=10)
    assert server_sets(svc) == [frozenset({"BTCUSDT", "ETHUSDT"})]
    subs = [r for r in svc.simulator.command_log() if r.action == "sub"]
    assert len(subs) == 1 and set(subs[0].codes) == {"BTCUSDT", "ETHUSDT"}
    converge_exact(svc)


def test_add_symbol_mid_run_keeps_socket_and_other_books(service) -> None:
    """SOLUSDT is added on the same socket (same epoch); BTC/ETH never resync."""
    svc = service()
    assert svc.wait_live(timeout=10)
    epoch = svc.stats().connection.epoch
    before = svc.stats().books
    svc.subscribe(["SOLUSDT"])
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    stats = svc.stats()
    assert stats.connection.epoch == epoch and stats.connection.reconnects == 0
    assert len(svc.simulator.connections()) == 1
    for code in ("BTCUSDT", "ETHUSDT"):
        assert stats.books[code].resyncs == 0 and stats.books[code].gaps == 0
        assert stats.books[code].seq >= before[code].seq
    converge_exact(svc)


def test_unsubscribe_shrinks_server_set_and_frees_the_book(service) -> None:
    """ETCUSDT unsubscribed: the server stops sending it; its actor and storage are gone."""
    svc = service(symbols={"initial": ["BTCUSDT", "ETCUSDT"]})
    assert svc.wait_live(timeout=10)
    ref = svc.chaos.ref("book:ETCUSDT")
    svc.unsubscribe(["ETCUSDT"])
    wait_until(lambda: server_sets(svc) == [frozenset({"BTCUSDT"})], 5, "server set to shrink")
    wait_until(lambda: not ref.is_alive(), 5, "the ETC book actor to stop")
    assert "ETCUSDT" not in svc.subscriptions() and svc.chaos.ref("book:ETCUSDT") is None
    with pytest.raises(BookUnavailable):
        svc.book("ETCUSDT")


def test_duplicate_and_empty_subscriptions_never_sent(service) -> None:
    """Subscribing what we have, or nothing, sends nothing."""
    svc = service()
    assert svc.wait_live(timeout=10)
    sent = svc.stats().subscription.counters.commands
    svc.subscribe(["BTCUSDT"])
    svc.subscribe(["ETHUSDT", "BTCUSDT"])
    svc.subscribe([])
    svc.unsubscribe([])
    svc.subscribe(["SOLUSDT"])  # a real change afterwards proves the earlier ones were processed
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    counters = svc.simulator.counters()
    assert counters["duplicate_subscribes"] == 0 and counters["empty_lists"] == 0
    assert svc.stats().subscription.counters.commands == sent + 1


def test_malformed_code_rejected_before_sending(service) -> None:
    """BTC-USDT is refused with the rule it breaks and never reaches the venue."""
    svc = service()
    result = svc.subscribe(["BTC-USDT", "SOLUSDT"])
    assert result.accepted == ("SOLUSDT",)
    assert result.rejected and "pattern" in result.rejected[0][1]
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    assert all("BTC-USDT" not in r.raw for r in svc.simulator.command_log())


def test_silent_socket_reconnects_and_resyncs_within_three_intervals(service) -> None:
    """A stall (socket open, no data) forces a reconnect; every book resyncs to exact."""
    svc = service()
    assert svc.wait_live(timeout=10)
    epoch = svc.stats().connection.epoch
    svc.simulator.faults.stall(1.5)
    # 3 intervals of 0.25 s plus one tick of slack and the reconnect backoff
    wait_until(lambda: svc.stats().connection.epoch > epoch, 3.0, "a reconnect after silence")
    assert svc.stats().connection.heartbeat_timeouts >= 1
    converge_exact(svc)  # (the stall ends by itself after 1.5 s)


def test_rapid_sub_unsub_race_leaves_no_ghost(service) -> None:
    """A burst of sub/unsub ends with the server's set equal to the desired set."""
    svc = service()
    assert svc.wait_live(timeout=10)
    rng = random.Random(5)
    pool = ["SOLUSDT", "ETCUSDT", "XRPUSDT", "ADAUSDT"]
    for _ in range(60):
        code = rng.choice(pool)
        (svc.subscribe if rng.random() < 0.5 else svc.unsubscribe)([code])
    wait_until(lambda: server_sets(svc) == [svc.subscriptions()], 5, "server set == desired set")
    assert svc.simulator.counters()["duplicate_subscribes"] == 0
    converge_exact(svc)


@pytest.mark.parametrize("fault", ["drop", "duplicate", "reorder", "restart", "stale_snapshot", "close"])
def test_fault_ends_with_books_exactly_equal_to_truth(service, fault: str) -> None:
    """A gap, a duplicate, a reorder, a venue restart, a stale snapshot or an abrupt close."""
    svc = service()
    assert svc.wait_live(timeout=10)
    faults = svc.simulator.faults
    if fault == "drop":
        faults.drop(3, code="BTCUSDT")
    elif fault == "duplicate":
        faults.duplicate(code="BTCUSDT")
    elif fault == "reorder":
        faults.reorder(code="BTCUSDT")
    elif fault == "restart":
        faults.restart()
    elif fault == "stale_snapshot":
        faults.stale_snapshot(5, count=2)
        faults.drop(1, code="BTCUSDT")
    elif fault == "close":
        faults.close()
    if fault in ("drop", "reorder", "stale_snapshot"):
        wait_until(lambda: svc.stats().books["BTCUSDT"].resyncs >= 1, 10, "a resync")
    converge_exact(svc)  # every book, ETHUSDT (untouched by the fault) too
