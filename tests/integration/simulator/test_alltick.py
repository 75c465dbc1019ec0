"""The alltick dialect, rule by rule from protocols/alltick.md."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from depthkeeper.simulator import SimHandle

#: The fixture's alltick_min_interval_s is 0.05; keep a margin.
PACE_S = 0.07


class Session:
    """Envelope requests paced like a well-behaved AllTick client."""

    def __init__(self, client: Any, pause_until: Callable[[float], None]) -> None:
        self.client = client
        self._pause_until = pause_until
        self._last_s: float | None = None
        self.seq_id = 0

    def send(self, message: dict[str, Any]) -> None:
        if self._last_s is not None:
            self._pause_until(self._last_s + PACE_S)
        self.client.send(message)
        self._last_s = time.monotonic()

    def response_to(self, seq_id: int) -> dict[str, Any]:
        return self.client.wait_for(lambda c: [r for r in c.responses() if r.get("seq_id") == seq_id])[0]

    def request(self, cmd_id: int, data: dict[str, Any]) -> dict[str, Any]:
        self.seq_id += 1
        self.send({"cmd_id": cmd_id, "seq_id": self.seq_id, "trace": f"trace-{self.seq_id}", "data": data})
        return self.response_to(self.seq_id)

    def subscribe(self, *entries: dict[str, Any]) -> dict[str, Any]:
        return self.request(22002, {"symbol_list": list(entries)})


@pytest.fixture
def session(alltick_sim: SimHandle, connect: Callable, pause_until: Callable) -> Session:
    return Session(connect(alltick_sim.url), pause_until)


def truth_top(sim: SimHandle, code: str, depth: int) -> dict[str, Any]:
    book = sim.truth(code)
    return {
        "seq": book["seq"],
        "bids": [{"price": p, "volume": s} for p, s in book["bids"][:depth]],
        "asks": [{"price": p, "volume": s} for p, s in book["asks"][:depth]],
    }


def test_depth_subscribe_acks_with_22003_and_echoes_ids(alltick_sim: SimHandle, session: Session) -> None:
    response = session.subscribe({"code": "BTCUSDT", "depth_level": 3})
    assert response == {"ret": 200, "msg": "ok", "cmd_id": 22003, "seq_id": 1, "trace": "trace-1", "data": {}}
    session.client.wait_for(lambda c: c.pushes("BTCUSDT"))


def test_22002_replaces_the_whole_depth_list(alltick_sim: SimHandle, session: Session) -> None:
    session.subscribe({"code": "BTCUSDT"}, {"code": "ETHUSDT"})
    assert list(alltick_sim.subscriptions().values()) == [frozenset({"BTCUSDT", "ETHUSDT"})]
    session.subscribe({"code": "SOLUSDT"})
    assert list(alltick_sim.subscriptions().values()) == [frozenset({"SOLUSDT"})]
    frames = session.client.snapshot()
    second_ack = max(i for i, f in enumerate(frames) if f.json.get("cmd_id") == 22003)
    session.client.wait_for(lambda c: len(c.snapshot()) > second_ack + 15)
    after = [f.json["data"]["code"] for f in session.client.snapshot()[second_ack + 1 :]]
    assert set(after) == {"SOLUSDT"}


def test_cancel_type_1_clears_the_depth_list(alltick_sim: SimHandle, session: Session) -> None:
    session.subscribe({"code": "BTCUSDT"})
    response = session.request(22006, {"cancel_type": 1})
    assert (response["cmd_id"], response["ret"]) == (22007, 200)
    assert list(alltick_sim.subscriptions().values()) == [frozenset()]
    assert session.request(22006, {"cancel_type": 7})["ret"] == 400


def test_heartbeat_is_answered_with_22001(session: Session) -> None:
    response = session.request(22000, {})
    assert response == {"ret": 200, "msg": "ok", "cmd_id": 22001, "seq_id": 1, "trace": "trace-1", "data": {}}


@pytest.mark.parametrize("second_cmd", [22000, 22002])
def test_requests_closer_than_the_min_interval_get_606_and_a_close(
    start_sim: Callable, connect: Callable, second_cmd: int
) -> None:
    sim = start_sim(dialect="alltick", alltick_min_interval_s=1.0)
    client = connect(sim.url)
    client.send({"cmd_id": 22002, "seq_id": 1, "trace": "a", "data": {"symbol_list": [{"code": "BTCUSDT"}]}})
    data = {} if second_cmd == 22000 else {"symbol_list": [{"code": "ETHUSDT"}]}
    client.send({"cmd_id": second_cmd, "seq_id": 2, "trace": "b", "data": data})
    client.wait_closed()
    response = [r for r in client.responses() if r["seq_id"] == 2][0]
    assert response["ret"] == 606 and response["msg"] == "too many requests and connection will be closed"
    assert response["cmd_id"] == second_cmd + 1 and response["trace"] == "b"
    assert client.close_frame is not None and client.close_frame[0] == 1008
    assert sim.counters()["pacing_violations"] == 1 and sim.subscriptions() == {}
    log = sim.command_log()
    assert [r.cmd_id for r in log] == [22002, second_cmd]
    assert log[1].monotonic_s - log[0].monotonic_s < 1.0


def test_no_heartbeat_for_the_timeout_closes_the_connection(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="alltick", alltick_heartbeat_timeout_s=0.5, alltick_min_interval_s=0.05)
    opened = time.monotonic()
    client = connect(sim.url)
    client.wait_closed()
    lived_s = time.monotonic() - opened
    assert 0.4 <= lived_s < 3.0
    assert client.close_frame == (1008, "heartbeat timeout")
    assert sim.counters()["heartbeat_timeouts"] == 1


def test_heartbeats_keep_the_connection_open(
    start_sim: Callable, connect: Callable, pause_until: Callable
) -> None:
    sim = start_sim(dialect="alltick", alltick_heartbeat_timeout_s=0.5, alltick_min_interval_s=0.05)
    session = Session(connect(sim.url), pause_until)
    until = time.monotonic() + 1.3
    while time.monotonic() < until:
        assert session.request(22000, {})["ret"] == 200
        pause_until(time.monotonic() + 0.2)
    assert not session.client.closed.is_set()
    assert sim.counters()["heartbeat_timeouts"] == 0


def test_unknown_codes_get_600_but_valid_ones_apply(alltick_sim: SimHandle, session: Session) -> None:
    response = session.subscribe({"code": "BTCUSDT"}, {"code": "BTC-USDT"}, {"code": "NOSUCH1"})
    assert response["ret"] == 600 and "BTC-USDT" in response["msg"] and "NOSUCH1" in response["msg"]
    assert list(alltick_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    session.client.wait_for(lambda c: c.pushes("BTCUSDT"))


def test_empty_and_malformed_requests(alltick_sim: SimHandle, session: Session) -> None:
    assert session.subscribe()["ret"] == 601
    assert alltick_sim.counters()["empty_lists"] == 1
    session.send({"cmd_id": 22000, "seq_id": 99, "data": {}})  # no trace
    response = session.response_to(99)
    assert response["ret"] == 400 and alltick_sim.counters()["invalid_commands"] == 1


def test_pushes_are_full_top_n_books_with_increasing_seq(alltick_sim: SimHandle, session: Session) -> None:
    depths = {"BTCUSDT": 3, "ETHUSDT": 1, "SOLUSDT": 5}
    session.subscribe({"code": "BTCUSDT", "depth_level": 3}, {"code": "ETHUSDT"}, {"code": "SOLUSDT", "depth_level": 9})
    session.client.wait_for(lambda c: all(len(c.pushes(code)) >= 10 for code in depths))
    alltick_sim.freeze()
    truths = {code: truth_top(alltick_sim, code, depth) for code, depth in depths.items()}
    session.client.wait_for(
        lambda c: all(int(c.pushes(code)[-1]["seq"]) == truths[code]["seq"] for code in depths)
    )
    for code, depth in depths.items():
        pushes = session.client.pushes(code)
        assert all(len(p["bids"]) <= depth and len(p["asks"]) <= depth for p in pushes)
        assert max(len(p["bids"]) for p in pushes) == depth
        push_seqs = [int(p["seq"]) for p in pushes]
        assert push_seqs == sorted(set(push_seqs))
        last = pushes[-1]
        assert {"seq": int(last["seq"]), "bids": last["bids"], "asks": last["asks"]} == truths[code]
        assert set(last) == {"code", "seq", "tick_time", "bids", "asks"}


@pytest.mark.parametrize(
    ("string_numbers", "unit", "scale"), [(True, "ms", 1000.0), (False, "ms", 1000.0), (True, "s", 1.0)]
)
def test_number_encoding_and_tick_time_unit(
    start_sim: Callable, connect: Callable, pause_until: Callable, string_numbers: bool, unit: str, scale: float
) -> None:
    sim = start_sim(
        dialect="alltick", alltick_string_numbers=string_numbers, tick_time_unit=unit, alltick_min_interval_s=0.05,
        rate_per_symbol=200.0,
    )
    session = Session(connect(sim.url), pause_until)
    session.subscribe({"code": "BTCUSDT"})
    push = session.client.wait_for(lambda c: c.pushes())[0]
    kind = str if string_numbers else int
    assert isinstance(push["seq"], kind) and isinstance(push["tick_time"], kind)
    assert abs(int(push["tick_time"]) - time.time() * scale) < 5 * scale
    assert '"seq":"' in session.client.snapshot()[-1].text or not string_numbers


def test_rest_depth_tick_matches_the_truth(alltick_sim: SimHandle, http: Callable, wait_until: Callable) -> None:
    wait_until(lambda: alltick_sim.truth("ETHUSDT")["seq"] > 5)
    alltick_sim.freeze()
    query = json.dumps({"trace": "rest-1", "data": {"symbol_list": [{"code": "ETHUSDT"}, {"code": "BTCUSDT"}]}})
    status, body = http("GET", f"{alltick_sim.rest_url}?token=x&query={urllib.parse.quote(query)}")
    assert status == 200 and (body["ret"], body["msg"], body["trace"]) == (200, "ok", "rest-1")
    ticks = body["data"]["tick_list"]
    assert [t["code"] for t in ticks] == ["ETHUSDT", "BTCUSDT"]
    for tick in ticks:
        assert isinstance(tick["seq"], str) and isinstance(tick["tick_time"], str)
        truth = truth_top(alltick_sim, tick["code"], 5)
        assert {"seq": int(tick["seq"]), "bids": tick["bids"], "asks": tick["asks"]} == truth
    bad = json.dumps({"trace": "rest-2", "data": {"symbol_list": [{"code": "NOPE"}]}})
    assert http("GET", f"{alltick_sim.rest_url}?query={urllib.parse.quote(bad)}")[1]["ret"] == 600
    assert http("GET", f"{alltick_sim.rest_url}?query=%7Bnot-json")[1]["ret"] == 402


def test_token_guards_websocket_and_rest(start_sim: Callable, connect: Callable, http: Callable) -> None:
    sim = start_sim(dialect="alltick", token="tk")
    with pytest.raises(websocket.WebSocketBadStatusException) as excinfo:
        websocket.create_connection(sim.url, timeout=5)
    assert excinfo.value.status_code == 401
    connect(f"{sim.url}?token=tk")
    query = urllib.parse.quote(json.dumps({"trace": "t", "data": {"symbol_list": [{"code": "BTCUSDT"}]}}))
    assert http("GET", f"{sim.rest_url}?query={query}")[1] == {"ret": 401, "msg": "token invalid"}
    assert http("GET", f"{sim.rest_url}?token=tk&query={query}")[1]["ret"] == 200


def test_max_symbols_per_connection_ignores_extras(start_sim: Callable, connect: Callable, pause_until: Callable) -> None:
    sim = start_sim(
        dialect="alltick", symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), max_symbols_per_connection=2,
        alltick_min_interval_s=0.05,
    )
    session = Session(connect(sim.url), pause_until)
    response = session.subscribe({"code": "BTCUSDT"}, {"code": "ETHUSDT"}, {"code": "SOLUSDT"})
    assert response["ret"] == 200
    assert list(sim.subscriptions().values()) == [frozenset({"BTCUSDT", "ETHUSDT"})]
    assert sim.counters()["ignored_over_limit"] == 1


@pytest.mark.parametrize("kind", ["bad_json", "missing_field", "wrong_type", "unknown_code"])
def test_malformed_pushes_of_each_kind(alltick_sim: SimHandle, session: Session, kind: str) -> None:
    session.subscribe({"code": "BTCUSDT"})
    alltick_sim.faults.malformed(kind)
    client = session.client
    if kind == "bad_json":
        client.wait_for(lambda c: any(f.json is None for f in c.snapshot()))
    elif kind == "missing_field":
        client.wait_for(lambda c: any("seq" not in p for p in c.pushes()))
    elif kind == "wrong_type":
        client.wait_for(lambda c: any(p.get("seq") == "oops" and isinstance(p["bids"], str) for p in c.pushes()))
    else:
        client.wait_for(lambda c: c.pushes("ZZZNOSUCH"))
    assert alltick_sim.counters()["faults"][f"malformed_{kind}"] == 1


def test_duplicate_and_drop_apply_to_pushes(alltick_sim: SimHandle, session: Session) -> None:
    session.subscribe({"code": "BTCUSDT"})
    session.client.wait_for(lambda c: len(c.pushes()) >= 5)
    alltick_sim.faults.duplicate("BTCUSDT")
    alltick_sim.faults.drop(2, "BTCUSDT")
    count = len(session.client.pushes())
    session.client.wait_for(lambda c: len(c.pushes()) > count + 10)
    pushes = session.client.pushes("BTCUSDT")
    assert sum(1 for a, b in zip(pushes, pushes[1:]) if a == b) == 1
    faults = alltick_sim.counters()["faults"]
    assert (faults["duplicate"], faults["drop"]) == (1, 2)


def test_rest_fail_uses_the_alltick_error_shape(alltick_sim: SimHandle, http: Callable) -> None:
    alltick_sim.faults.rest_fail(429)
    query = urllib.parse.quote(json.dumps({"trace": "t", "data": {"symbol_list": [{"code": "BTCUSDT"}]}}))
    status, body = http("GET", f"{alltick_sim.rest_url}?query={query}")
    assert status == 429 and body["ret"] == 429
