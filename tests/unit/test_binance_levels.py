"""The binance codec's typed path (one msgspec decode, the level strings read as floats in C) must
agree with the general path (orjson, then ``float`` per value) on everything it accepts, and leave to
it everything else."""

from __future__ import annotations

import json
import math
import random

import pytest

from depthkeeper.actors.core.wire import DecodeError, RangeDiff
from depthkeeper.actors.venues.binance import _general, _general_snapshot, _typed_event, decode, decode_snapshot

BASE = {"e": "depthUpdate", "E": 1723161255123, "s": "BTCUSDT", "U": 1, "u": 2}


def frame(bids: list, asks: list, *, wrapped: bool = True) -> bytes:
    data = {**BASE, "b": bids, "a": asks, "x": 1.5}
    # the standard library's encoder: it writes any integer (orjson's stops at 64 bits)
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data} if wrapped else data,
                      separators=(",", ":")).encode()


def both_paths(raw: bytes) -> tuple[RangeDiff | None, object]:
    """(the typed path's event or None, the general path's verdict on the same frame)."""
    return _typed_event(raw), _general(raw)


ODD_ROWS = [
    [["1.5,2.5"]],                      # a comma inside one string: one row of one value
    [["1.5,2.5", ""]],
    [["1.5", "2.5", "3.5"]],            # three values
    [["1.5"]],                          # one value
    [["[1.5", "2.5]"]],                 # brackets inside strings
    [["1.5", "2.5]"], ["[3.5", "4.5"]],
    [[1.5, "2.5"]],                     # a number, not a string
    [[1.5, 2.5]],
    [["1", "2.5"]],                     # no decimal point
    [["1e5", "2.5"]],
    [["-1.5", "2.5"]],                  # negative price
    [["1.5", "-2.5"]],                  # negative size
    [["0.0", "2.5"]],                   # zero price
    [["0.00000000", "2.5"]],
    [["00.5", "2.5"]],                  # not a JSON number (float() takes it)
    [["1.5", "2.5"], "1.5"],            # a row that is a string
    [["1.5", "2.5"], {"1.5": "2.5"}],   # a row that is an object
    [["1.5", "2.5"], "12"],             # a two-character string row
    [["nan", "1.0"]],
    [["inf", "1.0"]],
    [["9" * 400 + ".0", "1.0"]],        # infinite as a double
    [[" 1.5", "2.5"]],                  # whitespace (float() takes it)
    [["1_0.5", "2.5"]],                 # an underscore (float() takes it)
    [["\u0661.5", "2.5"]],              # an Arabic-Indic digit (float() takes it)
    [['1.5"', "2.5"]],                  # a quote inside a string
    [["1.5\\", "2.5"]],
    [["1.5", None]],
    [["1.5", True]],
    [[["1.5", "2.5"]]],                 # nested
    [["1.5.5", "2.5"]],
    [["1..5", "2"]],
    [[".5", "2.5"]],
    [["5.", "2.5"]],
    [["1.5e3", "2.5E-2"]],              # exponents (both paths take them)
    [["1" * 30 + ".5", "2.5"]],         # more digits than a double holds
    [["\\u0031.5", "2.5"]],             # an escaped digit
    [[10 ** 30, 1]],                    # integers beyond 64 bits
    [["1.5", "-0.0"]],                  # a negative zero size
    [[0, "1.0"]],
    [],
]


@pytest.mark.parametrize("rows", ODD_ROWS)
def test_odd_rows_are_left_to_the_general_path_or_read_exactly_as_it_reads_them(rows: list) -> None:
    for bids, asks in ((rows, []), ([], rows), (rows, [["2.5", "1.0"]])):
        for raw in (frame(bids, asks), frame(bids, asks).decode()):
            typed, general = both_paths(raw)  # type: ignore[arg-type]
            if typed is not None:
                assert typed == general
                assert all(type(x) is float for side in (typed.bids, typed.asks) for row in side for x in row)
            assert decode(raw) == general


def decimal_text(rng: random.Random) -> str:
    """A price or size as a venue may write it: plain decimals mostly, some long or in exponent form."""
    kind = rng.random()
    if kind < 0.6:
        return f"{rng.randrange(0, 10 ** rng.randrange(1, 12))}.{rng.randrange(10 ** 8):08d}"
    if kind < 0.8:  # more significant digits than a double holds: the rounding must be float()'s
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(17, 40)))
        return f"{rng.randrange(1, 10 ** 6)}.{digits}"
    if kind < 0.9:
        return repr(rng.uniform(1e-8, 1e9))
    return f"{rng.randrange(1, 10 ** 17)}e{rng.randrange(-320, 300)}"


