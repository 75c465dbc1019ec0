"""The real AllTick protocol end to end, against the simulator's alltick dialect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from depthkeeper.simulator import SimConfig, Simulator
from depthkeeper.supervisor.service.config import config_from_mapping
from depthkeeper.supervisor.service.facade import BookService

from tests.support import levels, wait_until

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")
TOKEN = "test-token-123"


@pytest.fixture
def venue() -> Iterator[Any]:
    handles: list[Any] = []

    def start(**overrides: Any) -> Any:
        cfg = dict(dialect="alltick", symbols=SYMBOLS, rate_per_symbol=20.0, seed=4, levels=10, token=TOKEN,
                   alltick_min_interval_s=1.0, alltick_heartbeat_timeout_s=3.0)
        cfg.update(overrides)
        handles.append(Simulator.start(SimConfig(**cfg)))
        return handles[-1]

    yield start
    for h in handles:
        h.stop()


@pytest.fixture
def service() -> Iterator[Any]:
    started: list[BookService] = []

    def make(sim: Any, token: str = TOKEN, **sections: dict[str, Any]) -> BookService:
        data: dict[str, dict[str, Any]] = {
            "venue": {"dialect": "alltick", "url": sim.url, "snapshot_url": sim.rest_url, "token_env": "AT_TOKEN",
                      "depth_level": 5},
            "symbols": {"initial": ["BTCUSDT", "ETHUSDT"]},
            "heartbeat": {"interval_s": 1.0, "silent_intervals": 3},
            "reconnect": {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "floor_s": 0.3},
            "subscription": {"min_interval_s": 1.0, "coalesce_window_s": 0.05},
            "snapshot": {"max_per_second": 50.0, "retry_min_s": 0.05, "retry_max_s": 0.5},
            "calibration": {"interval_s": 0.0},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        svc = BookService.start(config_from_mapping(data, environ={"AT_TOKEN": token}, source="<alltick-test>"))
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


def top_equals_truth(svc: BookService, sim: Any, code: str, depth: int = 5) -> bool:
    truth = sim.truth(code)
    try:
        view = svc.book(code)
    except Exception:  # noqa: BLE001
        return False
    return (view.status.name == "LIVE" and view.seq == truth["seq"]
            and view.bids == levels(truth["bids"][:depth]) and view.asks == levels(truth["asks"][:depth]))


def requests(sim: Any) -> list[Any]:
    return [r for r in sim.command_log() if r.cmd_id in (22002, 22006)]


def test_books_follow_the_venue_and_equal_the_last_push_after_freeze(venue, service) -> None:
    """Initial list in one 22002 with depth_level; books replace on newer pushes; exact after freeze."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    first = requests(sim)[0]
    assert first.cmd_id == 22002 and set(first.codes) == {"BTCUSDT", "ETHUSDT"}
    assert '"depth_level":5' in first.raw.replace(" ", "")
    sim.freeze()
    wait_until(lambda: all(top_equals_truth(svc, sim, c) for c in ("BTCUSDT", "ETHUSDT")), 10, "books == last push")
    view = svc.book("BTCUSDT")
    assert len(view.bids) <= 5 and view.complete_levels[0] == len(view.bids)


def test_burst_of_50_changes_within_a_second_is_at_most_two_paced_requests(venue, service) -> None:
    """Bursts coalesce into whole-list 22002s at least 1 s apart (heartbeats included): never a 606."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    before = len(requests(sim))
    pool = ["SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT"]
    for i in range(50):
        (svc.subscribe if i % 2 == 0 else svc.unsubscribe)([pool[i % 4]])
    svc.subscribe(["SOLUSDT"])
    final = svc.subscriptions()
    wait_until(lambda: list(sim.subscriptions().values()) == [final], 6, "server list == desired")
    burst = requests(sim)[before:]
    assert 1 <= len(burst) <= 2
    assert set(burst[-1].codes) == final
    log = [r.monotonic_s for r in sim.command_log()]
    assert all(b - a >= 0.99 for a, b in zip(log, log[1:])), "two client frames less than 1 s apart"
    assert sim.counters().get("ret_606", 0) == 0 and svc.stats().connection.reconnects == 0


def test_removing_the_last_symbol_sends_cancel(venue, service) -> None:
    sim = venue()
    svc = service(sim, symbols={"initial": ["BTCUSDT"]})
    assert svc.wait_live(timeout=10)
    svc.unsubscribe(["BTCUSDT"])
    cancel = wait_until(lambda: [r for r in requests(sim) if r.cmd_id == 22006], 5, "a 22006")
    assert '"cancel_type":1' in cancel[0].raw.replace(" ", "")
    wait_until(lambda: list(sim.subscriptions().values()) == [frozenset()], 5, "empty server list")


def test_heartbeats_are_sent_and_answered(venue, service) -> None:
    """22000 every interval keeps the connection past the server's heartbeat timeout."""
    sim = venue(alltick_heartbeat_timeout_s=2.0)
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    wait_until(lambda: len([r for r in sim.command_log() if r.cmd_id == 22000]) >= 3, 8, "three heartbeats")
    stats = svc.stats().connection
    assert stats.reconnects == 0 and svc.stats().connection.epoch == 1


