"""RemoteBooks against a real redis-server, fed by a real SlotPublisher with synthetic books."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookUpdated, BookView
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks
from depthkeeper.supervisor.service import BookUnavailable
from tests.cluster.support import ROOT, Feeder, TruthChecker
from tests.support import wait_until

CODES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture
def bus(redis_server: LocalRedis) -> Iterator[RedisBus]:
    b = RedisBus(redis_server.url, "rb", snapshot_every=20, socket_timeout_s=2.0)
    b.set_meta({"hb_timeout_ms": 1000})
    b.desire(add=CODES)
    yield b
    b.close()


def exact(books: RemoteBooks, feeder: Feeder, code: str) -> bool:
    view = books.book(code)
    return (view.status is BookStatus.LIVE and view.seq == feeder.seqs[code]
            and (view.bids, view.asks) == feeder.published[(code, view.seq)])


def test_bootstrap_mid_stream_then_follow_exactly(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, CODES, snapshot_every=20)
    for _ in range(150):  # several snapshots and deltas already on the bus
        for code in CODES:
            feeder.step(code)
    wait_until(lambda: feeder.publisher.counters["entries"] >= 450, 10, "the backlog published")
    feeder.heartbeat()
    checker = TruthChecker(lambda code, seq: feeder.published[(code, seq)])
    with RemoteBooks(redis_server.url, name="rb") as books:
        books.add_listener(checker)
        tops: list[Any] = []
        books.add_listener(tops.append, ["BTCUSDT"], depth=2)
        view = books.book("BTCUSDT", depth=3)
        assert isinstance(view, BookView) and view.status is BookStatus.LIVE and len(view.bids) <= 3
        assert view.complete_levels[0] >= len(view.bids)
        for code in CODES:
            books.book(code)
        feeder.run(views_per_s=300)
        wait_until(lambda: books.stats()["counters"].get("entries", 0) > 200, 15, "live entries followed")
        feeder.stop()

        def caught_up() -> bool:
            # an idle publisher still beats: without it the books rightly turn STALE once the last
            # beat is older than the timeout, which a slow machine's catch-up can outlast (CI, once)
            feeder.heartbeat()
            return all(exact(books, feeder, c) for c in CODES)

        wait_until(caught_up, 10, "every book exact at the last seq")
        checker.drain()
        assert checker.checked > 20 and checker.violations == []
        cut = [e.view for e in tops if isinstance(e, BookUpdated)]
        assert cut and all(len(v.bids) <= 2 and len(v.asks) <= 2 for v in cut)
        assert any(len(v.bids) == 2 for v in cut)
        assert books.stats()["counters"].get("rebootstraps", 0) == 0
    checker.stop()


def test_live_needs_a_fresh_heartbeat(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, ["BTCUSDT"])
    feeder.step("BTCUSDT")
    wait_until(lambda: feeder.publisher.acked() == ["BTCUSDT"], 5, "published")
    with RemoteBooks(redis_server.url, name="rb", poll_interval_s=0.05) as books:
        assert books.book("BTCUSDT").status is BookStatus.STALE  # the publisher never beat: not LIVE
        feeder.heartbeat()
        wait_until(lambda: books.book("BTCUSDT").status is BookStatus.LIVE, 5, "LIVE with a fresh heartbeat")
        # no more heartbeats: after hb_timeout (1 s here) the book is no longer LIVE
        wait_until(lambda: books.book("BTCUSDT").status is BookStatus.STALE, 5, "STALE without heartbeats")
    feeder.stop()


def test_a_takeover_fences_the_old_owner_and_consumers_follow_the_new_one(bus: RedisBus,
                                                                         redis_server: LocalRedis) -> None:
    old = Feeder(bus, ["BTCUSDT"], epoch=1, seed=1)
    for _ in range(30):
        old.step("BTCUSDT")
    old.heartbeat()
    with RemoteBooks(redis_server.url, name="rb", poll_interval_s=0.05) as books:
        wait_until(lambda: exact(books, old, "BTCUSDT"), 10, "the old owner's book")
        checker = TruthChecker(lambda code, seq: new.published[(code, seq)])
        new = Feeder(bus, ["BTCUSDT"], epoch=2, seed=2)  # claims: RESYNCING at bus seq 1 of epoch 2
        wait_until(lambda: books.book("BTCUSDT").status is BookStatus.RESYNCING, 5, "RESYNCING on takeover")
        books.add_listener(checker)
        old.step("BTCUSDT")  # the zombie writes: refused by the script
        wait_until(lambda: old.refusals, 5, "the old owner fenced")
        assert old.refusals[0].startswith("FENCED") and old.publisher.closed
        for _ in range(20):
            new.step("BTCUSDT")
        new.heartbeat()
        wait_until(lambda: exact(books, new, "BTCUSDT"), 10, "the new owner's book")
        checker.drain()
        assert checker.violations == [] and books.stats()["counters"].get("rebootstraps", 0) == 0
        checker.stop()
    old.stop()
    new.stop()


def test_redis_restart_empty_rebootstraps(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, ["BTCUSDT"], epoch=4)
    for _ in range(10):
        feeder.step("BTCUSDT")
    feeder.heartbeat()
    with RemoteBooks(redis_server.url, name="rb", poll_interval_s=0.05) as books:
        books.subscribe(["BTCUSDT"])
        wait_until(lambda: exact(books, feeder, "BTCUSDT"), 10, "exact before the restart")
        redis_server.restart()
        wait_until(lambda: books.book("BTCUSDT").status is not BookStatus.LIVE, 10, "not LIVE after the restart")
        wait_until(lambda: books.stats()["counters"].get("rebootstraps", 0) >= 1, 10, "a re-bootstrap")
        # the consumer asked for its codes again; a new owner republishes from scratch
        wait_until(lambda: "BTCUSDT" in books.subscriptions(), 10, "the desired set restored")
        feeder.stop()
        fresh = Feeder(RedisBus(redis_server.url, "rb"), ["BTCUSDT"], epoch=5, seed=9)
        fresh.bus.set_meta({"hb_timeout_ms": 1000})
        for _ in range(10):
            fresh.step("BTCUSDT")
        fresh.heartbeat()
        wait_until(lambda: exact(books, fresh, "BTCUSDT"), 10, "exact on the republished stream")
        fresh.stop()
        fresh.bus.close()


def test_subscriptions_are_the_cluster_desired_set(bus: RedisBus, redis_server: LocalRedis) -> None:
    with RemoteBooks(redis_server.url, name="rb") as books:
        result = books.subscribe(["XRPUSDT", "BTC-USDT"])
        assert result.accepted == ("XRPUSDT",) and result.added == ("XRPUSDT",) and result.rejected[0][0] == "BTC-USDT"
        assert books.subscriptions() == frozenset({*CODES, "XRPUSDT"}) == bus.desired()
        view = books.book("XRPUSDT")
        assert view.status is BookStatus.SYNCING and view.bids == ()  # nobody publishes it yet
        assert books.book("ETHUSDT").code == "ETHUSDT"  # desired elsewhere: followed on first use
        assert books.unsubscribe(["XRPUSDT", "NOPEUSDT"]) == ("XRPUSDT",)
        with pytest.raises(BookUnavailable):
            books.book("XRPUSDT")
        assert "XRPUSDT" not in books.followed()


def test_a_consumer_paused_past_trimming_rebootstraps_alone(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, ["BTCUSDT"], snapshot_every=10)
    feeder.step("BTCUSDT")
    feeder.heartbeat()
    feeder.run(views_per_s=400)
    watch = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "watch", "--redis", redis_server.url,
                              "--name", "rb", "--json", "--interval", "0.05", "--duration", "40", "BTCUSDT"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert watch.stdout is not None
    try:
        with RemoteBooks(redis_server.url, name="rb") as other:
            other.book("BTCUSDT")
            rows = (json.loads(line) for line in watch.stdout)
            row = next(r for r in rows if r["books"]["BTCUSDT"] and r["books"]["BTCUSDT"]["status"] == "LIVE")
            watch.send_signal(signal.SIGSTOP)
            paused_at = feeder.seqs["BTCUSDT"]
            first_kept = lambda: int(bus.r.xrange(bus.keys.log("BTCUSDT"), count=1)[0][1]["vs"])  # noqa: E731
            wait_until(lambda: first_kept() > paused_at + 50, 20, "the stream trimmed past the paused consumer")
            watch.send_signal(signal.SIGCONT)
            row = next(r for r in rows if r["books"]["BTCUSDT"]["rebootstraps"] >= 1
                       and r["books"]["BTCUSDT"]["status"] == "LIVE")
            assert row["books"]["BTCUSDT"]["seq"] > paused_at + 50
            assert other.stats()["counters"].get("rebootstraps", 0) == 0  # the other consumer never noticed
            assert other.book("BTCUSDT").status is BookStatus.LIVE
    finally:
        watch.send_signal(signal.SIGCONT)
        watch.terminate()
        watch.wait(10)
        feeder.stop()


def test_a_backlog_collapses_into_one_snapshot_and_stays_exact(bus: RedisBus, redis_server: LocalRedis) -> None:
    """Redis stalls (SIGSTOP) while a code's entries pile up past MAX_PENDING: they become one snapshot."""
    from depthkeeper.cluster import publisher as publisher_module

    feeder = Feeder(RedisBus(redis_server.url, "rb", socket_timeout_s=10.0), ["BTCUSDT"], snapshot_every=10_000)
    feeder.step("BTCUSDT")
    feeder.heartbeat()
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        feeder.step("BTCUSDT")  # taken by the flusher, which now waits on the stopped Redis
        wait_until(lambda: feeder.publisher.in_flight, 5, "a publish in flight")
        for _ in range(publisher_module.MAX_PENDING + 50):
            feeder.step("BTCUSDT")
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    assert feeder.publisher.counters["collapsed"] >= 1
    feeder.heartbeat()
    assert feeder.refusals == []
    kinds = [e[1]["t"] for e in bus.r.xrange(bus.keys.log("BTCUSDT"))]
    # thousands of views: the first snapshot, one collapsed snapshot, and the views after the collapse
    assert len(kinds) < 100 and kinds.count("S") == 2
    with RemoteBooks(redis_server.url, name="rb") as books:
        wait_until(lambda: exact(books, feeder, "BTCUSDT"), 10, "exact after the collapse")
    feeder.stop()
    feeder.bus.close()
