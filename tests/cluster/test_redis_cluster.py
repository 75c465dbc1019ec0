"""The cluster on a real Redis Cluster (three redis-server nodes started by the test on loopback ports).

A command or script whose keys span two hash slots works on one Redis and fails on a Cluster, so
only a Cluster proves the key layout: every script (each touches one bucket's keys or only the
``{name:ctl}`` keys), the consumer's per-bucket reads, a shard publishing through a real BookService.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ClusterCrossSlotError

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.cluster.keys import bucket
from depthkeeper.cluster.localredis import LocalRedisCluster
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks
from depthkeeper.cluster.shard import Shard
from depthkeeper.simulator import SimConfig, Simulator
from depthkeeper.supervisor.service.config import load_config
from tests.cluster.support import Feeder, TruthChecker, sim_truth, write_shard_config
from tests.support import wait_until

pytestmark = pytest.mark.integration

CODES = [f"R{i:02d}USDT" for i in range(24)]


@pytest.fixture
def bus(redis_cluster: LocalRedisCluster) -> Iterator[RedisBus]:
    b = RedisBus(redis_cluster.url, "rc", snapshot_every=20, socket_timeout_s=2.0, redis_cluster=True)
    yield b
    b.close()


def node_of(bus: RedisBus, key: str) -> str:
    return str(bus.r.get_node_from_key(key).name)


def test_a_cross_slot_xread_is_refused_by_the_cluster(bus: RedisBus) -> None:
    """What the consumer must never send: one XREAD over two buckets (two slots, here on one node)."""
    a = CODES[0]
    b = next(c for c in CODES if bucket(c) != bucket(a) and node_of(bus, bus.keys.log(c)) == node_of(bus, bus.keys.log(a)))
    host, port = node_of(bus, bus.keys.log(a)).split(":")
    raw = redis.Redis(host=host, port=int(port), decode_responses=True)
    try:
        with pytest.raises(ClusterCrossSlotError, match="same slot"):
            raw.execute_command("XREAD", "STREAMS", bus.keys.log(a), bus.keys.log(b), "0-0", "0-0")
    finally:
        raw.close()


def test_every_script_and_the_control_plane_run_on_a_cluster(bus: RedisBus) -> None:
    assert len({node_of(bus, bus.keys.log(c)) for c in CODES}) == 3  # the symbols span every node
    token = bus.boot_token()
    assert token and bus.boot_token() == token
    bus.set_meta({"hb_timeout_ms": 1000, "lease_ttl_ms": 1000})
    assert bus.meta()["hb_timeout_ms"] == "1000"
    assert bus.desire(add=CODES) == (tuple(CODES), ())
    assert bus.assign(10, 0) == () and bus.desired() == frozenset(CODES)
    version, assignment = bus.assignment()
    assert version >= 2 and sorted(set(assignment.values())) == [0, 1, 2]
    assert bus.desire(remove=CODES[-1:]) == ((), tuple(CODES[-1:])) and bus.version() > version
    assert bus.next_epoch(41) == 42
    assert bus.try_lease(0, "me", 5000) and not bus.try_lease(0, "you", 5000)
    assert bus.renew([0, 1], "me", 5000) == {0: True, 1: False}
    assert bus.lease_owners([0, 1]) == {0: "me", 1: None}
    assert bus.release(0, "me") and bus.lease_owners([0]) == {0: None}
    bus.register_shard("s1", {"pid": 1}, 5000)
    assert bus.live_shards(5000) == ["s1"]
    assert bus.take_token(1.0, 1) == 0 and bus.take_token(1.0, 1) > 0
    # data plane: fenced publish (one script per bucket), fenced heartbeat, statuses on each node's clock
    feeder = Feeder(bus, CODES[:-1], epoch=42)
    for code in CODES[:-1]:
        feeder.step(code)
    assert feeder.heartbeat() == dict.fromkeys(CODES[:-1], 1)
    now_ms, statuses = bus.statuses(CODES[:-1])
    assert {s["st"] for s in statuses.values()} == {"LIVE"}
    assert all(0 <= now_ms - int(s["hb"]) < 5000 for s in statuses.values())
    boot = bus.bootstrap(CODES[0], 100)
    assert boot.snap_id is not None and boot.status["ep"] == "42" and boot.entries[0][1]["t"] == "S"
    zombie = Feeder(bus, CODES[:1], epoch=41)  # an older epoch is fenced, whichever node holds the keys
    zombie.step(CODES[0])
    zombie.publisher.flush()
    assert zombie.refusals and zombie.refusals[0].startswith("FENCED")
    zombie.stop()
    feeder.stop()


def test_remote_books_follow_every_node_exactly(bus: RedisBus, redis_cluster: LocalRedisCluster) -> None:
    bus.set_meta({"hb_timeout_ms": 1000})
    bus.desire(add=CODES)
    feeder = Feeder(bus, CODES, snapshot_every=20)
    for _ in range(30):  # a backlog with snapshots and deltas on every node
        for code in CODES:
            feeder.step(code)
    feeder.heartbeat()
    checker = TruthChecker(lambda code, seq: feeder.published[(code, seq)])
    try:
        with RemoteBooks(redis_cluster.url, name="rc", redis_cluster=True) as books:
            books.add_listener(checker)
            for code in CODES:
                books.book(code)
            feeder.run(views_per_s=400)
            wait_until(lambda: books.wait_live(CODES, timeout=0), 15, "every book LIVE")
            wait_until(lambda: books.stats()["counters"].get("entries", 0) > 400, 20, "live entries on every node")
            feeder.stop()
            feeder.heartbeat()
            wait_until(lambda: all(books.book(c).seq == feeder.seqs[c] for c in CODES), 10, "every book at the last seq")
            assert len(books.bus.lanes) == len({bucket(c) for c in CODES})
            counters = books.stats()["counters"]
            assert counters.get("rebootstraps", 0) == 0 and counters.get("errors", 0) == 0
        checker.drain()
        assert checker.checked > 50 and checker.violations == []
    finally:
        feeder.stop()
        checker.stop()


def test_a_shard_publishes_a_real_service_through_a_cluster(redis_cluster: LocalRedisCluster, tmp_path: Path) -> None:
    codes = CODES[:6]
    with Simulator.start(SimConfig(symbols=tuple(codes), rate_per_symbol=30.0, record_history=True, levels=8,
                                   seed=5)) as sim:
        cfg = load_config(write_shard_config(tmp_path / "s.toml", sim=sim, redis_url=redis_cluster.url, name="rcs",
                                             codes=codes, slot_size=3, extra="redis_cluster = true\n"))
        shard = Shard(cfg)
        stop = threading.Event()
        thread = threading.Thread(target=shard.run, args=(stop,), daemon=True)
        thread.start()
        checker = TruthChecker(sim_truth(sim))
        try:
            with RemoteBooks(redis_cluster.url, name="rcs", redis_cluster=True) as books:
                books.add_listener(checker)
                wait_until(lambda: books.subscriptions() == frozenset(codes), 10, "the shard seeded the desired set")
                for code in codes:
                    books.book(code)
                wait_until(lambda: books.wait_live(codes, timeout=0), 20, "every book LIVE through the cluster")
                wait_until(lambda: checker.checked > 30, 10, "LIVE views checked against the venue")
                assert all(books.book(c).status is BookStatus.LIVE for c in codes)
            checker.drain()
            assert checker.violations == []
            assert shard.counters["fenced"] == 0 and shard.counters["bus_errors"] == 0
        finally:
            stop.set()
            thread.join(30)
            checker.stop()
