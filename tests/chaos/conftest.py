"""Fixtures for the chaos tests: services on an embedded simulator on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.service.config import AppConfig
from depthkeeper.supervisor.service.facade import BookService
from tests.support import build_config, levels, wait_until

CODES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
#: on top of tests.support's fast settings: three books, every level in every view
CHAOS_BASE: dict[str, dict[str, Any]] = {
    "symbols": {"initial": CODES},
    "book": {"max_levels": 100},
    "simulator": {"symbols": [*CODES, "XRPUSDT"], "rate_per_symbol": 80.0, "seed": 9, "levels": 10},
}

__all__ = ["CODES", "chaos_config", "converge_exact", "exact", "our_actors", "wait_until"]


def chaos_config(**sections: dict[str, Any]) -> AppConfig:
    """Short heartbeats and backoffs, a small market, restart intensity far above the tests' kills."""
    return build_config(CHAOS_BASE, source="<chaos-test>", **sections)


def exact(svc: BookService, code: str) -> bool:
    """LIVE and exactly the simulator's truth (all levels, same seq)."""
    truth = svc.simulator.truth(code)
    try:
        view = svc.book(code, timeout_s=1.0)
    except Exception:  # noqa: BLE001 - restarting: not exact yet
        return False
    return (view.status is BookStatus.LIVE and view.seq == truth["seq"] and view.bids == levels(truth["bids"])
            and view.asks == levels(truth["asks"]))


def converge_exact(svc: BookService, timeout: float = 15.0) -> None:
    """Let the server's subscription set settle, freeze the market, wait for every book to be exact."""
    wait_until(lambda: list(svc.simulator.subscriptions().values()) == [svc.subscriptions()], timeout,
               "server subscriptions == desired")
    svc.simulator.freeze()
    wanted = sorted(svc.subscriptions())
    wait_until(lambda: all(exact(svc, c) for c in wanted), timeout, f"books {wanted} exact")


def our_actors(baseline: set[Any]) -> list[Any]:
    return [ref for ref in pykka.ActorRegistry.get_all() if ref not in baseline]


@pytest.fixture
def service() -> Iterator[Callable[..., BookService]]:
    started: list[BookService] = []

    def make(cfg: AppConfig | None = None, **kwargs: Any) -> BookService:
        svc = BookService.start(cfg or chaos_config(), **kwargs)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()
