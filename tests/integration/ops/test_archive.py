"""The archive inside a running service: killed mid-run, it restarts and keeps appending."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.supervisor.otp.messages import Crash
from depthkeeper.supervisor.service.metrics import MetricsServer
from depthkeeper.supervisor.service.facade import BookService

from tests.support import wait_until

from .conftest import CODES, read_db
from .test_metrics import scrape, value

pytestmark = pytest.mark.integration

DEPTH = 5


def archive_child(svc: Any) -> Any:
    children = svc.chaos.children()
    return next(c for c in children if c.id == "archive")


def per_symbol_counts(path: Path) -> dict[str, int]:
    return dict(read_db(path, "SELECT symbol, COUNT(*) FROM snapshots GROUP BY symbol"))


def check_consistent(path: Path) -> None:
    assert read_db(path, "PRAGMA integrity_check") == [("ok",)]
    for table in ("snapshots", "events"):
        rows = read_db(path, f"SELECT symbol, ts FROM {table} ORDER BY id")
        last: dict[str, float] = {}
        for symbol, ts in rows:
            assert ts > last.get(symbol, float("-inf")), f"{table}: {symbol} ts not increasing at {ts}"
            last[symbol] = ts
    assert read_db(path, "SELECT symbol, seq FROM snapshots GROUP BY symbol, seq HAVING COUNT(*) > 1") == []
    assert read_db(path, "SELECT symbol, ts FROM (SELECT symbol, ts FROM snapshots UNION ALL "
                         "SELECT symbol, ts FROM events) GROUP BY symbol, ts HAVING COUNT(*) > 1") == []
    for bids, asks in read_db(path, "SELECT bids, asks FROM snapshots"):
        bids, asks = json.loads(bids), json.loads(asks)
        assert 0 < len(bids) <= DEPTH and 0 < len(asks) <= DEPTH
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert bids[0][0] < asks[0][0]


def test_killed_archive_restarts_and_keeps_appending(service: Callable[..., BookService], tmp_path: Path) -> None:
    path = tmp_path / "books.sqlite"
    svc = service(archive={"path": str(path), "interval_s": 0.05, "depth": DEPTH})
    assert svc.wait_live(timeout=10)
    wait_until(lambda: path.exists() and all(per_symbol_counts(path).get(c, 0) >= 3 for c in CODES), 10,
               "three snapshots of every symbol")
    svc.simulator.faults.drop(3, code="BTCUSDT")
    wait_until(lambda: read_db(path, "SELECT seq FROM events WHERE symbol = 'BTCUSDT' AND kind = 'gap'"), 10,
               "the gap event archived")

    before = archive_child(svc)
    kept = read_db(path, "SELECT * FROM snapshots ORDER BY id")
    before.ref.tell(Crash("test kill"))
    wait_until(lambda: (c := archive_child(svc)).generation > before.generation and c.alive, 10,
               "the archive restarted")
    last_id = kept[-1][0]
    wait_until(lambda: all(per_symbol_counts(path).get(c, 0) >= 3 + n for c, n in
                           read_db(path, "SELECT symbol, COUNT(*) FROM snapshots WHERE id <= ? GROUP BY symbol",
                                   (last_id,))), 10, "three more snapshots of every symbol after the restart")
    assert svc.stats().supervisor.restarts_by_kind.get("archive", 0) >= 1
    assert all(c.status == "LIVE" for c in svc.stats().books.values())
    server = MetricsServer(svc, svc.registry, 0)
    try:
        families = scrape(server.url)
    finally:
        server.stop()
    # the new incarnation counts from zero: what it wrote is part of the file
    written = value(families, "depthkeeper_archive_rows_written", "depthkeeper_archive_rows_written_total",
                    table="snapshots")
    assert 0 < written <= read_db(path, "SELECT COUNT(*) FROM snapshots WHERE id > ?", (last_id,))[0][0]
    assert value(families, "depthkeeper_restarts", "depthkeeper_restarts_total", kind="archive") >= 1
    svc.stop()

    check_consistent(path)
    assert read_db(path, "SELECT * FROM snapshots WHERE id <= ? ORDER BY id", (last_id,)) == kept  # never rewritten
    after = read_db(path, "SELECT MIN(ts) FROM snapshots WHERE id > ?", (last_id,))[0][0]
    assert after > max(row[1] for row in kept)
    gap_seq, live_seq = read_db(path, "SELECT seq FROM events WHERE symbol = 'BTCUSDT' AND kind = 'gap'")[0][0], \
        read_db(path, "SELECT MAX(seq) FROM snapshots WHERE symbol = 'BTCUSDT'")[0][0]
    assert 0 < gap_seq < live_seq


def test_a_fresh_archive_has_every_status_change_from_the_first(service: Callable[..., BookService],
                                                                  tmp_path: Path) -> None:
    """Defect 14: the archive listens before any book starts, so each book's first change
    (SYNCING -> LIVE) is in the file, and nothing is lost while the archive restarts."""
    path = tmp_path / "fresh.sqlite"
    svc = service(archive={"path": str(path), "interval_s": 0.05, "depth": DEPTH})
    assert svc.wait_live(timeout=10)
    first = "SELECT symbol FROM events WHERE old_status = 'SYNCING' AND new_status = 'LIVE'"
    wait_until(lambda: path.exists() and {row[0] for row in read_db(path, first)} == set(CODES), 10,
               "every book's first SYNCING -> LIVE archived")
    before = archive_child(svc)
    before.ref.tell(Crash("test kill"))
    svc.simulator.faults.drop(2, code="ETHUSDT")  # a change while the archive restarts
    wait_until(lambda: read_db(path, "SELECT seq FROM events WHERE symbol = 'ETHUSDT' AND kind = 'gap'"), 10,
               "the gap during the archive restart archived")
