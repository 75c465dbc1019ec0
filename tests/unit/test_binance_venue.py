"""The binance venue: codec (events, replies, bad frames), requests and what answers mean, REST, limits,
config defaults; and the rolling budgets behind the limits."""

from __future__ import annotations

import email.message
from collections.abc import Callable

import orjson
import pytest

from depthkeeper.actors.core.budget import RollingBudget
from depthkeeper.actors.core.wire import Ack, DecodeError, Ignored, MalformedKind, RangeDiff, Snapshot
from depthkeeper.actors.settings import SubscriptionConfig, VenueConfig
from depthkeeper.actors.venues import venue_class
from depthkeeper.actors.venues.binance import (
    ACK_ERROR,
    ACK_LIST,
    ACK_RESULT,
    BinanceVenue,
    decode,
    decode_snapshot,
    depth_weight,
)
from depthkeeper.supervisor.service.config import config_from_mapping
from depthkeeper.supervisor.service.errors import ConfigError


def wrapped(data: dict, stream: str = "btcusdt@depth@100ms") -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


DEPTH = {"e": "depthUpdate", "E": 1723161255123, "s": "BTCUSDT", "U": 157, "u": 160,
         "b": [["61837.64000000", "1.54698000"], ["61837.63000000", "0.00000000"]],
         "a": [["61837.65000000", "0.10000000"]]}


def venue(**cfg: object) -> BinanceVenue:
    made = venue_class("binance")(VenueConfig(dialect="binance", **cfg))  # type: ignore[arg-type]
    assert isinstance(made, BinanceVenue)
    return made


def ids(start: int = 1) -> Callable[[], int]:
    """A request-id counter for plan()."""
    counter = iter(range(start, 10_000))
    return lambda: next(counter)


# -- decode -------------------------------------------------------------------------------------------


def test_a_depth_update_decodes_exactly_with_its_event_time() -> None:
    event = decode(wrapped(DEPTH))
    assert event == RangeDiff("BTCUSDT", 157, 160, ((61837.64, 1.54698), (61837.63, 0.0)), ((61837.65, 0.1),),
                              0.0, 1723161255.123)
    assert type(event) is RangeDiff and event.first == 157 and event.seq == 160


def test_an_unwrapped_event_and_a_stamped_one_decode_too() -> None:
    assert decode(orjson.dumps(DEPTH)) == decode(wrapped(DEPTH))
    stamped = decode(wrapped({**DEPTH, "x": 1700000000.25}))
    assert isinstance(stamped, RangeDiff) and stamped.sent_at == 1700000000.25


def test_numbers_instead_of_strings_take_the_checked_path() -> None:
    event = decode(wrapped({**DEPTH, "b": [[61837.64, 1]], "a": []}))
    assert isinstance(event, RangeDiff) and event.bids == ((61837.64, 1.0),)


@pytest.mark.parametrize(("data", "kind"), [
    ({**DEPTH, "U": "157"}, MalformedKind.WRONG_TYPE),
    ({k: v for k, v in DEPTH.items() if k != "u"}, MalformedKind.MISSING_FIELD),
    ({**DEPTH, "U": 161}, MalformedKind.BAD_VALUE),                        # U > u
    ({**DEPTH, "b": [["-1", "1"]]}, MalformedKind.BAD_VALUE),
    ({**DEPTH, "b": [["1", "nan"]]}, MalformedKind.BAD_VALUE),
    ({**DEPTH, "b": [["1", "2", "3"]]}, MalformedKind.BAD_VALUE),
    ({**DEPTH, "b": ["12"]}, MalformedKind.BAD_VALUE),                    # a 2-character string is no pair
    ({**DEPTH, "b": [[True, True]]}, MalformedKind.BAD_VALUE),
    ({**DEPTH, "a": "garbage"}, MalformedKind.WRONG_TYPE),
    ({"e": "whatIsThis", "E": 1}, MalformedKind.UNKNOWN_MESSAGE),
])
def test_bad_events_are_typed_errors_never_exceptions(data: dict, kind: MalformedKind) -> None:
    error = decode(wrapped(data))
    assert isinstance(error, DecodeError) and error.kind is kind and error.excerpt


