"""The benchmark's replay feeder (bench/feeder.py): a peer synced from it holds the feeder's truth.

A short bounded version of what peers_bench.py relies on at "max": the cycle restores its starting
book, ids stay contiguous across cycles, SUBSCRIBE is acked before the first event, and a client
that follows Binance's procedure (snapshot, drop ``u <= L``, bridge ``U <= L+1 <= u``) ends with
exactly the book ``/_control/truth`` reports once the feeder is frozen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.support import wait_until

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from feeder_market import build_cycle  # noqa: E402


def test_a_cycle_restores_its_starting_book_and_ids_stay_contiguous() -> None:
    cycle = build_cycle("SYM0000USDT", 0, seed=1, levels=20, steps=7, events=16)
    last_u = 0
    for _ in range(2 * len(cycle.events) + 3):
        event = json.loads(cycle.next_payload(1, 2.0))
        assert event["U"] == last_u + 1 and event["u"] >= event["U"]
        last_u = event["u"]
        if cycle.sent % len(cycle.events) == 0:
            _, bids, asks = cycle.book()
            assert (bids, asks) == (cycle.base_bids, cycle.base_asks)
    assert cycle.book()[0] == last_u


@pytest.fixture
def feeder() -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, str(BENCH / "feeder.py"), "--symbols", "2", "--warm-rate", "200"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def _get(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def _apply(book: dict[str, dict[Decimal, Decimal]], event: dict[str, Any]) -> None:
    for side, key in (("bids", "b"), ("asks", "a")):
        for price, qty in event[key]:
            if Decimal(qty) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(qty)


def test_a_client_synced_from_the_feeder_ends_exact(feeder: dict[str, Any]) -> None:
    ws = websocket.create_connection(f"{feeder['url']}/ws", timeout=5)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["sym0001usdt@depth@100ms"], "id": 7}))
        assert json.loads(ws.recv()) == {"result": None, "id": 7}
        first = json.loads(ws.recv())
        assert first["s"] == "SYM0001USDT" and "x" in first
        snapshot = _get(f"{feeder['rest_url']}/api/v3/depth?symbol=SYM0001USDT&limit=1000")
        book = {"bids": {Decimal(p): Decimal(q) for p, q in snapshot["bids"]},
                "asks": {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}}
        last = snapshot["lastUpdateId"]
        assert first["U"] <= last + 1
        events = [first]

        def synced_past_snapshot() -> bool:
            events.append(json.loads(ws.recv()))
            return events[-1]["u"] > last + 50

        wait_until(synced_past_snapshot, 10, "the stream passes the snapshot")
        for event in events:
            if event["u"] <= last:
                continue
            assert event["U"] <= last + 1 <= event["u"]
            _apply(book, event)
            last = event["u"]
        _get(f"{feeder['control_url']}/freeze", "POST")
        ws.settimeout(0.5)
        while last < _get(f"{feeder['control_url']}/state")["seqs"]["SYM0001USDT"]:
            event = json.loads(ws.recv())
            assert event["U"] == last + 1
            _apply(book, event)
            last = event["u"]
        truth = _get(f"{feeder['control_url']}/truth?code=SYM0001USDT")
        assert truth["seq"] == last
        assert book["bids"] == {Decimal(p): Decimal(q) for p, q in truth["bids"]}
        assert book["asks"] == {Decimal(p): Decimal(q) for p, q in truth["asks"]}
    finally:
        ws.close()
