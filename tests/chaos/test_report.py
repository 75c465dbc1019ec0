"""The chaos report's tables are aligned whatever the lengths of the kinds and the figures."""

from __future__ import annotations

import attrs

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.chaos.cli import render_report
from depthkeeper.chaos.recovery import Pending, RecoveryFigures, RecoveryTracker
from depthkeeper.chaos.report import ChaosReport


def report() -> ChaosReport:
    return ChaosReport(
        seed=7, duration_s=12.0, kills={"book": 47, "zombie:connection": 2}, missed_kills={}, faults={"gap": 4},
        actor_kills=49, venue_faults=4, books_total=6, books_exact=6, ghosts=(), missing=(), server_connections=1,
        duplicate_subscribes=0, empty_lists=0, views_checked=3443, view_violations=0, oracle_samples=35,
        leaked_threads=(), leaked_actors=(), restarts={"book": 49}, escalations=0,
        recovery=(RecoveryFigures("book", 47, 0.022, 0.207, 0.207, 0, 39, 0.095),
                  RecoveryFigures("zombie:connection", 2, 0.063, 0.068, 12.5, 0, 2, 0.068),
                  RecoveryFigures("gap", 1234, 0.103, 0.281, 0.281, 10, 1, 0.116)),
        violations=(), archive={"rows_written": 578, "skipped": 4401, "lost": 7})


def column_ends(line: str) -> list[int]:
    """Where each whitespace-separated cell of a line ends."""
    ends, inside = [], False
    for i, ch in enumerate(line + " "):
        if ch != " " and not inside:
            inside = True
        elif ch == " " and inside:
            ends.append(i)
            inside = False
    return ends


def test_recovery_table_columns_line_up() -> None:
    lines = render_report(report()).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("recovery"))
    table = lines[head:head + 4]
    assert [line.split()[0] for line in table[1:]] == ["book", "zombie:connection", "gap"]
    # the numeric columns are right-aligned: every row's cells end where the header's do
    header_ends = column_ends(table[0].replace("isolated n", "isolated_n").replace("isolated p99", "isolated_p99"))
    for row in table[1:]:
        assert column_ends(row)[1:] == header_ends[1:], row
    assert len({len(line) for line in table}) == 1


def test_labelled_lines_line_up() -> None:
    lines = render_report(report()).splitlines()
    kills = [line for line in lines if line.split(" ")[0] in ("actor", "missed", "venue")][:3]
    assert len({line.index("(") for line in kills}) == 1  # the detail column starts at one place
    block = lines[lines.index("") + 1:]
    labelled = block[block.index("") + 1:block.index("", block.index("") + 1)]
    assert labelled[0].startswith("books exact") and labelled[-1].startswith("archive rows")
    starts = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in labelled}
    assert len(starts) == 1, labelled


def test_the_1008_line_shows_only_on_binance_and_lines_up() -> None:
    plain = render_report(report())
    assert "1008" not in plain
    lines = render_report(attrs.evolve(report(), rate_closes={"total": 3, "provoked": 3})).splitlines()
    line = next(line for line in lines if line.startswith("1008 closes"))
    assert line.endswith("3 (provoked by ping bursts: 3)")
    books = next(line for line in lines if line.startswith("books exact"))
    assert len(line) - len(line.split("  ", 1)[1].lstrip()) == len(books) - len(books.split("  ", 1)[1].lstrip())


def test_a_lift_waits_only_for_the_rejected_status_of_its_own_event() -> None:
    """The runner holds a lift until the book showed REJECTED (binance finds the code by splitting)."""
    tracker = RecoveryTracker(svc=None, sim=None, timeout_s=10.0)
    tracker.add(Pending("close", 1.0, ("ETHUSDT",), source=4))
    tracker.add(Pending("reject", 1.0, ("BTCUSDT",), source=4, status=BookStatus.REJECTED))
    assert tracker.waiting(4, BookStatus.REJECTED) and not tracker.waiting(5, BookStatus.REJECTED)
    tracker.complete_status("BTCUSDT", BookStatus.REJECTED, 3.5)
    assert not tracker.waiting(4, BookStatus.REJECTED) and tracker.waiting(4, BookStatus.LIVE)
    assert [(r.kind, r.seconds) for r in tracker.records] == [("reject", 2.5)]
