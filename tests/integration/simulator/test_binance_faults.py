"""Every fault of the other dialects, seen by an independent client of the binance dialect."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from depthkeeper.simulator import SimHandle


def ranges(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(e["U"], e["u"]) for e in events]


def breaks(events: list[dict[str, Any]]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every place where an event does not start at the previous u + 1."""
    pairs = ranges(events)
    return [(a, b) for a, b in zip(pairs, pairs[1:]) if b[0] != a[1] + 1]


def watching(sim: SimHandle, connect: Callable, path: str = "/ws/btcusdt@depth@100ms", warmup: int = 5) -> Any:
    client = connect(f"{sim.url}{path}")
    client.wait_for(lambda c: len(c.events()) >= warmup)
    return client


def get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_drop_leaves_one_u_gap_of_exactly_the_dropped_event(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect)
    binance_sim.faults.drop(1, code="BTCUSDT")
    client.wait_for(lambda c: breaks(c.events()) and len(c.events()) >= len(breaks(c.events())) + 10)
    ((before, after),) = breaks(client.events())
    assert after[0] > before[1] + 1
    assert binance_sim.counters()["faults"]["drop"] == 1


def test_duplicate_sends_one_event_twice(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect)
    binance_sim.faults.duplicate("BTCUSDT")
    client.wait_for(lambda c: breaks(c.events()) and len(c.events()) > 15)
    ((before, after),) = breaks(client.events())
    assert before == after


def test_reorder_swaps_two_events(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect)
    binance_sim.faults.reorder("BTCUSDT")
    client.wait_for(lambda c: len(breaks(c.events())) == 3 and len(c.events()) > 15)
    ((a, c), (c2, b), (b2, d)) = breaks(client.events())
    assert (c, b) == (c2, b2)
    assert (b[0], c[0], d[0]) == (a[1] + 1, b[1] + 1, c[1] + 1), "A C B D: B and C swapped, nothing lost"


def test_stall_sends_nothing_then_a_gap(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect, "/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker")
    binance_sim.faults.stall(0.4)
    stalled_at = time.monotonic()
    client.wait_for(lambda c: binance_sim.counters()["pushes_suppressed_stall"] > 0)
    count = len(client.snapshot())
    client.wait_for(lambda c: len(c.snapshot()) > count + 5, timeout_s=5)
    resumed = [f for f in client.snapshot()[count:] if f.json and "data" in f.json]
    assert resumed[0].at_s - stalled_at >= 0.35
    assert len(breaks(client.events())) == 1, "the stalled window's changes are gone: one gap"


def test_close_aborts_without_a_close_frame(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect)
    assert binance_sim.faults.close() == 1
    client.wait_closed()
    assert client.close_frame is None


def test_restart_closes_1012_and_update_ids_start_over(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect, warmup=10)
    last_u = client.events()[-1]["u"]
    era = binance_sim.faults.restart()
    client.wait_closed()
    assert client.close_frame is not None and client.close_frame[0] == 1012
    assert era == binance_sim.era == binance_sim.state()["era"]
    again = watching(binance_sim, connect, warmup=2)
    assert again.events()[0]["U"] < last_u and again.events()[0]["U"] <= 200, "a new era counts from 1"
    assert breaks(again.events()) == []


@pytest.mark.parametrize("combined", [False, True])
def test_malformed_frames_per_kind(binance_sim: SimHandle, connect: Callable, combined: bool) -> None:
    path = "/stream?streams=ethusdt@depth@100ms" if combined else "/ws/ethusdt@depth@100ms"
    client = watching(binance_sim, connect, path, warmup=1)
    for kind in ("bad_json", "missing_field", "wrong_type", "unknown_code"):
        assert binance_sim.faults.malformed(kind) == 1
    client.wait_for(lambda c: sum(1 for f in c.snapshot() if f.json is None) == 1 and len(
        [p for p in c.payloads() if isinstance(p, dict) and ("U" not in p or p.get("s") == "ZZZNOSUCH"
                                                              or isinstance(p.get("U"), str))]) == 3)
    bad_json = next(f.text for f in client.snapshot() if f.json is None)
    assert bad_json.startswith('{"stream":"ethusdt@depth@100ms","data":{' if combined else '{"e":"depthUpdate"')
    odd = [p for p in client.payloads() if "U" not in p or not isinstance(p["U"], int) or p["s"] == "ZZZNOSUCH"]
    assert [("U" in p, p["s"]) for p in odd] == [(False, "ETHUSDT"), (True, "ETHUSDT"), (True, "ZZZNOSUCH")]
    assert binance_sim.counters()["faults"]["malformed"] == 4


