"""Codecs: encode commands, decode every frame kind, and every malformed-input class."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depthkeeper.actors.venues import alltick as at
from depthkeeper.actors.venues import article as ar
from depthkeeper.actors.core.wire import Ack, DecodeError, DepthPush, DiffEvent, HeartbeatAck, Ignored, MalformedKind


def frame(**fields: object) -> bytes:
    base: dict[str, object] = {"type": "orderbook_diff", "code": "BTCUSDT", "seq": 1042, "side": "bid",
                               "price": "64123.5", "size": "0.25"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_article_encode_sub_unsub() -> None:
    assert json.loads(ar.encode_command("sub", ["BTCUSDT", "ETHUSDT"])) == {
        "cmd_id": 22004, "action": "sub", "code": ["BTCUSDT", "ETHUSDT"]}
    assert json.loads(ar.encode_command("unsub", ("ETCUSDT",)))["action"] == "unsub"
    with pytest.raises(ValueError, match="empty"):
        ar.encode_command("sub", [])
    with pytest.raises(ValueError):
        ar.encode_command("subscribe", ["X"])


def test_article_decode_diff_strings_and_numbers() -> None:
    assert ar.decode(frame()) == DiffEvent("BTCUSDT", 1042, True, 64123.5, 0.25)
    assert ar.decode(frame(side="ask", price=64124, size=0)) == DiffEvent("BTCUSDT", 1042, False, 64124.0, 0.0)
    assert ar.decode(frame(ts=1.5)).sent_at == 1.5
    assert ar.decode(frame().decode()).seq == 1042  # str input too


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{not json", MalformedKind.BAD_JSON),
        (b"[1, 2]", MalformedKind.NOT_OBJECT),
        (frame(seq=...), MalformedKind.MISSING_FIELD),
        (frame(price=...), MalformedKind.MISSING_FIELD),
        (frame(seq="12"), MalformedKind.WRONG_TYPE),
        (frame(code=5), MalformedKind.WRONG_TYPE),
        (frame(price=[1]), MalformedKind.WRONG_TYPE),
        (frame(size=True), MalformedKind.WRONG_TYPE),
        (frame(side="buy"), MalformedKind.BAD_VALUE),
        (frame(size="-1"), MalformedKind.BAD_VALUE),
        (frame(price="0"), MalformedKind.BAD_VALUE),
        (frame(price="abc"), MalformedKind.BAD_VALUE),
        (frame(size="nan"), MalformedKind.BAD_VALUE),
        (frame(price="inf"), MalformedKind.BAD_VALUE),
        (frame(seq=-1), MalformedKind.BAD_VALUE),
        (b'{"type": "hello"}', MalformedKind.UNKNOWN_MESSAGE),
        (b'{"type": "ack", "code": "X"}', MalformedKind.WRONG_TYPE),
    ],
)
def test_article_malformed_frames_become_typed_errors(raw: bytes, kind: MalformedKind) -> None:
    result = ar.decode(raw)
    assert isinstance(result, DecodeError) and result.kind is kind and result.detail


@given(st.binary(max_size=200))
def test_article_decode_never_raises(raw: bytes) -> None:
    assert ar.decode(raw) is not None


def test_article_ack_and_snapshot() -> None:
    ack = ar.decode(b'{"type":"ack","cmd_id":22004,"action":"sub","code":["BTCUSDT"],"rejected":["BTC-USDT"],"ret":200}')
    assert ack == Ack(22004, 200, "sub", ("BTCUSDT",), ("BTC-USDT",))
    snap = ar.decode_snapshot(b'{"code":"BTCUSDT","seq":1040,"bids":[["64123.5","0.25"]],"asks":[[64124,1.1]]}', "BTCUSDT")
    assert snap.seq == 1040 and snap.bids == ((64123.5, 0.25),) and snap.asks == ((64124.0, 1.1),)
    assert isinstance(ar.decode_snapshot(b'{"code":"ETHUSDT","seq":1,"bids":[],"asks":[]}', "BTCUSDT"), DecodeError)
    assert ar.decode_snapshot(b'{"code":"X","seq":1,"bids":[["1"]],"asks":[]}', "X").kind is MalformedKind.BAD_VALUE
    assert ar.decode_snapshot(b"nope", "X").kind is MalformedKind.BAD_JSON
    assert ar.decode_snapshot(b"[]", "X").kind is MalformedKind.NOT_OBJECT


# --- alltick: frames shaped like the documentation's examples --------------------------

DOC_PUSH = ('{"cmd_id": 22999, "data": {"code": "BTCUSDT", "seq": "1605509068000001", '
            '"tick_time": "1605509068000", "bids": [{"price": "67001.5", "volume": "0.812"}], '
            '"asks": [{"price": "67001.6", "volume": "1.04"}]}}')


def test_alltick_push_string_seq_ms_tick_time() -> None:
    push = at.decode(DOC_PUSH)
    assert push == DepthPush("BTCUSDT", 1605509068000001, 1605509068.0, ((67001.5, 0.812),), ((67001.6, 1.04),))


def test_alltick_push_int_seq_and_seconds_tick_time() -> None:
    raw = DOC_PUSH.replace('"1605509068000001"', "1605509068000001").replace('"1605509068000"', "1605509068")
    push = at.decode(raw)
    assert isinstance(push, DepthPush) and push.seq == 1605509068000001 and push.tick_time_s == 1605509068.0


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("{", MalformedKind.BAD_JSON),
        ('"x"', MalformedKind.NOT_OBJECT),
        ('{"data": {}}', MalformedKind.MISSING_FIELD),
        ('{"cmd_id": 22999}', MalformedKind.MISSING_FIELD),
        ('{"cmd_id": 22999, "data": {"seq": 1, "tick_time": 1, "bids": [], "asks": []}}', MalformedKind.MISSING_FIELD),
        ('{"cmd_id": 22999, "data": {"code": "X", "seq": "1a", "tick_time": 1, "bids": [], "asks": []}}',
         MalformedKind.WRONG_TYPE),
        ('{"cmd_id": 22999, "data": {"code": "X", "seq": 1, "tick_time": 1, "bids": [{"price": "1"}], "asks": []}}',
         MalformedKind.BAD_VALUE),
        ('{"cmd_id": 22003}', MalformedKind.MISSING_FIELD),
    ],
)
def test_alltick_malformed(raw: str, kind: MalformedKind) -> None:
    result = at.decode(raw)
    assert isinstance(result, DecodeError) and result.kind is kind


def test_alltick_responses() -> None:
    assert at.decode('{"cmd_id":22001,"seq_id":1,"trace":"t","ret":200,"msg":"ok","data":{}}') == HeartbeatAck()
    ack = at.decode('{"cmd_id":22003,"seq_id":7,"trace":"abc","ret":606,"msg":"too many requests","data":{}}')
    assert ack == Ack(22003, 606, "too many requests", seq_id=7, trace="abc")
    assert isinstance(at.decode('{"cmd_id":22998,"data":{}}'), Ignored)


def test_alltick_encoders() -> None:
    sub = json.loads(at.encode_subscribe(["BTCUSDT", "ETHUSDT"], 5, seq_id=3, trace="t3"))
    assert sub == {"cmd_id": 22002, "seq_id": 3, "trace": "t3", "data": {"symbol_list": [
        {"code": "BTCUSDT", "depth_level": 5}, {"code": "ETHUSDT", "depth_level": 5}]}}
    assert json.loads(at.encode_cancel(4, "t4"))["data"] == {"cancel_type": 1}
    assert json.loads(at.encode_heartbeat(5, "t5")) == {"cmd_id": 22000, "seq_id": 5, "trace": "t5", "data": {}}
    assert json.loads(unquote(at.encode_depth_query(["BTCUSDT"], "q")))["data"]["symbol_list"] == [{"code": "BTCUSDT"}]
    with pytest.raises(ValueError):
        at.encode_subscribe([], 5, 1, "t")
    with pytest.raises(ValueError):
        at.encode_subscribe(["X"], 6, 1, "t")
    with pytest.raises(ValueError):
        at.encode_heartbeat(1, "t" * 65)


def test_alltick_rest_depth_tick() -> None:
    body = ('{"ret":200,"msg":"ok","trace":"q","data":{"tick_list":[{"code":"BTCUSDT","seq":"27","tick_time":"1677830357227",'
            '"bids":[{"price":"1.5","volume":"2"}],"asks":[{"price":"1.6","volume":"3"}]}]}}')
    rows = at.decode_depth_tick(body)
    assert isinstance(rows, tuple) and rows[0].seq == 27 and rows[0].tick_time_s == pytest.approx(1677830357.227)
    assert at.decode_depth_tick('{"ret":401,"msg":"token invalid"}') == Ack(0, 401, "token invalid")
    assert isinstance(at.decode_depth_tick("x"), DecodeError)
    assert isinstance(at.decode_depth_tick('{"ret":200,"data":{}}'), DecodeError)
    assert isinstance(at.decode_depth_tick('{"ret":200,"data":{"tick_list":[5]}}'), DecodeError)


@given(st.text(max_size=200))
def test_alltick_decode_never_raises(raw: str) -> None:
    assert at.decode(raw) is not None
