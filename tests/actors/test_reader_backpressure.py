"""The reader never grows a slow book's inbox past the limit: it skips, counts, and the book resyncs."""

from __future__ import annotations

import threading
from typing import Any

import pykka

from depthkeeper.actors.io.reader import Reader, ReaderCounters
from depthkeeper.actors.routing import Peers, RoutingTable
from depthkeeper.actors.core.wire import DiffEvent


class Blocked(pykka.ThreadingActor):
    """A book that cannot keep up: it blocks on its first message until released."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> None:
        self.release.wait(5)


def test_full_inbox_is_skipped_and_counted() -> None:
    release = threading.Event()
    book = Blocked.start(release)
    routes = RoutingTable()
    routes.set("BTCUSDT", book)
    counters = ReaderCounters()
    reader = Reader(None, 1, decode=lambda b: b, routes=routes, peers=Peers(), counters=counters,  # type: ignore[arg-type]
                    inbox_limit=3, on_closed=lambda e, r: None)
    for seq in range(1, 11):
        reader._flush({"BTCUSDT": [DiffEvent("BTCUSDT", seq, True, 1.0, 1.0)]}, {}, 0.0)
    try:
        assert book.actor_inbox.qsize() <= 3
        assert counters.overflow_skipped >= 10 - 4  # one in flight + three queued, the rest skipped
        assert counters.batches + counters.overflow_skipped == 10
    finally:
        release.set()


def test_unrouted_code_is_reported_as_unwanted() -> None:
    counters = ReaderCounters()
    reader = Reader(None, 1, decode=lambda b: b, routes=RoutingTable(), peers=Peers(), counters=counters,  # type: ignore[arg-type]
                    inbox_limit=3, on_closed=lambda e, r: None)
    reader._flush({"XRPUSDT": [DiffEvent("XRPUSDT", 1, True, 1.0, 1.0)] * 2}, {}, 0.0)
    assert counters.unwanted == 2 and counters.batches == 0
