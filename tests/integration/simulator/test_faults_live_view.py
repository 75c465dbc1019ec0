"""The faults of issue 12 ("A LIVE view is a promise"), article dialect, through both front doors.

Each test drives one fault through the Python handle and through ``/_control`` (the
``front_door`` fixture runs it both ways) and checks, with an independent client, that the
venue does exactly that fault and nothing else. Slow handshakes are checked on both dialects
here; the AllTick shapes of the other faults are in ``test_faults_live_view_alltick.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from depthkeeper.simulator import FaultKind, SimHandle

FUTURE_SEQ = 2**53


def jumps(diffs: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Every place where seq does not go +1: (previous, next)."""
    values = [d["seq"] for d in diffs]
    return [(a, b) for a, b in zip(values, values[1:]) if b != a + 1]


def subscribed_client(sim: SimHandle, connect: Callable, *codes: str, warmup: int = 20) -> Any:
    client = connect(sim.url)
    client.sub(*codes)
    client.wait_for(lambda c: len(c.diffs()) >= warmup)
    return client


def fault_count(sim: SimHandle, name: str) -> int:
    return int(sim.counters()["faults"][name])


def test_every_new_fault_kind_is_counted_from_zero(article_sim: SimHandle) -> None:
    faults = article_sim.counters()["faults"]
    new = ("slow_handshake", "blackhole", "future_diff", "future_snapshot", "empty_snapshot", "short_snapshot",
           "crossed_snapshot", "reject", "unknown_type_flood", "distinct_code_flood")
    assert {name: faults[name] for name in new} == dict.fromkeys(new, 0)
    assert set(new) <= {kind.value for kind in FaultKind}


# -- slow handshake ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["article", "alltick"])
def test_slow_handshake_holds_the_next_n_upgrades_then_proceeds(
    start_sim: Callable, connect: Callable, http: Callable, front_door: Callable, dialect: str
) -> None:
    sim = start_sim(dialect=dialect, symbols=("BTCUSDT",), rate_per_symbol=200.0, alltick_min_interval_s=0.05)
    hold_s = 0.6
    front_door(sim).slow_handshake(seconds=hold_s, count=2)
    rest = sim.rest_url + ("?code=BTCUSDT" if dialect == "article" else "?query=%7B%7D")
    assert http("GET", rest)[0] == 200 and fault_count(sim, "slow_handshake") == 0, "REST is not a handshake"
    durations, clients = [], []
    for _ in range(3):
        started = time.monotonic()
        clients.append(connect(sim.url))
        durations.append(time.monotonic() - started)
    assert durations[0] >= hold_s and durations[1] >= hold_s, durations
    assert durations[2] < hold_s, f"only the next two handshakes are held: {durations}"
    held = clients[0]
    if dialect == "article":
        held.sub("BTCUSDT")
        held.wait_for(lambda c: len(c.diffs("BTCUSDT")) >= 5)
    else:
        held.send({"cmd_id": 22002, "seq_id": 1, "trace": "t", "data": {"symbol_list": [{"code": "BTCUSDT"}]}})
        held.wait_for(lambda c: c.pushes("BTCUSDT"))
        assert held.responses(22003)[0]["ret"] == 200
    assert fault_count(sim, "slow_handshake") == 2


# -- blackhole --------------------------------------------------------------------------------------


def settle_discards(sim: SimHandle, wait_until: Callable, more: int = 40) -> None:
    """Wait until the venue has discarded ``more`` frames for blackholed connections (time passes)."""
    start = fault_count(sim, "blackhole_frames_discarded")
    wait_until(lambda: fault_count(sim, "blackhole_frames_discarded") >= start + more)


def test_blackhole_silences_a_connection_both_ways_without_closing(
    article_sim: SimHandle, connect: Callable, front_door: Callable, wait_until: Callable
) -> None:
    faults = front_door(article_sim)
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    (conn_id,) = article_sim.subscriptions()
    assert faults.blackhole() == 1
    client.ping(b"anyone")
    client.sub("ETHUSDT")
    settle_discards(article_sim, wait_until)  # frames in flight before the blackhole are in by now
    seen = len(client.snapshot())
    last_seq = client.diffs("BTCUSDT")[-1]["seq"]
    settle_discards(article_sim, wait_until)
    assert len(client.snapshot()) == seen, "a frame arrived during the blackhole"
    assert client.pongs == [] and len(client.acks()) == 1, "the ping and the sub were read"
    assert not client.closed.is_set() and [c.conn_id for c in article_sim.connections()] == [conn_id]
    assert article_sim.subscriptions() == {conn_id: frozenset({"BTCUSDT"})}
    assert faults.lift_blackhole() == 1
    client.wait_for(lambda c: c.pongs and len(c.acks()) == 2 and len(c.diffs("ETHUSDT")) >= 5)
    after = [d for d in client.diffs("BTCUSDT") if d["seq"] > last_seq]
    assert after[0]["seq"] > last_seq + 1, "frames of the blackhole were discarded, not held"
    assert fault_count(article_sim, "blackhole") == 1


