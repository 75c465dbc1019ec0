"""Faults injected on purpose are logged at INFO, so a chaos run's log at WARNING shows only real
trouble (issue 15: a passing 60 s run printed ~170 ERROR/WARNING lines for its own kills)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from depthkeeper.chaos.monkey import ChaosMonkey
from depthkeeper.supervisor.otp.messages import Crash

from .conftest import wait_until

pytestmark = pytest.mark.chaos


@pytest.fixture
def records() -> Iterator[list[dict[str, Any]]]:
    found: list[dict[str, Any]] = []
    sink = logger.add(lambda message: found.append(message.record), level="INFO", format="{message}")
    yield found
    logger.remove(sink)


def loud(records: list[dict[str, Any]]) -> list[str]:
    return [f"{r['level'].name} {r['message']}" for r in records if r["level"].no >= logger.level("WARNING").no]


def restarts(svc: Any, kind: str) -> int:
    return svc.stats().supervisor.restarts_by_kind.get(kind, 0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the zombie thread
def test_injected_kills_and_zombies_log_at_info(service: Any, records: list[dict[str, Any]]) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    monkey = ChaosMonkey(svc, seed=3)
    svc.chaos.kill("book:BTCUSDT")  # the public handle's kill
    wait_until(lambda: restarts(svc, "book") == 1, 5, "the BTC book restarted")
    assert monkey.crash("book:ETHUSDT").delivered
    wait_until(lambda: restarts(svc, "book") == 2, 5, "the ETH book restarted")
    assert monkey.zombie("book:SOLUSDT").delivered  # a lane lost on the book dispatcher
    wait_until(lambda: restarts(svc, "book") == 3, 5, "the SOL zombie replaced")
    assert monkey.zombie("connection").delivered  # a thread of its own killed
    wait_until(lambda: restarts(svc, "connection") == 1, 5, "the connection zombie replaced")
    assert svc.wait_live(timeout=10)
    injected = [r["message"] for r in records if "(injected)" in r["message"]]
    assert any("crashed (injected)" in m for m in injected)  # the actor's own line
    assert any("exited: crashed (injected)" in m for m in injected)  # its supervisor's
    assert any(m.startswith("zombie (injected)") for m in injected)  # the liveness monitor's
    assert any("exited: zombie (injected)" in m for m in injected)
    assert not [line for line in loud(records) if "seq break" not in line], loud(records)


def test_a_real_crash_still_logs_an_error_and_a_warning(service: Any, records: list[dict[str, Any]]) -> None:
    """The same crash, not marked as injected: the operator must see it."""
    svc = service()
    assert svc.wait_live(timeout=10)
    ref = svc.chaos.ref("book:BTCUSDT")
    ref.tell(Crash("a real bug"))
    wait_until(lambda: restarts(svc, "book") == 1, 5, "the BTC book restarted")
    lines = loud(records)
    assert any(line.startswith("ERROR crashed: ChaosCrash") for line in lines), lines
    assert any(line.startswith("WARNING book:BTCUSDT generation 1 exited: crashed") for line in lines), lines
