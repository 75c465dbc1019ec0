"""``svc.stats()``: one frozen picture of the whole service, with ``as_dict()`` for JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs

from depthkeeper.actors.messages import BookStats


@attrs.frozen
class BookFigures:
    applied: int
    gaps: int
    resyncs: int
    seq: int
    status: str
    age_s: float
    duplicates: int
    overflows: int
    crossed: int
    stale_dropped: int
    drifted_levels: int
    calibrations: int
    inbox: int
    epoch: int
    old_epoch_batches: int
    reason: str = ""
    bad_snapshots: int = 0
    ahead_snapshots: int = 0
    suspect_diffs: int = 0


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
    books: Mapping[str, BookFigures]
    connection: ConnectionFigures
    subscription: Mapping[str, Any]
    snapshot: Mapping[str, Any]
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


def _book(stats: BookStats, now: float) -> BookFigures:
    age = now - stats.updated_at if stats.updated_at else float("inf")
    return BookFigures(stats.applied, stats.gaps, stats.resyncs, stats.seq, stats.status.name, age, stats.duplicates,
                       stats.overflows, stats.crossed, stats.stale_dropped, stats.drifted_levels, stats.calibrations,
                       stats.inbox, stats.epoch, stats.old_epoch_batches, stats.reason, stats.bad_snapshots,
                       stats.ahead_snapshots, stats.suspect_diffs)


def build_stats(*, books: Mapping[str, BookStats], connection: Mapping[str, Any], subscription: Mapping[str, Any],
                snapshot: Mapping[str, Any], root: Any, books_sup: Any, escalations: int,
                listeners: Mapping[int, Mapping[str, int]]) -> ServiceStats:
    now = time.time()
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
    conn = ConnectionFigures(
        reconnects=connection.get("reconnects", 0), heartbeat_timeouts=connection.get("heartbeat_timeouts", 0),
        malformed=connection.get("malformed", 0), epoch=connection.get("epoch", 0),
        connected=connection.get("connected", False), frames=connection.get("frames", 0),
        unwanted=connection.get("unwanted", 0), overflow_skipped=connection.get("overflow_skipped", 0),
        frames_sent=connection.get("frames_sent", 0), failed=connection.get("failed"),
        malformed_by_kind=dict(connection.get("malformed_by_kind", {})), connects=connection.get("connects", 0),
        connect_failures=connection.get("connect_failures", 0), down_reason=connection.get("down_reason", ""))
    return ServiceStats(
        books={code: _book(s, now) for code, s in sorted(books.items())},
        connection=conn,
        subscription=dict(subscription),
        snapshot=dict(snapshot),
        supervisor=SupervisorFigures(restarts, by_kind, esc),
        listeners=dict(listeners),
    )
