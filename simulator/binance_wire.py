"""Binance spot's wire vocabulary: stream names, number text, event rendering, reply shapes.

Pure functions and constants, no venue state, so the dialect (simulator/binance.py), the REST
endpoints (binance_rest.py) and the recording replay (replay.py) agree on every byte. Written from
the Binance spot docs (web-socket-streams.md, rest-api.md, errors.md), not from any client.

Numbers are 8-decimal strings, as real captures show (``"61837.64000000"``). The generated market
keeps prices in cents and sizes in 1e-4 units (simulator/market.py), so the 8-decimal text is the
exact decimal value padded with zeros.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import orjson

from depthkeeper.simulator.wire import frame_text

#: Stream names: ``<symbol lower>@<kind>``. Only the depth and bookTicker kinds carry data here;
#: the others are accepted (Binance has them) and listed, but the simulator sends nothing on them.
STREAM_PATTERN = re.compile(
    r"^(?P<symbol>[a-z0-9]{1,30})@(?P<kind>depth(?:5|10|20)?(?:@(?:100|1000)ms)?|bookTicker|trade|aggTrade"
    r"|kline_(?:1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)(?:@\+08:00)?|miniTicker"
    r"|ticker(?:_(?:1h|4h|1d))?|avgPrice|referencePrice)$"
)

#: Data-carrying stream kinds of the generated market, as bits of a per-connection mask.
DEPTH_100MS = "depth@100ms"
DEPTH_1S = "depth"
DEPTH_1000MS = "depth@1000ms"
BOOK_TICKER = "bookTicker"
GENERATED_KINDS: dict[str, int] = {DEPTH_100MS: 1, DEPTH_1S: 2, DEPTH_1000MS: 4, BOOK_TICKER: 8}

#: Quote assets tried (longest first) when splitting a symbol into base and quote for exchangeInfo.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB", "USD")

_EIGHT = 10**8


class WsCode:
    """Error codes of the WebSocket request API (web-socket-streams.md, "Error Messages")."""

    UNKNOWN_PROPERTY = 0
    INVALID_VALUE_TYPE = 1
    INVALID_REQUEST = 2
    INVALID_JSON = 3
    #: Observed, not documented (unicorn-binance-websocket-api issue 17).
    TOO_MANY_SUBSCRIPTIONS = 4


METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
MSG_INVALID_STREAM = "Invalid request: invalid stream"
MSG_BAD_ID = "Invalid request: request ID must be an unsigned integer"
MSG_TOO_MANY_PARAMS = "Invalid request: too many parameters"
MSG_PROPERTY_NAME = "Invalid request: property name must be a string"
MSG_UNKNOWN_PROPERTY = "Unknown property"
MSG_EXPECTED_BOOLEAN = "Invalid value type: expected Boolean"
MSG_TOO_MANY_SUBSCRIPTIONS = "Too many subscriptions"
#: Not in Binance's table (their server parses into a struct); our wording for a non-object frame.
MSG_NOT_AN_OBJECT = "Invalid request: expected a JSON object"
#: Not in Binance's table; our wording for SUBSCRIBE/UNSUBSCRIBE params that are not a list of strings.
MSG_PARAMS_NOT_STREAMS = "Invalid request: params must be a list of stream names"


@attrs.frozen
class StreamName:
    """A parsed stream name: the venue code (upper case) and the kind after the first ``@``."""

    name: str
    code: str
    kind: str


def parse_stream(name: Any) -> StreamName | None:
    """The stream name's parts, or None when Binance would call it an invalid stream."""
    if not isinstance(name, str):
        return None
    match = STREAM_PATTERN.match(name)
    if match is None:
        return None
    return StreamName(name, match["symbol"].upper(), match["kind"])


