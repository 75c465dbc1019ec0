"""Fixtures: a BookService with its embedded simulator on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from depthkeeper.supervisor.config import AppConfig, config_from_mapping
from depthkeeper.supervisor.service import BookService


def fast_config(**sections: dict[str, Any]) -> AppConfig:
    """A config tuned for tests: short heartbeats and backoffs, a small market."""
    data: dict[str, dict[str, Any]] = {
        "venue": {"dialect": "article"},
        "symbols": {"initial": ["BTCUSDT", "ETHUSDT"]},
        "heartbeat": {"interval_s": 0.25, "silent_intervals": 3},
        "reconnect": {"backoff_min_s": 0.02, "backoff_max_s": 0.2},
        "subscription": {"coalesce_window_s": 0.005},
        "snapshot": {"max_per_second": 200.0, "retry_min_s": 0.02, "retry_max_s": 0.2},
        "supervisor": {"max_restarts": 50, "period_s": 10.0, "restart_backoff_min_s": 0.0,
                       "restart_backoff_max_s": 0.05},
        "calibration": {"interval_s": 0.0},
        "simulator": {"enabled": True, "dialect": "article",
                      "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT", "XRPUSDT", "ADAUSDT"],
                      "rate_per_symbol": 100.0, "seed": 3, "levels": 10},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_mapping(data, environ={}, source="<test>")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def levels(rows: list[list[str]]) -> tuple[tuple[float, float], ...]:
    return tuple((float(p), float(s)) for p, s in rows)


def equals_truth(svc: BookService, code: str) -> bool:
    """The book is LIVE and exactly equal (all levels, same seq) to the simulator's truth."""
    truth = svc.simulator.truth(code)
    try:
        view = svc.book(code)
    except Exception:  # noqa: BLE001 - restarting: not equal yet
        return False
    return (view.status.name == "LIVE" and view.seq == truth["seq"] and view.bids == levels(truth["bids"])
            and view.asks == levels(truth["asks"]))


def converge_exact(svc: BookService, codes: Any = None, timeout: float = 15.0) -> None:
    """Freeze the market and wait until every desired book equals the truth."""
    svc.simulator.freeze()
    wanted = sorted(codes or svc.subscriptions())
    wait_until(lambda: all(equals_truth(svc, c) for c in wanted), timeout, f"books {wanted} exact")


def server_sets(svc: BookService) -> list[frozenset[str]]:
    return list(svc.simulator.subscriptions().values())


@pytest.fixture
def service() -> Iterator[Callable[..., BookService]]:
    started: list[BookService] = []

    def make(**sections: dict[str, Any]) -> BookService:
        svc = BookService.start(fast_config(**sections))
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()
