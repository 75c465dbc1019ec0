"""Fixtures for the operability tests: a BookService with its embedded simulator on 127.0.0.1.

The heartbeat here is long on purpose: these tests freeze the market and then compare two
readings, and a heartbeat timeout (business silence) between them would change the figures.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.supervisor.service.config import AppConfig
from depthkeeper.supervisor.service.facade import BookService
from tests.support import build_config, service_factory

CODES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


OPS_BASE: dict[str, dict[str, Any]] = {
    "symbols": {"initial": CODES},
    "heartbeat": {"interval_s": 5.0, "silent_intervals": 3},
    "log": {"stats_interval_s": 10.0},
    "simulator": {"symbols": [*CODES, "XRPUSDT"], "seed": 5},
}


def ops_config(**sections: dict[str, Any]) -> AppConfig:
    return build_config(OPS_BASE, source="<ops-test>", **sections)


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
    yield from service_factory(ops_config)
