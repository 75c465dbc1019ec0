"""Binance spot end to end: the whole tree against the simulator's binance dialect on 127.0.0.1.

Each test starts its own simulator (binance limits enforced, as the real venue does: 5 client
messages/s, 1024 streams, the REST weight budget) and a BookService pointed at it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import GetCounters
from depthkeeper.simulator import SimHandle
from depthkeeper.supervisor.service.facade import BookService, BookUnavailable

from tests.support import converge_exact, wait_until

from .conftest import SYMBOLS, Service, Venue

pytestmark = pytest.mark.integration

#: the suite's silence bound (heartbeat 0.25 s x 3) plus the promise's 0.5 s
L_S = 0.75 + 0.5


def requests(sim: SimHandle, method: str | None = None) -> list[dict[str, Any]]:
    """Every client request the venue received, as sent."""
    sent = [orjson.loads(record.raw) for record in sim.command_log()]
    return [r for r in sent if method is None or r.get("method") == method]


def planned_reconnects(svc: BookService) -> int:
    ref = svc.tree.ref("connection")
    return ref.ask(GetCounters(), timeout=5).counters.planned_reconnects if ref is not None else 0


def status(svc: BookService, code: str) -> BookStatus | None:
    try:
        return svc.book(code, depth=0).status
    except BookUnavailable:
        return None  # not started yet


def server_set(sim: SimHandle) -> frozenset[str]:
    sets = [codes for codes in sim.subscriptions().values() if codes]
    return sets[0] if len(sets) == 1 else frozenset()


def test_books_sync_and_follow_live_subscribes_in_one_socket(venue: Venue, service: Service) -> None:
    """One combined-stream socket; a burst of changes is one SUBSCRIBE with many params (request ids,
    acks) and one UNSUBSCRIBE, a LIST_SUBSCRIPTIONS reconciles; books exact; views carry E."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    svc.subscribe(["SOLUSDT", "XRPUSDT", "ADAUSDT"])
    svc.unsubscribe(["ETHUSDT"])
    wait_until(lambda: server_set(sim) == svc.subscriptions(), 5, "the venue's set == desired")
    wait_until(lambda: requests(sim)[-1].get("method") == "LIST_SUBSCRIPTIONS", 5, "a reconciling LIST")
    converge_exact(svc, sim=sim)
    subs, unsubs = requests(sim, "SUBSCRIBE"), requests(sim, "UNSUBSCRIBE")
    assert [r["params"] for r in subs] == [["btcusdt@depth@100ms", "ethusdt@depth@100ms"],
                                           ["adausdt@depth@100ms", "solusdt@depth@100ms", "xrpusdt@depth@100ms"]]
    assert [r["params"] for r in unsubs] == [["ethusdt@depth@100ms"]]
    ids = [r["id"] for r in requests(sim)]
    assert ids == sorted(set(ids)), "every request has its own increasing id"
    stats = svc.stats()
    assert stats.connection.connects == 1 and stats.connection.reconnects == 0
    view = svc.book("BTCUSDT", depth=5)
    assert view.event_time > 1.6e9 and len(view.bids) == 5
    assert sim.counters()["binance_message_rate_exceeded"] == 0


def test_churn_never_exceeds_five_messages_a_second(venue: Venue, service: Service) -> None:
    """Pacing: 40 changes in a burst go out coalesced and paced (4 frames/s, one left for a pong): the
    venue, enforcing its limit, never counts an excess and never closes us."""
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    pool = ["SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT"]
    for i in range(40):
        (svc.subscribe if i % 3 else svc.unsubscribe)([pool[i % 4]])
    wait_until(lambda: server_set(sim) == svc.subscriptions(), 10, "the venue's set == desired")
    times = [record.monotonic_s for record in sim.command_log()]
    assert all(b - a >= 0.25 for a, b in zip(times, times[1:])), "client frames closer than the pacing"
    assert sim.counters()["binance_message_rate_exceeded"] == 0 and svc.stats().connection.reconnects == 0
    assert svc.wait_live(timeout=10)


def test_a_rejected_symbol_shows_the_venues_message_and_the_rest_of_its_burst_syncs(venue: Venue, service: Service) -> None:
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    sim.faults.reject("SOLUSDT")
    svc.subscribe(["SOLUSDT", "XRPUSDT"])
    wait_until(lambda: status(svc, "SOLUSDT") is BookStatus.REJECTED, 10, "SOLUSDT rejected")
    assert "Invalid request: invalid stream" in svc.book("SOLUSDT").reason
    assert svc.wait_live(["XRPUSDT"], timeout=10), "the good code of the refused burst is asked again alone"
    assert any("SOLUSDT" in problem for problem in svc.health().problems)
    sim.faults.lift_reject()
    svc.subscribe(["SOLUSDT"])
    assert svc.wait_live(["SOLUSDT"], timeout=10)


def test_a_gap_resyncs_that_symbol_only(venue: Venue, service: Service) -> None:
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    before = svc.stats().books
    sim.faults.drop(1, code="BTCUSDT")
    wait_until(lambda: svc.stats().books["BTCUSDT"].gaps >= 1, 5, "the gap seen")
    converge_exact(svc, sim=sim)
    after = svc.stats().books
    assert after["BTCUSDT"].resyncs == before["BTCUSDT"].resyncs + 1
    assert after["ETHUSDT"].resyncs == before["ETHUSDT"].resyncs
    assert svc.stats().connection.reconnects == 0


