"""The LIVE promise under every fault (issue 12): one regression test per defect found.

A book may be shown LIVE only while its socket is up and fed, its seq chain is unbroken since a
validated snapshot bridged onto that socket's stream, and the venue accepted it. Each test
drives the real simulator (or a real TCP proxy in front of it) into one fault and checks what a
reader of the service sees, from its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.simulator import SimConfig, Simulator, TcpProxy
from depthkeeper.supervisor.service.facade import BookService, BookUnavailable
from tests.support import build_config, converge_exact, equals_truth, levels, wait_until

pytestmark = pytest.mark.integration

#: the suite's silence bound (heartbeat 0.25 s x 3) plus the promise's 0.5 s
L_S = 0.75 + 0.5


def status_of(svc: BookService, code: str) -> BookStatus | None:
    try:
        return svc.book(code, depth=0).status
    except BookUnavailable:
        return None  # not started yet


def statuses(svc: BookService, codes: Any = None) -> dict[str, BookStatus]:
    return {code: svc.book(code, depth=0).status for code in (codes or sorted(svc.subscriptions()))}


def none_live(svc: BookService) -> bool:
    return all(status is not BookStatus.LIVE for status in statuses(svc).values())


def watch_live_views(svc: BookService, sim: Any, code: str, seconds: float) -> list[Any]:
    """Poll ``code`` for ``seconds``; return every LIVE view whose seq is ahead of the venue (a lie)."""
    lies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        view = svc.book(code)
        if view.status is BookStatus.LIVE and view.seq > sim.truth(code)["seq"]:
            lies.append(view)
        time.sleep(0.005)  # polling a condition against a deadline
    return lies


# -- 1. socket lost ------------------------------------------------------------------------------


def test_socket_lost_with_reconnects_refused_leaves_live_at_once(service) -> None:
    """Defect 1: venue gone (socket closed, new handshakes unanswered): no book stays LIVE while
    health() says "not connected"; each view says why; one reconnect later they are exact again."""
    svc = service(venue={"connect_timeout_s": 0.3})
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    sim.faults.blackhole(seconds=None, new_connections=True)
    sim.faults.close()
    wait_until(lambda: none_live(svc), 1.0, "every book to leave LIVE after the close")
    view = svc.book("BTCUSDT")
    assert view.status is BookStatus.DISCONNECTED and "socket down" in view.reason
    health = svc.health()
    assert not health.ok and any("not connected" in p for p in health.problems)
    # Reconnect attempts time out against the silent venue: still nothing LIVE, still no snapshot.
    rest_before = sim.counters()["rest_requests"]
    wait_until(lambda: svc.stats().connection.connect_failures >= 1, 5, "a failed reconnect")
    assert none_live(svc) and sim.counters()["rest_requests"] == rest_before
    sim.faults.lift_blackhole()
    converge_exact(svc, timeout=10)


def test_connection_actor_dead_with_restart_pending_books_not_live(service) -> None:
    """Defect 1: the ConnectionActor dies and its restart is delayed: books leave LIVE at once."""
    svc = service(supervisor={"restart_backoff_min_s": 1.5, "restart_backoff_max_s": 1.5})
    assert svc.wait_live(timeout=10)
    svc.chaos.kill("connection")
    wait_until(lambda: none_live(svc), 1.0, "books to leave LIVE with the connection actor dead")
    assert svc.book("ETHUSDT").status is BookStatus.DISCONNECTED
    assert svc.stats().connection.connected is False
    converge_exact(svc, timeout=10)


# -- 2. network blackhole (a real TCP proxy that stops forwarding both ways) ---------------------


@pytest.fixture
def proxied() -> Iterator[Callable[..., tuple[BookService, Any, TcpProxy]]]:
    sims: list[Any] = []
    proxies: list[TcpProxy] = []
    services: list[BookService] = []

    def make(**sections: Any) -> tuple[BookService, Any, TcpProxy]:
        sim = Simulator.start(SimConfig(host="127.0.0.1", port=0, dialect="article",
                                        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate_per_symbol=100.0, seed=5,
                                        levels=10))
        sims.append(sim)
        proxy = TcpProxy("127.0.0.1", sim.port)
        proxies.append(proxy)
        venue = {"url": proxy.url_for("/quote-b-ws-api"), "snapshot_url": sim.rest_url, "connect_timeout_s": 1.0}
        cfg = build_config(simulator={"enabled": False}, venue=venue,
                           symbols={"initial": ["BTCUSDT", "ETHUSDT", "SOLUSDT"]}, **sections)
        svc = BookService.start(cfg)
        services.append(svc)
        return svc, sim, proxy

    yield make
    for svc in services:
        svc.stop()
    for proxy in proxies:
        proxy.close()
    for sim in sims:
        sim.stop()


def test_blackhole_every_book_leaves_live_within_L_and_recovers_with_one_reconnect(proxied) -> None:
    """Defect 2 (and 3's double resync): packets silently dropped, no FIN/RST. Every book must leave
    LIVE within L = silence bound + 0.5 s; once the path resumes, LIVE and exact within 5 s, after
    exactly one new socket and one resync per book."""
    svc, sim, proxy = proxied()
    assert svc.wait_live(timeout=10)
    before = svc.stats()
    paused_at = time.monotonic()
    proxy.pause()
    wait_until(lambda: none_live(svc), L_S + 0.25, "every book to leave LIVE within L")
    left_after_s = time.monotonic() - paused_at
    assert left_after_s <= L_S + 0.25, left_after_s
    assert all(status is BookStatus.DISCONNECTED for status in statuses(svc).values())
    assert "silent" in svc.book("BTCUSDT").reason or "socket down" in svc.book("BTCUSDT").reason
    wait_until(lambda: svc.stats().connection.heartbeat_timeouts >= 1, 5, "the watchdog to declare it dead")
    time_resumed = time.monotonic()
    proxy.resume()
    converge_exact(svc, sim=sim, timeout=5)
    assert time.monotonic() - time_resumed <= 5.0
    after = svc.stats()
    assert after.connection.connects == before.connection.connects + 1
    for code in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert after.books[code].resyncs == before.books[code].resyncs + 1, code


def test_a_short_blackhole_within_the_bound_costs_nothing(proxied) -> None:
    svc, sim, proxy = proxied(heartbeat={"interval_s": 0.5, "silent_intervals": 4})
    assert svc.wait_live(timeout=10)
    before = svc.stats()
    proxy.pause()
    wait_until(lambda: svc.chaos.silent_s() >= 0.6, 3, "0.6 s of silence (bound 2 s)")
    assert svc.wait_live(timeout=0.1)  # still within the bound: the promise holds
    proxy.resume()
    converge_exact(svc, sim=sim, timeout=5)
    after = svc.stats()
    assert after.connection.connects == before.connection.connects
    assert after.connection.heartbeat_timeouts == 0


# -- 3. slow handshake ---------------------------------------------------------------------------


def test_slow_handshake_within_connect_timeout_ends_in_a_working_socket(service) -> None:
    """Defect 3: heartbeat ticks queued behind a slow ``connect()`` must not kill the new socket."""
    svc = service(venue={"connect_timeout_s": 5.0})
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    sim.faults.slow_handshake(2.0, count=1)  # longer than the 0.75 s silence bound
    sim.faults.close()
    wait_until(lambda: svc.stats().connection.connects == 2, 10, "the slow reconnect to complete")
    converge_exact(svc, timeout=10)
    conn = svc.stats().connection
    assert conn.heartbeat_timeouts == 0 and conn.connects == 2, conn


# -- 4, 5. far-future seqs -----------------------------------------------------------------------


def test_one_far_future_diff_does_not_wedge_the_book_or_spend_the_rest_budget(service) -> None:
    """Defect 4: a diff with seq 2**53 makes one resync, then the book is LIVE and exact again."""
    svc = service()
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    rest_before = sim.counters()["rest_requests"]
    assert sim.faults.future_diff("BTCUSDT") >= 1
    wait_until(lambda: svc.stats().books["BTCUSDT"].gaps >= 1, 5, "the far-future diff to break the chain")
    wait_until(lambda: svc.book("BTCUSDT").status is BookStatus.LIVE, 10, "BTCUSDT LIVE again")
    assert sim.counters()["rest_requests"] - rest_before <= 5
    converge_exact(svc, timeout=10)


def test_stray_far_future_diffs_in_a_stalled_stream_do_not_keep_views_live(service) -> None:
    """Found by chaos (binance, seed 1, 45 s): the venue stalls (sends nothing, its seqs advance)
    while a stray event no chain can take still arrives now and then. The socket is not dead (the
    watchdog need not reconnect), but no book is being fed: past the bound no view may stay LIVE."""
    svc = service()
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    stalled_at = time.monotonic()
    sim.faults.stall(2.6)
    lies: list[Any] = []
    strays = 0
    while (elapsed := time.monotonic() - stalled_at) < 2.3:
        if elapsed > 0.4 * (strays + 1):
            sim.faults.future_diff("BTCUSDT")  # every 0.4 s: under the bound, each time
            strays += 1
        if elapsed > L_S:
            view = svc.book("ETHUSDT")
            if view.status is BookStatus.LIVE:
                lies.append((round(elapsed, 2), view.seq, sim.truth("ETHUSDT")["seq"]))
        time.sleep(0.01)  # polling a condition against a deadline
    assert strays >= 4 and lies == []
    assert "no book data" in svc.book("ETHUSDT").reason or svc.book("ETHUSDT").status is not BookStatus.LIVE
    converge_exact(svc, timeout=15)


def test_a_snapshot_ahead_of_the_stream_is_never_made_live(service) -> None:
    """Defect 5: a snapshot whose seq the stream has not reached is not LIVE (it would drop every
    later diff); it is held, then refetched; the book ends LIVE and exact."""
    svc = service(symbols={"initial": ["BTCUSDT"]})
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    sim.faults.future_snapshot(lead=1000, count=2, code="BTCUSDT")
    sim.faults.drop(1, code="BTCUSDT")
    lies = watch_live_views(svc, sim, "BTCUSDT", 2.0)
    assert lies == []
    wait_until(lambda: svc.stats().books["BTCUSDT"].ahead_snapshots >= 1, 5, "a held snapshot to be refused")
    converge_exact(svc, timeout=10)
    assert sim.counters()["faults"]["future_snapshot"] == 2


# -- 6. rejected codes ---------------------------------------------------------------------------


def test_a_rejected_code_is_rejected_in_view_and_health_and_never_live_after_reconnects(service) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    sim.faults.reject("SOLUSDT")
    svc.subscribe(["SOLUSDT"])
    wait_until(lambda: status_of(svc, "SOLUSDT") is BookStatus.REJECTED, 5, "SOLUSDT REJECTED")
    assert "rejected" in svc.book("SOLUSDT").reason
    assert any("SOLUSDT" in p and "REJECTED" in p for p in svc.health().problems)
    for _ in range(2):  # reconnects: the code is not re-sent and no REST snapshot makes it LIVE
        epoch = svc.stats().connection.epoch
        sim.faults.close()
        wait_until(lambda: svc.stats().connection.epoch > epoch, 10, "a reconnect")
        assert svc.wait_live(["BTCUSDT", "ETHUSDT"], timeout=10)
        assert svc.book("SOLUSDT", depth=0).status is BookStatus.REJECTED
    assert all("SOLUSDT" not in codes for codes in sim.subscriptions().values())
    sim.faults.lift_reject("SOLUSDT")
    svc.subscribe(["SOLUSDT"])  # an explicit subscribe asks the venue again
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    converge_exact(svc, timeout=10)


# -- 7, 8. bad snapshots -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["empty", "short"])
def test_empty_or_short_snapshots_never_make_a_live_book(service, fault: str) -> None:
    """Defect 7: a well-formed snapshot with no (or too few) levels is refused and refetched."""
    svc = service(symbols={"initial": ["BTCUSDT"]})
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    full = len(svc.book("BTCUSDT").bids)
    assert full >= 8
    if fault == "empty":
        sim.faults.empty_snapshot(count=1, code="BTCUSDT")
    else:
        sim.faults.short_snapshot(2, count=1, code="BTCUSDT")
    sim.faults.drop(1, code="BTCUSDT")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        view = svc.book("BTCUSDT")
        if view.status is BookStatus.LIVE:  # every LIVE view is the venue's book at its seq
            truth = sim.book_at("BTCUSDT", view.seq)
            assert (view.bids, view.asks) == (levels(truth["bids"]), levels(truth["asks"])), view
        time.sleep(0.005)  # polling a condition against a deadline
    assert svc.stats().books["BTCUSDT"].bad_snapshots == 1
    converge_exact(svc, timeout=10)


def test_a_persistently_crossed_snapshot_is_refetched_with_backoff(service) -> None:
    """Defect 8: no refetch storm; the other books keep their share of the REST budget."""
    svc = service(symbols={"initial": ["BTCUSDT", "ETHUSDT"]}, book={"resync_backoff_max_s": 1.0})
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    sim.faults.crossed_snapshot(code="BTCUSDT", until_lifted=True)
    rest_before = sim.counters()["rest_requests"]
    sim.faults.drop(1, code="BTCUSDT")
    wait_until(lambda: svc.stats().books["BTCUSDT"].crossed >= 3, 10, "three crossed snapshots")
    started = time.monotonic()
    crossed_before = svc.stats().books["BTCUSDT"].crossed
    wait_until(lambda: time.monotonic() - started >= 2.0, 3, "two seconds")
    # Full jitter capped at 1 s: about 2 attempts a second at most (not hundreds).
    assert svc.stats().books["BTCUSDT"].crossed - crossed_before <= 8
    assert sim.counters()["rest_requests"] - rest_before < 20
    sim.faults.drop(1, code="ETHUSDT")  # another book still gets its snapshot at once
    wait_until(lambda: svc.stats().books["ETHUSDT"].gaps >= 1, 5, "the ETH gap")
    wait_until(lambda: equals_truth(svc, "ETHUSDT") or svc.book("ETHUSDT").status is BookStatus.LIVE, 5,
               "ETHUSDT LIVE again while BTCUSDT is refused")
    assert svc.book("BTCUSDT", depth=0).status is not BookStatus.LIVE
    sim.faults.lift_snapshot_faults()
    converge_exact(svc, timeout=15)


# -- 12. no snapshots while the socket is down ---------------------------------------------------


def test_an_unreachable_venue_requests_no_snapshot_and_says_why(service) -> None:
    """Defect 12: with no socket, no snapshot is fetched; the view and health give the connect failure."""
    svc = service(simulator={"enabled": False},
                  venue={"url": "ws://127.0.0.1:9/quote-b-ws-api", "snapshot_url": "http://127.0.0.1:9/depth"})
    wait_until(lambda: svc.stats().connection.connect_failures >= 2, 10, "two failed connects")
    assert svc.stats().snapshot.counters.requests == 0
    view = svc.book("BTCUSDT")
    assert view.status is not BookStatus.LIVE
    assert any("connect failed" in p for p in svc.health().problems)