def test_rest_delay_fail_and_stale_snapshot(binance_sim: SimHandle) -> None:
    depth = f"{binance_sim.rest_url}/api/v3/depth?symbol=SOLUSDT&limit=1000"
    binance_sim.faults.rest_delay(0.3)
    started = time.monotonic()
    assert get(depth)[0] == 200 and time.monotonic() - started >= 0.3
    binance_sim.faults.rest_fail(429)
    binance_sim.faults.rest_fail(503)
    status, headers, body = get(depth)
    assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "1") and "X-MBX-USED-WEIGHT-1M" in headers
    assert get(depth)[::2] == (503, {"code": -1001,
                                     "msg": "Internal error; unable to process your request. Please try again."})
    assert get(f"{binance_sim.rest_url}/api/v3/ping")[0] == 200, "ping does not consume REST faults"
    binance_sim.freeze()
    seq = binance_sim.truth("SOLUSDT")["seq"]
    binance_sim.faults.stale_snapshot(10)
    stale = get(depth)[2]
    assert stale["lastUpdateId"] == seq - 10
    then = binance_sim.book_at("SOLUSDT", seq - 10)
    assert [Decimal(q) for _, q in stale["asks"]] == [Decimal(q) for _, q in then["asks"]]
    assert get(depth)[2]["lastUpdateId"] == seq
    assert binance_sim.counters()["faults"]["stale_snapshot"] == 1


# -- the issue-12 faults in the binance dialect ------------------------------------------------------------


def test_reject_refuses_the_whole_subscribe_with_invalid_stream(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/stream")
    binance_sim.faults.reject("SOLUSDT")
    reply = client.request("SUBSCRIBE", ["btcusdt@depth@100ms", "solusdt@depth@100ms"], request_id=4)
    assert reply == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 4}
    assert client.request("LIST_SUBSCRIPTIONS", request_id=5)["result"] == [], "all or nothing"
    assert client.request("SUBSCRIBE", ["btcusdt@depth@100ms"], request_id=6) == {"result": None, "id": 6}
    assert binance_sim.counters()["faults"]["reject"] == 1


@pytest.mark.parametrize(("arm", "check"), [
    (lambda f: f.empty_snapshot(code="SOLUSDT"), lambda s, t: s["bids"] == [] == s["asks"]),
    (lambda f: f.short_snapshot(2, code="SOLUSDT"), lambda s, t: len(s["bids"]) == 2 == len(s["asks"])),
    (lambda f: f.crossed_snapshot(code="SOLUSDT"),
     lambda s, t: Decimal(s["bids"][0][0]) > Decimal(s["asks"][0][0]) and len(s["asks"]) == len(t["asks"])),
    (lambda f: f.future_snapshot(lead=500, code="SOLUSDT"),
     lambda s, t: s["lastUpdateId"] == t["seq"] + 500 and len(s["bids"]) == len(t["bids"])),
])
def test_snapshot_shapes_bend_the_depth_answer_once(binance_sim: SimHandle, arm: Callable, check: Callable) -> None:
    depth = f"{binance_sim.rest_url}/api/v3/depth?symbol=SOLUSDT&limit=1000"
    binance_sim.freeze()
    truth = binance_sim.truth("SOLUSDT")
    arm(binance_sim.faults)
    status, _, bent = get(depth)
    assert status == 200 and check(bent, truth)
    assert all(len(p.partition(".")[2]) == 8 for p, _ in bent["bids"] + bent["asks"]), "8-decimal strings"
    assert get(depth)[2]["lastUpdateId"] == truth["seq"], "only the next answer is bent"


def test_future_diff_sends_one_event_u_equals_seq(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect, "/stream?streams=btcusdt@depth@100ms")
    assert binance_sim.faults.future_diff("BTCUSDT", seq=10**12) == 1
    client.wait_for(lambda c: any(e["U"] == 10**12 for e in c.events()))
    future = next(e for e in client.events() if e["U"] == 10**12)
    assert future["u"] == 10**12 and len(future["b"]) + len(future["a"]) == 1


def test_floods_send_unknown_events_and_invented_symbols(binance_sim: SimHandle, connect: Callable) -> None:
    client = watching(binance_sim, connect, "/stream?streams=ethusdt@depth@100ms", warmup=1)
    binance_sim.faults.unknown_type_flood(20)
    binance_sim.faults.distinct_code_flood(20)
    client.wait_for(lambda c: sum(1 for p in c.payloads() if isinstance(p, dict) and p.get("e") == "depthkeeperUnknown")
                    == 20 and len({e["s"] for e in c.events()} - {"ETHUSDT"}) == 20)
