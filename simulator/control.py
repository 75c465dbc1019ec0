"""Truth, introspection and fault injection: one implementation, two front doors.

`Controller` methods run on the event-loop thread. The Python handle reaches them by
marshalling a call onto the loop; HTTP clients reach them through `Controller.handle_http`
under ``/_control/...`` on the venue's own port (so a test in another process, or a shell with
curl, can drive the same faults the embedded tests use).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from loguru import logger
from websockets.exceptions import InvalidState

from depthkeeper.simulator.control_http import route
from depthkeeper.simulator.errors import HistoryUnavailable, UnknownCode, UnknownConnection
from depthkeeper.simulator.faults import FUTURE_SEQ, FaultKind, MalformedKind, to_malformed_kind
from depthkeeper.simulator.floods import Floods, flood_code
from depthkeeper.simulator.pump import Pump
from depthkeeper.simulator.registry import CommandRecord, ConnectionInfo, ConnState
from depthkeeper.simulator.snapshot_faults import ShapeFault, SnapshotShape
from depthkeeper.simulator.venue import HttpReply, Venue

#: Close code sent to every client by a restart (RFC 6455 "service restart").
CLOSE_SERVICE_RESTART = 1012

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


def _count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _seconds(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


class Controller:
    """Every control operation of one venue (event-loop thread only)."""

    def __init__(self, venue: Venue, pump: Pump) -> None:
        self._venue = venue
        self._pump = pump
        self._floods = Floods(venue)

    # -- truth and introspection ----------------------------------------------------------------

    def truth(self, code: str) -> dict[str, Any]:
        return self._venue.market.book(code)

    def book_at(self, code: str, seq: int) -> dict[str, Any]:
        return self._venue.market.book(code, _count(seq, "seq", minimum=0))

    def subscriptions(self) -> dict[int, frozenset[str]]:
        return self._venue.registry.subscriptions()

    def connections(self) -> list[ConnectionInfo]:
        return [conn.info() for conn in self._venue.registry.open.values()]

    def counters(self) -> dict[str, Any]:
        counters = self._venue.registry.snapshot_counters()
        counters["faults"] = self._venue.faults.snapshot_counts()
        return counters

    def command_log(self, conn_id: int | None = None) -> list[CommandRecord]:
        return self._venue.registry.command_log(conn_id)

    def state(self) -> dict[str, Any]:
        venue = self._venue
        return {
            "era": venue.market.era,
            "frozen": venue.frozen,
            "stalled": venue.faults.stalled(venue.now_s()),
            "dialect": venue.config.dialect.value,
            "symbols": list(venue.config.symbols),
            "seqs": {code: symbol.seq for code, symbol in venue.market.symbols.items()},
        }

    @property
    def era(self) -> int:
        return self._venue.market.era

    # -- market ---------------------------------------------------------------------------------

    def freeze(self) -> None:
        self._pump.freeze()

    def unfreeze(self) -> None:
        self._pump.unfreeze()

    # -- faults ---------------------------------------------------------------------------------

    def _check_code(self, code: str | None) -> None:
        if code is not None and code not in self._venue.market.symbols:
            raise UnknownCode(code)

    def drop(self, n: int, code: str | None = None) -> None:
        self._check_code(code)
        self._venue.faults.arm_drop(_count(n, "n"), code)

    def duplicate(self, code: str | None = None) -> None:
        self._check_code(code)
        self._venue.faults.arm_duplicate(code)

    def reorder(self, code: str | None = None) -> None:
        self._check_code(code)
        self._venue.faults.arm_reorder(code)

    def stall(self, seconds: float) -> None:
        """No business frames for ``seconds`` from now; replaces a running stall, 0 ends it."""
        self._venue.faults.arm_stall(self._venue.now_s(), _seconds(seconds, "seconds", allow_zero=True))

    def close(self, conn_id: int | None = None) -> int:
        """Abort connections (no close frame); return how many."""
        registry = self._venue.registry
        targets = list(registry.open.values()) if conn_id is None else [registry.get(conn_id)]
        for conn in targets:
            self._venue.faults.blackhole.release(conn)
            conn.abort()
            registry.remove(conn)
        self._venue.faults.counts[FaultKind.CLOSE.value] += len(targets)
        log.info("fault close connections={n}", n=len(targets))
        return len(targets)

    def restart(self) -> int:
        """New era: close every connection (1012), seqs from 1, books regenerated; return the era."""
        venue = self._venue
        for conn in list(venue.registry.open.values()):
            venue.faults.blackhole.release(conn)
            _close_with_frame(conn, CLOSE_SERVICE_RESTART, "service restart")
            venue.registry.remove(conn)
        venue.market.regenerate()
        venue.faults.forget_held()
        venue.faults.counts[FaultKind.RESTART.value] += 1
        log.info("fault restart era={era}", era=venue.market.era)
        return venue.market.era

    def malformed(self, kind: MalformedKind | str, count: int = 1, conn_id: int | None = None) -> int:
        """Send ``count`` bad frames of ``kind`` to every open connection (or one); return frames sent."""
        kind = to_malformed_kind(kind)
        _count(count, "count")
        registry = self._venue.registry
        targets = list(registry.open.values()) if conn_id is None else [registry.get(conn_id)]
        for conn in targets:
            self._venue.send_now(conn, [self._venue.dialect.malformed(kind, conn)] * count)
        sent = count * len(targets)
        self._venue.faults.counts[FaultKind.MALFORMED.value] += sent
        self._venue.faults.counts[f"malformed_{kind.value}"] += sent
        return sent

    def rest_delay(self, seconds: float, count: int = 1) -> None:
        self._venue.faults.arm_rest(delay_s=_seconds(seconds, "seconds"), count=_count(count, "count"))

    def rest_fail(self, status: int, count: int = 1) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400..599), got {status!r}")
        self._venue.faults.arm_rest(fail_status=status, count=_count(count, "count"))

    def stale_snapshot(self, lag: int, count: int = 1) -> None:
        self._venue.faults.arm_rest(lag=_count(lag, "lag"), count=_count(count, "count"))

    # -- issue 12 faults: what a LIVE view must survive ------------------------------------------

    def slow_handshake(self, seconds: float, count: int = 1) -> None:
        """Hold each of the next ``count`` WebSocket handshakes ``seconds`` before the upgrade."""
        self._venue.faults.arm_slow_handshake(_seconds(seconds, "seconds"), _count(count, "count"))

    def blackhole(self, seconds: float | None = None, conn_id: int | None = None, new_connections: bool = False) -> int:
        """Silence open connections (all, or one) both ways without closing; return how many."""
        duration_s = None if seconds is None else _seconds(seconds, "seconds")
        registry = self._venue.registry
        targets = list(registry.open.values()) if conn_id is None else [registry.get(conn_id)]
        return self._venue.faults.blackhole.start(targets, duration_s, new_connections=_flag(new_connections))

    def lift_blackhole(self) -> int:
        return self._venue.faults.blackhole.lift()

    def future_diff(self, code: str, seq: int = FUTURE_SEQ) -> int:
        """Send one business message of ``code`` with a far-future ``seq`` to its subscribers now."""
        symbol = self._venue.market.get(code)
        if _count(seq, "seq") <= symbol.seq:
            raise ValueError(f"seq must be ahead of {code}'s current seq {symbol.seq}, got {seq}")
        venue = self._venue
        message = venue.dialect.render_future(code, seq)
        receivers = len(venue.registry.subscribers.get(code, ()))
        venue.dialect.deliver(code, message)
        venue.flush()
        venue.faults.counts[FaultKind.FUTURE_DIFF.value] += receivers
        return receivers

    def _arm_shape(self, fault: ShapeFault, count: int, code: str | None, until_lifted: bool) -> None:
        self._check_code(code)
        _count(count, "count")
        self._venue.faults.shapes.arm(fault, code, None if _flag(until_lifted) else count)

    def future_snapshot(
        self, lead: int = 1000, count: int = 1, code: str | None = None, until_lifted: bool = False
    ) -> None:
        self._arm_shape(ShapeFault(SnapshotShape.FUTURE, _count(lead, "lead")), count, code, until_lifted)

    def empty_snapshot(self, count: int = 1, code: str | None = None, until_lifted: bool = False) -> None:
        self._arm_shape(ShapeFault(SnapshotShape.EMPTY), count, code, until_lifted)

    def short_snapshot(self, levels: int, count: int = 1, code: str | None = None, until_lifted: bool = False) -> None:
        self._arm_shape(ShapeFault(SnapshotShape.SHORT, _count(levels, "levels")), count, code, until_lifted)

    def crossed_snapshot(self, count: int = 1, code: str | None = None, until_lifted: bool = False) -> None:
        self._arm_shape(ShapeFault(SnapshotShape.CROSSED), count, code, until_lifted)

    def lift_snapshot_faults(self) -> int:
        return self._venue.faults.shapes.lift()

    def reject(self, codes: Iterable[str]) -> None:
        """Refuse every later subscription of ``codes`` (until lifted)."""
        codes = _codes(codes)
        for code in codes:
            self._check_code(code)
        self._venue.faults.rejected.update(codes)

    def lift_reject(self, codes: Iterable[str] | None = None) -> int:
        """Accept ``codes`` (default: every rejected code) again; return how many were lifted."""
        rejected = self._venue.faults.rejected
        lifting = set(rejected) if codes is None else rejected.intersection(_codes(codes))
        rejected.difference_update(lifting)
        return len(lifting)

    def _flood_targets(self, conn_id: int | None) -> list[ConnState]:
        registry = self._venue.registry
        if conn_id is not None:
            return [registry.get(conn_id)]
        return [conn for conn in registry.open.values() if conn.subscriptions]

    def unknown_type_flood(self, count: int, conn_id: int | None = None) -> int:
        """Flood subscribed connections (or one) with frames of an unknown type; return frames planned."""
        dialect = self._venue.dialect
        dialect.unknown_type_payload(0)  # FaultNotSupported before anything starts
        targets = self._flood_targets(conn_id)
        return self._floods.start(targets, FaultKind.UNKNOWN_TYPE_FLOOD, _count(count, "count"),
                                  dialect.unknown_type_payload)

    def distinct_code_flood(self, count: int, conn_id: int | None = None) -> int:
        """Flood subscribed connections (or one) with one data frame per invented code; return frames planned."""
        dialect = self._venue.dialect
        dialect.code_payload(flood_code(0, set()))
        symbols = self._venue.market.symbols
        targets = self._flood_targets(conn_id)
        return self._floods.start(targets, FaultKind.DISTINCT_CODE_FLOOD, _count(count, "count"),
                                  lambda index: dialect.code_payload(flood_code(index, symbols)))

    def ping_burst(self, count: int, conn_id: int | None = None) -> int:
        """Send ``count`` pings at once to every open connection (or one); return the pings sent.

        A client answers every ping with a pong (RFC 6455). Binance counts pongs toward its 5
        incoming messages per second, so a burst above that makes the venue close the socket with
        1008 "Too many requests" through its own rule (binance_connections.py), as the real venue
        closes a client that went over. Blackholed connections get nothing (nothing gets through)."""
        _count(count, "count")
        registry = self._venue.registry
        targets = list(registry.open.values()) if conn_id is None else [registry.get(conn_id)]
        blackhole = self._venue.faults.blackhole
        sent = sum(count for conn in targets if conn.conn_id not in blackhole and _send_pings(conn, count))
        self._venue.faults.counts[FaultKind.PING_BURST.value] += sent
        log.info("fault ping_burst pings={n}", n=sent)
        return sent

    def stop_floods(self) -> None:
        self._floods.cancel()

    # -- HTTP front door ------------------------------------------------------------------------

    def handle_http(self, method: str, path: str, params: dict[str, list[str]]) -> HttpReply:
        try:
            return route(self, method, path, params)
        except (UnknownCode, UnknownConnection) as exc:
            return HttpReply(404, {"error": str(exc)})
        except HistoryUnavailable as exc:
            return HttpReply(409, {"error": str(exc)})
        except ValueError as exc:
            return HttpReply(400, {"error": str(exc)})


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a bool, got {value!r}")
    return value


def _codes(codes: Iterable[str]) -> list[str]:
    if isinstance(codes, str):
        codes = [codes]
    listed = list(codes)
    if not listed or not all(isinstance(code, str) and code for code in listed):
        raise ValueError(f"codes must be a non-empty list of codes, got {listed!r}")
    return listed


def _close_with_frame(conn: ConnState, code: int, reason: str) -> None:
    """Send a close frame and close the TCP connection now, without waiting for the peer's."""
    ws = conn.ws
    try:
        ws.protocol.send_close(code, reason)
    except InvalidState:  # already closing: fall back to an abrupt close
        conn.abort()
        return
    for data in ws.protocol.data_to_send():
        if data:
            ws.transport.write(data)
    ws.transport.close()



def _send_pings(conn: ConnState, count: int) -> bool:
    """Write ``count`` ping frames (unique payloads) now; False if the connection is closing."""
    ws = conn.ws
    if ws is None:
        return False
    try:
        for i in range(count):
            ws.protocol.send_ping(b"depthkeeper-burst-%d-%d" % (conn.conn_id, i))
    except InvalidState:  # closing: nothing to provoke
        return False
    for data in ws.protocol.data_to_send():
        if data:
            ws.transport.write(data)
    return True
