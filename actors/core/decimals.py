"""Level arrays of decimal strings (``[["price","size"], ...]``), read exactly and fast.

Binance (and most venues that send JSON) write each price and size as a decimal string, so that
no digit is lost in a JSON number. Reading them is most of a deep event's decode: ``float(str)``
per value. Three readers, each giving the same floats (``float`` of the text):

- ``plain_levels``: a parsed array of string pairs, ``float`` per value, None for anything odd;
- ``checked_levels``: the same for any JSON value (numbers too), the path that judges odd input;
- ``NumericSides``: for a whole frame, the two arrays made JSON numbers in the frame's *text*,
  so the frame's one ``orjson.loads`` reads them as floats in C (several times quicker per value).
  The text is changed only where that is exact, and left alone (None) otherwise: see its docstring.
"""

from __future__ import annotations

import re
from typing import Any

from depthkeeper.actors.core.wire import Levels, to_number

_INF = float("inf")
#: what ``NumericSides`` deletes from a level array to see its skeleton, and one row's skeleton
_DIGITS = b"0123456789"
_ROW_SKELETON = b'[".","."],'
_ROW_LEN = len(_ROW_SKELETON)
#: a row whose price is zero, or so small (16 zeros after the point, far below any price) that the
#: general path should judge it (it may round to 0.0), once the quotes are gone
_ZERO_PRICE = re.compile(rb"\[0\.(?:0*,|0{16})")


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


class NumericSides:
    """Turns a frame's ``"<bid_key>":[...]`` array and the ``"<ask_key>":[...]`` array right after it
    into arrays of JSON numbers (``sides(raw)``), or gives None where that would not be exact.

    The arrays are found in the text (``"b":[`` up to ``],"a":[``, then up to the first ``]]``) and
    their quotes deleted. That is exact only when each array is a list of
    ``["<digits.digits>","<digits.digits>"]`` rows, which the checks make sure of: with the digits
    deleted, an array must read exactly ``[[".","."],...]`` (so every value was a quoted run of digits
    with one dot, two a row, and no quote, bracket, comma, sign, letter, escape or space hides
    anywhere); the JSON parser then refuses what is not a JSON number
    (``.5``, ``5.``, ``1..5``, leading zeros) and what overflows a double, and a price of zero is
    refused here by pattern (and a price with 16 zeros after the point, which may round to zero). For
    such text orjson's value is ``float(text)`` (both correctly rounded). The frame may hold no other
    array: what the parse then puts under the two keys is these arrays or no array at all, which the
    caller must check (a repeated key, ``"b":7`` or ``"\u0062":7``, can replace one with a non-array).
    Whatever gets None is read by the general path as it is, so nothing is judged differently."""

    __slots__ = ("_bid_at", "_bid_open", "_joint", "_joint_key")

    def __init__(self, bid_key: bytes, ask_key: bytes) -> None:
        self._bid_at = b'"%s":' % bid_key
        self._bid_open = self._bid_at + b"["
        #: the end of the bid array and the start of the ask array, and the key between them
        self._joint = b'],"%s":[' % ask_key
        self._joint_key = self._joint[1:-1]

    def __call__(self, raw: bytes) -> bytes | None:
        bid_at, joint = self._bid_at, self._joint
        start = raw.find(self._bid_open)
        mid = raw.find(joint, start)
        if start < 0 or mid < 0:
            return None
        ask_from = mid + len(joint) - 1
        end = ask_from + 2 if raw[ask_from:ask_from + 2] == b"[]" else raw.find(b"]]", ask_from) + 2
        # no other array anywhere: whatever JSON makes of the keys (a repeat, an escape), any array
        # the parse puts under them is one of these two; and no earlier key spelled as the bids'
        if end == 1 or raw.find(b"[", 0, start) >= 0 or raw.find(b"[", end) >= 0 or raw.find(bid_at, 0, start) >= 0:
            return None
        # both arrays and the key between them, checked as one text
        skeleton = raw[start + len(bid_at):end].translate(None, _DIGITS)
        split = skeleton.find(joint) + 1
        bid_rows = (split - 1) // _ROW_LEN
        ask_rows = (len(skeleton) - split - len(self._joint_key) - 1) // _ROW_LEN
        if skeleton != _skeleton(bid_rows) + self._joint_key + _skeleton(ask_rows):
            return None
        bids = raw[start + len(bid_at):mid + 1].translate(None, b'"')
        asks = raw[ask_from:end].translate(None, b'"')
        if (b"[0." in bids and _ZERO_PRICE.search(bids) is not None) or (
                b"[0." in asks and _ZERO_PRICE.search(asks) is not None):
            return None
        return b"".join((raw[:start + len(bid_at)], bids, self._joint_key, asks, raw[end:]))


def _skeleton(rows: int) -> bytes:
    """What an array of ``rows`` plain-decimal pairs reads with its digits and dots deleted."""
    if rows < len(_SKELETONS):
        return _SKELETONS[rows]
    return b"[" + (_ROW_SKELETON * rows)[:-1] + b"]"


_SKELETONS = tuple(b"[" + (_ROW_SKELETON * rows)[:-1] + b"]" if rows else b"[]" for rows in range(1024))