@pytest.mark.parametrize(("raw", "kind"), [
    (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"', MalformedKind.BAD_JSON),
    (b"[1,2]", MalformedKind.NOT_OBJECT),
    (b'{"hello":1}', MalformedKind.UNKNOWN_MESSAGE),
    (b'{"error":"nope","id":3}', MalformedKind.WRONG_TYPE),
    (b'{"id":3}', MalformedKind.MISSING_FIELD),
])
def test_bad_frames_are_typed_errors(raw: bytes, kind: MalformedKind) -> None:
    error = decode(raw)
    assert isinstance(error, DecodeError) and error.kind is kind


def test_other_streams_are_ignored_not_errors() -> None:
    ticker = {"u": 400900217, "s": "BNBUSDT", "b": "25.35", "B": "31.21", "a": "25.36", "A": "40.66"}
    assert isinstance(decode(wrapped(ticker, "bnbusdt@bookTicker")), Ignored)
    assert isinstance(decode(wrapped({"e": "trade", "E": 1, "s": "BTCUSDT"}, "btcusdt@trade")), Ignored)


def test_replies_decode_to_acks() -> None:
    assert decode(b'{"result":null,"id":7}') == Ack(cmd_id=ACK_RESULT, ret=200, seq_id=7)
    assert decode(b'{"result":["btcusdt@depth@100ms","ethusdt@trade"],"id":8}') == Ack(
        cmd_id=ACK_LIST, ret=200, codes=("btcusdt@depth@100ms", "ethusdt@trade"), seq_id=8)
    assert decode(b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":9}') == Ack(
        cmd_id=ACK_ERROR, ret=2, msg="Invalid request: invalid stream", seq_id=9)
    assert decode(b'{"error":{"code":3,"msg":"Invalid JSON"},"id":null}') == Ack(cmd_id=ACK_ERROR, ret=3,
                                                                                 msg="Invalid JSON")


def test_snapshot_decodes_and_bad_ones_say_why() -> None:
    body = b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}'
    assert decode_snapshot(body, "BNBBTC") == Snapshot("BNBBTC", 1027024, ((4.0, 431.0),), ((4.000002, 12.0),))
    for bad in (b"{", b"[]", b'{"lastUpdateId":"1","bids":[],"asks":[]}', b'{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}'):
        assert isinstance(decode_snapshot(bad, "BNBBTC"), DecodeError)


# -- requests and answers ----------------------------------------------------------------------------------


