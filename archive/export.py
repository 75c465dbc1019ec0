"""``depthkeeper export``: archived book snapshots of one symbol as CSV or JSON lines, for backtests.

The window is half-open, ``[--from, --to)``, so consecutive windows (``--from 2024-05-01
--to 2024-05-02``, then ``--from 2024-05-02 ...``) never export a row twice. Times are
epoch seconds (``1714521600``, ``1714521600.25``) or ISO-8601 (``2024-05-01``,
``2024-05-01T12:00:00``, ``...Z``, ``...+02:00``); an ISO time without a zone is UTC,
never the exporting machine's local zone, so an export is the same wherever it runs.

CSV is flat, one column per level (``bid_price_1, bid_size_1, ...``) up to the deepest
row exported, empty where a row has fewer levels: what a dataframe loader wants. JSON
lines keep the levels as ``[[price, size], ...]`` arrays, best first. The file is opened
read-only, so exporting while the service archives is safe (WAL readers never block it).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from depthkeeper.archive.schema import SNAPSHOT_COLUMNS, ArchiveError, open_readonly, snapshot_span, snapshot_symbols

_COLUMNS = ("ts", "symbol", "seq", "updated_at")


class ExportError(Exception):
    """The archive cannot be exported (not an archive, bad window)."""


class NoRows(ExportError):
    """The archive has no row of the symbol in the window; the message says what it has."""


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _no_rows(db: sqlite3.Connection, symbol: str) -> NoRows:
    span = snapshot_span(db, symbol)
    if span is not None:
        return NoRows(f"no rows of {symbol} in the window; its rows span {_iso(span[0])} .. {_iso(span[1])} "
                      f"({span[0]!r} .. {span[1]!r})")
    symbols = snapshot_symbols(db)
    return NoRows(f"no rows of {symbol}; the archive has: {', '.join(symbols)}" if symbols
                  else f"no rows of {symbol}; the archive is empty")


def parse_time(text: str | None) -> float | None:
    """Epoch seconds from a number or an ISO-8601 time (UTC when it has no zone); None stays None."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a time")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor an ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _window(symbol: str, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    where: list[str] = ["symbol = ?"]
    params: list[Any] = [symbol]
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    return " AND ".join(where), params


def _connect(path: str) -> sqlite3.Connection:
    try:
        return open_readonly(path)
    except ArchiveError as exc:
        raise ExportError(str(exc)) from None


def _rows(db: sqlite3.Connection, where: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
    return db.execute(f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM snapshots WHERE {where} ORDER BY ts", params)


def _depth(db: sqlite3.Connection, where: str, params: list[Any]) -> int:
    """The deepest side of any exported row (the CSV's level columns)."""
    try:
        row = db.execute(f"SELECT MAX(MAX(json_array_length(bids), json_array_length(asks))) FROM snapshots "
                         f"WHERE {where}", params).fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:  # an SQLite built without JSON functions
        return max((max(len(json.loads(r[4])), len(json.loads(r[5]))) for r in _rows(db, where, params)), default=0)


def _csv_header(depth: int) -> list[str]:
    levels = [f"{side}_{what}_{i}" for side in ("bid", "ask") for i in range(1, depth + 1)
              for what in ("price", "size")]
    # keep each level's price and size adjacent: bid_price_1, bid_size_1, bid_price_2, ...
    return [*_COLUMNS, *levels]


def _flat(levels: list[list[float]], depth: int) -> list[Any]:
    out: list[Any] = []
    for i in range(depth):
        out.extend(levels[i] if i < len(levels) else ("", ""))
    return out


def export(path: str, symbol: str, start: float | None, end: float | None, fmt: str, out: TextIO) -> int:
    """Write the snapshots of ``symbol`` with ``start <= ts < end`` to ``out``, oldest first; return the count.
    Raises :class:`NoRows` (before writing anything) when there are none."""
    if start is not None and end is not None and end <= start:
        raise ExportError(f"empty window: --to ({end}) must be after --from ({start})")
    db = _connect(path)
    try:
        where, params = _window(symbol, start, end)
        if db.execute(f"SELECT 1 FROM snapshots WHERE {where} LIMIT 1", params).fetchone() is None:
            raise _no_rows(db, symbol)
        count = 0
        if fmt == "csv":
            depth = _depth(db, where, params)
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(_csv_header(depth))
            for ts, sym, seq, updated_at, bids, asks in _rows(db, where, params):
                writer.writerow([repr(ts), sym, seq, repr(updated_at),
                                 *_flat(json.loads(bids), depth), *_flat(json.loads(asks), depth)])
                count += 1
        elif fmt == "jsonl":
            for ts, sym, seq, updated_at, bids, asks in _rows(db, where, params):
                out.write(json.dumps({"ts": ts, "symbol": sym, "seq": seq, "updated_at": updated_at,
                                      "bids": json.loads(bids), "asks": json.loads(asks)}) + "\n")
                count += 1
        else:
            raise ExportError(f"unknown format {fmt!r} (csv or jsonl)")
        return count
    finally:
        db.close()


def export_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The CLI entry: exit status 0 (rows written), 1 no rows of the symbol in the window (stderr says
    which symbols the archive has), 2 a usage or file problem."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not Path(args.archive).is_file():
        print(f"depthkeeper export: {args.archive}: no such archive", file=err)
        return 2
    try:
        start, end = parse_time(args.start), parse_time(args.end)
    except ValueError as exc:
        print(f"depthkeeper export: bad --from/--to: {exc}", file=err)
        return 2
    try:
        count = export(args.archive, args.symbol, start, end, args.format, out)
    except NoRows as exc:
        print(f"depthkeeper export: {exc}", file=err)
        return 1
    except (ExportError, sqlite3.Error) as exc:
        print(f"depthkeeper export: {exc}", file=err)
        return 2
    except BrokenPipeError:  # `depthkeeper export ... | head`: the reader has all it wants
        return 0
    print(f"depthkeeper export: {count} rows of {args.symbol}", file=err)
    return 0
