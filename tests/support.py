"""Helpers shared by the integration, ops and chaos suites (one copy, imported as tests.support)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.supervisor.service.config import AppConfig, config_from_mapping
from depthkeeper.supervisor.service.facade import BookService

#: the fast settings every suite starts from: short heartbeats and backoffs, a small market
BASE_SECTIONS: dict[str, dict[str, Any]] = {
    "venue": {"dialect": "article"},
    "symbols": {"initial": ["BTCUSDT", "ETHUSDT"]},
    "heartbeat": {"interval_s": 0.25, "silent_intervals": 3},
    "reconnect": {"backoff_min_s": 0.02, "backoff_max_s": 0.2},
    "subscription": {"coalesce_window_s": 0.005},
    "snapshot": {"max_per_second": 200.0, "retry_min_s": 0.02, "retry_max_s": 0.2},
    "supervisor": {"max_restarts": 50, "period_s": 10.0, "restart_backoff_min_s": 0.0,
                   "restart_backoff_max_s": 0.05},
    "calibration": {"interval_s": 0.0},
    "log": {"stats_interval_s": 0.0},
    "simulator": {"enabled": True, "dialect": "article",
                  "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT", "XRPUSDT", "ADAUSDT"],
                  "rate_per_symbol": 100.0, "seed": 3, "levels": 10},
}


def build_config(base: dict[str, dict[str, Any]] | None = None, source: str = "<test>",
                 environ: dict[str, str] | None = None, **sections: dict[str, Any]) -> AppConfig:
    """BASE_SECTIONS, then ``base``, then ``sections`` merged key by key, validated."""
    data = {name: dict(values) for name, values in BASE_SECTIONS.items()}
    for layer in (base or {}, sections):
        for name, values in layer.items():
            data.setdefault(name, {}).update(values)
    return config_from_mapping(data, environ=environ or {}, source=source)


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


def levels(rows: list[list[str]]) -> tuple[tuple[float, float], ...]:
    return tuple((float(p), float(s)) for p, s in rows)


def equals_truth(svc: BookService, code: str, sim: Any = None) -> bool:
    """The book is LIVE and exactly equal (all levels, same seq) to the simulator's truth."""
    truth = (sim or svc.simulator).truth(code)
    try:
        view = svc.book(code)
    except Exception:  # noqa: BLE001 - restarting: not equal yet
        return False
    return (view.status.name == "LIVE" and view.seq == truth["seq"] and view.bids == levels(truth["bids"])
            and view.asks == levels(truth["asks"]))


def converge_exact(svc: BookService, codes: Iterable[str] | None = None, timeout: float = 15.0,
                   sim: Any = None) -> None:
    """Wait until every desired book is LIVE on a moving market, then freeze it and wait until every
    book equals the truth. (Frozen first, a book still resyncing would wait on a silent socket,
    which the LIVE promise rightly refuses once the heartbeat silence bound has passed.)"""
    sim = sim or svc.simulator
    wanted = sorted(codes or svc.subscriptions())
    assert svc.wait_live(wanted, timeout=timeout), f"books {wanted} not LIVE within {timeout}s"
    sim.freeze()
    wait_until(lambda: all(equals_truth(svc, c, sim) for c in wanted), timeout, f"books {wanted} exact")


def server_sets(svc: BookService, sim: Any = None) -> list[frozenset[str]]:
    return list((sim or svc.simulator).subscriptions().values())


def service_factory(make_config: Callable[..., AppConfig]) -> Iterator[Callable[..., BookService]]:
    """Body of a ``service`` fixture: start services on demand, stop them all afterwards."""
    started: list[BookService] = []

    def make(**sections: dict[str, Any]) -> BookService:
        svc = BookService.start(make_config(**sections))
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


#: The recorded Binance files live beside the checkout, never inside it (../shared/fixtures/binance/README.md).
_REPO_ROOT = Path(__file__).resolve().parent.parent


def binance_fixture(name: str) -> Path:
    """Path of a recorded Binance file, or skip the test saying where it was looked for.

    Looks in ``<repo root>/../shared/fixtures/binance`` (where CI keeps it beside the checkout), then
    in the folder named by ``DEPTHKEEPER_FIXTURES`` (for worktrees elsewhere).
    """
    candidates = [_REPO_ROOT.parent / "shared" / "fixtures" / "binance"]
    if os.environ.get("DEPTHKEEPER_FIXTURES"):
        candidates.append(Path(os.environ["DEPTHKEEPER_FIXTURES"]))
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    looked = ", ".join(str(folder) for folder in candidates)
    pytest.skip(f"recorded Binance fixture {name} not found (looked in {looked}; set DEPTHKEEPER_FIXTURES)")
