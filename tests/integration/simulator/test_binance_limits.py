"""Binance's connection limits: 5 messages/s (1008), lenient mode, streams, handshakes, URL size, pings, 24 h."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable

import pytest
import websocket

from depthkeeper.simulator import SimHandle

#: The 24 h cut scaled down to half a second.
HALF_SECOND_LIFETIME = 0.5 / 86_400


def open_raw(sim: SimHandle, path: str) -> socket.socket:
    """A bare WebSocket handshake: the socket then answers nothing, pings included."""
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{sim.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_close(sock: socket.socket, timeout_s: float) -> tuple[int, str, int]:
    """Read server frames until a close frame: (close code, reason, pings seen)."""
    sock.settimeout(timeout_s)

    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection ended without a close frame"
            data += chunk
        return data

    pings = 0
    while True:
        first, second = exact(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(exact(2), "big")
        elif length == 127:
            length = int.from_bytes(exact(8), "big")
        payload = exact(length)
        opcode = first & 0x0F
        if opcode == 0x9:
            pings += 1
        elif opcode == 0x8:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode(), pings


def test_sixth_message_within_a_second_closes_with_1008(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",))
    client = connect(f"{sim.url}/ws")
    for request_id in range(1, 7):
        client.send({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    client.wait_closed()
    assert client.close_frame == (1008, "Too many requests")
    assert [reply["id"] for reply in client.replies()] == [1, 2, 3, 4, 5]
    counters = sim.counters()
    assert (counters["binance_message_rate_exceeded"], counters["binance_message_rate_closes"]) == (1, 1)
    assert list(counters["messages_received"].values()) == [6]
    assert list(counters["messages_over_limit"].values()) == [1]
    assert sim.connections() == []


def test_pings_and_pongs_count_toward_the_limit(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",))
    client = connect(f"{sim.url}/ws")
    for i in range(3):
        client.ping(b"p%d" % i)
    client.ws.pong(b"")
    client.send({"method": "LIST_SUBSCRIPTIONS", "id": 1})
    client.wait_for(lambda c: len(c.pongs) == 3 and c.replies(1))
    assert not client.closed.is_set()
    client.ws.pong(b"")
    client.wait_closed()
    assert client.close_frame == (1008, "Too many requests")


def test_five_per_second_paced_is_fine(start_sim: Callable, connect: Callable, pause_until: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",))
    client = connect(f"{sim.url}/ws")
    started = time.monotonic()
    for request_id in range(1, 6):
        client.send({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    pause_until(started + 1.05)
    for request_id in range(6, 11):
        client.send({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    client.wait_for(lambda c: len(c.replies()) == 10)
    assert not client.closed.is_set() and sim.counters()["binance_message_rate_exceeded"] == 0


def test_lenient_mode_only_counts(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_enforce_limits=False)
    client = connect(f"{sim.url}/ws")
    for request_id in range(1, 13):
        client.send({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": request_id})
    client.wait_for(lambda c: len(c.replies()) == 12 and c.events())
    counters = sim.counters()
    assert (counters["binance_message_rate_exceeded"], counters["binance_message_rate_closes"]) == (7, 0)
    assert list(counters["messages_over_limit"].values()) == [7]
    assert not client.closed.is_set()


def test_at_most_max_streams_per_connection(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT", "ETHUSDT"), binance_max_streams_per_connection=3)
    client = connect(f"{sim.url}/ws")
    four = ["btcusdt@depth", "btcusdt@bookTicker", "ethusdt@depth", "ethusdt@bookTicker"]
    assert client.request("SUBSCRIBE", four, request_id=1) == {"error": {"code": 4, "msg": "Too many subscriptions"},
                                                               "id": 1}
    assert client.request("SUBSCRIBE", four[:3], request_id=2) == {"result": None, "id": 2}
    assert client.request("SUBSCRIBE", four[:1], request_id=3) == {"result": None, "id": 3}, "a repeat adds nothing"
    assert "error" in client.request("SUBSCRIBE", four[3:], request_id=4)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{sim.url}/stream?streams={'/'.join(four)}", timeout=5)
    assert refused.value.status_code == 400


def test_the_1024_default_and_a_long_handshake_url(start_sim: Callable, connect: Callable) -> None:
    codes = [f"SYM{i:04d}USDT" for i in range(450)]
    sim = start_sim(dialect="binance", symbols=codes, rate_per_symbol=2.0, levels=5, binance_interval_scale=0.2)
    streams = [f"{code.lower()}@depth@100ms" for code in codes]
    url = f"{sim.url}/stream?streams={'/'.join(streams)}"
    assert len(url) > 10_000
    client = connect(url)
    assert client.request("LIST_SUBSCRIPTIONS")["result"] == streams
    client.wait_for(lambda c: len({e["s"] for e in c.events()}) >= 20)
    assert sim.config.binance_max_streams_per_connection == 1024


def test_url_limit_can_be_the_real_8_kb(start_sim: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_max_url_bytes=8192)
    long_path = "/stream?streams=" + "/".join(["btcusdt@depth@100ms"] * 450)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{sim.url}{long_path}", timeout=5)
    assert refused.value.status_code == 414
    websocket.create_connection(f"{sim.url}/stream?streams=btcusdt@depth@100ms", timeout=5).close()


@pytest.mark.parametrize("enforce", [True, False])
def test_connection_attempts_per_ip(start_sim: Callable, connect: Callable, enforce: bool) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_max_connections_per_window=3,
                    binance_enforce_limits=enforce)
    for _ in range(3):
        connect(f"{sim.url}/ws")
    if enforce:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"{sim.url}/ws", timeout=5)
        assert refused.value.status_code == 429
    else:
        connect(f"{sim.url}/ws")
    assert sim.counters()["binance_connection_attempts_over_limit"] == 1
    assert len(sim.connections()) == (3 if enforce else 4)


def test_server_pings_and_answered_ones_keep_the_connection(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_ping_interval_s=0.25,
                    binance_pong_timeout_s=0.6)
    client = connect(f"{sim.url}/ws")
    client.wait_for(lambda c: len(c.pings) >= 5)  # > 1 s: well past the pong timeout
    assert len(set(client.pings)) == len(client.pings), "each ping has its own payload"
    assert not client.closed.is_set()
    counters = sim.counters()
    assert counters["binance_pong_timeouts"] == 0 and counters["binance_pings_sent"] >= 5
    assert list(counters["messages_received"].values())[0] >= 4, "the pongs count as messages"


def test_a_connection_that_never_pongs_is_closed(start_sim: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_ping_interval_s=0.1, binance_pong_timeout_s=0.5)
    sock = open_raw(sim, "/ws/btcusdt@depth")
    try:
        code, reason, pings = read_until_close(sock, timeout_s=5)
    finally:
        sock.close()
    assert (code, reason) == (1001, "Pong timeout") and pings >= 4
    assert sim.counters()["binance_pong_timeouts"] == 1


def test_connections_are_cut_after_the_scaled_24_hours(start_sim: Callable, connect: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_lifetime_scale=HALF_SECOND_LIFETIME)
    opened = time.monotonic()
    client = connect(f"{sim.url}/stream?streams=btcusdt@depth@100ms")
    client.wait_closed()
    assert time.monotonic() - opened >= 0.45
    assert client.close_frame == (1001, "Connection lifetime expired")
    assert sim.counters()["binance_lifetime_cuts"] == 1
    assert client.events(), "data flowed until the cut"
