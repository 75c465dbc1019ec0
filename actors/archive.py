"""ArchiveActor: periodic top-N snapshots of every LIVE book, plus every status change, in SQLite.

It never blocks a BookActor: it listens through the ListenerHub, which conflates book
updates per symbol (the newest view wins) while the archive is busy, and the archive
itself only keeps the newest view per symbol between writes. What it skipped is counted.
Writes happen every ``interval_s`` in one transaction (WAL mode), so a crash or kill loses
at most the uncommitted batch; a restarted archive appends, never rewrites, and keeps
timestamps strictly increasing per symbol.

Schema (documented in the README)::

    snapshots(id INTEGER PRIMARY KEY, ts REAL, symbol TEXT, seq INTEGER, status TEXT,
              bids TEXT /* JSON [[price, size], ...] best first */, asks TEXT)
    events(id INTEGER PRIMARY KEY, ts REAL, symbol TEXT, kind TEXT /* status|gap|resync */,
           old_status TEXT, new_status TEXT, seq INTEGER, reason TEXT)
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

import attrs
import orjson
from loguru import logger

from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView, GetCounters
from depthkeeper.actors.orderbook import BookStatus
from depthkeeper.supervisor.base import SupervisedActor

if TYPE_CHECKING:
    from depthkeeper.actors.listeners import ListenerHub
    from depthkeeper.supervisor.scheduler import Scheduler
    from depthkeeper.supervisor.spec import ChildContext

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, symbol TEXT NOT NULL, seq INTEGER NOT NULL,
    status TEXT NOT NULL, bids TEXT NOT NULL, asks TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_symbol_ts ON snapshots(symbol, ts);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    old_status TEXT, new_status TEXT, seq INTEGER NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS events_symbol_ts ON events(symbol, ts);
"""
_RESYNC_REASONS = {"gap": "gap"}


@attrs.frozen
class ArchiveTick:
    """Timer -> ArchiveActor: write one batch."""


class ArchiveActor(SupervisedActor):
    def __init__(self, ctx: ChildContext, *, path: str, interval_s: float, depth: int, hub: ListenerHub,
                 scheduler: Scheduler) -> None:
        super().__init__(ctx)
        self._path = path
        self._interval_s = interval_s
        self._depth = depth
        self._hub = hub
        self._scheduler = scheduler
        self._db: sqlite3.Connection | None = None
        self._latest: dict[str, BookView] = {}
        self._written_seq: dict[str, int] = {}
        self._last_ts: dict[str, float] = {}
        self._events: list[tuple[Any, ...]] = []
        self._listener_id: int | None = None
        self._timer: Any = None
        self.counters = {"rows_written": 0, "events_written": 0, "skipped": 0, "batches": 0}
        self._log = logger.bind(actor="archive")

    def init(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        for symbol, ts, seq in db.execute(
                "SELECT symbol, MAX(ts), (SELECT seq FROM snapshots s2 WHERE s2.symbol = s.symbol "
                "ORDER BY ts DESC LIMIT 1) FROM snapshots s GROUP BY symbol"):
            self._last_ts[symbol] = ts
            self._written_seq[symbol] = seq
        for symbol, ts in db.execute("SELECT symbol, MAX(ts) FROM events GROUP BY symbol"):
            self._last_ts[symbol] = max(ts, self._last_ts.get(symbol, 0.0))
        self._db = db
        self._listener_id = self._hub.add(self.actor_ref)
        self._timer = self._scheduler.schedule_every(self._interval_s, self.actor_ref, ArchiveTick())
        self._log.info("archiving to {} every {}s (depth {})", self._path, self._interval_s, self._depth)

    def cleanup(self) -> None:
        if self._listener_id is not None:
            self._hub.remove(self._listener_id)
        if self._timer is not None:
            self._scheduler.cancel(self._timer)
        if self._db is not None:
            self._db.close()
            self._db = None

    def on_stop(self) -> None:
        # A clean stop writes what it holds; a crash (on_failure) loses only this batch.
        if self._db is not None:
            self._write()
        super().on_stop()

    def on_receive(self, message: Any) -> Any:
        match message:
            case BookUpdated(view=view):
                if view.code in self._latest:
                    self.counters["skipped"] += 1
                self._latest[view.code] = view
            case BookStatusChanged():
                self._on_status(message)
            case ArchiveTick():
                self._write()
            case GetCounters():
                return dict(self.counters, path=self._path)
            case _:
                return super().on_receive(message)
        return None

    def _on_status(self, event: BookStatusChanged) -> None:
        kind = "status"
        if event.new is BookStatus.RESYNCING:
            kind = "gap" if event.reason == "gap" else "resync"
        self._events.append((event.code, kind, event.old.name, event.new.name, event.seq, event.reason))

    def _stamp(self, symbol: str, now: float) -> float:
        """Strictly increasing per symbol, across restarts (never rewrite history)."""
        ts = max(now, self._last_ts.get(symbol, 0.0) + 1e-6)
        self._last_ts[symbol] = ts
        return ts

    def _write(self) -> None:
        db = self._db
        if db is None or (not self._latest and not self._events):
            return
        now = time.time()
        rows = []
        for code, view in self._latest.items():
            if view.status is not BookStatus.LIVE or self._written_seq.get(code) == view.seq:
                continue
            bids = orjson.dumps([list(x) for x in view.bids[: self._depth]]).decode()
            asks = orjson.dumps([list(x) for x in view.asks[: self._depth]]).decode()
            rows.append((self._stamp(code, now), code, view.seq, view.status.name, bids, asks))
        events = [(self._stamp(e[0], now), *e) for e in self._events]
        db.execute("BEGIN")
        db.executemany("INSERT INTO snapshots(ts, symbol, seq, status, bids, asks) VALUES (?,?,?,?,?,?)", rows)
        db.executemany("INSERT INTO events(ts, symbol, kind, old_status, new_status, seq, reason) "
                       "VALUES (?,?,?,?,?,?,?)", events)
        db.execute("COMMIT")
        for _, code, seq, *_rest in rows:
            self._written_seq[code] = seq
        self.counters["rows_written"] += len(rows)
        self.counters["events_written"] += len(events)
        self.counters["batches"] += 1
        self._latest = {}
        self._events = []
