"""A consumer's reads go per bucket (cluster/lanes.py): no XREAD ever names streams of two buckets.

Proved against a real redis-server with MONITOR (every command the server executed), while a
RemoteBooks follows symbols spread over many buckets, fed by a real SlotPublisher.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.cluster import lanes
from depthkeeper.cluster.bus import BusUnavailable
from depthkeeper.cluster.keys import bucket
from depthkeeper.cluster.lanes import parse_xread
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import STATUS_FIELDS, RedisBus, merge_statuses
from depthkeeper.cluster.remote import RemoteBooks
from tests.cluster.support import Feeder
from tests.support import wait_until

CODES = [f"L{i:02d}USDT" for i in range(40)]
SENTINEL = "end-of-monitor"


@pytest.fixture
def bus(redis_server: LocalRedis) -> Iterator[RedisBus]:
    b = RedisBus(redis_server.url, "ln", snapshot_every=20, socket_timeout_s=2.0)
    b.set_meta({"hb_timeout_ms": 1000})
    b.desire(add=CODES)
    yield b
    b.close()


class Monitor:
    """Every XREAD the server executes (MONITOR), until :meth:`stop`."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.xreads: list[list[str]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "MONITOR did not start"

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                words = command["command"].split()
                if words[:2] == ["ECHO", SENTINEL]:
                    return
                if words and words[0].upper() == "XREAD":
                    self.xreads.append(words)

    def stop(self) -> None:
        self.client.echo(SENTINEL)
        self._thread.join(10)
        self.client.close()


def streams_of(words: list[str]) -> list[str]:
    """The stream keys an XREAD names (the first half of what follows STREAMS)."""
    rest = words[[w.upper() for w in words].index("STREAMS") + 1:]
    return rest[:len(rest) // 2]


@pytest.mark.parametrize("per_bucket", [True, False])
def test_no_xread_ever_names_two_buckets(bus: RedisBus, redis_server: LocalRedis, per_bucket: bool) -> None:
    """... unless asked for one XREAD over every stream (``read_per_bucket=False``, one Redis only)."""
    assert len({bucket(c) for c in CODES}) >= 20  # the symbols really are spread out
    feeder = Feeder(bus, CODES, snapshot_every=20)
    for code in CODES:
        feeder.step(code)
    feeder.heartbeat()
    monitor = Monitor(redis_server.url)
    try:
        with RemoteBooks(redis_server.url, name="ln", read_per_bucket=per_bucket) as books:
            for code in CODES:
                books.book(code)
            feeder.run(views_per_s=400)
            wait_until(lambda: books.wait_live(CODES, timeout=0), 15, "every book LIVE")
            wait_until(lambda: books.stats()["counters"].get("entries", 0) > 300, 15, "entries followed")
            books.unsubscribe(CODES[:5])  # buckets lose codes (and some their last one): lanes follow
            wait_until(lambda: books.stats()["counters"].get("entries", 0) > 500, 15, "more entries followed")
    finally:
        feeder.stop()
        monitor.stop()
    assert len(monitor.xreads) > 40
    read_buckets: set[int] = set()
    for words in monitor.xreads:
        buckets = {key.split("}")[0] for key in streams_of(words)}
        if per_bucket:
            assert len(buckets) == 1, f"one XREAD over several buckets: {' '.join(words)}"
        else:
            assert len(buckets) >= 15, "read_per_bucket=False: every followed stream in one XREAD"
        read_buckets.update(bucket(key.split(":")[-2]) for key in streams_of(words))
    assert read_buckets == {bucket(c) for c in CODES}


def test_one_xread_over_all_buckets_is_refused_for_a_redis_cluster() -> None:
    with pytest.raises(ValueError, match="Redis Cluster refuses"):
        RedisBus("redis://127.0.0.1:1/0", redis_cluster=True, read_per_bucket=False)


def test_a_code_followed_in_a_bucket_already_waiting_is_read_at_once(bus: RedisBus, redis_server: LocalRedis,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane's request in flight names the codes of its bucket when it was sent; following another code
    of that bucket must not wait for that request to end (made 60 s here): the lane asks again anew."""
    monkeypatch.setattr(lanes, "LANE_BLOCK_MS", 60_000)
    quiet, busy = next((a, b) for a in CODES for b in CODES if a < b and bucket(a) == bucket(b))
    feeder = Feeder(bus, [quiet, busy])
    feeder.step(quiet)
    feeder.step(busy)
    feeder.heartbeat()
    with RemoteBooks(redis_server.url, name="ln") as books:
        assert books.book(quiet).status is BookStatus.LIVE
        wait_until(lambda: len(books.bus.lanes) == 1, 5, "the quiet bucket's read in flight")
        books.book(busy)  # the same bucket: its request in flight does not name this code
        seq = feeder.step(busy).seq
        feeder.heartbeat()
        wait_until(lambda: books.book(busy).seq == seq, 10, "the new code's entry read well before the 60 s block")
        assert books.bus.lanes.reconnects >= 1
    feeder.stop()


def test_xread_replies_of_both_protocols_parse_alike() -> None:
    resp3 = {"k": [["1-0", ["t", "D", "sq", "2"]]]}
    resp2 = [["k", [["1-0", ["t", "D", "sq", "2"]]]]]
    assert parse_xread(resp3) == parse_xread(resp2) == {"k": [("1-0", {"t": "D", "sq": "2"})]}
    assert parse_xread(None) == {}


def test_a_redis_gone_drops_every_lane_in_one_read(bus: RedisBus, redis_server: LocalRedis) -> None:
    """Every lane's socket turns readable (EOF) when the server dies: one read notices them all, so a
    consumer of many buckets is back after one retry, not one retry per bucket."""
    cursors = dict.fromkeys(CODES, "0-0")
    bus.read(cursors, 50, 10)
    assert len(bus.lanes) == len({bucket(c) for c in CODES})
    redis_server.kill()
    with pytest.raises(BusUnavailable):
        bus.read(cursors, 5000, 10)
    assert len(bus.lanes) == 0
    redis_server.start()
    feeder = Feeder(bus, CODES[:1])
    feeder.step(CODES[0])
    feeder.heartbeat()
    feeder.stop()
    wait_until(lambda: bus.read(cursors, 100, 10).entries.get(CODES[0]), 10, "reads again once it is back")


def test_heartbeat_ages_never_mix_two_nodes_clocks() -> None:
    """Bucket 1's node runs 5 s ahead of bucket 0's: its heartbeat stamps are put on bucket 0's clock."""
    fields = len(STATUS_FIELDS)

    def row(**values: str) -> list[str | None]:
        return [values.get(f) for f in STATUS_FIELDS]

    now, statuses = merge_statuses([["AUSDT"], ["BUSDT", "CUSDT"]],
                                   [[100_000, row(hb="99000", st="LIVE")],
                                    [105_000, row(hb="104500", st="LIVE"), [None] * fields]])
    assert now == 100_000
    assert {code: now - int(s["hb"]) for code, s in statuses.items() if "hb" in s} == {"AUSDT": 1000, "BUSDT": 500}
    assert statuses["CUSDT"] == {}
