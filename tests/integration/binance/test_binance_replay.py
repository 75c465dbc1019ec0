"""Real recorded Binance frames through the simulator (replay mode) and the whole tree.

The simulator serves ../shared/fixtures/binance/btcusdt_20240808.gz (its REST snapshot is the recorded
one advanced by the events sent so far); a BookService with ``[venue] dialect = "binance"`` subscribes,
bridges and applies them. Every view a listener sees LIVE at the update id of a recorded bookTicker
must carry its best bid and ask (price and quantity); at the end the book equals the venue's truth.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookUpdated
from depthkeeper.simulator import SimConfig, SimHandle, Simulator
from depthkeeper.supervisor.service.facade import BookService
from tests.support import binance_fixture, build_config, levels, wait_until

pytestmark = pytest.mark.integration

FIXTURE = "btcusdt_20240808.gz"
#: ~346 s of recording in ~3.5 s
SPEED = 100.0


def book_tickers(path: Any) -> dict[int, list[dict[str, Any]]]:
    tickers: dict[int, list[dict[str, Any]]] = {}
    with gzip.open(path, "rb") as lines:
        for line in lines:
            text = line.partition(b" ")[2]
            if b"@bookTicker" in text[:40]:
                data = orjson.loads(text)["data"]
                tickers.setdefault(data["u"], []).append(data)
    return tickers


@pytest.fixture(params=[False, True], ids=["threaded-listener", "inline-listener"])
def replay(request: pytest.FixtureRequest) -> Iterator[tuple[SimHandle, BookService, list[Any]]]:
    path = binance_fixture(FIXTURE)
    sim = Simulator.start(SimConfig(dialect="binance", symbols=("BTCUSDT",), replay_paths=(str(path),),
                                    replay_speed=SPEED))
    seen: list[Any] = []
    lock = threading.Lock()

    def record(event: Any) -> None:
        if isinstance(event, BookUpdated) and event.view.status is BookStatus.LIVE:
            view = event.view
            with lock:
                seen.append((view.seq, view.bids[:1], view.asks[:1]))

    # a silence bound longer than the replay's pauses (the recording's own quiet spells, scaled)
    cfg = build_config(simulator={"enabled": False}, symbols={"initial": ["BTCUSDT"]},
                       venue={"dialect": "binance", "url": sim.url, "snapshot_url": sim.rest_url},
                       heartbeat={"interval_s": 1.0, "silent_intervals": 5})
    svc = BookService.start(cfg)
    svc.add_listener(record, codes=["BTCUSDT"], inline=request.param)
    try:
        yield sim, svc, seen
    finally:
        svc.stop()
        sim.stop()


def test_a_recorded_day_replayed_through_the_tree_is_exact_at_every_checkpoint_it_passes(
        replay: tuple[SimHandle, BookService, list[Any]], request: pytest.FixtureRequest) -> None:
    sim, svc, seen = replay
    tickers = book_tickers(binance_fixture(FIXTURE))
    wait_until(lambda: sim.counters()["replay_finished"] >= 1, 30, "the replay to finish")
    truth = sim.truth("BTCUSDT")
    wait_until(lambda: svc.book("BTCUSDT").seq == truth["seq"], 10, "the book to reach the recording's end")
    view = svc.book("BTCUSDT", depth=50)
    assert view.status is BookStatus.LIVE and view.event_time > 1723161000
    assert view.bids == levels(truth["bids"][:50]) and view.asks == levels(truth["asks"][:50])
    passed = [(seq, bid, ask) for seq, bid, ask in list(seen) if seq in tickers]
    wrong = [(seq, bid, ask) for seq, bid, ask in passed
             if any(bid != ((float(t["b"]), float(t["B"])),) or ask != ((float(t["a"]), float(t["A"])),)
                    for t in tickers[seq])]
    assert len(passed) >= 100 and wrong == []
    if request.node.callspec.params["replay"]:  # inline: a view per applied batch, in order, the last one too
        seqs = [seq for seq, _, _ in seen]  # (a status change re-sends the view at the same seq)
        assert seqs == sorted(seqs) and seqs[-1] == truth["seq"]
    stats = svc.stats().books["BTCUSDT"]
    assert stats.gaps == 0 and stats.resyncs == 0

