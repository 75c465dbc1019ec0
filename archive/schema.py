"""The archive's file format, in one place: schema, version, opening, reading back, writing.

The ArchiveActor writes through it and ``depthkeeper export`` reads through it; nothing else
spells a table or a column. Documented in the README ("Archive").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

#: ``PRAGMA user_version`` of the files we write
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    symbol TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    bids TEXT NOT NULL,
    asks TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS snapshots_symbol_ts ON snapshots(symbol, ts);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    symbol TEXT NOT NULL,
    kind TEXT NOT NULL,
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_symbol_ts ON events(symbol, ts);
"""
#: rows per INSERT statement (x 7 columns stays under SQLite's oldest 999-parameter limit)
INSERT_CHUNK = 140

#: distinct symbols of a table by skip-scan over its (symbol, ts) index: O(symbols * log rows)
_SYMBOLS_SQL = """
WITH RECURSIVE s(symbol) AS (
    SELECT MIN(symbol) FROM {table}
    UNION ALL
    SELECT (SELECT MIN(symbol) FROM {table} WHERE symbol > s.symbol) FROM s WHERE s.symbol IS NOT NULL)
SELECT symbol FROM s WHERE symbol IS NOT NULL
"""


#: the columns of a snapshot row, as export reads them
SNAPSHOT_COLUMNS = ("ts", "symbol", "seq", "updated_at", "bids", "asks")


class ArchiveError(Exception):
    """The archive file cannot be used (written by an unknown schema version)."""


def open_archive(path: str) -> sqlite3.Connection:
    """Open (creating if needed) an archive file in WAL mode, autocommit (we BEGIN ourselves)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise ArchiveError(f"{path}: archive schema version {version}, this depthkeeper writes {SCHEMA_VERSION}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a process crash never loses a commit
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


def last_rows(db: sqlite3.Connection) -> tuple[dict[str, float], dict[str, int]]:
    """(last ts per symbol over both tables, seq of the last snapshot row per symbol)."""
    last_ts: dict[str, float] = {}
    last_seq: dict[str, int] = {}
    for table in ("snapshots", "events"):
        for (symbol,) in db.execute(_SYMBOLS_SQL.format(table=table)).fetchall():
            ts, seq = db.execute(f"SELECT ts, seq FROM {table} WHERE symbol = ? ORDER BY ts DESC LIMIT 1",
                                 (symbol,)).fetchone()
            last_ts[symbol] = max(ts, last_ts.get(symbol, ts))
            if table == "snapshots":
                last_seq[symbol] = seq
    return last_ts, last_seq


def insert_rows(db: sqlite3.Connection, head: str, rows: list[tuple[Any, ...]]) -> None:
    """Multi-row INSERTs, ``INSERT_CHUNK`` rows per statement.

    ``executemany`` steps once per row, and the sqlite3 module releases and re-takes the
    GIL around every step: on a busy process each re-take can wait a whole switch interval
    and forces the reader or a book to yield. One statement per chunk makes that a handful.
    """
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start:start + INSERT_CHUNK]
        marks = "(" + ",".join("?" * len(chunk[0])) + ")"
        db.execute(head + ",".join([marks] * len(chunk)), [value for row in chunk for value in row])


def open_readonly(path: str) -> sqlite3.Connection:
    """Open an archive for reading only: never creates one, never blocks the writer, leaves no file.

    A WAL reader needs the ``-shm`` index; opened with ``mode=ro`` when no writer has the file open,
    SQLite would create ``-wal``/``-shm`` next to it and leave them there. So: when a ``-wal`` file
    exists, a writer is (or was) at work, and we read in WAL mode through its files, seeing only
    committed transactions; when none exists, nothing can be in flight, and the file is opened
    ``immutable`` (no locks, no side files, fine on a read-only directory or medium).
    """
    resolved = Path(path).resolve()
    writer = Path(f"{resolved}-wal").exists()
    query = "mode=ro" if writer else "mode=ro&immutable=1"
    db = sqlite3.connect(f"{resolved.as_uri()}?{query}", uri=True)
    try:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ArchiveError(f"{path}: not an archive ({exc})") from None
    if "snapshots" not in names:
        db.close()
        raise ArchiveError(f"{path}: not an archive (no snapshots table)")
    return db


def snapshot_symbols(db: sqlite3.Connection) -> list[str]:
    """The symbols that have snapshot rows, sorted (a skip-scan of the index, cheap on any size)."""
    return [symbol for (symbol,) in db.execute(_SYMBOLS_SQL.format(table="snapshots")).fetchall()]


def snapshot_span(db: sqlite3.Connection, symbol: str) -> tuple[float, float] | None:
    """(first ts, last ts) of ``symbol``'s snapshot rows, or None when it has none."""
    first, last = db.execute("SELECT MIN(ts), MAX(ts) FROM snapshots WHERE symbol = ?", (symbol,)).fetchone()
    return None if first is None else (first, last)
