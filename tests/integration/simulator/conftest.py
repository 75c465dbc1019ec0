"""Fixtures for the simulator conformance suite.

The suite drives the simulator the way an independent client would: a plain websocket-client
socket read by a background thread, and urllib for REST and control. Nothing from
``depthkeeper.actors`` is used (the simulator must conform to the protocol pages, not to our
client). No sleeps: everything waits on a condition with a deadline.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from depthkeeper.simulator import SimConfig, SimHandle, Simulator

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder talks to a real simulator on 127.0.0.1."""
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)

#: Default for every wait in this suite; generous because CI machines stall.
WAIT_S = 5.0


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, interval_s: float = 0.002) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {predicate}")
        threading.Event().wait(interval_s)


def pause_until(deadline_monotonic_s: float) -> None:
    """Pacing for AllTick's request spacing: hold the next request until a moment in time."""
    wait_until(lambda: time.monotonic() >= deadline_monotonic_s, timeout_s=WAIT_S + 60)


class Received:
    """One frame as the test client saw it."""

    __slots__ = ("at_s", "json", "text")

    def __init__(self, at_s: float, text: str) -> None:
        self.at_s = at_s
        self.text = text
        try:
            self.json: Any = json.loads(text)
        except ValueError:
            self.json = None


class WsClient:
    """A minimal independent client: websocket-client + a reader thread that records frames."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=WAIT_S, skip_utf8_validation=True)
        self.ws.settimeout(None)
        self.frames: list[Received] = []
        self.pongs: list[float] = []
        self.pings: list[bytes] = []
        self.close_frame: tuple[int | None, str] | None = None
        self.close_error: BaseException | None = None
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name="test-ws-reader")
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(True)
                now = time.monotonic()
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    with self._lock:
                        self.frames.append(Received(now, frame.data.decode()))
                elif opcode == websocket.ABNF.OPCODE_PONG:
                    with self._lock:
                        self.pongs.append(now)
                elif opcode == websocket.ABNF.OPCODE_PING:  # websocket-client has already answered it
                    with self._lock:
                        self.pings.append(frame.data)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data or b""
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    self.close_frame = (code, data[2:].decode(errors="replace"))
                    return
        except Exception as exc:  # the socket went away: that is what abrupt-close tests look for
            self.close_error = exc
        finally:
            self.closed.set()

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def sub(self, *codes: str) -> None:
        self.send({"cmd_id": 22004, "action": "sub", "code": list(codes)})

    def unsub(self, *codes: str) -> None:
        self.send({"cmd_id": 22004, "action": "unsub", "code": list(codes)})

    def ping(self, payload: bytes = b"p") -> None:
        self.ws.ping(payload)

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.frames)

    def json_frames(self) -> list[Any]:
        return [frame.json for frame in self.snapshot() if frame.json is not None]

    def diffs(self, code: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.json_frames()
            if isinstance(m, dict) and m.get("type") == "orderbook_diff" and (code is None or m.get("code") == code)
        ]

    def acks(self) -> list[dict[str, Any]]:
        return [m for m in self.json_frames() if isinstance(m, dict) and m.get("type") == "ack"]

    def pushes(self, code: str | None = None) -> list[dict[str, Any]]:
        return [
            m["data"] for m in self.json_frames()
            if isinstance(m, dict) and m.get("cmd_id") == 22999 and (code is None or m["data"].get("code") == code)
        ]

    def responses(self, cmd_id: int | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.json_frames()
            if isinstance(m, dict) and "ret" in m and (cmd_id is None or m.get("cmd_id") == cmd_id)
        ]

    # binance frames (combined or raw)

    def payloads(self) -> list[Any]:
        """Business payloads, unwrapped from the ``{"stream", "data"}`` wrapper when there is one."""
        return [m["data"] if isinstance(m, dict) and "stream" in m and "data" in m else m for m in self.json_frames()]

    def events(self, code: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.payloads()
            if isinstance(m, dict) and m.get("e") == "depthUpdate" and (code is None or m.get("s") == code)
        ]

    def tickers(self, code: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.payloads()
            if isinstance(m, dict) and "e" not in m and "B" in m and (code is None or m.get("s") == code)
        ]

    def replies(self, request_id: Any = None) -> list[dict[str, Any]]:
        """Binance request replies (``result`` or ``error``), optionally for one id."""
        return [
            m for m in self.json_frames()
            if isinstance(m, dict) and ("result" in m or "error" in m) and "id" in m
            and (request_id is None or m["id"] == request_id)
        ]

    def request(self, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
        """Send one Binance request and wait for its reply."""
        message: dict[str, Any] = {"method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        before = len(self.replies(request_id))
        self.send(message)
        return self.wait_for(lambda c: c.replies(request_id)[before:])[0]

    def wait_for(self, predicate: Callable[[WsClient], Any], timeout_s: float = WAIT_S) -> Any:
        return wait_until(lambda: predicate(self), timeout_s)

    def wait_closed(self, timeout_s: float = WAIT_S) -> None:
        assert self.closed.wait(timeout_s), "the server did not close the connection"

    def close(self) -> None:
        self.ws.abort()
        self._thread.join(WAIT_S)
        self.ws.shutdown()


def http(method: str, url: str) -> tuple[int, Any]:
    """(status, decoded JSON body) for one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimHandle]]:
    """Factory: ``start_sim(rate_per_symbol=500, ...)`` -> a running simulator, stopped after the test."""
    handles: list[SimHandle] = []

    def start(**overrides: Any) -> SimHandle:
        overrides.setdefault("port", 0)
        handle = Simulator.start(SimConfig(**overrides))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def article_sim(start_sim: Callable[..., SimHandle]) -> SimHandle:
    return start_sim(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate_per_symbol=400.0, record_history=True)


