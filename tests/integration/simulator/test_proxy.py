"""`TcpProxy` between an independent client and the simulator: forwarding, pause (a blackhole
that holds every byte), resume, cut and close."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from depthkeeper.simulator import SimHandle
from depthkeeper.simulator.proxy import TcpProxy


def jumps(diffs: list[dict[str, Any]]) -> list[tuple[int, int]]:
    values = [d["seq"] for d in diffs]
    return [(a, b) for a, b in zip(values, values[1:]) if b != a + 1]


@pytest.fixture
def proxy(article_sim: SimHandle) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", article_sim.port) as running:
        yield running


def through(proxy: TcpProxy, sim: SimHandle, connect: Callable, *codes: str) -> Any:
    client = connect(proxy.url_for(sim.config.ws_path))
    client.sub(*codes)
    client.wait_for(lambda c: len(c.diffs()) >= 20)
    return client


def let_time_pass(wait_until: Callable, seconds: float) -> None:
    start = time.monotonic()
    wait_until(lambda: time.monotonic() >= start + seconds)


def test_forwards_websocket_and_rest_both_ways(
    article_sim: SimHandle, proxy: TcpProxy, connect: Callable, http: Callable
) -> None:
    client = through(proxy, article_sim, connect, "BTCUSDT")
    client.ping(b"hello")
    client.wait_for(lambda c: c.pongs)
    assert jumps(client.diffs("BTCUSDT")) == [] and len(client.acks()) == 1
    status, book = http("GET", proxy.url_for("/depth?code=ETHUSDT", scheme="http"))
    assert status == 200 and book["code"] == "ETHUSDT"
    assert proxy.accepted == 2 and proxy.connections >= 1 and proxy.bytes_forwarded > 1000
    assert [c.remote.split(":")[0] for c in article_sim.connections()] == ["127.0.0.1"]


def test_pause_holds_every_byte_both_ways_without_closing(
    article_sim: SimHandle, proxy: TcpProxy, connect: Callable, wait_until: Callable
) -> None:
    client = through(proxy, article_sim, connect, "BTCUSDT")
    proxy.pause()
    let_time_pass(wait_until, 0.1)  # bytes written before the pause are delivered by now
    quiet = len(client.snapshot())
    client.ping(b"anyone")
    client.sub("ETHUSDT")
    seq = article_sim.truth("BTCUSDT")["seq"]
    wait_until(lambda: article_sim.truth("BTCUSDT")["seq"] >= seq + 60)
    assert len(client.snapshot()) == quiet and client.pongs == [], "something crossed a paused proxy"
    assert len(article_sim.connections()) == 1 and not client.closed.is_set(), "nothing closed"
    assert list(article_sim.subscriptions().values()) == [frozenset({"BTCUSDT"})], "the sub is held"
    proxy.resume()
    client.wait_for(lambda c: c.pongs and len(c.acks()) == 2 and c.diffs("ETHUSDT"))
    client.wait_for(lambda c: c.diffs("BTCUSDT")[-1]["seq"] >= seq + 60)
    assert jumps(client.diffs("BTCUSDT")) == [], "held, not discarded: the stream is whole"


def test_pause_holds_new_connections_until_resume(article_sim: SimHandle, proxy: TcpProxy) -> None:
    proxy.pause()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /depth?code=BTCUSDT HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # no answer while paused: the deadline is the assertion
        assert proxy.accepted == 0
        proxy.resume()
        sock.settimeout(5)
        assert sock.recv(12) == b"HTTP/1.1 200"
    assert proxy.accepted == 1


def test_a_close_during_the_pause_reaches_the_server_only_after_resume(
    article_sim: SimHandle, proxy: TcpProxy, connect: Callable, wait_until: Callable
) -> None:
    client = through(proxy, article_sim, connect, "BTCUSDT")
    proxy.pause()
    client.close()
    let_time_pass(wait_until, 0.2)
    assert len(article_sim.connections()) == 1, "the venue cannot see a close across a blackhole"
    proxy.resume()
    wait_until(lambda: article_sim.connections() == [])
    wait_until(lambda: proxy.connections == 0)


@pytest.mark.parametrize("reset", [False, True])
def test_cut_closes_every_connection_and_keeps_listening(
    article_sim: SimHandle, proxy: TcpProxy, connect: Callable, wait_until: Callable, reset: bool
) -> None:
    first = through(proxy, article_sim, connect, "BTCUSDT")
    second = through(proxy, article_sim, connect, "ETHUSDT")
    assert proxy.cut(reset=reset) == 2
    first.wait_closed()
    second.wait_closed()
    wait_until(lambda: article_sim.connections() == [])
    assert proxy.connections == 0
    third = through(proxy, article_sim, connect, "SOLUSDT")
    assert not third.closed.is_set() and proxy.accepted == 3


def test_close_stops_listening(article_sim: SimHandle, connect: Callable) -> None:
    proxy = TcpProxy("127.0.0.1", article_sim.port)
    client = through(proxy, article_sim, connect, "BTCUSDT")
    proxy.close()
    client.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    proxy.close()  # idempotent


def test_a_target_that_refuses_closes_the_client() -> None:
    # A bound socket that never listens holds its port and refuses every connection (a stopped
    # server's port could be taken by another test meanwhile).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        refusing(closed.getsockname()[1])


def refusing(port: int) -> None:
    with TcpProxy("127.0.0.1", port) as proxy, socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.settimeout(5)
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
        assert proxy.connections == 0