def test_unknown_code_is_rejected_without_a_retry_loop(venue, service) -> None:
    """ret 600 marks the code rejected (stats, logs); it is not requested again."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    svc.subscribe(["ZZZUSDT"])
    wait_until(lambda: "ZZZUSDT" in (svc.stats().subscription.rejected or {}), 6, "ZZZUSDT rejected")
    svc.subscribe(["SOLUSDT"])  # a later change must not carry the rejected code again
    wait_until(lambda: "SOLUSDT" in next(iter(sim.subscriptions().values())), 6, "SOLUSDT subscribed")
    with_zzz = [r for r in requests(sim) if "ZZZUSDT" in r.codes]
    assert len(with_zzz) == 1


def test_pacing_violation_606_backs_off_and_reconnects(venue, service) -> None:
    """A client paced faster than the venue gets 606 + close; we reconnect after the floor, not in a storm."""
    sim = venue(alltick_min_interval_s=1.0)
    svc = service(sim, subscription={"min_interval_s": 0.0}, heartbeat={"interval_s": 5.0})
    assert svc.wait_live(timeout=10)
    svc.subscribe(["SOLUSDT"])  # sent at once, < 1 s after the first request: 606
    wait_until(lambda: svc.stats().connection.reconnects >= 1, 8, "a reconnect after 606")
    opened = [c.opened_monotonic_s for c in sim.connections()]
    assert opened and svc.stats().connection.epoch >= 2


def test_bad_token_stops_with_a_clear_error_and_no_reconnect_storm(venue, service) -> None:
    sim = venue()
    svc = service(sim, token="wrong-token")
    wait_until(lambda: svc.stats().connection.failed, 5, "the connection to give up")
    conn = svc.stats().connection
    assert "401" in conn.failed and "wrong-token" not in conn.failed
    assert not svc.chaos.ref("connection").ask(__import__("depthkeeper.actors.messages", fromlist=["GetCounters"]).GetCounters(), timeout=2).reconnect_scheduled
    assert sim.counters()["handshakes_rejected_token"] == 1
    assert not svc.health().ok and any("401" in p for p in svc.health().problems)


def test_missing_depth_pushes_force_a_reconnect_with_the_floor(venue, service) -> None:
    """Pushes stop (socket open, heartbeats still answered): after silent_intervals we reconnect."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    epoch = svc.stats().connection.epoch
    sim.faults.stall(6.0)
    wait_until(lambda: svc.stats().connection.epoch > epoch, 8, "a reconnect after silent pushes")
    assert svc.stats().connection.heartbeat_timeouts >= 1
    sim.faults.stall(0)
    sim.freeze()
    wait_until(lambda: all(top_equals_truth(svc, sim, c) for c in ("BTCUSDT", "ETHUSDT")), 10, "books == last push")


def test_unsubscribe_right_after_subscribe_sends_no_second_request(venue, service) -> None:
    """Issue 12 #11: the pushes still coming for a code we are leaving (our paced 22002 not yet
    sent, or not yet answered) are ours in flight, not a ghost: no extra request goes out."""
    sim = venue(rate_per_symbol=50.0)
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    svc.subscribe(["SOLUSDT"])
    wait_until(lambda: list(sim.subscriptions().values()) == [svc.subscriptions()], 6, "SOLUSDT subscribed")
    before = len(requests(sim))
    svc.unsubscribe(["SOLUSDT"])  # paced: the 22002 without SOL goes out up to ~1 s later
    wait_until(lambda: list(sim.subscriptions().values()) == [svc.subscriptions()], 6, "SOLUSDT dropped")
    svc.subscribe(["ADAUSDT"])  # one more paced request: a ghost reaction would have gone out before it
    wait_until(lambda: list(sim.subscriptions().values()) == [svc.subscriptions()], 6, "ADAUSDT subscribed")
    after = requests(sim)[before:]
    assert [set(r.codes) for r in after] == [{"BTCUSDT", "ETHUSDT"}, {"BTCUSDT", "ETHUSDT", "ADAUSDT"}]
    assert svc.stats().subscription.counters.ghost_unsubscribes == 0
    assert svc.stats().connection.unwanted > 0  # SOL's trailing pushes did arrive without a book
