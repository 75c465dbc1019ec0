"""The binance codec's numeric frame path (core/decimals.py: the level arrays' quotes deleted in the
frame's text, one orjson parse) must agree with the general path on everything it accepts, and leave
to it everything else."""

from __future__ import annotations

import random

import orjson
import pytest

from depthkeeper.actors.core.wire import DecodeError, RangeDiff
from depthkeeper.actors.venues.binance import NUMERIC_FROM_BYTES, _numeric_event, decode

BASE = {"e": "depthUpdate", "E": 1723161255123, "s": "BTCUSDT", "U": 1, "u": 2}


def frame(bids: list, asks: list, *, wrapped: bool = True) -> bytes:
    data = {**BASE, "b": bids, "a": asks, "x": 1.5}
    return orjson.dumps({"stream": "btcusdt@depth@100ms", "data": data} if wrapped else data)


def both_paths(raw: bytes) -> tuple[RangeDiff | None, object]:
    """(the numeric path's event or None, the general path's verdict on the same frame)."""
    return _numeric_event(raw), decode(raw.decode())  # a str frame never takes the numeric path


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
    [],
]


@pytest.mark.parametrize("rows", ODD_ROWS)
def test_odd_rows_are_left_to_the_general_path_or_read_exactly_as_it_reads_them(rows: list) -> None:
    for bids, asks in ((rows, []), ([], rows), (rows, [["2.5", "1.0"]])):
        numeric, general = both_paths(frame(bids, asks))
        if numeric is not None:
            assert numeric == general
            assert all(type(x) is float for side in (numeric.bids, numeric.asks) for row in side for x in row)


def test_plain_decimals_parse_to_the_same_floats_as_float() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        sides = []
        for _side in range(2):
            rows = []
            for _row in range(rng.randrange(0, 8)):
                price = f"{rng.randrange(1, 10 ** rng.randrange(1, 12))}.{rng.randrange(10 ** 8):08d}"
                size = f"{rng.randrange(0, 10 ** rng.randrange(1, 9))}.{rng.randrange(10 ** 8):08d}"
                rows.append([price, size])
            sides.append(rows)
        raw = frame(*sides, wrapped=rng.random() < 0.5)
        numeric, general = both_paths(raw)
        assert numeric is not None and numeric == general
        assert decode(raw) == general
        assert len(raw) < NUMERIC_FROM_BYTES or decode(raw) == numeric


@pytest.mark.parametrize("text", [
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"a":[["2.5","1.0"]],"b":[["1.5","1.0"]]}}',  # a before b
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]],"b":[]}}',
    b'{"data":{"e":"depthUpdate","b":"x","s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]],"a":[]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]], "a":[["2.5","1.0"]]}}',  # a space
    b'{"data":{"e":"trade","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":2,"u":1,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}}',
    b'{"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.5","1.0"]],"a":[["2.5","1.0"]]}',  # cut
])
def test_frames_the_numeric_path_cannot_read_exactly_are_left_to_the_general_path(text: bytes) -> None:
    assert _numeric_event(text) is None
    assert decode(text) == decode(text.decode())


def test_a_frame_the_numeric_path_refuses_still_decodes_or_fails_as_before() -> None:
    good_text, bad_text = frame([[" 1.5", "2.5"]] * 120, [["3.5", "1e1"]]), frame([["1.5,2.5"]] * 160, [])
    assert min(len(good_text), len(bad_text)) >= NUMERIC_FROM_BYTES  # both are offered to the numeric path
    assert _numeric_event(good_text) is None and _numeric_event(bad_text) is None
    ok = decode(good_text)
    assert isinstance(ok, RangeDiff)
    assert ok.bids == ((1.5, 2.5),) * 120 and ok.asks == ((3.5, 10.0),)
    assert isinstance(decode(bad_text), DecodeError)


ROWS = ",".join(f'["{100 + i}.5","1.0"]' for i in range(96)).encode()
HEAD = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,'


@pytest.mark.parametrize("text", [
    HEAD + b'"b":[' + ROWS + b'],"a":[["200.0","1.0"]],"b" :[["3.0","1.0"]]}}',       # a repeat spelled otherwise
    HEAD + b'"b":[' + ROWS + b'],"a":[["200.0","1.0"]],"\\u0062":[["3.0","1.0"]]}}',  # an escaped repeat
    HEAD + b'"b":[' + ROWS + b'],"a":[["200.0","1.0"]],"\\u0061":[[0,1]]}}',
    HEAD + b'"b":[' + ROWS + b'],"a":[["200.0","1.0"]],"b" :7}}',                      # a repeat that is no array
    HEAD + b'"q":{"b":[' + ROWS + b'],"a":[["200.0","1.0"]]}}}',                       # the arrays nested
    HEAD + b'"\\"b":[' + ROWS + b'],"a":[["200.0","1.0"]]}}',                          # an escaped key
    b'{"data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2},"b":[' + ROWS + b'],"a":[]}',  # beside data
    HEAD + b'"b":[["0.' + b"0" * 400 + b'1","1.0"],' + ROWS + b'],"a":[]}}',           # a price that rounds to 0
    b'{"id":1,"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[' + ROWS + b'],"a":[]}',  # a reply's id
])
def test_crafted_frames_never_make_the_numeric_path_disagree_or_raise(text: bytes) -> None:
    """Found in review: whatever a frame does with keys, nesting or tiny prices, ``decode`` gives the
    general path's verdict (never an event with strings or a zero price, never an exception)."""
    assert len(text) >= NUMERIC_FROM_BYTES
    general = decode(text.decode())
    assert decode(text) == general
    numeric = _numeric_event(text)
    assert numeric is None or numeric == general
