"""Fixtures: a simulator speaking binance (limits enforced, as the real venue) and BookServices on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from depthkeeper.simulator import SimConfig, SimHandle, Simulator
from depthkeeper.supervisor.service.facade import BookService

from tests.support import build_config

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")
Venue = Callable[..., SimHandle]
Service = Callable[..., BookService]


@pytest.fixture
def venue() -> Iterator[Callable[..., SimHandle]]:
    sims: list[SimHandle] = []

    def start(**overrides: Any) -> SimHandle:
        cfg: dict[str, Any] = dict(dialect="binance", symbols=SYMBOLS, rate_per_symbol=100.0, seed=7, levels=10,
                                   binance_interval_scale=0.5)
        cfg.update(overrides)
        sims.append(Simulator.start(SimConfig(**cfg)))
        return sims[-1]

    yield start
    for sim in sims:
        sim.stop()


@pytest.fixture
def service() -> Iterator[Callable[..., BookService]]:
    started: list[BookService] = []

    def make(sim: SimHandle, **sections: Any) -> BookService:
        venue = {"dialect": "binance", "url": sim.url, "snapshot_url": sim.rest_url, **sections.pop("venue", {})}
        cfg = build_config(simulator={"enabled": False}, venue=venue, **sections)
        svc = BookService.start(cfg)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()