def valid_request_id(value: Any) -> bool:
    """64-bit signed int, alphanumeric string of at most 36 characters, or null (bool is not an int)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and len(value) <= 36 and value.isascii() and value.isalnum()


# -- numbers --------------------------------------------------------------------------------------


def price_text(cents: int) -> bytes:
    """``6412350 -> b"64123.50000000"``."""
    whole, frac = divmod(cents, 100)
    return b"%d.%02d000000" % (whole, frac)


def size_text(units: int) -> bytes:
    """Sizes are in 1e-4 units: ``2500 -> b"0.25000000"``."""
    whole, frac = divmod(units, 10_000)
    return b"%d.%04d0000" % (whole, frac)


def decimal_units(text: str) -> int:
    """An 8-decimal string as an int in 1e-8 units (exact; raises ValueError on anything else)."""
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 8:
        raise ValueError(f"not a decimal with at most 8 places: {text!r}")
    units = int(whole) * _EIGHT + int(frac.ljust(8, "0") or "0")
    return -units if negative else units


def units_text(units: int) -> str:
    """1e-8 units back to Binance's 8-decimal text."""
    whole, frac = divmod(units, _EIGHT)
    return f"{whole}.{frac:08d}"


def step_text(decimals: int) -> str:
    """The tick or step of a number with ``decimals`` places: ``2 -> "0.01000000"``."""
    return units_text(10 ** (8 - min(8, max(0, decimals))))


# -- events ---------------------------------------------------------------------------------------

_DEPTH = b'{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":[%s],"a":[%s]}'
_DEPTH_STAMPED = b'{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":[%s],"a":[%s],"x":%.6f}'
_BOOK_TICKER = b'{"u":%d,"s":"%s","b":"%s","B":"%s","a":"%s","A":"%s"}'


def render_levels(levels: list[tuple[bytes, bytes]]) -> bytes:
    return b",".join(b'["%s","%s"]' % level for level in levels)


def depth_update(
    event_ms: int, code: bytes, first_id: int, last_id: int, bids: bytes, asks: bytes, stamp_s: float | None = None
) -> bytes:
    """One diff event (``bids``/``asks`` already rendered by `render_levels`)."""
    if stamp_s is None:
        return _DEPTH % (event_ms, code, first_id, last_id, bids, asks)
    return _DEPTH_STAMPED % (event_ms, code, first_id, last_id, bids, asks, stamp_s)


def book_ticker(update_id: int, code: bytes, bid: tuple[bytes, bytes], ask: tuple[bytes, bytes]) -> bytes:
    """The best bid/ask at order-book update id ``update_id`` (an exact checkpoint for clients)."""
    return _BOOK_TICKER % (update_id, code, bid[0], bid[1], ask[0], ask[1])


def combined(stream: bytes, payload: bytes) -> bytes:
    """The ``/stream`` wrapper: ``{"stream":"<name>","data":<payload>}``."""
    return b'{"stream":"%s","data":%s}' % (stream, payload)


@attrs.frozen
class StreamMessage:
    """One business message of one stream, framed both ways (raw ``/ws`` and combined ``/stream``)."""

    bit: int
    raw_frame: bytes
    combined_frame: bytes

    @classmethod
    def of(cls, bit: int, stream: bytes, payload: bytes, wrapped: bytes | None = None) -> StreamMessage:
        return cls(bit, frame_text(payload), frame_text(wrapped if wrapped is not None else combined(stream, payload)))


# -- replies --------------------------------------------------------------------------------------


def result_reply(result: Any, request_id: Any) -> bytes:
    """``{"result": ..., "id": ...}``: ``result: null`` is the ack of SUBSCRIBE and friends."""
    return orjson.dumps({"result": result, "id": request_id})


def error_reply(code: int, msg: str, request_id: Any = None) -> bytes:
    """``{"error": {"code", "msg"}, "id"}``, the shape clients see (ccxt's handle_ws_error)."""
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id})


def unknown_method_msg(method: Any, text: str) -> str:
    """Serde's wording for an unknown ``method`` variant, column after the offending value."""
    shown = method if isinstance(method, str) else orjson.dumps(method).decode()
    column = text.find(shown) + len(shown) + 1 if isinstance(method, str) and shown in text else len(text)
    expected = ", ".join(f"`{m}`" for m in METHODS)
    return f"Invalid request: unknown variant `{shown}`, expected one of {expected} at line 1 column {column}"


def split_symbol(code: str) -> tuple[str, str]:
    """(base, quote) for exchangeInfo: ``SYM0001USDT -> ("SYM0001", "USDT")``."""
    for quote in QUOTE_ASSETS:
        if code.endswith(quote) and len(code) > len(quote):
            return code[: -len(quote)], quote
    return code[:-3] or code, code[-3:]
