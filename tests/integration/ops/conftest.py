"""Fixtures for the operability tests: a BookService with its embedded simulator on 127.0.0.1.

The heartbeat here is long on purpose: these tests freeze the market and then compare two
readings, and a heartbeat timeout (business silence) between them would change the figures.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.supervisor.config import AppConfig, config_from_mapping
from depthkeeper.supervisor.service import BookService

CODES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def ops_config(**sections: dict[str, Any]) -> AppConfig:
    data: dict[str, dict[str, Any]] = {
        "venue": {"dialect": "article"},
        "symbols": {"initial": CODES},
        "heartbeat": {"interval_s": 5.0, "silent_intervals": 3},
        "reconnect": {"backoff_min_s": 0.02, "backoff_max_s": 0.2},
        "subscription": {"coalesce_window_s": 0.005},
        "snapshot": {"max_per_second": 200.0, "retry_min_s": 0.02, "retry_max_s": 0.2},
        "supervisor": {"max_restarts": 50, "period_s": 10.0, "restart_backoff_min_s": 0.0,
                       "restart_backoff_max_s": 0.05},
        "calibration": {"interval_s": 0.0},
        "simulator": {"enabled": True, "dialect": "article", "symbols": [*CODES, "XRPUSDT"],
                      "rate_per_symbol": 100.0, "seed": 5, "levels": 10},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_mapping(data, environ={}, source="<ops-test>")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail with ``what`` at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (config port 0 means "metrics off", so tests pick one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_db(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the archive as an outside reader would (its own connection, read-only)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


@pytest.fixture
def service() -> Iterator[Callable[..., BookService]]:
    started: list[BookService] = []

    def make(**sections: dict[str, Any]) -> BookService:
        svc = BookService.start(ops_config(**sections))
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()
