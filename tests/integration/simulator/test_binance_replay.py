"""Serving a recording of real Binance frames (../shared/fixtures/binance/btcusdt_20240808.gz)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.simulator import SimConfig, SimHandle, Simulator, SimulatorError
from tests.support import binance_fixture

STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


class Recorded:
    """The fixture read independently of the simulator: frames as text, the snapshot, depth events."""

    def __init__(self, path: Path) -> None:
        self.frames: list[tuple[int, str]] = []
        self.snapshot: dict[str, Any] = {}
        with gzip.open(path, "rt") as lines:
            for line in lines:
                stamp, _, text = line.rstrip("\n").partition(" ")
                if text.startswith('{"lastUpdateId"'):
                    self.snapshot = json.loads(text)
                else:
                    self.frames.append((int(stamp), text))
        self.depth = [json.loads(text)["data"] for _, text in self.frames if "@depth" in text[:40]]
        self.tickers = [json.loads(text)["data"] for _, text in self.frames if "@bookTicker" in text[:40]]

    def book_after(self, last_id: int | None = None) -> tuple[int, dict[str, dict[Decimal, Decimal]]]:
        """Snapshot + events by Binance's procedure, up to ``last_id`` (default: all)."""
        book = {side: {Decimal(p): Decimal(q) for p, q in self.snapshot[side]} for side in ("bids", "asks")}
        book_id = self.snapshot["lastUpdateId"]
        for event in self.depth:
            if last_id is not None and event["u"] > last_id:
                break
            if event["u"] <= book_id:
                continue
            for side, key in (("bids", "b"), ("asks", "a")):
                for price, qty in event[key]:
                    if Decimal(qty):
                        book[side][Decimal(price)] = Decimal(qty)
                    else:
                        book[side].pop(Decimal(price), None)
            book_id = event["u"]
        return book_id, book


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    return Recorded(binance_fixture("btcusdt_20240808.gz"))


def numeric(rows: dict[str, Any]) -> dict[str, dict[Decimal, Decimal]]:
    return {side: {Decimal(p): Decimal(q) for p, q in rows[side]} for side in ("bids", "asks")}


def replay_sim(start_sim: Callable, **extra: Any) -> SimHandle:
    extra.setdefault("replay_speed", 0.0)
    return start_sim(dialect="binance", symbols=("BTCUSDT",), replay_paths=(str(binance_fixture("btcusdt_20240808.gz")),),
                     **extra)


def finished(sim: SimHandle, times: int = 1) -> bool:
    return bool(sim.counters()["replay_finished"] >= times)


