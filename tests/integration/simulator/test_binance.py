"""The binance dialect, rule by rule from simulator/binance.py's protocol page (Binance spot docs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from depthkeeper.simulator import SimHandle
from depthkeeper.simulator.cli import build_parser, config_from_args
from depthkeeper.simulator.config import SimConfig


def apply(book: dict[str, dict[Decimal, str]], event: dict[str, Any]) -> None:
    """Binance's update procedure for one event (quantities are absolute, zero deletes)."""
    for side, key in (("bids", "b"), ("asks", "a")):
        for price, qty in event[key]:
            if Decimal(qty) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = qty


def as_book(rows: dict[str, Any]) -> dict[str, dict[Decimal, str]]:
    return {side: {Decimal(p): q for p, q in rows[side]} for side in ("bids", "asks")}


def numeric(book: dict[str, dict[Decimal, str]]) -> dict[str, dict[Decimal, Decimal]]:
    return {side: {p: Decimal(q) for p, q in levels.items()} for side, levels in book.items()}


def contiguous(events: list[dict[str, Any]]) -> bool:
    return all(b["U"] == a["u"] + 1 for a, b in zip(events, events[1:]))


def test_binance_is_selectable_and_urls_are_bases(binance_sim: SimHandle) -> None:
    assert binance_sim.url == f"ws://127.0.0.1:{binance_sim.port}"
    assert binance_sim.rest_url == f"http://127.0.0.1:{binance_sim.port}"
    assert binance_sim.state()["dialect"] == "binance"
    args = build_parser().parse_args(["--dialect", "binance", "--binance-lenient", "--binance-interval-scale", "0",
                                      "--replay", "a.gz", "--replay-speed", "0"])
    config = config_from_args(args)
    assert (config.dialect.value, config.binance_enforce_limits, config.binance_interval_scale) == ("binance", False, 0)
    assert (config.replay_paths, config.replay_speed) == (("a.gz",), 0.0)
    assert not config.binance_collect_between_windows  # no window clock: nothing to time the collector by
    windowed = config_from_args(build_parser().parse_args(["--dialect", "binance"]))
    assert windowed.binance_collect_between_windows and not SimConfig().binance_collect_between_windows