def test_blackhole_for_seconds_ends_by_itself(
    article_sim: SimHandle, connect: Callable, front_door: Callable, wait_until: Callable
) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    hold_s = 0.4
    before = time.monotonic()
    assert front_door(article_sim).blackhole(seconds=hold_s) == 1
    settle_discards(article_sim, wait_until, more=10)
    last_seq = client.diffs("BTCUSDT")[-1]["seq"]
    client.wait_for(lambda c: c.diffs("BTCUSDT")[-1]["seq"] > last_seq)
    first = next(f for f in client.snapshot() if f.json.get("seq", 0) > last_seq)
    assert first.at_s >= before + hold_s - 0.01
    assert not client.closed.is_set() and fault_count(article_sim, "blackhole") == 1


def test_blackhole_one_connection_by_id(
    article_sim: SimHandle, connect: Callable, front_door: Callable, wait_until: Callable
) -> None:
    victim = subscribed_client(article_sim, connect, "BTCUSDT")
    (victim_id,) = article_sim.subscriptions()
    survivor = subscribed_client(article_sim, connect, "BTCUSDT")
    assert front_door(article_sim).blackhole(conn_id=victim_id) == 1
    settle_discards(article_sim, wait_until)
    quiet = len(victim.snapshot())
    busy = len(survivor.snapshot())
    settle_discards(article_sim, wait_until)
    assert len(victim.snapshot()) == quiet and len(survivor.snapshot()) > busy + 20
    assert len(article_sim.connections()) == 2