def test_replay_sends_exactly_the_recorded_frames(start_sim: Callable, connect: Callable, http: Callable,
                                                  recorded: Recorded) -> None:
    sim = replay_sim(start_sim)
    status, snapshot = http("GET", f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000")
    assert (status, snapshot) == (200, recorded.snapshot), "before any event: exactly the recorded snapshot"
    client = connect(f"{sim.url}/stream?streams={STREAMS}")
    client.wait_for(lambda c: finished(sim) and len(c.snapshot()) >= len(recorded.frames), timeout_s=60)
    assert [frame.text for frame in client.snapshot()] == [text for _, text in recorded.frames]
    last_u = recorded.depth[-1]["u"]
    assert sim.truth("BTCUSDT")["seq"] == last_u
    assert http("GET", f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5")[1]["lastUpdateId"] == last_u


def test_raw_connection_gets_the_data_parts(start_sim: Callable, connect: Callable, recorded: Recorded) -> None:
    sim = replay_sim(start_sim)
    client = connect(f"{sim.url}/ws/btcusdt@depth@100ms")
    client.wait_for(lambda c: finished(sim) and len(c.snapshot()) >= len(recorded.depth), timeout_s=60)
    texts = [frame.text for frame in client.snapshot()]
    assert [json.loads(text) for text in texts] == recorded.depth
    first = next(text for _, text in recorded.frames if "@depth" in text[:40])
    assert texts[0] == first[first.index('"data":') + 7 : -1], "byte for byte"


def test_truth_is_the_snapshot_advanced_and_book_at_matches_book_tickers(
    start_sim: Callable, connect: Callable, wait_until: Callable, recorded: Recorded
) -> None:
    sim = replay_sim(start_sim)
    snapshot_id = recorded.snapshot["lastUpdateId"]
    assert numeric(sim.book_at("BTCUSDT", snapshot_id)) == numeric(recorded.snapshot)
    connect(f"{sim.url}/ws/btcusdt@depth@100ms")  # a subscriber starts the replay
    wait_until(lambda: finished(sim), 60)
    last_id, book = recorded.book_after()
    truth = sim.truth("BTCUSDT")
    assert truth["seq"] == last_id and numeric(truth) == book
    depth_ids = {event["u"] for event in recorded.depth if event["u"] > snapshot_id}
    checkpoints = [t for t in recorded.tickers if t["u"] in depth_ids][::97]
    assert len(checkpoints) >= 5
    for ticker in checkpoints:
        at = sim.book_at("BTCUSDT", ticker["u"])
        top = [Decimal(x) for x in (*at["bids"][0], *at["asks"][0])]
        assert top == [Decimal(ticker[k]) for k in ("b", "B", "a", "A")], ticker["u"]


def test_recorded_pace_is_kept(start_sim: Callable, connect: Callable, recorded: Recorded) -> None:
    speed = 4.0
    sim = replay_sim(start_sim, replay_speed=speed)
    client = connect(f"{sim.url}/stream?streams={STREAMS}")
    base_ns = recorded.frames[0][0]
    later = next(i for i, (ns, _) in enumerate(recorded.frames) if (ns - base_ns) / 1e9 / speed >= 0.5)
    client.wait_for(lambda c: len(c.snapshot()) > later, timeout_s=10)
    frames = client.snapshot()
    first_at = frames[0].at_s
    for frame, (ns, text) in zip(frames, recorded.frames):
        assert frame.text == text
        assert frame.at_s - first_at >= (ns - base_ns) / 1e9 / speed - 0.02, "never ahead of the recorded pace"
    assert not finished(sim)


def test_drop_and_restart_on_a_replay(start_sim: Callable, connect: Callable, recorded: Recorded) -> None:
    sim = replay_sim(start_sim)
    sim.faults.drop(1, code="BTCUSDT")
    client = connect(f"{sim.url}/ws/btcusdt@depth@100ms")
    client.wait_for(lambda c: finished(sim) and len(c.events()) >= len(recorded.depth) - 1, timeout_s=60)
    assert client.events() == recorded.depth[1:], "the first recorded event was dropped"
    assert sim.faults.restart() == 2
    client.wait_closed()
    assert client.close_frame is not None and client.close_frame[0] == 1012
    assert sim.truth("BTCUSDT")["seq"] == recorded.snapshot["lastUpdateId"], "rewound to the recorded snapshot"
    again = connect(f"{sim.url}/ws/btcusdt@depth@100ms")
    again.wait_for(lambda c: finished(sim, 2) and len(c.events()) >= len(recorded.depth), timeout_s=60)
    assert again.events() == recorded.depth, "update ids start over: the recording again from its start"


def test_replay_configuration_errors() -> None:
    path = str(binance_fixture("btcusdt_20240808.gz"))
    with pytest.raises(SimulatorError, match="no recorded snapshot for ETHUSDT"):
        Simulator.start(SimConfig(dialect="binance", symbols=("BTCUSDT", "ETHUSDT"), replay_paths=(path,)))
    with pytest.raises(ValueError, match="SimConfig.replay_paths"):
        SimConfig(dialect="article", replay_paths=(path,))
    with pytest.raises(SimulatorError, match="cannot read recording"):
        Simulator.start(SimConfig(dialect="binance", symbols=("BTCUSDT",), replay_paths=("/nonexistent.gz",)))
