"""Every fault's observable effect on an independent client (article dialect)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from depthkeeper.simulator import HistoryUnavailable, SimHandle, UnknownCode, UnknownConnection


def seqs(diffs: list[dict[str, Any]]) -> list[int]:
    return [d["seq"] for d in diffs]


def jumps(diffs: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Every place where seq does not go +1: (previous, next)."""
    values = seqs(diffs)
    return [(a, b) for a, b in zip(values, values[1:]) if b != a + 1]


def subscribed_client(sim: SimHandle, connect: Callable, *codes: str, warmup: int = 20) -> Any:
    client = connect(sim.url)
    client.sub(*codes)
    client.wait_for(lambda c: len(c.diffs()) >= warmup)
    return client


def test_drop_makes_exactly_one_gap_of_n(article_sim: SimHandle, connect: Callable) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    article_sim.faults.drop(3, code="BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 80)
    ((before, after),) = jumps(client.diffs("BTCUSDT"))
    assert after - before == 4
    assert article_sim.counters()["faults"]["drop"] == 3


def test_drop_is_spent_only_on_subscribed_streams(article_sim: SimHandle, connect: Callable) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    article_sim.faults.drop(2, code="ETHUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 80)
    assert jumps(client.diffs("BTCUSDT")) == []
    assert article_sim.counters()["faults"]["drop"] == 0
    article_sim.freeze()
    seq_at_sub = article_sim.truth("ETHUSDT")["seq"]
    client.sub("ETHUSDT")
    client.wait_for(lambda c: len(c.acks()) == 2)
    article_sim.unfreeze()
    client.wait_for(lambda c: len(c.diffs("ETHUSDT")) >= 30)
    assert client.diffs("ETHUSDT")[0]["seq"] == seq_at_sub + 3, "the first two ETHUSDT diffs were dropped"
    assert jumps(client.diffs("ETHUSDT")) == []
    assert article_sim.counters()["faults"]["drop"] == 2


def test_global_drop_hits_whatever_is_subscribed(article_sim: SimHandle, connect: Callable) -> None:
    client = subscribed_client(article_sim, connect, "SOLUSDT")
    article_sim.faults.drop(5)
    client.wait_for(lambda c: len(c.diffs()) >= 80)
    ((before, after),) = jumps(client.diffs("SOLUSDT"))
    assert after - before == 6


def test_duplicate_sends_the_same_frame_twice(article_sim: SimHandle, connect: Callable) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    article_sim.faults.duplicate(code="BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 80)
    diffs = client.diffs("BTCUSDT")
    repeats = [i for i in range(1, len(diffs)) if diffs[i]["seq"] == diffs[i - 1]["seq"]]
    assert len(repeats) == 1 and diffs[repeats[0]] == diffs[repeats[0] - 1]
    assert sorted(set(seqs(diffs))) == list(range(diffs[0]["seq"], diffs[-1]["seq"] + 1))
    assert article_sim.counters()["faults"]["duplicate"] == 1


def test_reorder_swaps_the_next_two_diffs_of_a_code(article_sim: SimHandle, connect: Callable) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT", "ETHUSDT")
    article_sim.faults.reorder(code="ETHUSDT")
    client.wait_for(lambda c: len(c.diffs("ETHUSDT")) >= 80)
    values = seqs(client.diffs("ETHUSDT"))
    swapped = [i for i in range(1, len(values)) if values[i] < values[i - 1]]
    assert len(swapped) == 1
    i = swapped[0]
    assert values[i - 2 : i + 2] == [values[i - 2], values[i - 2] + 2, values[i - 2] + 1, values[i - 2] + 3]
    assert jumps(client.diffs("BTCUSDT")) == []
    assert article_sim.counters()["faults"]["reorder"] == 1


def test_stall_silences_business_frames_but_answers_pings(
    article_sim: SimHandle, connect: Callable, wait_until: Callable
) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    stall_s = 0.6
    article_sim.faults.stall(stall_s)
    stalled_at = time.monotonic()
    wait_until(lambda: time.monotonic() >= stalled_at + 0.15)
    quiet_from = time.monotonic()
    client.ping(b"still-there")
    wait_until(lambda: any(t >= quiet_from for t in client.pongs), timeout_s=stall_s)
    last_before = client.diffs("BTCUSDT")[-1]["seq"]
    client.wait_for(lambda c: c.diffs("BTCUSDT")[-1]["seq"] > last_before)
    resumed = [f for f in client.snapshot() if f.at_s >= quiet_from]
    assert resumed[0].at_s >= stalled_at + stall_s - 0.05, "business frames arrived during the stall"
    assert any(t < stalled_at + stall_s for t in client.pongs), "pong came only after the stall"
    assert resumed[0].json["seq"] > last_before + 1, "seqs keep advancing server-side during a stall"
    counters = article_sim.counters()
    assert counters["faults"]["stall"] == 1 and counters["pushes_suppressed_stall"] > 0
    assert not client.closed.is_set()


def test_stall_zero_ends_a_running_stall(article_sim: SimHandle, connect: Callable, wait_until: Callable) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    article_sim.faults.stall(30.0)
    stalled_at = time.monotonic()
    wait_until(lambda: article_sim.counters()["pushes_suppressed_stall"] >= 3)
    article_sim.faults.stall(0)
    ended_at = time.monotonic()
    client.wait_for(lambda c: any(f.at_s > ended_at for f in c.snapshot()))
    assert jumps(client.diffs("BTCUSDT")), "diffs generated during the stall were never sent"
    assert time.monotonic() - stalled_at < 5
    assert article_sim.counters()["faults"]["stall"] == 1


def test_close_all_aborts_without_a_close_frame(article_sim: SimHandle, connect: Callable) -> None:
    first = subscribed_client(article_sim, connect, "BTCUSDT")
    second = subscribed_client(article_sim, connect, "ETHUSDT")
    assert article_sim.faults.close() == 2
    for client in (first, second):
        client.wait_closed()
        assert client.close_frame is None and client.close_error is not None
    assert article_sim.subscriptions() == {}
    assert article_sim.counters()["faults"]["close"] == 2


def test_close_one_connection_by_id(article_sim: SimHandle, connect: Callable) -> None:
    victim = subscribed_client(article_sim, connect, "BTCUSDT")
    (victim_id,) = article_sim.subscriptions()
    survivor = subscribed_client(article_sim, connect, "ETHUSDT")
    assert article_sim.faults.close(victim_id) == 1
    victim.wait_closed()
    assert victim.close_frame is None
    count = len(survivor.diffs())
    survivor.wait_for(lambda c: len(c.diffs()) > count + 20)
    assert victim_id not in article_sim.subscriptions() and len(article_sim.subscriptions()) == 1
    with pytest.raises(UnknownConnection):
        article_sim.faults.close(victim_id)


def test_restart_resets_seqs_subscriptions_and_books(article_sim: SimHandle, connect: Callable) -> None:
    old = subscribed_client(article_sim, connect, "BTCUSDT", warmup=50)
    old_book = article_sim.truth("BTCUSDT")
    article_sim.freeze()
    assert article_sim.era == 1
    assert article_sim.faults.restart() == 2
    old.wait_closed()
    assert old.close_frame is not None and old.close_frame[0] == 1012
    assert article_sim.era == 2 and article_sim.subscriptions() == {}
    fresh = article_sim.truth("BTCUSDT")
    assert fresh["seq"] == 0 and fresh != {**old_book, "seq": 0}
    new = connect(article_sim.url)
    new.sub("BTCUSDT")
    new.wait_for(lambda c: c.acks())
    article_sim.unfreeze()
    new.wait_for(lambda c: len(c.diffs()) >= 5)
    assert seqs(new.diffs())[:5] == [1, 2, 3, 4, 5]
    assert article_sim.counters()["faults"]["restart"] == 1


@pytest.mark.parametrize("kind", ["bad_json", "missing_field", "wrong_type", "unknown_code"])
def test_malformed_frames_of_each_kind(article_sim: SimHandle, connect: Callable, kind: str) -> None:
    client = subscribed_client(article_sim, connect, "BTCUSDT")
    assert article_sim.faults.malformed(kind, count=2) == 2
    if kind == "bad_json":
        client.wait_for(lambda c: sum(f.json is None for f in c.snapshot()) == 2)
    elif kind == "missing_field":
        client.wait_for(lambda c: sum("seq" not in d for d in c.diffs()) == 2)
    elif kind == "wrong_type":
        client.wait_for(lambda c: sum(isinstance(d["seq"], str) for d in c.diffs()) == 2)
    else:
        bad = client.wait_for(lambda c: [d for d in c.diffs() if d["code"] == "ZZZNOSUCH"])
        assert set(bad[0]) == {"type", "code", "seq", "side", "price", "size"}
    good = [d for d in client.diffs("BTCUSDT") if isinstance(d.get("seq"), int)]
    assert jumps(good) == [], "bad frames do not consume seqs"
    faults = article_sim.counters()["faults"]
    assert faults["malformed"] == 2 and faults[f"malformed_{kind}"] == 2


def test_malformed_rejects_unknown_kinds(article_sim: SimHandle) -> None:
    with pytest.raises(ValueError, match="malformed kind"):
        article_sim.faults.malformed("gibberish")


@pytest.mark.parametrize("status", [429, 500])
def test_rest_fail_for_the_next_n_requests(article_sim: SimHandle, http: Callable, status: int) -> None:
    article_sim.faults.rest_fail(status, count=2)
    url = f"{article_sim.rest_url}?code=BTCUSDT"
    assert [http("GET", url)[0] for _ in range(3)] == [status, status, 200]
    assert article_sim.counters()["faults"]["rest_fail"] == 2


def test_rest_delay_holds_the_next_snapshot(article_sim: SimHandle, http: Callable) -> None:
    article_sim.faults.rest_delay(0.4)
    url = f"{article_sim.rest_url}?code=BTCUSDT"
    started = time.monotonic()
    assert http("GET", url)[0] == 200
    delayed_s = time.monotonic() - started
    started = time.monotonic()
    assert http("GET", url)[0] == 200
    assert delayed_s >= 0.4 and time.monotonic() - started < 0.3
    assert article_sim.counters()["faults"]["rest_delay"] == 1


def test_stale_snapshot_lags_by_k_seqs(article_sim: SimHandle, http: Callable, wait_until: Callable) -> None:
    wait_until(lambda: article_sim.truth("BTCUSDT")["seq"] >= 30)
    article_sim.freeze()
    truth = article_sim.truth("BTCUSDT")
    article_sim.faults.stale_snapshot(5)
    status, stale = http("GET", f"{article_sim.rest_url}?code=BTCUSDT")
    assert status == 200 and stale["seq"] == truth["seq"] - 5
    assert stale == article_sim.book_at("BTCUSDT", truth["seq"] - 5) != truth
    assert http("GET", f"{article_sim.rest_url}?code=BTCUSDT") == (200, truth)
    assert article_sim.counters()["faults"]["stale_snapshot"] == 1


def test_book_at_returns_past_books_of_the_current_era(
    article_sim: SimHandle, http: Callable, wait_until: Callable
) -> None:
    _, snapshot = http("GET", f"{article_sim.rest_url}?code=ETHUSDT")
    wait_until(lambda: article_sim.truth("ETHUSDT")["seq"] > snapshot["seq"] + 20)
    assert article_sim.book_at("ETHUSDT", snapshot["seq"]) == snapshot
    with pytest.raises(HistoryUnavailable):
        article_sim.book_at("ETHUSDT", 10**9)


def test_fault_arguments_are_validated(article_sim: SimHandle) -> None:
    with pytest.raises(UnknownCode):
        article_sim.faults.drop(1, code="NOPE")
    for call in (
        lambda: article_sim.faults.drop(0),
        lambda: article_sim.faults.stall(-1),
        lambda: article_sim.faults.rest_delay(0),
        lambda: article_sim.faults.rest_fail(200),
        lambda: article_sim.faults.stale_snapshot(0),
        lambda: article_sim.faults.rest_delay(1.0, count=0),
    ):
        with pytest.raises(ValueError):
            call()