def test_blackhole_new_connections_gets_no_handshake_answer_until_it_ends(
    article_sim: SimHandle, connect: Callable, http: Callable, front_door: Callable, wait_until: Callable
) -> None:
    faults = front_door(article_sim)
    assert faults.blackhole(new_connections=True) == 0
    connected: list[Any] = []
    opener = threading.Thread(target=lambda: connected.append(connect(article_sim.url)), daemon=True)
    opener.start()
    wait_until(lambda: fault_count(article_sim, "blackhole_handshakes_held") == 1)
    held_at = time.monotonic()
    wait_until(lambda: time.monotonic() > held_at + 0.2)
    assert connected == [] and article_sim.connections() == []
    assert http("GET", f"{article_sim.rest_url}?code=BTCUSDT")[0] == 200, "REST and control stay reachable"
    assert faults.lift_blackhole() == 0
    opener.join(5)
    (client,) = connected
    client.sub("BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 5)
    assert fault_count(article_sim, "blackhole") == 1


# -- future-seq diff --------------------------------------------------------------------------------


def test_future_diff_injects_one_far_future_seq_and_leaves_the_chain_alone(
    article_sim: SimHandle, connect: Callable, front_door: Callable
) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT", "ETHUSDT")
    assert front_door(article_sim).future_diff(code="BTCUSDT") == 1
    client.wait_for(lambda c: any(d["seq"] == FUTURE_SEQ for d in c.diffs("BTCUSDT")))
    at = next(i for i, d in enumerate(client.diffs("BTCUSDT")) if d["seq"] == FUTURE_SEQ)
    client.wait_for(lambda c: len(c.diffs("BTCUSDT")) > at + 20)
    btc = client.diffs("BTCUSDT")
    (future,) = [d for d in btc if d["seq"] == FUTURE_SEQ]
    assert set(future) == {"type", "code", "seq", "side", "price", "size"} and future["type"] == "orderbook_diff"
    real = [d for d in btc if d["seq"] != FUTURE_SEQ]
    assert jumps(real) == [] and btc[at + 1]["seq"] == btc[at - 1]["seq"] + 1
    assert all(d["seq"] < FUTURE_SEQ for d in client.diffs("ETHUSDT"))
    assert fault_count(article_sim, "future_diff") == 1


def test_future_diff_takes_a_seq_and_reaches_only_subscribers(
    article_sim: SimHandle, connect: Callable, front_door: Callable
) -> None:
    faults = front_door(article_sim)
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    assert faults.future_diff(code="SOLUSDT") == 0
    assert faults.future_diff(code="BTCUSDT", seq=10**12) == 1
    client.wait_for(lambda c: any(d["seq"] == 10**12 for d in c.diffs("BTCUSDT")))
    with pytest.raises(ValueError, match="ahead"):
        faults.future_diff(code="BTCUSDT", seq=1)
    assert client.diffs("SOLUSDT") == [] and fault_count(article_sim, "future_diff") == 1


# -- REST snapshots: future, empty, short, crossed --------------------------------------------------


@pytest.fixture
def frozen(article_sim: SimHandle, wait_until: Callable) -> SimHandle:
    """The article venue with some history, frozen so that `truth` is what REST serves."""
    wait_until(lambda: article_sim.truth("BTCUSDT")["seq"] >= 30)
    article_sim.freeze()
    return article_sim


def snapshot(sim: SimHandle, http: Callable, code: str = "BTCUSDT") -> dict[str, Any]:
    status, body = http("GET", f"{sim.rest_url}?code={code}")
    assert status == 200
    return body  # type: ignore[no-any-return]


def test_future_snapshot_is_ahead_of_the_stream_with_the_current_levels(
    frozen: SimHandle, http: Callable, front_door: Callable
) -> None:
    truth = frozen.truth("BTCUSDT")
    front_door(frozen).future_snapshot(lead=1000, count=2, code="BTCUSDT")
    assert snapshot(frozen, http, "ETHUSDT") == frozen.truth("ETHUSDT"), "another code neither bent nor consumed"
    assert [snapshot(frozen, http) for _ in range(3)] == [{**truth, "seq": truth["seq"] + 1000}] * 2 + [truth]
    assert fault_count(frozen, "future_snapshot") == 2


def test_empty_snapshot_is_well_formed_with_no_levels(frozen: SimHandle, http: Callable, front_door: Callable) -> None:
    truth = frozen.truth("BTCUSDT")
    front_door(frozen).empty_snapshot()
    assert snapshot(frozen, http) == {"code": "BTCUSDT", "seq": truth["seq"], "bids": [], "asks": []}
    assert snapshot(frozen, http) == truth
    assert fault_count(frozen, "empty_snapshot") == 1


def test_short_snapshot_keeps_k_best_levels_per_side(frozen: SimHandle, http: Callable, front_door: Callable) -> None:
    truth = frozen.truth("BTCUSDT")
    assert len(truth["bids"]) > 2 and len(truth["asks"]) > 2
    front_door(frozen).short_snapshot(levels=2, count=2)
    expected = {**truth, "bids": truth["bids"][:2], "asks": truth["asks"][:2]}
    assert [snapshot(frozen, http) for _ in range(3)] == [expected, expected, truth]
    assert fault_count(frozen, "short_snapshot") == 2


def test_crossed_snapshot_until_lifted(frozen: SimHandle, http: Callable, front_door: Callable) -> None:
    faults = front_door(frozen)
    truth = frozen.truth("BTCUSDT")
    faults.crossed_snapshot(code="BTCUSDT", until_lifted=True)
    for _ in range(3):
        crossed = snapshot(frozen, http)
        assert float(crossed["bids"][0][0]) > float(crossed["asks"][0][0]), "best bid above best ask"
        assert crossed["seq"] == truth["seq"] and crossed["asks"] == truth["asks"]
        assert crossed["bids"][1:] == truth["bids"], "one extra level, nothing else changed"
    assert faults.lift_snapshot_faults() == 1
    assert snapshot(frozen, http) == truth
    assert fault_count(frozen, "crossed_snapshot") == 3


def test_counted_snapshot_faults_go_before_persistent_ones(
    frozen: SimHandle, http: Callable, front_door: Callable
) -> None:
    faults = front_door(frozen)
    faults.crossed_snapshot(until_lifted=True)
    faults.empty_snapshot(count=1)
    first, second = snapshot(frozen, http), snapshot(frozen, http)
    assert first["bids"] == first["asks"] == []
    assert float(second["bids"][0][0]) > float(second["asks"][0][0])


# -- reject in ack ----------------------------------------------------------------------------------


def test_reject_lists_codes_in_the_ack_and_never_streams_them(
    article_sim: SimHandle, connect: Callable, front_door: Callable
) -> None:
    faults = front_door(article_sim)
    faults.reject("ETHUSDT", "SOLUSDT")
    client = connect(article_sim.url)
    client.sub("BTCUSDT", "ETHUSDT")
    (ack,) = client.wait_for(lambda c: c.acks())
    assert (ack["code"], ack["rejected"], ack["ret"]) == (["BTCUSDT"], ["ETHUSDT"], 200)
    client.wait_for(lambda c: len(c.diffs("BTCUSDT")) >= 30)
    assert client.diffs("ETHUSDT") == [] and list(article_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    counters = article_sim.counters()
    assert counters["faults"]["reject"] == 1 and counters["rejected_codes"] == 0, "valid codes, refused"
    assert faults.lift_reject("ETHUSDT") == 1
    client.sub("ETHUSDT", "SOLUSDT")
    third = client.wait_for(lambda c: c.acks()[1:])[0]
    assert (third["code"], third["rejected"]) == (["ETHUSDT"], ["SOLUSDT"])
    client.wait_for(lambda c: len(c.diffs("ETHUSDT")) >= 5)
    assert faults.lift_reject() == 1 and fault_count(article_sim, "reject") == 2


# -- floods -----------------------------------------------------------------------------------------


def test_unknown_type_flood_reaches_subscribed_connections(
    article_sim: SimHandle, connect: Callable, front_door: Callable, wait_until: Callable
) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    idle = connect(article_sim.url)  # connected, subscribed to nothing: not a target
    wait_until(lambda: len(article_sim.connections()) == 2)
    n = 5000
    assert front_door(article_sim).unknown_type_flood(count=n) == n

    def unknown(c: Any) -> list[dict[str, Any]]:
        return [m for m in c.json_frames() if m.get("type") == "something_else"]

    client.wait_for(lambda c: len(unknown(c)) == n)
    assert [m["n"] for m in unknown(client)] == list(range(n))
    seen = len(client.diffs("BTCUSDT"))
    client.wait_for(lambda c: len(c.diffs("BTCUSDT")) > seen + 20)
    assert jumps(client.diffs("BTCUSDT")) == [], "the real stream goes on, untouched"
    wait_until(lambda: fault_count(article_sim, "unknown_type_flood") == n)
    assert idle.snapshot() == []


def test_distinct_code_flood_sends_well_formed_diffs_for_codes_nobody_has(
    article_sim: SimHandle, connect: Callable, front_door: Callable, wait_until: Callable
) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    idle = connect(article_sim.url)
    wait_until(lambda: len(article_sim.connections()) == 2)
    idle_id = max(c.conn_id for c in article_sim.connections())
    n = 3000
    assert front_door(article_sim).distinct_code_flood(count=n, conn_id=idle_id) == n
    idle.wait_for(lambda c: len(c.diffs()) == n)
    flood = idle.diffs()
    assert [d["code"] for d in flood] == [f"ZZ{i:06d}" for i in range(1, n + 1)]
    assert all(set(d) == {"type", "code", "seq", "side", "price", "size"} for d in flood)
    assert not any(d["code"].startswith("ZZ") for d in client.diffs()), "only the connection asked for"
    wait_until(lambda: fault_count(article_sim, "distinct_code_flood") == n)


# -- arguments --------------------------------------------------------------------------------------


def test_new_fault_arguments_are_validated(article_sim: SimHandle, front_door: Callable) -> None:
    faults = front_door(article_sim)
    for bad in (
        lambda: faults.slow_handshake(seconds=0),
        lambda: faults.slow_handshake(seconds=1.0, count=0),
        lambda: faults.blackhole(seconds=-1),
        lambda: faults.future_diff(code="BTCUSDT", seq=0),
        lambda: faults.future_snapshot(lead=0),
        lambda: faults.empty_snapshot(count=0),
        lambda: faults.short_snapshot(levels=0),
        lambda: faults.unknown_type_flood(count=0),
        lambda: faults.distinct_code_flood(count=-3),
    ):
        with pytest.raises(ValueError):
            bad()
    for unknown in (
        lambda: faults.reject("NOPE"),
        lambda: faults.future_diff(code="NOPE"),
        lambda: faults.crossed_snapshot(code="NOPE"),
        lambda: faults.blackhole(conn_id=424242),
        lambda: faults.unknown_type_flood(count=1, conn_id=424242),
    ):
        with pytest.raises(KeyError):
            unknown()