@pytest.fixture
def alltick_sim(start_sim: Callable[..., SimHandle]) -> SimHandle:
    return start_sim(
        dialect="alltick",
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        rate_per_symbol=200.0,
        alltick_min_interval_s=0.05,
        alltick_heartbeat_timeout_s=30.0,
    )


@pytest.fixture
def binance_sim(start_sim: Callable[..., SimHandle]) -> SimHandle:
    return start_sim(
        dialect="binance", symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate_per_symbol=400.0, record_history=True,
        binance_interval_scale=0.2, binance_max_messages_per_s=50,  # protocol tests send requests in bursts
    )


@pytest.fixture
def connect() -> Iterator[Callable[[str], WsClient]]:
    """Factory of `WsClient` connections, all closed after the test."""
    clients: list[WsClient] = []

    def open_client(url: str) -> WsClient:
        client = WsClient(url)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


# The helpers as fixtures: with --import-mode=importlib test modules cannot import conftest.
@pytest.fixture(name="wait_until")
def _wait_until_fixture() -> Callable[..., Any]:
    return wait_until


@pytest.fixture(name="pause_until")
def _pause_until_fixture() -> Callable[[float], None]:
    return pause_until


@pytest.fixture(name="http")
def _http_fixture() -> Callable[[str, str], tuple[int, Any]]:
    return http


class HttpFaults:
    """`SimHandle.faults` through ``POST /_control/faults/<name>``: the same calls, the other door.

    Keyword arguments become query parameters (positional ones are codes: ``reject("A", "B")``);
    the call returns what the Python method returns. HTTP 400 raises ValueError and 404 KeyError,
    like the Python door's ValueError and UnknownCode / UnknownConnection.
    """

    _RESULTS = ("blackholed", "lifted", "sent", "frames", "closed", "era")

    def __init__(self, sim: SimHandle) -> None:
        self._base = f"{sim.control_url}/faults"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*codes: str, **kwargs: Any) -> Any:
            params = [(key, _query_text(value)) for key, value in kwargs.items() if value is not None]
            params += [("code", code) for code in codes]
            status, body = http("POST", f"{self._base}/{name}?{urllib.parse.urlencode(params)}")
            if status == 400:
                raise ValueError(body["error"])
            if status == 404:
                raise KeyError(body["error"])
            assert status == 200 and body["ok"] is True, (status, body)
            return next((body[key] for key in self._RESULTS if key in body), None)

        return call


def _query_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@pytest.fixture(params=["python", "http"])
def front_door(request: pytest.FixtureRequest) -> Callable[[SimHandle], Any]:
    """``front_door(sim)`` -> the fault API of ``sim`` through the handle or through HTTP (both run)."""
    if request.param == "python":
        return lambda sim: sim.faults
    return HttpFaults