def test_decimals_parse_to_the_same_floats_as_float() -> None:
    rng = random.Random(7)
    typed_events = 0
    for _ in range(3000):
        sides = [[[decimal_text(rng), decimal_text(rng)] for _row in range(rng.randrange(0, 8))] for _side in range(2)]
        raw = frame(*sides, wrapped=rng.random() < 0.8)
        typed, general = both_paths(raw)
        assert typed is None or typed == general
        typed_events += typed is not None
        assert decode(raw) == general
        if isinstance(general, RangeDiff):
            for side, rows in ((general.bids, sides[0]), (general.asks, sides[1])):
                assert side == tuple((float(p), float(q)) for p, q in rows)
    assert typed_events > 2000  # the wrapped frames (the unwrapped are the general path's)


def test_plain_venue_frames_take_the_typed_path() -> None:
    rows = [[f"{100 + i}.{i:08d}", f"{i}.50000000"] for i in range(50)]
    typed = _typed_event(frame(rows, rows[::-1]))
    assert isinstance(typed, RangeDiff)
    assert typed.bids == tuple((float(p), float(q)) for p, q in rows) and typed.sent_at == 1.5
    assert typed.event_time == BASE["E"] / 1000.0 and (typed.first, typed.seq, typed.code) == (1, 2, "BTCUSDT")


D = b'"e":"depthUpdate","s":"X","U":1,"u":2,"b":[],"a":[]'


@pytest.mark.parametrize("text", [
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"a":[["2.5","1.0"]],"b":[["1.5","1.0"]]}}',  # a before b
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]],"b":[]}}',
    b'{"data":{"e":"depthUpdate","b":"x","s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]], "a":[["2.5","1.0"]]}}',  # a space
    b'{"data":{"e":"trade","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":2,"u":1,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}',  # cut
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":"1","u":2,"b":[],"a":[]}}',  # an id as a string
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1.0,"u":2,"b":[],"a":[]}}',  # an id as a float
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":true,"u":2,"b":[],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":0,"u":2,"b":[],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":' + b"9" * 25 + b',"b":[],"a":[]}}',  # beyond 64 bits
    b'{"data":{"e":"depthUpdate","E":"1","s":"X","U":1,"u":2,"b":[],"a":[],"x":3}}',  # E a string, x an int
    b'{"data":{"e":"depthUpdate","E":' + b"9" * 25 + b',"s":"X","U":1,"u":2,"b":[],"a":[],"x":"3.5"}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"","U":1,"u":2,"b":[],"a":[]}}',  # an empty symbol
    b'{"data":{"e":"depthUpdate","E":1,"s":7,"U":1,"u":2,"b":[],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]},"data":7}',  # a repeated data
    b'{"data":7,"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X\\ud800","U":1,"u":2,"b":[],"a":[]}}',  # a lone surrogate
    b'{"data":{"e":"depthUpdate","E":1,"s":"X\xff","U":1,"u":2,"b":[],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}} trailing',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]},"z":' + b"9" * 25 + b'}',
    b'{"id":1,"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}',
    b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}',  # unwrapped: the general path's
    b'{"result":null,"id":3}',
    b'[]',
    b'',
    # found by a fuzz of both paths (issue 16 review): values the typed path must not skip or keep
    b'{"data":{' + D + b',"x":18446744073709551616}}',          # beyond 64 bits: orjson's float
    b'{"data":{' + D + b',"x":-9223372036854775809}}',
    b'{"data":{' + D + b',"E":-9223372036854775809}}',
    b'{"data":{' + D + b',"E":-1' + b"0" * 309 + b'}}',         # E / 1000 would overflow
    b'{"data":{' + D + b',"z":1e400}}',                          # unknown keys: orjson refuses the value
    b'{"data":{' + D + b',"z":1' + b"0" * 400 + b'}}',
    b'{"stream":1e400,"data":{' + D + b'}}',
    b'{"stream":"\xff","data":{' + D + b'}}',                     # invalid UTF-8 where nothing is read
    b'{"data":{' + D + b',"\xff":1}}',
    b'{"stream":"\xed\xa0\x80","data":{' + D + b'}}',
    b'{"data":{' + D + b',"z":' + b"[" * 1000 + b"]" * 1000 + b'}}',  # nesting the typed decode refuses
    b'{"data":{' + D + b',"z":' + b"[" * 1030 + b"]" * 1030 + b'}}',
    b'{"data":{' + D + b',"stream":7}}',
    b'{"stream":7,"data":{' + D + b'}}',
    b'{"e":{}}',                                                  # an unhashable event type
    b'{"data":{"e":[]}}',
])
def test_crafted_frames_never_make_the_typed_path_disagree_or_raise(text: bytes) -> None:
    """Whatever a frame does with keys, types, escapes or huge numbers, ``decode`` gives the general
    path's verdict (never an event with strings, a coerced id or a zero price, never an exception)."""
    general = _general(text)
    assert decode(text) == general
    typed = _typed_event(text)
    assert typed is None or typed == general


