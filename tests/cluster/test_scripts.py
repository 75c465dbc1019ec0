"""The Lua scripts and RedisBus against a real redis-server: fencing, atomicity, leases, budgets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from depthkeeper.cluster.bus import BusUnavailable, refused
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import RedisBus
from tests.support import wait_until


@pytest.fixture
def bus(redis_server: LocalRedis) -> Iterator[RedisBus]:
    b = RedisBus(redis_server.url, "t", snapshot_every=10, socket_timeout_s=2.0)
    yield b
    b.close()


def x(sq: int, st: str = "RESYNCING") -> tuple:
    return ("X", sq, 0, 0.0, "", "", st, "test")


def s(sq: int, vs: int) -> tuple:
    return ("S", sq, vs, 1.5, "1.5:2.0", "1.6:1.0", "LIVE", "")


def d(sq: int, vs: int) -> tuple:
    return ("D", sq, vs, 1.6, f"1.5:{vs}.0", "", "", "")


def stream(bus: RedisBus, code: str) -> list:
    return bus.r.xrange(bus.keys.log(code))


def test_a_stale_epoch_is_fenced_and_writes_nothing(bus: RedisBus) -> None:
    assert not refused(bus.publish(7, "new", 0, {"BTCUSDT": [x(1), s(2, 100)]})["BTCUSDT"])
    before = (stream(bus, "BTCUSDT"), bus.r.hgetall(bus.keys.status("BTCUSDT")))
    verdict = bus.publish(6, "zombie", 0, {"BTCUSDT": [d(3, 101)]})["BTCUSDT"]
    assert verdict == "FENCED:7"
    assert (stream(bus, "BTCUSDT"), bus.r.hgetall(bus.keys.status("BTCUSDT"))) == before


def test_bus_seq_is_contiguous_per_epoch_and_a_batch_is_all_or_nothing(bus: RedisBus) -> None:
    assert not refused(bus.publish(1, "a", 0, {"BTCUSDT": [x(1), s(2, 100)]})["BTCUSDT"])
    assert bus.publish(1, "a", 0, {"BTCUSDT": [d(3, 101), d(5, 102)]})["BTCUSDT"] == "BADSEQ:1:2"
    assert len(stream(bus, "BTCUSDT")) == 2  # the good first entry of the bad batch was not written
    # a new epoch must start at bus seq 1; an old publisher continuing its seq there is refused
    assert bus.publish(2, "a", 0, {"BTCUSDT": [d(3, 101)]})["BTCUSDT"] == "LOST:1:2"
    assert not refused(bus.publish(2, "b", 0, {"BTCUSDT": [x(1)]})["BTCUSDT"])
    status = bus.r.hgetall(bus.keys.status("BTCUSDT"))
    assert (status["ep"], status["sq"], status["owner"], status["st"]) == ("2", "1", "b", "RESYNCING")


def test_the_snapshot_key_is_its_entry_and_older_history_is_trimmed(bus: RedisBus) -> None:
    entries = [x(1)] + [s(i, i) if i % 50 == 2 else d(i, i) for i in range(2, 400)]
    for start in range(0, len(entries), 25):
        assert not refused(bus.publish(1, "a", 0, {"ETHUSDT": entries[start:start + 25]})["ETHUSDT"])
    snap_id = bus.r.get(bus.keys.snap("ETHUSDT"))
    snap_entry = bus.r.xrange(bus.keys.log("ETHUSDT"), snap_id, snap_id)[0][1]
    assert snap_entry["t"] == "S" and snap_entry["sq"] == "352"  # the latest S (sq 352)
    first = stream(bus, "ETHUSDT")[0][1]
    assert int(first["sq"]) > 100  # trimmed up to (about) the previous snapshot, never past it
    assert int(first["sq"]) <= 302
    boot = bus.bootstrap("ETHUSDT", 1000)
    assert boot.snap_id == snap_id and boot.entries[0][0] == snap_id and boot.entries[-1][1]["sq"] == "399"


def test_removed_shrinks_the_stream_to_that_entry(bus: RedisBus) -> None:
    bus.publish(1, "a", 0, {"SOLUSDT": [x(1), s(2, 5), d(3, 6)]})
    bus.publish(1, "a", 0, {"SOLUSDT": [x(4, "REMOVED")]})
    assert [e[1]["st"] for e in stream(bus, "SOLUSDT")] == ["REMOVED"]
    assert bus.r.get(bus.keys.snap("SOLUSDT")) is None


def test_heartbeat_is_fenced(bus: RedisBus) -> None:
    bus.publish(3, "a", 0, {"BTCUSDT": [x(1)], "ETHUSDT": [x(1)]})
    bus.publish(4, "b", 0, {"ETHUSDT": [x(1)]})
    assert bus.heartbeat(3, ["BTCUSDT", "ETHUSDT", "SOLUSDT"]) == {"BTCUSDT": 1, "ETHUSDT": 0, "SOLUSDT": -1}
    assert "hb" in bus.r.hgetall(bus.keys.status("BTCUSDT"))
    assert "hb" not in bus.r.hgetall(bus.keys.status("ETHUSDT"))


def test_leases_renew_only_for_the_owner_and_expire(bus: RedisBus) -> None:
    assert bus.try_lease(0, "a", 300) and not bus.try_lease(0, "b", 300)
    assert bus.renew([0, 1], "a", 300) == {0: True, 1: False}
    assert bus.renew([0], "b", 300) == {0: False}
    assert not bus.release(0, "b") and bus.lease_owners([0]) == {0: "a"}
    wait_until(lambda: bus.lease_owners([0]) == {0: None}, 5, "the lease to expire")
    assert bus.try_lease(0, "b", 300) and bus.release(0, "b") and bus.lease_owners([0]) == {0: None}


def test_epochs_never_go_back_for_a_caller_that_saw_a_higher_one(bus: RedisBus, redis_server: LocalRedis) -> None:
    assert [bus.next_epoch(0), bus.next_epoch(0)] == [1, 2]
    redis_server.restart()  # the counter is gone
    wait_until(lambda: _alive(bus), 5, "redis back")
    assert bus.next_epoch(2) == 3


def _alive(bus: RedisBus) -> bool:
    try:
        bus.boot_token()
        return True
    except BusUnavailable:
        return False


def test_the_connect_bucket_is_shared(bus: RedisBus, redis_server: LocalRedis) -> None:
    other = RedisBus(redis_server.url, "t")
    try:
        assert [bus.take_token(2.0, 2), other.take_token(2.0, 2)] == [0, 0]
        wait_ms = bus.take_token(2.0, 2)
        assert 0 < wait_ms <= 500
        wait_until(lambda: other.take_token(2.0, 2) == 0, 5, "a token after the refill")
    finally:
        other.close()


def test_assignment_is_sticky_and_capped(bus: RedisBus) -> None:
    added, _ = bus.desire(add=["A1", "A2", "A3", "A4", "A5"])
    assert sorted(added) == ["A1", "A2", "A3", "A4", "A5"]
    unplaced = bus.assign(slot_size=2, max_slots=2)  # room for 4: one code is left without a slot
    assert len(unplaced) == 1
    _, slots = bus.assignment()
    assert sorted(slots.values()) == [0, 0, 1, 1] and unplaced[0] not in slots
    victim = next(code for code, slot in slots.items() if slot == 1)
    assert bus.desire(remove=[victim]) == ((), (victim,))
    assert bus.assign(slot_size=2, max_slots=2) == ()  # the unplaced code takes the freed place
    _, after = bus.assignment()
    assert after[unplaced[0]] == 1
    assert all(after[c] == slots[c] for c in slots if c != victim)  # nobody else moved
    assert bus.desired() == frozenset({"A1", "A2", "A3", "A4", "A5"} - {victim})


def test_redis_restarts_are_visible_and_survivable(bus: RedisBus, redis_server: LocalRedis) -> None:
    token = bus.boot_token()
    bus.publish(1, "a", 0, {"BTCUSDT": [x(1)]})
    redis_server.kill()
    with pytest.raises(BusUnavailable):
        bus.publish(1, "a", 0, {"BTCUSDT": [x(2)]})
    redis_server.start()
    wait_until(lambda: _alive(bus), 5, "redis back")
    assert bus.boot_token() != token
    # the scripts are loaded again on NOSCRIPT; our old state is gone, so the old seq is LOST
    assert bus.publish(1, "a", 0, {"BTCUSDT": [x(2)]})["BTCUSDT"] == "LOST:0:0"


def test_live_shards_follow_their_beats(bus: RedisBus) -> None:
    bus.register_shard("a", {"pid": 1}, 300)
    assert bus.live_shards(300) == ["a"] and bus.shard_info("a") == {"pid": "1"}
    wait_until(lambda: bus.live_shards(300) == [], 5, "the shard to age out")