def test_a_1008_close_for_excess_messages_reconnects_and_resyncs(venue: Venue, service: Service) -> None:
    """A venue stricter than its documented 5/s (here 2/s) closes us with 1008 on a burst; we reconnect,
    replay in one SUBSCRIBE and resync."""
    sim = venue(binance_max_messages_per_s=2)
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    for code in ("SOLUSDT", "XRPUSDT", "ADAUSDT"):
        svc.subscribe([code])
        svc.unsubscribe([code])
    svc.subscribe(["DOGEUSDT"])
    wait_until(lambda: sim.counters()["binance_message_rate_closes"] >= 1, 10, "a 1008 close")
    wait_until(lambda: svc.stats().connection.reconnects >= 1, 5, "a reconnect")
    converge_exact(svc, sim=sim, timeout=15)


def test_a_venue_restart_resyncs_every_book(venue: Venue, service: Service) -> None:
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    era = sim.faults.restart()
    wait_until(lambda: svc.stats().connection.reconnects >= 1, 5, "a reconnect after the restart")
    converge_exact(svc, sim=sim)
    assert sim.era == era


def test_close_and_blackhole_keep_the_live_promise(venue: Venue, service: Service) -> None:
    sim = venue()
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    sim.faults.close()
    wait_until(lambda: all(status(svc, c) is not BookStatus.LIVE for c in ("BTCUSDT", "ETHUSDT")), 2, "not LIVE")
    assert svc.wait_live(timeout=10)
    sim.faults.blackhole()
    wait_until(lambda: all(status(svc, c) is BookStatus.DISCONNECTED for c in ("BTCUSDT", "ETHUSDT")), L_S + 0.5,
               "DISCONNECTED within L")
    wait_until(lambda: svc.stats().connection.heartbeat_timeouts >= 1, 5, "the watchdog")
    sim.faults.lift_blackhole()
    converge_exact(svc, sim=sim)


def test_the_24h_cut_is_a_planned_reconnect_before_the_venue_cuts(venue: Venue, service: Service) -> None:
    """Scaled: the venue cuts sockets after 3 s, we replace ours at 1 s; the venue never has to cut."""
    sim = venue(binance_lifetime_scale=3.0 / 86_400)
    svc = service(sim, venue={"max_socket_age_s": 1.0})
    assert svc.wait_live(timeout=10)
    wait_until(lambda: planned_reconnects(svc) >= 2, 10, "two planned reconnects")
    converge_exact(svc, sim=sim)
    assert sim.counters()["binance_lifetime_cuts"] == 0
    assert svc.stats().books["BTCUSDT"].resyncs >= 2


def test_a_429_pauses_every_snapshot_request_for_its_retry_after(venue: Venue, service: Service) -> None:
    """The venue's weight budget allows two snapshots per window: the client is told 429 + Retry-After
    and sends nothing until then. Requests go one at a time here, so every 429 the venue answered is one
    pause of ours: not one request went into a pause (three would have got us a 418 ban)."""
    sim = venue(binance_weight_limit=100, binance_weight_window_s=1.0)
    svc = service(sim, symbols={"initial": list(SYMBOLS)}, snapshot={"max_per_second": 2.0})
    assert svc.wait_live(timeout=20)
    counters, ours = sim.counters(), svc.stats().snapshot
    assert counters["binance_rest_418"] == 0 and counters["binance_rest_429"] >= 1
    assert ours.limits.rate_limited == counters["binance_rest_429"] and ours.limits.rate_limited_s >= 1.0


def test_one_socket_holds_the_venues_stream_limit(venue: Venue, service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is the venue's (1024 on Binance; the actor test drives the real figure): here 3 on both
    sides, so the fourth code is REJECTED naming the limit, and the venue never has to refuse."""
    from depthkeeper.actors.venues.binance import BinanceVenue

    monkeypatch.setattr(BinanceVenue, "max_streams", 3)
    sim = venue(binance_max_streams_per_connection=3)
    svc = service(sim, symbols={"initial": ["BTCUSDT", "ETHUSDT", "SOLUSDT"]})
    assert svc.wait_live(timeout=10)
    svc.subscribe(["XRPUSDT"])
    wait_until(lambda: status(svc, "XRPUSDT") is BookStatus.REJECTED, 5, "the fourth code refused")
    assert "limit of 3 streams per connection" in svc.book("XRPUSDT").reason
    assert server_set(sim) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert not [r for r in requests(sim, "SUBSCRIBE") if "xrpusdt@depth@100ms" in r["params"]]


def test_server_pings_are_answered_and_pongs_stay_within_the_message_limit(venue: Venue, service: Service) -> None:
    """The venue pings (here every second instead of 20 s, pong due within 0.5 s); the reader's pongs keep
    the socket, and they fit the 5 messages/s next to our paced frames (4/s at most) during a burst."""
    sim = venue(binance_ping_interval_s=1.0, binance_pong_timeout_s=0.5)
    svc = service(sim)
    assert svc.wait_live(timeout=10)
    for code in ("SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT"):
        svc.subscribe([code])
        svc.unsubscribe(["ETHUSDT" if code == "SOLUSDT" else "SOLUSDT"])
    wait_until(lambda: sim.counters()["binance_pings_sent"] >= 3, 10, "three server pings")
    counters = sim.counters()
    assert counters["binance_pong_timeouts"] == 0 and counters["binance_message_rate_exceeded"] == 0
    assert svc.stats().connection.reconnects == 0 and svc.wait_live(timeout=10)
