"""Level arrays of decimal strings (``[["price","size"], ...]``), read exactly and fast.

Binance (and most venues that send JSON) write each price and size as a decimal string, so that
no digit is lost in a JSON number. Reading them is most of a deep event's decode: ``float(str)``
per value. Two readers, each giving the same floats (``float`` of the text):

- ``plain_levels``: a parsed array of string pairs, ``float`` per value, None for anything odd;
- ``checked_levels``: the same for any JSON value (numbers too), the path that judges odd input.

A venue's hot path may read its frames quicker still, in C (binance.py: a typed msgspec decode);
these are then the general path that judges whatever the quick one leaves.
"""

from __future__ import annotations

from typing import Any

from depthkeeper.actors.core.wire import Levels, to_number

_INF = float("inf")


def plain_levels(rows: Any) -> Levels | None:
    """``[["p","q"], ...]`` of strings -> levels; None for anything the checked path must judge
    (raises ValueError for a row that is not a pair: the caller treats it as None)."""
    out = []
    for row in rows:
        if type(row) is not list:
            return None
        p, q = row  # ValueError unless a pair
        if type(p) is not str or type(q) is not str:
            return None
        price = float(p)
        size = float(q)
        if not (0.0 < price < _INF and 0.0 <= size < _INF):
            return None
        out.append((price, size))
    return tuple(out)


def checked_levels(rows: Any) -> Levels | None:
    """Any JSON value -> levels of pairs (price > 0, size >= 0, strings or numbers), or None."""
    if type(rows) is not list:
        return None
    out = []
    for row in rows:
        if type(row) is not list or len(row) != 2:
            return None
        price, size = to_number(row[0]), to_number(row[1])
        if price is None or size is None or price == 0.0:
            return None
        out.append((price, size))
    return tuple(out)
