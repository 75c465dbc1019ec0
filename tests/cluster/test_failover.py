"""The cluster end to end: real redis-server, the simulator as the venue, shards as processes.

3 shards (``depthkeeper shard``), 2 consumers (RemoteBooks), 24 symbols in 6 slots, lease TTL 1 s.
Every LIVE view either consumer delivers is checked against the simulator's ``book_at(code, seq)``.
The 200-symbol version of these scenarios is ``bench/cluster_failover.py``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks
from depthkeeper.simulator import SimConfig, Simulator
from tests.cluster.support import ShardProc, TruthChecker, sim_truth, write_shard_config
from tests.support import wait_until

pytestmark = pytest.mark.integration

CODES = [f"C{i:02d}USDT" for i in range(24)]
TTL_S = 1.0
#: a failover takes the lease TTL, a tick, the new socket and a snapshot; generous for a loaded 2-core CI box
RECOVERY_BOUND_S = TTL_S + 5.0


@attrs.define
class Cluster:
    sim: Any
    redis: LocalRedis
    bus: RedisBus
    shards: list[ShardProc]
    consumers: list[RemoteBooks]
    checkers: list[TruthChecker]

    def owners(self) -> dict[str, str]:
        _, statuses = self.bus.statuses(CODES)
        return {code: s.get("owner", "") for code, s in statuses.items()}

    def all_live(self, codes: list[str] = CODES, not_owner: str | None = None) -> bool:
        owners = self.owners()
        return all(c.book(code).status is BookStatus.LIVE and owners[code] != not_owner
                   for c in self.consumers for code in codes)

    def single_subscriptions(self) -> bool:
        """Each code on exactly one venue connection (no zombie socket left)."""
        seen = [code for codes in self.sim.subscriptions().values() for code in codes]
        return sorted(seen) == sorted(CODES)

    def assert_exact(self) -> None:
        for checker in self.checkers:
            checker.drain()
            assert checker.violations == [], checker.violations[:5]
            assert checker.checked > len(CODES)


@pytest.fixture
def cluster(redis_server: LocalRedis, tmp_path: Path) -> Iterator[Cluster]:
    sim = Simulator.start(SimConfig(symbols=tuple(CODES), rate_per_symbol=20.0, record_history=True, levels=10,
                                    seed=11))
    config = write_shard_config(tmp_path / "shard.toml", sim=sim, redis_url=redis_server.url, name="it", codes=CODES,
                                slot_size=4, lease_ttl_s=TTL_S, snapshot_every=100)
    shards: list[ShardProc] = []
    consumers: list[RemoteBooks] = []
    checkers: list[TruthChecker] = []
    bus = RedisBus(redis_server.url, "it")
    try:
        shards = [ShardProc(config, tmp_path / f"shard{i}.log") for i in range(3)]
        for _ in range(2):
            books = RemoteBooks(redis_server.url, name="it")
            checker = TruthChecker(sim_truth(sim))
            books.add_listener(checker)
            consumers.append(books)
            checkers.append(checker)
        cl = Cluster(sim, redis_server, bus, shards, consumers, checkers)
        wait_until(lambda: _follow_all(consumers) and cl.all_live(), 30, "every book LIVE on both consumers")
        wait_until(lambda: len(set(cl.owners().values())) == 3, 15, "the slots spread over the three shards")
        yield cl
    finally:
        for books in consumers:
            books.close()
        for checker in checkers:
            checker.stop()
        for shard in shards:
            shard.stop()
        bus.close()
        sim.stop()


def _follow_all(consumers: list[RemoteBooks]) -> bool:
    for books in consumers:
        for code in CODES:
            books.book(code)
    return True


def test_kill_9_moves_a_shards_symbols_to_survivors(cluster: Cluster) -> None:
    victim = cluster.shards[0]
    lost = sorted(code for code, owner in cluster.owners().items() if owner == victim.id)
    assert lost
    killed_at = time.monotonic()
    victim.signal(signal.SIGKILL)
    wait_until(lambda: cluster.all_live(lost, not_owner=victim.id), RECOVERY_BOUND_S + 5,
               "the victim's symbols LIVE on survivors")
    # a consumer's read can be LIVE before its listener thread has handed the checker the status event
    wait_until(lambda: all(checker.saw(code, "LIVE", killed_at) is not None
                           for checker in cluster.checkers for code in lost), 10, "every checker told of LIVE")
    for checker in cluster.checkers:
        # each went through RESYNCING (the new owner's claim) and came back LIVE within the bound
        resyncing = [checker.saw(code, "RESYNCING", killed_at) for code in lost]
        live = [checker.saw(code, "LIVE", killed_at) for code in lost]
        assert all(t is not None for t in resyncing), checker.statuses[-20:]
        assert all(t is not None and t - killed_at <= RECOVERY_BOUND_S for t in live), \
            [None if t is None else round(t - killed_at, 2) for t in live]
    assert cluster.all_live()  # nobody else was disturbed
    wait_until(cluster.single_subscriptions, 10, "one venue subscription per symbol")
    cluster.assert_exact()


def test_a_paused_shard_is_fenced_and_closes_its_sockets(cluster: Cluster) -> None:
    zombie = cluster.shards[1]
    taken = sorted(code for code, owner in cluster.owners().items() if owner == zombie.id)
    zombie.signal(signal.SIGSTOP)
    wait_until(lambda: cluster.all_live(taken, not_owner=zombie.id), RECOVERY_BOUND_S + 5,
               "the paused shard's symbols LIVE on survivors")
    zombie.signal(signal.SIGCONT)
    # its first heartbeat or publish after waking is refused by the scripts: it stops those slots
    wait_until(lambda: int(cluster.bus.shard_info(zombie.id).get("fenced", 0)) >= 1, 10, "the zombie fenced")
    wait_until(cluster.single_subscriptions, 10, "the zombie's sockets closed (one subscription per symbol)")
    wait_until(cluster.all_live, 15, "every book LIVE after the zombie woke up")
    cluster.assert_exact()


def test_redis_restarted_empty_shards_republish_consumers_rebootstrap(cluster: Cluster) -> None:
    before = [_epochs(c) for c in cluster.consumers]
    reboots = [c.stats()["counters"].get("rebootstraps", 0) for c in cluster.consumers]
    cluster.redis.restart()
    wait_until(lambda: not cluster.consumers[0].wait_live(timeout=0), 10, "books not LIVE after the restart")
    def rebuilt(books: RemoteBooks, epochs: dict[str, int], count: int) -> bool:
        # re-bootstrapped (the consumer saw the state vanish) or following the republished stream from
        # its new epoch's first entry (the shards' epochs never go back)
        moved = _epochs(books)
        return books.stats()["counters"].get("rebootstraps", 0) > count or \
            all(moved[code] > epochs[code] for code in CODES)

    # Every book is rebuilt on both consumers. A consumer whose reads never failed may still show its
    # books LIVE at the old epoch for up to the heartbeat timeout (the bound its LIVE promises), before
    # the shards, told by Redis that their state is gone, republish under new epochs: hence a wait.
    wait_until(lambda: _quiet_all_live(cluster) and all(
        rebuilt(books, epochs, count) for books, epochs, count in zip(cluster.consumers, before, reboots, strict=True)),
        30, "every book rebuilt and LIVE again on both consumers")
    assert cluster.bus.desired() == frozenset(CODES)  # the shards seeded the desired set again
    wait_until(cluster.single_subscriptions, 10, "one venue subscription per symbol")
    cluster.assert_exact()


def _epochs(books: RemoteBooks) -> dict[str, int]:
    return {code: info["ep"] for code, info in books.stats()["books"].items()}


def _quiet_all_live(cluster: Cluster) -> bool:
    try:
        return cluster.all_live()
    except Exception:
        return False


def test_failover_obeys_the_cluster_wide_connect_budget(redis_server: LocalRedis, tmp_path: Path) -> None:
    """2 connections/s for the whole cluster (burst 1): start-up and a failover both stay within it."""
    codes = CODES[:8]
    sim = Simulator.start(SimConfig(symbols=tuple(codes), rate_per_symbol=10.0, levels=5, seed=2))
    config = write_shard_config(tmp_path / "shard.toml", sim=sim, redis_url=redis_server.url, name="budget",
                                codes=codes, slot_size=2, lease_ttl_s=TTL_S)
    config.write_text(config.read_text().replace("connect_rate_per_s = 20.0", "connect_rate_per_s = 2.0")
                      .replace("connect_burst = 10", "connect_burst = 1"))
    shards = [ShardProc(config, tmp_path / f"b{i}.log") for i in range(2)]
    bus = RedisBus(redis_server.url, "budget")
    try:
        wait_until(lambda: sorted(c for info in sim.connections() for c in info.subscriptions) == codes, 30,
                   "four slots open")
        opened = sorted(info.opened_monotonic_s for info in sim.connections())
        assert len(opened) == 4 and all(b - a >= 0.45 for a, b in zip(opened, opened[1:], strict=False)), opened
        _, statuses = bus.statuses(codes)
        victim = next(s for s in shards if any(st.get("owner") == s.id for st in statuses.values()))
        lost = {code for code, st in statuses.items() if st.get("owner") == victim.id}
        before = {info.conn_id for info in sim.connections()}
        victim.signal(signal.SIGKILL)

        def reopened() -> bool:
            conns = sim.connections()
            moved = {c for info in conns if info.conn_id not in before for c in info.subscriptions}
            return moved == lost and sorted(c for info in conns for c in info.subscriptions) == codes

        wait_until(reopened, 30, "the victim's slots reopened on the survivor")
        fresh = sorted(info.opened_monotonic_s for info in sim.connections() if info.conn_id not in before)
        assert len(fresh) >= 1 and all(b - a >= 0.45 for a, b in zip(fresh, fresh[1:], strict=False)), fresh
    finally:
        for shard in shards:
            shard.stop()
        bus.close()
        sim.stop()
