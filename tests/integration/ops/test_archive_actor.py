"""The ArchiveActor alone (no supervisor): batching, crash and stop paths, restart, accounting.

Book events are told straight to the actor (or published through a real ListenerHub), and
writes are driven by telling ``ArchiveTick`` -- the timer interval is an hour, so nothing
is written unless the test asks for it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from depthkeeper.archive.actor import ArchiveActor, ArchiveReport, ArchiveTick
from depthkeeper.archive.schema import INSERT_CHUNK, ArchiveError, last_rows, open_archive
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView, GetCounters
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.otp.messages import Crash
from depthkeeper.supervisor.otp.scheduler import Scheduler

from tests.support import wait_until

from .conftest import read_db

HOUR_S = 3600.0


def view(code: str, seq: int, status: BookStatus = BookStatus.LIVE, levels: int = 8) -> BookView:
    bids = tuple((100.0 - i, 1.0 + i) for i in range(levels))
    asks = tuple((101.0 + i, 2.0 + i) for i in range(levels))
    return BookView(code, status, seq, bids, asks, time.time())


@pytest.fixture
def env() -> Iterator[Env]:
    hub, scheduler = ListenerHub(), Scheduler()
    yield hub, scheduler
    hub.close()
    scheduler.close()


def start(path: Path, env: Env, interval_s: float = HOUR_S, depth: int = 5) -> pykka.ActorRef[Any]:
    hub, scheduler = env
    return ArchiveActor.start(None, path=str(path), interval_s=interval_s, depth=depth, hub=hub, scheduler=scheduler)


Env = tuple[ListenerHub, Scheduler]


def counters(ref: pykka.ActorRef[Any]) -> ArchiveReport:
    result: ArchiveReport = ref.ask(GetCounters(), timeout=5)  # type: ignore[assignment]
    return result


def count(path: Path, table: str = "snapshots") -> int:
    return read_db(path, f"SELECT COUNT(*) FROM {table}")[0][0]


def test_tick_writes_newest_live_view_per_symbol_cut_to_depth(tmp_path: Path, env: Env) -> None:
    path = tmp_path / "a.sqlite"
    ref = start(path, env, depth=3)
    for seq in (1, 2, 3):
        ref.tell(BookUpdated(view("BTCUSDT", seq)))
    ref.tell(BookUpdated(view("ETHUSDT", 7, BookStatus.RESYNCING)))
    ref.tell(BookStatusChanged("ETHUSDT", BookStatus.LIVE, BookStatus.RESYNCING, 6, "gap"))
    ref.ask(ArchiveTick())
    rows = read_db(path, "SELECT symbol, seq, bids, asks FROM snapshots")
    assert rows == [("BTCUSDT", 3, "[[100.0,1.0],[99.0,2.0],[98.0,3.0]]", "[[101.0,2.0],[102.0,3.0],[103.0,4.0]]")]
    assert read_db(path, "SELECT symbol, kind, old_status, new_status, seq, reason FROM events") == [
        ("ETHUSDT", "gap", "LIVE", "RESYNCING", 6, "gap")]
    c = counters(ref)
    assert c.skipped == 2 and c.counters.not_live == 1 and c.counters.batches == 1
    assert read_db(path, "PRAGMA journal_mode")[0][0] == "wal"
    ref.tell(BookUpdated(view("BTCUSDT", 3)))  # unchanged since the last row: not written again
    ref.ask(ArchiveTick())
    assert count(path) == 1 and counters(ref).counters.unchanged == 1
    ref.stop()


def test_crash_loses_only_the_uncommitted_batch(tmp_path: Path, env: Env) -> None:
    path = tmp_path / "a.sqlite"
    ref = start(path, env)
    ref.tell(BookUpdated(view("BTCUSDT", 1)))
    ref.ask(ArchiveTick())
    ref.tell(BookUpdated(view("BTCUSDT", 2)))
    ref.tell(Crash("test"))
    wait_until(lambda: not ref.is_alive(), 5, "the archive to die")
    assert read_db(path, "SELECT seq FROM snapshots") == [(1,)]


def test_failure_inside_a_write_rolls_the_whole_batch_back(tmp_path: Path, env: Env) -> None:
    """Snapshots are inserted before events; an event insert that fails must take them back out."""
    path = tmp_path / "a.sqlite"
    open_archive(str(path)).close()
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.symbol = 'BOOM' "
               "BEGIN SELECT RAISE(ABORT, 'boom'); END")
    db.commit()
    db.close()
    ref = start(path, env)
    ref.tell(BookUpdated(view("BTCUSDT", 1)))
    ref.tell(BookStatusChanged("BOOM", BookStatus.SYNCING, BookStatus.LIVE, 1, "snapshot"))
    ref.tell(ArchiveTick())
    wait_until(lambda: not ref.is_alive(), 5, "the archive to crash on the failing insert")
    assert count(path) == 0 and count(path, "events") == 0
    assert read_db(path, "PRAGMA integrity_check") == [("ok",)]


def test_clean_stop_commits_what_it_holds(tmp_path: Path, env: Env) -> None:
    path = tmp_path / "a.sqlite"
    ref = start(path, env)
    ref.tell(BookUpdated(view("BTCUSDT", 5)))
    ref.tell(BookStatusChanged("BTCUSDT", BookStatus.SYNCING, BookStatus.LIVE, 5, "snapshot"))
    ref.stop()
    assert read_db(path, "SELECT seq FROM snapshots") == [(5,)]
    assert read_db(path, "SELECT kind, new_status FROM events") == [("status", "LIVE")]


def test_restart_appends_with_strictly_increasing_ts_even_if_the_clock_is_behind(tmp_path: Path, env: Env) -> None:
    path = tmp_path / "a.sqlite"
    future = time.time() + 1000.0
    db = open_archive(str(path))
    db.execute("INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) VALUES (?, 'BTCUSDT', 9, 0, '[]', '[]')",
               (future,))
    db.execute("INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) VALUES (?, 'BTCUSDT', 8, 0, '[]', '[]')",
               (future - 5,))
    db.execute("INSERT INTO events(ts, symbol, kind, old_status, new_status, seq, reason) "
               "VALUES (?, 'ETHUSDT', 'status', 'SYNCING', 'LIVE', 3, 'snapshot')", (future + 1,))
    db.close()
    assert last_rows(open_archive(str(path))) == ({"BTCUSDT": future, "ETHUSDT": future + 1}, {"BTCUSDT": 9})
    ref = start(path, env)
    ref.tell(BookUpdated(view("BTCUSDT", 9)))  # the last archived seq: nothing new
    ref.tell(BookUpdated(view("ETHUSDT", 4)))
    ref.tell(BookStatusChanged("BTCUSDT", BookStatus.LIVE, BookStatus.RESYNCING, 9, "gap"))
    ref.ask(ArchiveTick())
    ref.tell(BookUpdated(view("BTCUSDT", 10)))
    ref.stop()
    rows = read_db(path, "SELECT symbol, ts, seq FROM snapshots ORDER BY id")
    assert [(s, q) for s, _, q in rows] == [("BTCUSDT", 9), ("BTCUSDT", 8), ("ETHUSDT", 4), ("BTCUSDT", 10)]
    assert rows[2][1] > future + 1  # after ETHUSDT's last event
    event_ts = read_db(path, "SELECT ts FROM events WHERE symbol = 'BTCUSDT'")[0][0]
    assert future < event_ts < rows[3][1]


def test_every_published_view_is_accounted_for(tmp_path: Path, env: Env) -> None:
    """published = written + skipped (replaced here or conflated in the hub) + not live + unchanged."""
    hub, _ = env
    path = tmp_path / "a.sqlite"
    ref = start(path, env)
    wait_until(lambda: hub.active, 5, "the archive to listen")
    published = 0
    for seq in range(1, 2001):
        for code in ("BTCUSDT", "ETHUSDT"):
            status = BookStatus.LIVE if seq % 7 else BookStatus.RESYNCING
            hub.publish(BookUpdated(view(code, seq, status)), code)
            published += 1
        if seq % 500 == 0:
            ref.tell(ArchiveTick())

    def drained() -> dict[str, Any] | None:
        c = counters(ref)
        hub_conflated = next(iter(hub.stats().values()))["conflated"]
        return c if c.views + hub_conflated == published else None

    wait_until(drained, 10, "every publication delivered or conflated")
    ref.ask(ArchiveTick())
    c = counters(ref)
    assert c.pending == 0
    assert c.counters.rows_written + c.skipped + c.counters.not_live + c.counters.unchanged == published
    assert c.counters.rows_written == count(path) >= 2
    ref.stop()


def test_missed_intervals_are_counted_not_queued(tmp_path: Path, env: Env) -> None:
    """An interval far shorter than one write: ticks are skipped (counted), the actor stays responsive."""
    path = tmp_path / "a.sqlite"
    ref = start(path, env, interval_s=1e-5)
    ref.tell(BookUpdated(view("BTCUSDT", 1)))
    wait_until(lambda: counters(ref).counters.missed_intervals > 0, 5, "missed intervals")
    wait_until(lambda: count(path) == 1, 5, "the row written")
    started = time.monotonic()
    ref.ask(GetCounters(), timeout=2)
    assert time.monotonic() - started < 1.0
    ref.stop()


def test_unknown_schema_version_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ArchiveError, match="version 99"):
        open_archive(str(path))


def test_a_batch_larger_than_one_insert_statement_is_written_whole(tmp_path: Path, env: Env) -> None:
    path = tmp_path / "a.sqlite"
    ref = start(path, env)
    codes = [f"SYM{i:04d}USDT" for i in range(2 * INSERT_CHUNK + 7)]
    for code in codes:
        ref.tell(BookUpdated(view(code, 1)))
        ref.tell(BookStatusChanged(code, BookStatus.SYNCING, BookStatus.LIVE, 1, "snapshot"))
    ref.ask(ArchiveTick())
    assert [s for (s,) in read_db(path, "SELECT symbol FROM snapshots ORDER BY id")] == codes
    assert [s for (s,) in read_db(path, "SELECT symbol FROM events ORDER BY id")] == codes
    assert counters(ref).counters.batches == 1
    ref.stop()
