"""``depthkeeper export``: archived book snapshots of one symbol as CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sqlite3
import sys
from pathlib import Path
from typing import TextIO


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch from a number or an ISO-8601 time (UTC if no zone)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def export(path: str, symbol: str, start: float | None, end: float | None, fmt: str, out: TextIO) -> int:
    """Write rows to ``out``; returns the row count."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT ts, symbol, seq, status, bids, asks FROM snapshots WHERE symbol = ? AND ts >= ? AND ts <= ? "
            "ORDER BY ts", (symbol, start if start is not None else float("-inf"), end if end is not None else float("inf")))
        count = 0
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(["ts", "symbol", "seq", "status", "bids", "asks"])
        for ts, sym, seq, status, bids, asks in rows:
            if writer is not None:
                writer.writerow([f"{ts:.6f}", sym, seq, status, bids, asks])
            else:
                out.write(json.dumps({"ts": ts, "symbol": sym, "seq": seq, "status": status,
                                      "bids": json.loads(bids), "asks": json.loads(asks)}) + "\n")
            count += 1
        return count
    finally:
        db.close()


def export_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if not Path(args.archive).is_file():
        print(f"depthkeeper export: {args.archive}: no such archive", file=sys.stderr)
        return 2
    try:
        start, end = parse_time(args.start), parse_time(args.end)
    except ValueError as exc:
        print(f"depthkeeper export: bad --from/--to: {exc}", file=sys.stderr)
        return 2
    export(args.archive, args.symbol, start, end, args.format, out)
    return 0
