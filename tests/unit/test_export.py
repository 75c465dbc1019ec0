"""``depthkeeper export``: time parsing, the half-open window, CSV and JSON lines, errors."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from depthkeeper.archive.export import ExportError, NoRows, export, export_command, parse_time
from depthkeeper.archive.schema import open_archive
from depthkeeper.supervisor.cli.main import main

T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z


@pytest.mark.parametrize(("text", "expected"), [
    ("1714521600", T0),
    ("1714521600.25", T0 + 0.25),
    (" 1714521600 ", T0),
    ("2024-05-01", T0),
    ("2024-05-01T00:00:00", T0),
    ("2024-05-01T00:00:00Z", T0),
    ("2024-05-01 02:00:00+02:00", T0),
    ("2024-05-01T00:00:01.5", T0 + 1.5),
    (None, None),
    ("", None),
])
def test_parse_time_epoch_seconds_and_iso_utc_by_default(text: str | None, expected: float | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "nan", "inf", "-inf", "2024-13-01", "1714521600ms"])
def test_parse_time_rejects_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """BTCUSDT at T0, T0+1, T0+2 (the middle one only 1 level deep), ETHUSDT at T0+1."""
    path = tmp_path / "books.sqlite"
    db = open_archive(str(path))
    rows = [
        (T0, "BTCUSDT", 10, T0 - 0.5, [[100.0, 1.0], [99.5, 2.0]], [[100.5, 3.0], [101.0, 4.0]]),
        (T0 + 1, "BTCUSDT", 11, T0 + 0.9, [[100.0, 1.5]], [[100.5, 3.0]]),
        (T0 + 2, "BTCUSDT", 12, T0 + 1.9, [[100.5, 1.0], [100.0, 2.0]], [[101.0, 1.0], [101.5, 2.0]]),
        (T0 + 1, "ETHUSDT", 7, T0 + 0.5, [[3000.0, 1.0]], [[3001.0, 1.0]]),
    ]
    db.executemany("INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) VALUES (?,?,?,?,?,?)",
                   [(ts, s, q, u, json.dumps(b), json.dumps(a)) for ts, s, q, u, b, a in rows])
    db.close()
    return path


def run(path: Path, symbol: str, start: float | None, end: float | None, fmt: str) -> tuple[int, str]:
    out = io.StringIO()
    n = export(str(path), symbol, start, end, fmt, out)
    return n, out.getvalue()


def test_csv_is_flat_one_column_per_level(archive: Path) -> None:
    n, text = run(archive, "BTCUSDT", None, None, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert n == 3 and len(rows) == 4
    assert rows[0] == ["ts", "symbol", "seq", "updated_at", "bid_price_1", "bid_size_1", "bid_price_2", "bid_size_2",
                       "ask_price_1", "ask_size_1", "ask_price_2", "ask_size_2"]
    assert rows[1] == [repr(T0), "BTCUSDT", "10", repr(T0 - 0.5), "100.0", "1.0", "99.5", "2.0",
                       "100.5", "3.0", "101.0", "4.0"]
    assert rows[2][4:] == ["100.0", "1.5", "", "", "100.5", "3.0", "", ""]  # a shallower row: empty cells
    assert [float(r[0]) for r in rows[1:]] == [T0, T0 + 1, T0 + 2]


def test_window_is_half_open_and_per_symbol(archive: Path) -> None:
    n, text = run(archive, "BTCUSDT", T0 + 1, T0 + 2, "jsonl")
    assert n == 1 and [json.loads(line)["seq"] for line in text.splitlines()] == [11]
    assert run(archive, "BTCUSDT", T0 + 1, None, "jsonl")[0] == 2
    assert run(archive, "BTCUSDT", None, T0 + 1, "jsonl")[0] == 1
    assert run(archive, "ETHUSDT", None, None, "jsonl")[0] == 1
    out = io.StringIO()
    with pytest.raises(NoRows, match="no rows of XRPUSDT; the archive has: BTCUSDT, ETHUSDT"):
        export(str(archive), "XRPUSDT", None, None, "csv", out)
    assert out.getvalue() == ""  # nothing written: no header-only file to mistake for data
    with pytest.raises(NoRows, match=r"no rows of BTCUSDT in the window; its rows span 2024-05-01T00:00:00Z \.\. "
                                     r"2024-05-01T00:00:02Z"):
        run(archive, "BTCUSDT", T0 + 10, None, "csv")


def test_jsonl_keeps_levels_as_arrays(archive: Path) -> None:
    _, text = run(archive, "BTCUSDT", T0, T0 + 0.5, "jsonl")
    assert json.loads(text) == {"ts": T0, "symbol": "BTCUSDT", "seq": 10, "updated_at": T0 - 0.5,
                                "bids": [[100.0, 1.0], [99.5, 2.0]], "asks": [[100.5, 3.0], [101.0, 4.0]]}


def test_empty_or_inverted_window_is_an_error(archive: Path) -> None:
    with pytest.raises(ExportError, match="after"):
        run(archive, "BTCUSDT", T0 + 2, T0 + 1, "csv")
    with pytest.raises(ExportError, match="after"):
        run(archive, "BTCUSDT", T0, T0, "csv")


def test_not_an_archive(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ExportError, match="no snapshots table"):
        run(other, "BTCUSDT", None, None, "csv")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ExportError, match="not an archive"):
        run(junk, "BTCUSDT", None, None, "csv")


def _args(path: Path, **kw: str | None) -> argparse.Namespace:
    values = {"archive": str(path), "symbol": "BTCUSDT", "start": None, "end": None, "format": "csv", **kw}
    return argparse.Namespace(**values)


def test_command_exit_statuses(archive: Path, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert export_command(_args(archive, start="2024-05-01T00:00:01Z", format="jsonl"), out, err) == 0
    assert len(out.getvalue().splitlines()) == 2 and "2 rows of BTCUSDT" in err.getvalue()
    err = io.StringIO()
    assert export_command(_args(tmp_path / "missing.sqlite"), io.StringIO(), err) == 2
    assert "no such archive" in err.getvalue()
    err = io.StringIO()
    assert export_command(_args(archive, end="soon"), io.StringIO(), err) == 2
    assert "bad --from/--to" in err.getvalue()
    err = io.StringIO()
    assert export_command(_args(archive, start="2024-05-02", end="2024-05-01"), io.StringIO(), err) == 2
    assert "empty window" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert export_command(_args(archive, symbol="SOLUSDT"), out, err) == 1
    assert out.getvalue() == "" and "the archive has: BTCUSDT, ETHUSDT" in err.getvalue()


def test_cli_export_end_to_end(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["export", "--archive", str(archive), "--symbol", "BTCUSDT", "--from", str(T0 + 1),
                   "--to", "2024-05-01T00:00:02Z", "--format", "csv"])
    captured = capsys.readouterr()
    assert status == 0
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{T0 + 1!r},BTCUSDT,11,")
    assert "1 rows" in captured.err


def test_export_reads_while_the_archive_is_open_for_writing(archive: Path) -> None:
    """WAL: a reader exports while a writer holds the file (the service keeps archiving)."""
    writer = open_archive(str(archive))
    try:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) "
                       "VALUES (?, 'BTCUSDT', 13, 0, '[]', '[]')", (T0 + 3,))
        assert run(archive, "BTCUSDT", None, None, "jsonl")[0] == 3  # the uncommitted row is not seen
        writer.execute("COMMIT")
        assert run(archive, "BTCUSDT", None, None, "jsonl")[0] == 4
    finally:
        writer.close()


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_export_leaves_no_file_behind(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: exporting a closed archive used to leave -wal/-shm files in the current directory."""
    monkeypatch.chdir(tmp_path)
    assert files_in(tmp_path) == {"books.sqlite"}  # the writer closed cleanly: no side files
    before = archive.read_bytes()
    assert main(["export", "--archive", "books.sqlite", "--symbol", "BTCUSDT", "--format", "jsonl"]) == 0
    assert main(["export", "--archive", "books.sqlite", "--symbol", "NOPE"]) == 1
    assert files_in(tmp_path) == {"books.sqlite"} and archive.read_bytes() == before


def test_export_while_a_writer_is_open_uses_its_files_and_adds_none(archive: Path, tmp_path: Path) -> None:
    writer = open_archive(str(archive))
    try:
        writer.execute("INSERT INTO snapshots(ts, symbol, seq, updated_at, bids, asks) "
                       "VALUES (?, 'BTCUSDT', 13, 0, '[]', '[]')", (T0 + 3,))  # committed into the -wal only
        with_writer = files_in(tmp_path)
        assert "books.sqlite-wal" in with_writer
        assert run(archive, "BTCUSDT", None, None, "jsonl")[0] == 4  # the reader sees the WAL's commit
        assert files_in(tmp_path) == with_writer
    finally:
        writer.close()
    assert files_in(tmp_path) == {"books.sqlite"}