@pytest.mark.parametrize("text", [
    '{"data":{"e":"depthUpdate","s":"X","U":1,"u":2,"b":[],"a":[],"z":"\ud800"}}',  # a str with a lone surrogate
    '\udcff',
])
def test_str_frames_with_lone_surrogates_are_judged_by_the_general_path(text: str) -> None:
    assert _typed_event(text) is None
    assert decode(text) == _general(text)
    assert decode_snapshot(text, "X") == _general_snapshot(text, "X")


def test_a_negative_zero_size_reads_as_a_zero_size() -> None:
    """The one value the two paths read as different doubles: "-0" is +0.0 typed, -0.0 by float();
    equal, and a size of zero deletes the level either way."""
    typed = _typed_event(frame([["1.5", "-0"]], []))
    assert typed is not None and typed == _general(frame([["1.5", "-0"]], []))
    assert typed.bids[0][1] == 0.0


def test_a_frame_the_typed_path_refuses_still_decodes_or_fails_as_before() -> None:
    good_text, bad_text = frame([[" 1.5", "2.5"]] * 120, [["3.5", "1e1"]]), frame([["1.5,2.5"]] * 160, [])
    assert _typed_event(good_text) is None and _typed_event(bad_text) is None
    ok = decode(good_text)
    assert isinstance(ok, RangeDiff)
    assert ok.bids == ((1.5, 2.5),) * 120 and ok.asks == ((3.5, 10.0),)
    assert isinstance(decode(bad_text), DecodeError)


@pytest.mark.parametrize("body", [
    b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}',
    b'{"lastUpdateId":0,"bids":[],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[[4.5,1]],"asks":[["5e1","0"]]}',
    b'{"lastUpdateId":5,"bids":[[" 4.5","1"]],"asks":[]}',            # float() takes it, JSON does not
    b'{"lastUpdateId":5,"bids":[["4.5","1"]],"asks":[],"bids":[]}',    # a repeated key: the last one
    b'{"lastUpdateId":-1,"bids":[],"asks":[]}',
    b'{"lastUpdateId":"5","bids":[],"asks":[]}',
    b'{"lastUpdateId":5.0,"bids":[],"asks":[]}',
    b'{"lastUpdateId":' + b"9" * 25 + b',"bids":[],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[["0","1"]],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[["1","-1"]],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[["1","nan"]],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[["1"]],"asks":[]}',
    b'{"lastUpdateId":5,"bids":[],"asks":null}',
    b'{"lastUpdateId":5,"bids":[]}',
    b'{"code":-1121,"msg":"Invalid symbol."}',
    b'[]',
    b'nope',
    b'{"lastUpdateId":5,"bids":[["1","2"]],"asks":[],"z":1e400}',
    b'{"lastUpdateId":5,"bids":[["1","2"]],"asks":[],"z":"\xff"}',
    b'{"lastUpdateId":5,"bids":[["1","2"]],"asks":[],"z":' + b"[" * 1000 + b"]" * 1000 + b'}',
    b'{"lastUpdateId":5,"bids":[["1","2"]],"asks":[],"E":1}',        # a key the typed path does not name
])
def test_snapshots_read_by_the_typed_path_as_the_general_path_reads_them(body: bytes) -> None:
    assert decode_snapshot(body, "BTCUSDT") == _general_snapshot(body, "BTCUSDT")


def test_a_deep_snapshot_parses_to_the_same_floats_as_float() -> None:
    rng = random.Random(3)
    rows = [[decimal_text(rng), decimal_text(rng)] for _ in range(5000)]
    rows = [row for row in rows if 0 < float(row[0]) < math.inf and float(row[1]) < math.inf]
    body = json.dumps({"lastUpdateId": 77, "bids": rows, "asks": rows[::-1]}).encode()
    snap = decode_snapshot(body, "X")
    assert snap == _general_snapshot(body, "X")
    assert snap.bids == tuple((float(p), float(q)) for p, q in rows)  # type: ignore[union-attr]
