"""The ``/_control`` HTTP table: query strings in, JSON out.

Reads are ``GET``; anything that changes the venue is ``POST`` (with an empty body; arguments
in the query string), so a stray browser visit or a crawler can never inject a fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from depthkeeper.simulator.faults import FUTURE_SEQ
from depthkeeper.simulator.venue import HttpReply

if TYPE_CHECKING:
    from depthkeeper.simulator.control import Controller

Params = dict[str, list[str]]
_MISSING = object()


def _arg(params: Params, name: str, convert: Callable[[str], Any] = str, default: Any = _MISSING) -> Any:
    values = params.get(name)
    if not values or values[0] == "":
        if default is _MISSING:
            raise ValueError(f"missing query parameter {name!r}")
        return default
    try:
        return convert(values[0])
    except ValueError:
        raise ValueError(f"query parameter {name!r}: cannot read {values[0]!r}") from None


def _flag(text: str) -> bool:
    """``true``/``1``/``yes`` or ``false``/``0``/``no``."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ValueError(text)


def _codes(params: Params) -> list[str]:
    """Every ``code`` parameter, each possibly comma-separated: ``code=A&code=B`` or ``code=A,B``."""
    codes = [part.strip() for value in params.get("code", []) for part in value.split(",") if part.strip()]
    if not codes:
        raise ValueError("missing query parameter 'code'")
    return codes


def _shape_args(params: Params) -> dict[str, Any]:
    """The arguments every snapshot fault shares."""
    return {
        "count": _arg(params, "count", int, 1),
        "code": _arg(params, "code", str, None),
        "until_lifted": _arg(params, "until_lifted", _flag, False),
    }


def _json_list(items: list[Any]) -> list[Any]:
    return [item.to_json() for item in items]


def _ok(**extra: Any) -> dict[str, Any]:
    return {"ok": True, **extra}


_GET: dict[str, Callable[[Controller, Params], Any]] = {
    "/_control/state": lambda c, p: c.state(),
    "/_control/truth": lambda c, p: c.truth(_arg(p, "code")),
    "/_control/book_at": lambda c, p: c.book_at(_arg(p, "code"), _arg(p, "seq", int)),
    "/_control/subscriptions": lambda c, p: {
        str(conn_id): sorted(codes) for conn_id, codes in c.subscriptions().items()
    },
    "/_control/connections": lambda c, p: _json_list(c.connections()),
    "/_control/counters": lambda c, p: c.counters(),
    "/_control/command_log": lambda c, p: _json_list(c.command_log(_arg(p, "conn_id", int, None))),
}

#: Each returns None (answered as ``{"ok": true}``) or its own JSON body.
_POST: dict[str, Callable[[Controller, Params], Any]] = {
    "/_control/freeze": lambda c, p: c.freeze(),
    "/_control/unfreeze": lambda c, p: c.unfreeze(),
    "/_control/faults/drop": lambda c, p: c.drop(_arg(p, "n", int), _arg(p, "code", str, None)),
    "/_control/faults/duplicate": lambda c, p: c.duplicate(_arg(p, "code", str, None)),
    "/_control/faults/reorder": lambda c, p: c.reorder(_arg(p, "code", str, None)),
    "/_control/faults/stall": lambda c, p: c.stall(_arg(p, "seconds", float)),
    "/_control/faults/close": lambda c, p: _ok(closed=c.close(_arg(p, "conn_id", int, None))),
    "/_control/faults/restart": lambda c, p: _ok(era=c.restart()),
    "/_control/faults/malformed": lambda c, p: _ok(
        sent=c.malformed(_arg(p, "kind"), _arg(p, "count", int, 1), _arg(p, "conn_id", int, None))
    ),
    "/_control/faults/rest_delay": lambda c, p: c.rest_delay(_arg(p, "seconds", float), _arg(p, "count", int, 1)),
    "/_control/faults/rest_fail": lambda c, p: c.rest_fail(_arg(p, "status", int), _arg(p, "count", int, 1)),
    "/_control/faults/stale_snapshot": lambda c, p: c.stale_snapshot(_arg(p, "lag", int), _arg(p, "count", int, 1)),
    # issue 12 ("A LIVE view is a promise")
    "/_control/faults/slow_handshake": lambda c, p: c.slow_handshake(
        _arg(p, "seconds", float), _arg(p, "count", int, 1)
    ),
    "/_control/faults/blackhole": lambda c, p: _ok(blackholed=c.blackhole(
        _arg(p, "seconds", float, None), _arg(p, "conn_id", int, None), _arg(p, "new_connections", _flag, False)
    )),
    "/_control/faults/lift_blackhole": lambda c, p: _ok(lifted=c.lift_blackhole()),
    "/_control/faults/future_diff": lambda c, p: _ok(
        sent=c.future_diff(_arg(p, "code"), _arg(p, "seq", int, FUTURE_SEQ))
    ),
    "/_control/faults/future_snapshot": lambda c, p: c.future_snapshot(_arg(p, "lead", int, 1000), **_shape_args(p)),
    "/_control/faults/empty_snapshot": lambda c, p: c.empty_snapshot(**_shape_args(p)),
    "/_control/faults/short_snapshot": lambda c, p: c.short_snapshot(_arg(p, "levels", int), **_shape_args(p)),
    "/_control/faults/crossed_snapshot": lambda c, p: c.crossed_snapshot(**_shape_args(p)),
    "/_control/faults/lift_snapshot_faults": lambda c, p: _ok(lifted=c.lift_snapshot_faults()),
    "/_control/faults/reject": lambda c, p: c.reject(_codes(p)),
    "/_control/faults/lift_reject": lambda c, p: _ok(lifted=c.lift_reject(_codes(p) if "code" in p else None)),
    "/_control/faults/unknown_type_flood": lambda c, p: _ok(
        frames=c.unknown_type_flood(_arg(p, "count", int), _arg(p, "conn_id", int, None))
    ),
    "/_control/faults/distinct_code_flood": lambda c, p: _ok(
        frames=c.distinct_code_flood(_arg(p, "count", int), _arg(p, "conn_id", int, None))
    ),
    # issue 14: a binance client's pongs go over 5 messages/s -> the venue closes with 1008
    "/_control/faults/ping_burst": lambda c, p: _ok(
        sent=c.ping_burst(_arg(p, "count", int), _arg(p, "conn_id", int, None))
    ),
}


def endpoints() -> dict[str, list[str]]:
    """The index served at ``GET /_control``."""
    return {"GET": sorted(_GET), "POST": sorted(_POST)}


def route(controller: Controller, method: str, path: str, params: Params) -> HttpReply:
    path = path.rstrip("/") or "/"
    if path == "/_control":
        return HttpReply(200, endpoints())
    table = _GET if method == "GET" else _POST if method == "POST" else {}
    handler = table.get(path)
    if handler is not None:
        result = handler(controller, params)
        return HttpReply(200, _ok() if result is None else result)
    if path in _GET or path in _POST:
        allowed = "GET" if path in _GET else "POST"
        return HttpReply(405, {"error": f"{method} not allowed on {path}; use {allowed}"})
    return HttpReply(404, {"error": f"no control endpoint {path}"})
