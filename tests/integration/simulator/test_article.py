"""The article dialect, rule by rule from protocols/article.md."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import websocket

from depthkeeper.simulator import SimHandle

DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def contiguous(diffs: list[dict[str, Any]]) -> bool:
    seqs = [d["seq"] for d in diffs]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def rebuild(snapshot: dict[str, Any], diffs: list[dict[str, Any]]) -> dict[str, Any]:
    """An independent article client: snapshot + buffered diffs bridged on seq."""
    bids = {Decimal(p): Decimal(s) for p, s in snapshot["bids"]}
    asks = {Decimal(p): Decimal(s) for p, s in snapshot["asks"]}
    pending = [d for d in diffs if d["seq"] > snapshot["seq"]]
    assert pending and pending[0]["seq"] == snapshot["seq"] + 1, "buffer does not bridge the snapshot"
    assert contiguous(pending)
    for diff in pending:
        book = bids if diff["side"] == "bid" else asks
        size = Decimal(diff["size"])
        if size:
            book[Decimal(diff["price"])] = size
        else:
            del book[Decimal(diff["price"])]
    return {
        "seq": pending[-1]["seq"],
        "bids": sorted(bids.items(), reverse=True),
        "asks": sorted(asks.items()),
    }


def as_decimal_book(book: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": book["seq"],
        "bids": [(Decimal(p), Decimal(s)) for p, s in book["bids"]],
        "asks": [(Decimal(p), Decimal(s)) for p, s in book["asks"]],
    }


def test_sub_ack_lists_valid_codes_and_rejects_malformed_or_unknown(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    client.sub("BTCUSDT", "BTC-USDT", "NOSUCH1")
    ack = client.wait_for(lambda c: c.acks())[0]
    assert ack == {
        "type": "ack", "cmd_id": 22004, "action": "sub", "code": ["BTCUSDT"], "rejected": ["BTC-USDT", "NOSUCH1"],
        "ret": 200,
    }
    client.wait_for(lambda c: len(c.diffs()) >= 20)
    assert {d["code"] for d in client.diffs()} == {"BTCUSDT"}
    assert list(article_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    assert article_sim.counters()["rejected_codes"] == 2


def test_diff_frames_have_the_documented_shape(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    client.sub("ETHUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 50)
    for diff in client.diffs():
        assert set(diff) == {"type", "code", "seq", "side", "price", "size"}
        assert diff["side"] in ("bid", "ask") and isinstance(diff["seq"], int)
        assert isinstance(diff["price"], str) and DECIMAL.match(diff["price"])
        assert isinstance(diff["size"], str) and DECIMAL.match(diff["size"])
    assert any(Decimal(d["size"]) == 0 for d in client.diffs()), "deletes are size 0"


def test_seq_is_contiguous_per_symbol_and_shared_by_connections(article_sim: SimHandle, connect: Callable) -> None:
    first, second = connect(article_sim.url), connect(article_sim.url)
    for client in (first, second):
        client.sub("BTCUSDT", "ETHUSDT")
    for client in (first, second):
        client.wait_for(lambda c: min(len(c.diffs("BTCUSDT")), len(c.diffs("ETHUSDT"))) >= 150)
    for code in ("BTCUSDT", "ETHUSDT"):
        a, b = first.diffs(code), second.diffs(code)
        assert contiguous(a) and contiguous(b)
        common = {d["seq"]: d for d in a}.keys() & {d["seq"]: d for d in b}.keys()
        assert len(common) > 100
        by_seq_a, by_seq_b = {d["seq"]: d for d in a}, {d["seq"]: d for d in b}
        assert all(by_seq_a[s] == by_seq_b[s] for s in common)


def test_a_late_subscriber_gets_diffs_from_the_next_change_on(
    article_sim: SimHandle, connect: Callable, wait_until: Callable
) -> None:
    wait_until(lambda: article_sim.truth("SOLUSDT")["seq"] >= 20)  # generation runs with nobody subscribed
    article_sim.freeze()
    seq_at_sub = article_sim.truth("SOLUSDT")["seq"]
    client = connect(article_sim.url)
    client.sub("SOLUSDT")
    client.wait_for(lambda c: c.acks())
    article_sim.unfreeze()
    client.wait_for(lambda c: c.diffs("SOLUSDT"))
    assert client.diffs("SOLUSDT")[0]["seq"] == seq_at_sub + 1


def test_unsub_stops_the_stream_and_is_acked(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    client.sub("BTCUSDT", "ETHUSDT")
    client.wait_for(lambda c: len(c.diffs("ETHUSDT")) >= 10)
    client.unsub("ETHUSDT")
    client.wait_for(lambda c: len(c.acks()) == 2)
    frames = client.snapshot()
    ack_index = next(i for i, f in enumerate(frames) if f.json.get("type") == "ack" and f.json["action"] == "unsub")
    client.wait_for(lambda c: len(c.snapshot()) > ack_index + 30)
    after = [f.json for f in client.snapshot()[ack_index + 1:]]
    assert after and all(m["code"] == "BTCUSDT" for m in after)
    assert list(article_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]


def test_duplicates_empty_lists_and_stray_unsubs_are_counted(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    client.sub("BTCUSDT")
    client.sub("BTCUSDT", "ETHUSDT")
    client.sub()
    client.unsub("SOLUSDT")
    client.wait_for(lambda c: len(c.acks()) == 4)
    acks = client.acks()
    assert acks[2]["ret"] == 400 and acks[2]["code"] == []
    counters = article_sim.counters()
    assert counters["duplicate_subscribes"] == 1
    assert counters["empty_lists"] == 1
    assert counters["unsubscribes_not_subscribed"] == 1
    assert list(article_sim.subscriptions().values()) == [frozenset({"BTCUSDT", "ETHUSDT"})]


def test_invalid_commands_get_a_400_ack_and_are_logged(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    client.send("not json")
    client.send({"cmd_id": 22002, "action": "sub", "code": ["BTCUSDT"]})
    client.send({"cmd_id": 22004, "action": "subscribe", "code": ["BTCUSDT"]})
    client.send({"cmd_id": 22004, "action": "sub", "code": "BTCUSDT"})
    client.wait_for(lambda c: len(c.acks()) == 4)
    assert [a["ret"] for a in client.acks()] == [400, 400, 400, 400]
    assert article_sim.counters()["invalid_commands"] == 4
    assert list(article_sim.subscriptions().values()) == [frozenset()]
    log = article_sim.command_log()
    assert [r.cmd_id for r in log] == [None, 22002, 22004, 22004]
    assert log[0].raw == "not json"


def test_command_log_has_monotonic_times_and_codes(article_sim: SimHandle, connect: Callable) -> None:
    client = connect(article_sim.url)
    before = time.monotonic()
    client.sub("BTCUSDT", "ETHUSDT")
    client.unsub("ETHUSDT")
    client.wait_for(lambda c: len(c.acks()) == 2)
    (conn_id,) = article_sim.subscriptions()
    log = article_sim.command_log(conn_id)
    assert [(r.action, r.codes) for r in log] == [("sub", ("BTCUSDT", "ETHUSDT")), ("unsub", ("ETHUSDT",))]
    assert before <= log[0].monotonic_s <= log[1].monotonic_s <= time.monotonic()
    assert article_sim.counters()["commands_received"][conn_id] == 2


def test_snapshot_plus_buffered_diffs_rebuilds_the_truth(
    article_sim: SimHandle, connect: Callable, http: Callable
) -> None:
    client = connect(article_sim.url)
    client.sub("BTCUSDT")
    client.wait_for(lambda c: c.acks())
    status, snapshot = http("GET", f"{article_sim.rest_url}?code=BTCUSDT")
    assert status == 200 and set(snapshot) == {"code", "seq", "bids", "asks"}
    client.wait_for(lambda c: len(c.diffs("BTCUSDT")) >= 100)
    article_sim.freeze()
    truth = article_sim.truth("BTCUSDT")
    client.wait_for(lambda c: c.diffs("BTCUSDT")[-1]["seq"] == truth["seq"])
    assert rebuild(snapshot, client.diffs("BTCUSDT")) == as_decimal_book(truth)
    assert http("GET", f"{article_sim.rest_url}?code=BTCUSDT") == (200, truth)


def test_rest_snapshot_is_best_first_and_unknown_codes_404(article_sim: SimHandle, http: Callable) -> None:
    status, book = http("GET", f"{article_sim.rest_url}?code=ETHUSDT")
    assert status == 200 and book["code"] == "ETHUSDT"
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(isinstance(p, str) and isinstance(s, str) for p, s in book["bids"] + book["asks"])
    assert http("GET", f"{article_sim.rest_url}?code=NOPE") == (404, {"error": "unknown code"})
    assert http("GET", article_sim.rest_url)[0] == 400
    assert article_sim.counters()["rest_requests"] == 3


def test_without_acks_subscriptions_still_work(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(send_acks=False, rate_per_symbol=400.0)
    client = connect(sim.url)
    client.sub("BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 5)
    assert client.acks() == []


def test_max_symbols_per_connection_ignores_extras_silently(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(max_symbols_per_connection=1, rate_per_symbol=400.0)
    client = connect(sim.url)
    client.sub("BTCUSDT", "ETHUSDT")
    ack = client.wait_for(lambda c: c.acks())[0]
    assert ack["ret"] == 200 and ack["rejected"] == []
    assert list(sim.subscriptions().values()) == [frozenset({"BTCUSDT"})]
    assert sim.counters()["ignored_over_limit"] == 1


def test_token_is_checked_at_the_handshake(start_sim: Callable, connect: Callable, http: Callable) -> None:
    sim = start_sim(token="s3cret")
    for url in (sim.url, f"{sim.url}?token=wrong"):
        with pytest.raises(websocket.WebSocketBadStatusException) as excinfo:
            websocket.create_connection(url, timeout=5)
        assert excinfo.value.status_code == 401
    client = connect(f"{sim.url}?token=s3cret")
    client.sub("BTCUSDT")
    client.wait_for(lambda c: c.acks())
    assert http("GET", f"{sim.rest_url}?code=BTCUSDT")[0] == 200, "the article REST takes no token"
    assert sim.counters()["handshakes_rejected_token"] == 2


def test_wrong_websocket_path_is_404(article_sim: SimHandle) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as excinfo:
        websocket.create_connection(article_sim.url.replace("quote-b-ws-api", "ws"), timeout=5)
    assert excinfo.value.status_code == 404


def test_stamp_adds_a_wall_clock_ts(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(stamp=True, rate_per_symbol=400.0)
    client = connect(sim.url)
    client.sub("BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 5)
    for diff in client.diffs():
        assert isinstance(diff["ts"], float) and abs(diff["ts"] - time.time()) < 5