def test_plan_unsubscribes_first_then_subscribes_with_ids_and_stream_names() -> None:
    requests = venue().plan(frozenset({"BTCUSDT", "ETHUSDT"}), frozenset({"SOLUSDT"}), ids(), epoch=1)
    assert [orjson.loads(r.text) for r in requests] == [
        {"method": "UNSUBSCRIBE", "params": ["solusdt@depth@100ms"], "id": 1},
        {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethusdt@depth@100ms"], "id": 2},
    ]
    assert requests[0].removed == {"SOLUSDT"} and requests[1].added == {"BTCUSDT", "ETHUSDT"}
    assert [r.request_id for r in requests] == [1, 2]
    assert venue().plan(frozenset({"A1"}), frozenset({"A1"}), ids(), 1) == []


def test_a_burst_is_one_request_with_many_params_split_past_200() -> None:
    codes = frozenset(f"C{i:04d}USDT" for i in range(450))
    requests = venue().plan(codes, frozenset(), ids(), 1)
    assert [len(r.added) for r in requests] == [200, 200, 50]
    assert frozenset().union(*(r.added for r in requests)) == codes


def test_the_depth_stream_is_configurable() -> None:
    text = venue(depth_stream="depth").plan(frozenset({"BTCUSDT"}), frozenset(), ids(), 1)[0].text
    assert orjson.loads(text)["params"] == ["btcusdt@depth"]


def test_list_request_and_its_answer_name_only_our_streams() -> None:
    v = venue()
    request = v.list_request(ids(5))
    assert request is not None and orjson.loads(request.text) == {"method": "LIST_SUBSCRIPTIONS", "id": 5}
    verdict = v.read_ack(Ack(cmd_id=ACK_LIST, ret=200, codes=("btcusdt@depth@100ms", "btcusdt@trade",
                                                               "ethusdt@depth@100ms"), seq_id=5), {})
    assert verdict.listed == {"BTCUSDT", "ETHUSDT"} and verdict.settled_through == 5


def test_an_error_for_one_code_rejects_it_with_the_venues_message() -> None:
    v = venue()
    [request] = v.plan(frozenset({"NOPEUSDT"}), frozenset(), ids(4), 1)
    verdict = v.read_ack(Ack(cmd_id=ACK_ERROR, ret=2, msg="Invalid request: invalid stream", seq_id=4), {4: request})
    assert verdict.rejected == (("NOPEUSDT", "error 2: Invalid request: invalid stream"),)
    assert verdict.settled_through == 4 and not verdict.retry_groups


def test_an_invalid_stream_error_for_many_codes_asks_again_in_halves() -> None:
    v = venue()
    [request] = v.plan(frozenset({"AUSDT", "BUSDT", "CUSDT"}), frozenset(), ids(4), 1)
    verdict = v.read_ack(Ack(cmd_id=ACK_ERROR, ret=2, msg="Invalid request: invalid stream", seq_id=4), {4: request})
    assert verdict.rejected == () and verdict.retry_groups == (frozenset({"AUSDT"}), frozenset({"BUSDT", "CUSDT"}))
    too_many = v.read_ack(Ack(cmd_id=ACK_ERROR, ret=4, msg="Too many subscriptions", seq_id=4), {4: request})
    assert {code for code, _ in too_many.rejected} == {"AUSDT", "BUSDT", "CUSDT"}


def test_an_error_for_an_unknown_or_unsubscribe_request_is_a_warning() -> None:
    v = venue()
    [unsub] = v.plan(frozenset(), frozenset({"AUSDT"}), ids(3), 1)
    verdict = v.read_ack(Ack(cmd_id=ACK_ERROR, ret=2, msg="bad", seq_id=3), {3: unsub})
    assert verdict.rejected == () and verdict.warning is not None and "UNSUBSCRIBE" in verdict.warning
    assert v.read_ack(Ack(cmd_id=ACK_ERROR, ret=3, msg="Invalid JSON"), {}).warning is not None


# -- wire, REST and limits -----------------------------------------------------------------------------------


def test_socket_url_pacing_and_socket_age() -> None:
    v = venue()
    assert v.socket_url("wss://stream.binance.com:9443") == "wss://stream.binance.com:9443/stream"
    assert v.socket_url("ws://127.0.0.1:5/") == "ws://127.0.0.1:5/stream"
    assert v.socket_url("ws://127.0.0.1:5/stream") == "ws://127.0.0.1:5/stream"
    # 5 messages/s counting pongs: our paced frames leave one per second to the reader's pong
    assert v.send_interval_s(SubscriptionConfig()) == 0.25
    assert v.max_socket_age_s() == 24 * 3600 - 15 * 60
    assert venue(max_socket_age_s=8.0).max_socket_age_s() == 8.0
    assert v.max_streams == 1024 and v.connect_limit == (290, 300.0) and v.heartbeat(1, 1) is None


@pytest.mark.parametrize(("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (1000, 50), (5000, 250)])
def test_snapshot_url_and_weight_by_limit(limit: int, weight: int) -> None:
    v = venue(snapshot_limit=limit)
    assert v.snapshot_url("https://api.binance.com/", ["BTCUSDT"], "t") == \
        f"https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit={limit}"
    assert depth_weight(limit) == weight and v.snapshot_weight(["BTCUSDT"]) == weight
    assert v.rest_weight_per_min == 5400


def test_used_weight_header_is_read_case_insensitively() -> None:
    headers = email.message.Message()
    headers["x-mbx-used-weight-1m"] = "1234"
    assert venue().used_weight(headers) == 1234
    assert venue().used_weight(email.message.Message()) is None


def test_parse_snapshot_reports_a_bad_body() -> None:
    v = venue()
    good = v.parse_snapshot(b'{"lastUpdateId":5,"bids":[["1","1"]],"asks":[["2","1"]]}', ["BTCUSDT"])
    assert good.error is None and good.books[0].code == "BTCUSDT"
    assert v.parse_snapshot(b'{"code":-1121,"msg":"Invalid symbol."}', ["BTCUSDT"]).error is not None


# -- config -----------------------------------------------------------------------------------------------


def test_binance_defaults_to_the_public_endpoints_and_its_own_pacing_and_depth() -> None:
    cfg = config_from_mapping({"venue": {"dialect": "binance"}}, environ={})
    assert (cfg.venue.url, cfg.venue.snapshot_url) == ("wss://stream.binance.com:9443", "https://api.binance.com")
    assert cfg.subscription.min_interval_s == 0.3 and cfg.book.max_levels == 1000
    assert (cfg.venue.depth_stream, cfg.venue.snapshot_limit) == ("depth@100ms", 1000)
    explicit = config_from_mapping({"venue": {"dialect": "binance", "url": "ws://127.0.0.1:1"},
                                    "book": {"max_levels": 20}}, environ={})
    assert explicit.venue.url == "ws://127.0.0.1:1" and explicit.book.max_levels == 20


def test_the_article_still_needs_its_urls() -> None:
    with pytest.raises(ConfigError, match=r"\[venue\] url: required"):
        config_from_mapping({"venue": {"dialect": "article"}}, environ={})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("depth_stream", "depth5", r"\[venue\] depth_stream: must be one of"),
    ("snapshot_limit", 5001, r"\[venue\] snapshot_limit: out of range"),
    ("max_socket_age_s", -1.0, r"\[venue\] max_socket_age_s: out of range"),
])
def test_binance_keys_are_validated(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"venue": {"dialect": "binance", key: value}}, environ={})