def test_combined_stream_url_wraps_events_and_lists_streams(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms")
    assert client.request("LIST_SUBSCRIPTIONS", request_id=7) == {
        "result": ["btcusdt@depth@100ms", "ethusdt@depth@100ms"], "id": 7,
    }
    client.wait_for(lambda c: len(c.events("BTCUSDT")) >= 3 and len(c.events("ETHUSDT")) >= 3)
    wrapped = [m for m in client.json_frames() if "stream" in m]
    assert {m["stream"] for m in wrapped} == {"btcusdt@depth@100ms", "ethusdt@depth@100ms"}
    assert all(m["data"]["s"] == m["stream"].split("@")[0].upper() for m in wrapped)
    assert client.request("GET_PROPERTY", ["combined"], request_id="q1") == {"result": True, "id": "q1"}


def test_raw_path_streams_and_set_property_combined(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/ws/btcusdt@depth@100ms/0")  # "0": ccxt's stream index, ignored
    assert client.request("LIST_SUBSCRIPTIONS")["result"] == ["btcusdt@depth@100ms"]
    assert client.request("GET_PROPERTY", ["combined"], request_id=2)["result"] is False
    client.wait_for(lambda c: len(c.events()) >= 2)
    assert all("stream" not in m for m in client.json_frames() if "e" in m or "stream" in m)
    assert client.request("SET_PROPERTY", ["combined", True], request_id=3) == {"result": None, "id": 3}
    mark = len(client.json_frames())
    client.wait_for(lambda c: any("stream" in m for m in c.json_frames()[mark:]))
    assert client.request("GET_PROPERTY", ["combined"], request_id=4)["result"] is True


def test_events_have_the_real_shape_and_contiguous_ids(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/ws")
    assert client.request("SUBSCRIBE", ["btcusdt@depth@100ms", "solusdt@depth"], request_id=1) == {
        "result": None, "id": 1,
    }
    client.wait_for(lambda c: len(c.events("BTCUSDT")) >= 15 and len(c.events("SOLUSDT")) >= 3, timeout_s=10)
    for code in ("BTCUSDT", "SOLUSDT"):
        events = client.events(code)
        assert contiguous(events), f"{code}: U must be the previous u + 1"
        for event in events:
            assert list(event) == ["e", "E", "s", "U", "u", "b", "a"]
            assert event["U"] <= event["u"] and isinstance(event["E"], int) and event["E"] > 1_600_000_000_000
            for price, qty in event["b"] + event["a"]:
                assert len(price.split(".")[1]) == 8 and len(qty.split(".")[1]) == 8
            bid_prices = [Decimal(p) for p, _ in event["b"]]
            assert bid_prices == sorted(bid_prices, reverse=True)
    assert sum(e["u"] - e["U"] + 1 for e in client.events("BTCUSDT")) > len(client.events("BTCUSDT")), (
        "an event aggregates several update ids"
    )


def test_snapshot_plus_events_equals_truth_and_book_at_u(binance_sim: SimHandle, connect: Callable,
                                                         http: Callable) -> None:
    client = connect(f"{binance_sim.url}/stream?streams=ethusdt@depth@100ms")
    client.wait_for(lambda c: len(c.events()) >= 2)
    status, snapshot = http("GET", f"{binance_sim.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5000")
    assert status == 200 and list(snapshot) == ["lastUpdateId", "bids", "asks"]
    client.wait_for(lambda c: c.events() and c.events()[-1]["u"] > snapshot["lastUpdateId"] + 20)
    binance_sim.freeze()
    truth = binance_sim.truth("ETHUSDT")
    client.wait_for(lambda c: c.events()[-1]["u"] == truth["seq"])
    book, last_id, checked = as_book(snapshot), snapshot["lastUpdateId"], 0
    for event in client.events():
        if event["u"] <= last_id:
            continue
        assert event["U"] <= last_id + 1 <= event["u"]
        apply(book, event)
        last_id = event["u"]
        if checked < 3:
            checked += 1
            assert numeric(book) == numeric(as_book(binance_sim.book_at("ETHUSDT", last_id))), "book_at(u)"
    assert last_id == truth["seq"]
    assert numeric(book) == numeric(as_book(truth))


def test_book_ticker_is_the_top_of_book_at_its_update_id(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/stream?streams=btcusdt@bookTicker")
    client.wait_for(lambda c: len(c.tickers("BTCUSDT")) >= 10)
    for ticker in client.tickers("BTCUSDT")[:10]:
        assert list(ticker) == ["u", "s", "b", "B", "a", "A"]
        book = binance_sim.book_at("BTCUSDT", ticker["u"])
        top = [Decimal(x) for x in (*book["bids"][0], *book["asks"][0])]
        assert top == [Decimal(ticker[k]) for k in ("b", "B", "a", "A")]
    tops = [(t["b"], t["B"], t["a"], t["A"]) for t in client.tickers("BTCUSDT")]
    assert all(a != b for a, b in zip(tops, tops[1:])), "a ticker only when the top changes"


def test_depth_1s_and_1000ms_aliases_are_windowed_ten_times_longer(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), rate_per_symbol=300.0, binance_interval_scale=0.1)
    client = connect(f"{sim.url}/stream?streams=btcusdt@depth@100ms/btcusdt@depth/btcusdt@depth@1000ms")
    client.wait_for(lambda c: sum(1 for m in c.json_frames() if m.get("stream") == "btcusdt@depth@1000ms") >= 3)
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for message in client.json_frames():
        if "stream" in message:
            by_stream.setdefault(message["stream"], []).append(message["data"])
    slow, alias, fast = by_stream["btcusdt@depth"], by_stream["btcusdt@depth@1000ms"], by_stream["btcusdt@depth@100ms"]
    assert contiguous(slow) and contiguous(alias) and contiguous(fast)
    assert [(e["U"], e["u"]) for e in alias] == [(e["U"], e["u"]) for e in slow[: len(alias)]]
    assert len(fast) > 3 * len(slow)


def test_interval_scale_zero_sends_an_event_per_batch(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), rate_per_symbol=0.0, binance_interval_scale=0.0)
    client = connect(f"{sim.url}/ws/btcusdt@depth@100ms")
    client.wait_for(lambda c: len(c.events()) >= 50)
    assert contiguous(client.events()[:50])


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("{not json", {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 2"}),
        ({"params": [], "id": 5}, {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 20"}),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1.5},
         {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@depth"]},
         {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": "a-b"},
         {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ({"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 5}, {"code": 2, "msg": "Invalid request: too many parameters"}),
        ({"method": "SET_PROPERTY", "params": [1, True], "id": 5},
         {"code": 2, "msg": "Invalid request: property name must be a string"}),
        ({"method": "SET_PROPERTY", "params": ["compressed", True], "id": 5}, {"code": 0, "msg": "Unknown property"}),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 5},
         {"code": 1, "msg": "Invalid value type: expected Boolean"}),
        ({"method": "GET_PROPERTY", "params": ["combined", 1], "id": 5},
         {"code": 2, "msg": "Invalid request: too many parameters"}),
        ({"method": "SUBSCRIBE", "params": ["BTCUSDT@depth"], "id": 5}, {"code": 2, "msg": "Invalid request: invalid stream"}),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@depth@5ms"], "id": 5}, {"code": 2, "msg": "Invalid request: invalid stream"}),
        ({"method": "SUBSCRIBE", "params": ["zzzusdt@depth"], "id": 5}, {"code": 2, "msg": "Invalid request: invalid stream"}),
    ],
)
def test_bad_requests_get_binance_errors(binance_sim: SimHandle, connect: Callable, frame: Any,
                                          error: dict[str, Any]) -> None:
    client = connect(f"{binance_sim.url}/ws")
    client.send(frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":")))
    reply = client.wait_for(lambda c: c.replies())[0]
    expected_id = frame.get("id") if isinstance(frame, dict) and frame.get("id") in (5, 1) else None
    assert reply == {"error": error, "id": expected_id}
    assert client.request("LIST_SUBSCRIPTIONS", request_id=99)["result"] == [], "nothing subscribed"
    assert binance_sim.counters()["invalid_commands"] == 1


def test_unknown_method_names_the_variant(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/ws")
    reply = client.request("SUBSCRIBED", ["btcusdt@depth"], request_id=12)
    assert reply["id"] == 12 and reply["error"]["code"] == 2
    assert reply["error"]["msg"].startswith("Invalid request: unknown variant `SUBSCRIBED`, expected one of `SUBSCRIBE`")


def test_subscribe_is_all_or_nothing_idempotent_and_unsubscribe_too(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/ws")
    assert "error" in client.request("SUBSCRIBE", ["btcusdt@depth", "nope"], request_id=1)
    assert client.request("SUBSCRIBE", ["btcusdt@depth", "btcusdt@trade"], request_id=2) == {"result": None, "id": 2}
    assert client.request("SUBSCRIBE", ["btcusdt@depth"], request_id=3) == {"result": None, "id": 3}
    assert client.request("LIST_SUBSCRIPTIONS", request_id=4)["result"] == ["btcusdt@depth", "btcusdt@trade"]
    assert list(binance_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    assert client.request("UNSUBSCRIBE", ["btcusdt@depth", "ethusdt@depth"], request_id=5) == {"result": None, "id": 5}
    assert client.request("LIST_SUBSCRIPTIONS", request_id=6)["result"] == ["btcusdt@trade"]
    assert list(binance_sim.subscriptions().values()) == [frozenset()], "a stream with no data is not a feed"
    counters = binance_sim.counters()
    assert (counters["duplicate_subscribes"], counters["unsubscribes_not_subscribed"]) == (1, 1)
    log = binance_sim.command_log()
    assert [(r.action, r.cmd_id, r.codes) for r in log[:2]] == [("SUBSCRIBE", 1, ("BTCUSDT",)), ("SUBSCRIBE", 2, ("BTCUSDT",))]


def test_ack_comes_before_the_first_event_of_the_stream(binance_sim: SimHandle, connect: Callable) -> None:
    client = connect(f"{binance_sim.url}/stream")
    for request_id, code in enumerate(("btcusdt", "ethusdt", "solusdt"), 1):
        client.request("SUBSCRIBE", [f"{code}@depth@100ms", f"{code}@bookTicker"], request_id=request_id)
    client.wait_for(lambda c: {e["s"] for e in c.events()} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"})
    frames = client.json_frames()
    for request_id, code in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT"), 1):
        ack_at = frames.index({"result": None, "id": request_id})
        first_data = min(i for i, m in enumerate(frames) if "data" in m and m["data"]["s"] == code)
        assert ack_at < first_data


def test_unknown_symbols_can_be_accepted_silently_like_real_binance(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_reject_unknown_symbols=False)
    client = connect(f"{sim.url}/ws")
    assert client.request("SUBSCRIBE", ["zzzusdt@depth@100ms", "btcusdt@depth@100ms"]) == {"result": None, "id": 1}
    client.wait_for(lambda c: len(c.events()) >= 3)
    assert {e["s"] for e in client.events()} == {"BTCUSDT"}
    assert sim.counters()["rejected_codes"] == 1


def test_send_acks_false_withholds_subscribe_acks(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), send_acks=False, binance_interval_scale=0.2)
    client = connect(f"{sim.url}/ws")
    client.send({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1})
    client.wait_for(lambda c: len(c.events()) >= 2)
    assert client.replies(1) == []
    assert client.request("LIST_SUBSCRIPTIONS", request_id=2)["result"] == ["btcusdt@depth@100ms"]


@pytest.mark.parametrize("collect", [True, False])
def test_the_window_clock_runs_full_collections_right_after_a_window_is_sent(
        start_sim: Callable, connect: Callable, monkeypatch: pytest.MonkeyPatch, collect: bool) -> None:
    """``binance_collect_between_windows`` (the CLI's own process): a full collection, when one is due,
    runs just after the clock sent a window -- never between stamping a window and sending it."""
    import depthkeeper.simulator.binance as sim_binance

    sent: list[int] = []
    collections: list[int] = []

    class Collector:
        @staticmethod
        def get_count() -> tuple[int, int, int]:
            return (0, 0, sim_binance.FULL_COLLECTION_EVERY)  # always due

        @staticmethod
        def collect() -> None:
            collections.append(len(sent))

    real_flush = sim_binance.BinanceDialect._flush

    def flush(self: Any, windows: Any, kinds: tuple[str, ...]) -> None:
        real_flush(self, windows, kinds)
        sent.append(1)

    monkeypatch.setattr(sim_binance, "gc", Collector)
    monkeypatch.setattr(sim_binance.BinanceDialect, "_flush", flush)
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), rate_per_symbol=300.0, binance_interval_scale=0.1,
                    binance_collect_between_windows=collect)
    client = connect(f"{sim.url}/ws/btcusdt@depth@100ms")
    client.wait_for(lambda c: len(c.events()) >= 20)
    if collect:
        assert len(collections) >= 10 and all(after >= 1 for after in collections)
        assert collections == sorted(collections)  # one per clock tick, each after that tick's flush
    else:
        assert collections == []
