"""Parse and validate one client frame of Binance's WebSocket request API (pure).

Requests are ``{"method": M, "params": [...], "id": I}`` with M one of SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY. Validation follows web-socket-streams.md's error
table, in the order a serde-based server meets the problems: unparsable JSON (code 3), no
``method`` (2), a bad ``id`` (2), an unknown method (2), bad params (2: too many parameters /
property name must be a string; 0: unknown property; 1: expected Boolean). Stream names are checked
against the grammar here; whether their symbols exist is the venue's business (binance.py).

The id is echoed with its type preserved; where the id itself is invalid the error carries
``"id": null``.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from depthkeeper.simulator.binance_wire import (
    METHODS, MSG_BAD_ID, MSG_EXPECTED_BOOLEAN, MSG_NOT_AN_OBJECT, MSG_PARAMS_NOT_STREAMS, MSG_PROPERTY_NAME,
    MSG_TOO_MANY_PARAMS, MSG_UNKNOWN_PROPERTY, WsCode, error_reply, parse_stream, unknown_method_msg,
    valid_request_id,
)

#: The only property (web-socket-streams.md, "Setting Properties").
PROPERTY_COMBINED = "combined"


@attrs.frozen
class Command:
    """A valid request: what to do and the id to answer with."""

    method: str
    request_id: Any
    streams: tuple[str, ...] = ()
    value: bool | None = None


@attrs.frozen
class Parsed:
    """One frame's outcome: a command or an error reply, plus what the command log records."""

    command: Command | None
    error: bytes | None
    log_id: int | None = None
    log_method: str | None = None
    log_codes: tuple[str, ...] = ()


def _streams_codes(params: Any) -> tuple[str, ...]:
    """Venue codes named by the params, for the command log (whatever else is wrong)."""
    if not isinstance(params, list):
        return ()
    parsed = (parse_stream(name) for name in params)
    return tuple(dict.fromkeys(stream.code for stream in parsed if stream is not None))


def _property_error(params: Any, arity: int) -> tuple[int, str] | None:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        return WsCode.INVALID_REQUEST, MSG_PROPERTY_NAME
    if len(params) > arity:
        return WsCode.INVALID_REQUEST, MSG_TOO_MANY_PARAMS
    if params[0] != PROPERTY_COMBINED:
        return WsCode.UNKNOWN_PROPERTY, MSG_UNKNOWN_PROPERTY
    if arity == 2 and (len(params) < 2 or not isinstance(params[1], bool)):
        return WsCode.INVALID_VALUE_TYPE, MSG_EXPECTED_BOOLEAN
    return None


def parse_request(text: str) -> Parsed:
    """Validate one text frame; never raises."""
    try:
        message: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Parsed(None, error_reply(WsCode.INVALID_JSON,
                                        f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}"))
    if not isinstance(message, dict):
        return Parsed(None, error_reply(WsCode.INVALID_REQUEST, MSG_NOT_AN_OBJECT))
    method, request_id, params = message.get("method"), message.get("id"), message.get("params")
    id_ok = "id" in message and valid_request_id(request_id)
    answer_id = request_id if id_ok else None
    log_id = request_id if isinstance(request_id, int) and not isinstance(request_id, bool) else None
    log_method = method if isinstance(method, str) else None
    log_codes = _streams_codes(params)

    def ok(command: Command) -> Parsed:
        return Parsed(command, None, log_id, log_method, log_codes)

    def error(code: int, msg: str) -> Parsed:
        return Parsed(None, error_reply(code, msg, answer_id), log_id, log_method, log_codes)

    if "method" not in message:
        return error(WsCode.INVALID_REQUEST, f"Invalid request: missing field `method` at line 1 column {len(text)}")
    if not id_ok:
        return error(WsCode.INVALID_REQUEST, MSG_BAD_ID)
    if method not in METHODS:
        return error(WsCode.INVALID_REQUEST, unknown_method_msg(method, text))
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
            return error(WsCode.INVALID_REQUEST, MSG_PARAMS_NOT_STREAMS)
        return ok(Command(method, request_id, streams=tuple(params)))
    if method == "LIST_SUBSCRIPTIONS":
        if params not in (None, []):
            return error(WsCode.INVALID_REQUEST, MSG_TOO_MANY_PARAMS)
        return ok(Command(method, request_id))
    problem = _property_error(params, 2 if method == "SET_PROPERTY" else 1)
    if problem is not None:
        return error(*problem)
    assert isinstance(params, list)  # _property_error checked it
    return ok(Command(str(method), request_id, value=params[1] if method == "SET_PROPERTY" else None))
