"""The binance codec's bulk level parser (orjson on the quote-stripped sides) must agree with the
per-level ``float`` path on everything it accepts, and refuse what that path would judge otherwise."""

from __future__ import annotations

import random

import orjson
import pytest

from depthkeeper.actors.core.wire import DecodeError, RangeDiff
from depthkeeper.actors.venues.binance import _bulk_levels, _fast_levels, decode


def per_level(bids: list, asks: list) -> tuple | None:
    try:
        b, a = _fast_levels(bids), _fast_levels(asks)
    except (ValueError, TypeError):
        return None
    return None if b is None or a is None else (b, a)


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
def test_odd_rows_are_refused_or_read_exactly_as_the_per_level_path(rows: list) -> None:
    for bids, asks in ((rows, []), ([], rows), (rows, [["2.5", "1.0"]])):
        bulk = _bulk_levels(bids, asks)
        if bulk is not None:
            assert bulk == per_level(bids, asks)
            assert all(type(x) is float for side in bulk for row in side for x in row)


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
        bulk = _bulk_levels(*sides)
        assert bulk is not None
        assert bulk == per_level(*sides)


def test_a_frame_the_bulk_path_refuses_still_decodes_or_fails_as_before() -> None:
    base = {"e": "depthUpdate", "E": 1723161255123, "s": "BTCUSDT", "U": 1, "u": 2}
    ok = decode(orjson.dumps({**base, "b": [[" 1.5", "2.5"]], "a": [["3.5", "1e1"]]}))
    assert isinstance(ok, RangeDiff)
    assert ok.bids == ((1.5, 2.5),) and ok.asks == ((3.5, 10.0),)
    bad = decode(orjson.dumps({**base, "b": [["1.5,2.5"]], "a": []}))
    assert isinstance(bad, DecodeError)