# -- rolling budgets ----------------------------------------------------------------------------------------


def test_rolling_budget_waits_until_enough_has_left_the_window() -> None:
    budget = RollingBudget(100, 60.0)
    budget.spend(50, 0.0)
    budget.spend(50, 10.0)
    assert budget.used(10.0) == 100 and budget.wait_s(1, 10.0) == 50.0  # the first 50 leave at t=60
    assert budget.wait_s(60, 10.0) == 60.0                                # both must leave
    assert budget.wait_s(1, 60.0) == 0.0 and budget.used(60.0) == 50


def test_rolling_budget_adopts_a_larger_figure_from_the_venue() -> None:
    budget = RollingBudget(100, 60.0)
    budget.spend(10, 0.0)
    budget.observe(95, 1.0)
    assert budget.used(1.0) == 95 and budget.wait_s(10, 1.0) > 0
    budget.observe(20, 2.0)  # smaller: ours stands
    assert budget.used(2.0) == 95
    assert RollingBudget(5, 1.0).wait_s(50, 0.0) == 0.0  # more than the limit fits an empty window
    with pytest.raises(ValueError):
        RollingBudget(0, 1.0)


def test_the_shipped_binance_deployment_loads_with_no_token_and_the_public_endpoints() -> None:
    from pathlib import Path

    from depthkeeper.supervisor.service.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "conf" / "binance.toml", environ={})
    assert cfg.venue.dialect == "binance" and not cfg.simulator.enabled and cfg.venue.token is None
    assert cfg.venue.url == "wss://stream.binance.com:9443" and cfg.venue.snapshot_url == "https://api.binance.com"
    assert cfg.book.max_levels >= cfg.venue.snapshot_limit


def test_connection_attempts_past_the_venues_budget_wait() -> None:
    """300 attempts per 5 minutes on Binance; here a venue allowing 2 per minute: the third waits."""
    from loguru import logger

    from depthkeeper.actors.limits import ConnectionLimits

    class TwoPerMinute(BinanceVenue):
        connect_limit = (2, 60.0)

    limits = ConnectionLimits(TwoPerMinute(VenueConfig(dialect="binance")))
    assert limits.connect_wait_s(logger) == 0.0 and limits.connect_wait_s(logger) == 0.0
    wait_s = limits.connect_wait_s(logger)
    assert 59.0 < wait_s <= 60.0 and limits.counters() == {"planned_reconnects": 0, "connects_deferred": 1}
