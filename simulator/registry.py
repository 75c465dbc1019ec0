"""Who is connected, what each connection subscribed to, and what each one said and got.

The registry is the server-side truth about subscriptions: tests compare it with what the
client believes it subscribed to (ghost subscriptions, lost unsubscribes, duplicate subs).
It also keeps the per-connection command log with monotonic timestamps, so a test can assert
the request count and spacing a client produced (AllTick pacing), and the counters.

All of it lives on the event-loop thread; the handle reads it through the loop.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import attrs

from depthkeeper.simulator.errors import UnknownConnection
from depthkeeper.simulator.wire import Outbox

#: Commands kept per connection (a log, not a leak: tests only look at the recent ones).
COMMAND_LOG_LIMIT = 10_000
#: Closed connections whose counters and logs are kept (chaos runs reconnect thousands of times).
CLOSED_CONNECTIONS_KEPT = 1_000


@attrs.frozen
class CommandRecord:
    """One client frame as the server understood it."""

    conn_id: int
    monotonic_s: float
    cmd_id: int | None
    action: str | None
    codes: tuple[str, ...]
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "monotonic_s": self.monotonic_s,
            "cmd_id": self.cmd_id,
            "action": self.action,
            "codes": list(self.codes),
            "raw": self.raw,
        }


@attrs.frozen
class ConnectionInfo:
    """A read-only view of one open connection."""

    conn_id: int
    remote: str
    path: str
    opened_monotonic_s: float
    subscriptions: frozenset[str]
    depth_levels: tuple[tuple[str, int], ...]
    frames_sent: int
    commands_received: int

    def to_json(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "remote": self.remote,
            "path": self.path,
            "opened_monotonic_s": self.opened_monotonic_s,
            "subscriptions": sorted(self.subscriptions),
            "depth_levels": dict(self.depth_levels),
            "frames_sent": self.frames_sent,
            "commands_received": self.commands_received,
        }


class ConnState:
    """Mutable server-side state of one WebSocket connection."""

    def __init__(self, conn_id: int, ws: Any, path: str, opened_s: float) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.path = path
        self.opened_s = opened_s
        remote = ws.remote_address
        self.remote = f"{remote[0]}:{remote[1]}" if remote else "?"
        self.outbox = Outbox(ws.transport, ws.protocol)
        #: code -> depth level (AllTick's depth_level; 0 for article, which streams every level).
        self.subscriptions: dict[str, int] = {}
        self.frames_sent = 0
        self.commands_received = 0
        #: binance: incoming text, ping and pong frames (its 5/s limit counts all three), and the excess
        self.messages_received = 0
        self.messages_over_limit = 0
        self.log: collections.deque[CommandRecord] = collections.deque(maxlen=COMMAND_LOG_LIMIT)
        self.last_request_s: float | None = None
        self.last_heartbeat_s = opened_s

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            conn_id=self.conn_id,
            remote=self.remote,
            path=self.path,
            opened_monotonic_s=self.opened_s,
            subscriptions=frozenset(self.subscriptions),
            depth_levels=tuple(sorted(self.subscriptions.items())),
            frames_sent=self.frames_sent,
            commands_received=self.commands_received,
        )

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (abrupt close)."""
        if self.ws is not None:
            self.ws.transport.abort()

    def detach(self) -> None:
        """Forget the socket once closed: only counters and the log outlive a connection."""
        self.ws = None
        self.outbox.detach()


class Registry:
    """Connections, the code -> subscribers index, and the venue's counters."""

    def __init__(self) -> None:
        self.open: dict[int, ConnState] = {}
        self._closed: dict[int, ConnState] = {}
        #: code -> {connection: depth level}; insertion-ordered so fan-out order is stable.
        self.subscribers: dict[str, dict[ConnState, int]] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self._next_id = 1

    def add(self, ws: Any, path: str) -> ConnState:
        conn = ConnState(self._next_id, ws, path, time.monotonic())
        self._next_id += 1
        self.open[conn.conn_id] = conn
        self.counters["connections_opened"] += 1
        return conn

    def remove(self, conn: ConnState) -> None:
        """Unsubscribe everything and move the connection to the closed list (idempotent)."""
        self.clear(conn)
        if self.open.pop(conn.conn_id, None) is not None:
            conn.detach()
            self._closed[conn.conn_id] = conn
            self.counters["connections_closed"] += 1
            while len(self._closed) > CLOSED_CONNECTIONS_KEPT:
                del self._closed[next(iter(self._closed))]

    def get(self, conn_id: int) -> ConnState:
        try:
            return self.open[conn_id]
        except KeyError:
            raise UnknownConnection(conn_id) from None

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, conn: ConnState, code: str, depth: int = 0) -> None:
        conn.subscriptions[code] = depth
        self.subscribers.setdefault(code, {})[conn] = depth

    def unsubscribe(self, conn: ConnState, code: str) -> bool:
        if conn.subscriptions.pop(code, None) is None:
            return False
        subs = self.subscribers.get(code)
        if subs is not None:
            subs.pop(conn, None)
            if not subs:
                del self.subscribers[code]
        return True

    def clear(self, conn: ConnState) -> None:
        for code in list(conn.subscriptions):
            self.unsubscribe(conn, code)

    def replace(self, conn: ConnState, depths: dict[str, int]) -> None:
        """AllTick semantics: the new list is the whole list."""
        self.clear(conn)
        for code, depth in depths.items():
            self.subscribe(conn, code, depth)

    def subscriptions(self) -> dict[int, frozenset[str]]:
        return {conn_id: frozenset(conn.subscriptions) for conn_id, conn in self.open.items()}

    # -- logs and counters ----------------------------------------------------------------------

    def log_command(
        self, conn: ConnState, now_s: float, cmd_id: int | None, action: str | None, codes: tuple[str, ...], raw: str
    ) -> None:
        conn.commands_received += 1
        self.counters["commands_received_total"] += 1
        conn.log.append(CommandRecord(conn.conn_id, now_s, cmd_id, action, codes, raw[:1000]))

    def command_log(self, conn_id: int | None = None) -> list[CommandRecord]:
        if conn_id is not None:
            conn = self.open.get(conn_id) or self._closed.get(conn_id)
            if conn is None:
                raise UnknownConnection(conn_id)
            return list(conn.log)
        records = [record for conn in (*self._closed.values(), *self.open.values()) for record in conn.log]
        records.sort(key=lambda record: record.monotonic_s)
        return records

    def count_sent(self, conn: ConnState, frames: int) -> None:
        conn.frames_sent += frames
        self.counters["frames_sent_total"] += frames

    def snapshot_counters(self) -> dict[str, Any]:
        everyone = {**self._closed, **self.open}
        result: dict[str, Any] = dict.fromkeys(("frames_sent_total", "commands_received_total", "duplicate_subscribes", "empty_lists", "rejected_codes", "unsubscribes_not_subscribed", "ignored_over_limit", "invalid_commands", "connections_opened", "connections_closed", "rest_requests", "diffs_generated", "pushes_sent", "pushes_suppressed_stall", "slow_consumers_closed", "pacing_violations", "heartbeat_timeouts"), 0)
        result.update(self.counters)
        result["frames_sent"] = {conn_id: conn.frames_sent for conn_id, conn in sorted(everyone.items())}
        result["commands_received"] = {
            conn_id: conn.commands_received for conn_id, conn in sorted(everyone.items())
        }
        result["messages_received"] = {conn_id: conn.messages_received for conn_id, conn in sorted(everyone.items())}
        result["messages_over_limit"] = {
            conn_id: conn.messages_over_limit for conn_id, conn in sorted(everyone.items())
        }
        return result
