"""The faults of issue 12 in the AllTick dialect, through both front doors.

Same checks as ``test_faults_live_view.py``, in AllTick's shapes: 22999 pushes with a
far-future seq, depth-tick REST answers bent, ret 604 for a refused code, an unknown ``cmd_id``,
and a blackhole that the heartbeat watchdog does not judge.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from depthkeeper.simulator import SimHandle

FUTURE_SEQ = 2**53
#: The fixture's alltick_min_interval_s is 0.05; keep a margin.
PACE_S = 0.07


class Session:
    """Envelope requests paced like a well-behaved AllTick client."""

    def __init__(self, client: Any, pause_until: Callable[[float], None]) -> None:
        self.client = client
        self._pause_until = pause_until
        self._last_s: float | None = None
        self.seq_id = 0

    def send(self, cmd_id: int, data: dict[str, Any]) -> int:
        if self._last_s is not None:
            self._pause_until(self._last_s + PACE_S)
        self.seq_id += 1
        self.client.send({"cmd_id": cmd_id, "seq_id": self.seq_id, "trace": f"t-{self.seq_id}", "data": data})
        self._last_s = time.monotonic()
        return self.seq_id

    def response_to(self, seq_id: int) -> dict[str, Any]:
        return self.client.wait_for(lambda c: [r for r in c.responses() if r.get("seq_id") == seq_id])[0]

    def subscribe(self, *codes: str, depth: int = 5) -> dict[str, Any]:
        return self.response_to(self.send(22002, {"symbol_list": [{"code": c, "depth_level": depth} for c in codes]}))


@pytest.fixture
def session(alltick_sim: SimHandle, connect: Callable, pause_until: Callable) -> Session:
    return Session(connect(alltick_sim.url), pause_until)


def fault_count(sim: SimHandle, name: str) -> int:
    return int(sim.counters()["faults"][name])


def depth_tick(sim: SimHandle, http: Callable, code: str = "BTCUSDT") -> dict[str, Any]:
    query = urllib.parse.quote(json.dumps({"trace": "t", "data": {"symbol_list": [{"code": code}]}}))
    status, body = http("GET", f"{sim.rest_url}?query={query}")
    assert status == 200 and body["ret"] == 200
    (tick,) = body["data"]["tick_list"]
    return {key: tick[key] for key in ("seq", "bids", "asks")}


def truth_tick(sim: SimHandle, code: str = "BTCUSDT", depth: int = 5) -> dict[str, Any]:
    book = sim.truth(code)
    return {
        "seq": str(book["seq"]),
        "bids": [{"price": p, "volume": s} for p, s in book["bids"][:depth]],
        "asks": [{"price": p, "volume": s} for p, s in book["asks"][:depth]],
    }


@pytest.fixture
def frozen(alltick_sim: SimHandle, wait_until: Callable) -> SimHandle:
    wait_until(lambda: alltick_sim.truth("BTCUSDT")["seq"] >= 30)
    alltick_sim.freeze()
    return alltick_sim


def test_future_diff_is_one_push_with_a_far_future_seq(
    alltick_sim: SimHandle, session: Session, front_door: Callable
) -> None:
    session.subscribe("BTCUSDT", depth=3)
    session.client.wait_for(lambda c: len(c.pushes("BTCUSDT")) >= 5)
    assert front_door(alltick_sim).future_diff(code="BTCUSDT") == 1
    session.client.wait_for(lambda c: any(int(p["seq"]) == FUTURE_SEQ for p in c.pushes("BTCUSDT")))
    at = next(i for i, p in enumerate(session.client.pushes("BTCUSDT")) if int(p["seq"]) == FUTURE_SEQ)
    session.client.wait_for(lambda c: len(c.pushes("BTCUSDT")) > at + 5)
    pushes = session.client.pushes("BTCUSDT")
    future = pushes[at]
    assert future["seq"] == str(FUTURE_SEQ) and len(future["bids"]) == 3 and len(future["asks"]) == 3
    real = [int(p["seq"]) for p in pushes if int(p["seq"]) != FUTURE_SEQ]
    assert real == sorted(set(real)) and real[at] > real[at - 1], "the real pushes go on increasing"
    assert fault_count(alltick_sim, "future_diff") == 1


def test_future_snapshot_is_ahead_with_the_current_levels(
    frozen: SimHandle, http: Callable, front_door: Callable
) -> None:
    truth = truth_tick(frozen)
    front_door(frozen).future_snapshot(lead=1000, count=1, code="BTCUSDT")
    assert depth_tick(frozen, http) == {**truth, "seq": str(int(truth["seq"]) + 1000)}
    assert depth_tick(frozen, http) == truth
    assert fault_count(frozen, "future_snapshot") == 1


def test_empty_and_short_snapshots(frozen: SimHandle, http: Callable, front_door: Callable) -> None:
    faults = front_door(frozen)
    truth = truth_tick(frozen)
    faults.empty_snapshot()
    faults.short_snapshot(levels=2)
    assert depth_tick(frozen, http) == {**truth, "bids": [], "asks": []}
    assert depth_tick(frozen, http) == truth_tick(frozen, depth=2)
    assert depth_tick(frozen, http) == truth
    counted = frozen.counters()["faults"]
    assert (counted["empty_snapshot"], counted["short_snapshot"]) == (1, 1)


def test_crossed_snapshot(frozen: SimHandle, http: Callable, front_door: Callable) -> None:
    truth = truth_tick(frozen)
    front_door(frozen).crossed_snapshot(count=1)
    crossed = depth_tick(frozen, http)
    assert float(crossed["bids"][0]["price"]) > float(crossed["asks"][0]["price"])
    assert crossed["seq"] == truth["seq"] and crossed["asks"] == truth["asks"]
    assert crossed["bids"][1:] == truth["bids"][:4]
    assert depth_tick(frozen, http) == truth and fault_count(frozen, "crossed_snapshot") == 1


def test_reject_answers_604_and_never_pushes_the_code(
    alltick_sim: SimHandle, session: Session, front_door: Callable
) -> None:
    faults = front_door(alltick_sim)
    faults.reject("ETHUSDT")
    response = session.subscribe("BTCUSDT", "ETHUSDT")
    assert (response["cmd_id"], response["ret"], response["msg"]) == (22003, 604, "code unauthorized: ETHUSDT")
    assert list(alltick_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    session.client.wait_for(lambda c: len(c.pushes("BTCUSDT")) >= 10)
    assert session.client.pushes("ETHUSDT") == []
    assert faults.lift_reject() == 1
    assert session.subscribe("BTCUSDT", "ETHUSDT")["ret"] == 200
    session.client.wait_for(lambda c: c.pushes("ETHUSDT"))
    assert fault_count(alltick_sim, "reject") == 1


def test_unknown_cmd_flood(
    alltick_sim: SimHandle, session: Session, front_door: Callable, wait_until: Callable
) -> None:
    session.subscribe("BTCUSDT")
    n = 3000
    assert front_door(alltick_sim).unknown_type_flood(count=n) == n
    session.client.wait_for(lambda c: sum(m.get("cmd_id") == 22777 for m in c.json_frames()) == n)
    flood = [m for m in session.client.json_frames() if m.get("cmd_id") == 22777]
    assert [m["data"]["n"] for m in flood] == list(range(n))
    wait_until(lambda: fault_count(alltick_sim, "unknown_type_flood") == n)


def test_distinct_code_flood_pushes(
    alltick_sim: SimHandle, session: Session, front_door: Callable, wait_until: Callable
) -> None:
    session.subscribe("BTCUSDT")
    n = 2000
    assert front_door(alltick_sim).distinct_code_flood(count=n) == n
    session.client.wait_for(lambda c: len([p for p in c.pushes() if p["code"].startswith("ZZ")]) == n)
    flood = [p for p in session.client.pushes() if p["code"].startswith("ZZ")]
    assert [p["code"] for p in flood] == [f"ZZ{i:06d}" for i in range(1, n + 1)]
    assert all(set(p) == {"code", "seq", "tick_time", "bids", "asks"} for p in flood)
    wait_until(lambda: fault_count(alltick_sim, "distinct_code_flood") == n)


def test_blackhole_gives_the_heartbeat_watchdog_no_verdict(
    start_sim: Callable, connect: Callable, pause_until: Callable, front_door: Callable, wait_until: Callable
) -> None:
    sim = start_sim(dialect="alltick", alltick_heartbeat_timeout_s=0.5, alltick_min_interval_s=0.05)
    session = Session(connect(sim.url), pause_until)
    assert session.subscribe("BTCUSDT")["ret"] == 200
    faults = front_door(sim)
    assert faults.blackhole() == 1
    heartbeat = session.send(22000, {})
    holed_at = time.monotonic()
    wait_until(lambda: time.monotonic() > holed_at + 1.0)  # twice the heartbeat timeout, unread
    pushes = len(session.client.pushes())
    wait_until(lambda: fault_count(sim, "blackhole_frames_discarded") >= 10)
    assert len(session.client.pushes()) == pushes, "a push arrived during the blackhole"
    assert not session.client.closed.is_set() and sim.counters()["heartbeat_timeouts"] == 0
    assert [r for r in session.client.responses() if r["seq_id"] == heartbeat] == []
    assert faults.lift_blackhole() == 1
    assert session.response_to(heartbeat)["cmd_id"] == 22001, "read and answered after the blackhole"
    session.client.wait_for(lambda c: len(c.pushes()) > pushes)
    assert not session.client.closed.is_set()
