"""``svc.stats()``: one frozen picture of the whole service, with ``as_dict()`` for JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from depthkeeper.actors.connection import ConnectionCounters, ConnectionReport
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.io.reader import ReaderCounters
from depthkeeper.actors.messages import BookStats
from depthkeeper.actors.snapshot import SnapshotCounters, SnapshotReport
from depthkeeper.actors.subscription import SubscriptionCounters, SubscriptionReport


#: one book's figures: the record the read ports build (kept under its old name too)
BookFigures = BookStats


@attrs.frozen
class ConnectionFigures:
    reconnects: int
    heartbeat_timeouts: int
    malformed: int
    epoch: int
    connected: bool
    frames: int
    unwanted: int
    overflow_skipped: int
    frames_sent: int
    failed: str | None
    malformed_by_kind: Mapping[str, int]
    connects: int = 0
    connect_failures: int = 0
    #: why there is no socket ("" while connected)
    down_reason: str = ""


@attrs.frozen
class SupervisorFigures:
    restarts: Mapping[str, int]
    restarts_by_kind: Mapping[str, int]
    escalations: int


@attrs.frozen
class ServiceStats:
    books: Mapping[str, BookStats]
    connection: ConnectionFigures
    subscription: SubscriptionReport
    snapshot: SnapshotReport
    supervisor: SupervisorFigures
    listeners: Mapping[int, Mapping[str, int]]

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if attrs.has(type(value)):
                return {k: plain(v) for k, v in attrs.asdict(value, recurse=False).items()}
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple, set, frozenset)):
                return [plain(v) for v in value]
            if isinstance(value, float) and value == float("inf"):
                return None
            return value

        return plain(self)


def throughput_line(rate: float, books: Mapping[str, BookStats]) -> tuple[Any, ...]:
    """The throughput log line (template and values): msgs/s, the worst book's apply latency, books live."""
    p50 = max((b.apply_p50_s for b in books.values()), default=0.0)
    p99 = max((b.apply_p99_s for b in books.values()), default=0.0)
    live = sum(1 for b in books.values() if b.status is BookStatus.LIVE)
    return ("throughput {:.0f} msgs/s; apply latency p50 {:.0f}us p99 {:.0f}us (worst book); {}/{} books live",
            rate, p50 * 1e6, p99 * 1e6, live, len(books))


#: what a report reads as while its actor does not answer (restarting)
NO_CONNECTION = ConnectionReport(ConnectionCounters(), ReaderCounters(), 0, False, None, False)
NO_SUBSCRIPTION = SubscriptionReport(SubscriptionCounters(), (), (), {}, 0, 0)
NO_SNAPSHOT = SnapshotReport(SnapshotCounters(), 0, 0)


def build_stats(*, books: Mapping[str, BookStats], connection: ConnectionReport | None, socket: SocketState,
                subscription: SubscriptionReport | None, snapshot: SnapshotReport | None, root: Any, books_sup: Any,
                escalations: int, listeners: Mapping[int, Mapping[str, int]]) -> ServiceStats:
    restarts: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for sup in (root, books_sup):
        if sup is not None:
            restarts.update(sup.restarts)
            for kind, n in sup.restarts_by_kind.items():
                by_kind[kind] = by_kind.get(kind, 0) + n
    # a supervisor counts the GAVE_UP exits of its child supervisors; the root's own give-up
    # reaches the service as the escalation callback (a dead root cannot answer GetStats)
    esc = escalations + (root.escalations if root is not None else 0)
    report = connection or NO_CONNECTION
    counters, reader = report.counters, report.reader
    conn = ConnectionFigures(
        reconnects=counters.reconnects, heartbeat_timeouts=counters.heartbeat_timeouts, malformed=reader.malformed,
        epoch=report.epoch, connected=socket.connected, frames=reader.frames, unwanted=reader.unwanted,
        overflow_skipped=reader.overflow_skipped, frames_sent=counters.frames_sent, failed=report.failed,
        malformed_by_kind=dict(reader.malformed_by_kind), connects=counters.connects,
        connect_failures=counters.connect_failures, down_reason="" if socket.connected else socket.down_reason)
    return ServiceStats(
        books=dict(sorted(books.items())),
        connection=conn,
        subscription=subscription or NO_SUBSCRIPTION,
        snapshot=snapshot or NO_SNAPSHOT,
        supervisor=SupervisorFigures(restarts, by_kind, esc),
        listeners=dict(listeners),
    )
