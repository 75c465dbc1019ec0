"""A slow listener never grows an unbounded queue: updates are conflated per code, statuses kept."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView
from tests.support import wait_until


def view(code: str, seq: int) -> BookUpdated:
    return BookUpdated(BookView(code, BookStatus.LIVE, seq, (), (), 0.0))


def test_slow_callable_gets_the_newest_view_and_every_status() -> None:
    hub = ListenerHub()
    gate = threading.Event()
    got: list[Any] = []

    def slow(event: Any) -> None:
        gate.wait(5)
        got.append(event)

    hub.add(slow)
    try:
        for seq in range(1, 1001):
            hub.publish(view("BTCUSDT", seq), "BTCUSDT")
        hub.publish(BookStatusChanged("BTCUSDT", BookStatus.LIVE, BookStatus.RESYNCING, 1000, "gap"), "BTCUSDT")
        hub.publish(BookStatusChanged("BTCUSDT", BookStatus.RESYNCING, BookStatus.LIVE, 1001, "snapshot"), "BTCUSDT")
        gate.set()
        wait_until(lambda: any(isinstance(e, BookUpdated) and e.view.seq == 1000 for e in got))
        updates = [e for e in got if isinstance(e, BookUpdated)]
        statuses = [e for e in got if isinstance(e, BookStatusChanged)]
        assert len(updates) <= 3  # at most: one in hand when the gate closed, then the newest
        assert [s.new for s in statuses] == [BookStatus.RESYNCING, BookStatus.LIVE]
        assert next(iter(hub.stats().values()))["conflated"] >= 990
    finally:
        hub.close()


class Sink(pykka.ThreadingActor):
    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen

    def on_receive(self, message: Any) -> None:
        self.seen.append(message)


def test_actor_listener_and_code_filter() -> None:
    hub = ListenerHub()
    seen: list[Any] = []
    ref = Sink.start(seen)
    hub.add(ref, codes=["ETHUSDT"])
    try:
        hub.publish(view("BTCUSDT", 1), "BTCUSDT")
        hub.publish(view("ETHUSDT", 7), "ETHUSDT")
        wait_until(lambda: seen)
        assert [e.view.code for e in seen] == ["ETHUSDT"]
        assert ref.actor_inbox.qsize() == 0
    finally:
        hub.close()


def test_sampling_listener_gets_views_at_most_once_per_interval_and_statuses_at_once() -> None:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.readport import BookReadPort, ReadPorts

    ports = ReadPorts()
    book = OrderBook("BTCUSDT")
    book.status = BookStatus.LIVE
    ports.register(BookReadPort("BTCUSDT", book))
    hub = ListenerHub(ports=ports)
    got: list[Any] = []
    hub.add(got.append, min_interval_s=0.3)
    try:
        start = time.monotonic()
        for seq in range(1, 200):
            book.last_seq = seq
            hub.mark_updated("BTCUSDT")
        hub.publish(BookStatusChanged("BTCUSDT", BookStatus.LIVE, BookStatus.STALE, 199, "test"), "BTCUSDT")
        wait_until(lambda: any(isinstance(e, BookStatusChanged) for e in got))
        views = [e for e in got if isinstance(e, BookUpdated)]
        assert len(views) <= 1  # the first view may go out at once, the rest wait for the interval
        wait_until(lambda: any(isinstance(e, BookUpdated) and e.view.seq == 199 for e in got))
        views = [e for e in got if isinstance(e, BookUpdated)]
        assert len(views) <= 2 and time.monotonic() - start < 2.0
    finally:
        hub.close()


def test_a_listener_with_depth_gets_the_top_of_the_book_only() -> None:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.readport import BookReadPort, ReadPorts

    ports = ReadPorts()
    book = OrderBook("BTCUSDT")
    book.status = BookStatus.LIVE
    for i in range(20):
        book.apply(True, 100.0 - i, 1.0 + i)
        book.apply(False, 101.0 + i, 2.0 + i)
    book.last_seq = 7
    ports.register(BookReadPort("BTCUSDT", book))
    hub = ListenerHub(ports=ports)
    top: list[Any] = []
    full: list[Any] = []
    hub.add(top.append, depth=3)
    hub.add(full.append)
    try:
        hub.mark_updated("BTCUSDT")
        wait_until(lambda: bool(top) and bool(full))
        cut, whole = top[0].view, full[0].view
        assert [p for p, _ in cut.bids] == [100.0, 99.0, 98.0] and [p for p, _ in cut.asks] == [101.0, 102.0, 103.0]
        assert cut.seq == whole.seq == 7 and len(whole.bids) == len(whole.asks) == 20
        assert cut.bids == whole.bids[:3] and cut.asks == whole.asks[:3]
    finally:
        hub.close()
    with pytest.raises(ValueError, match="depth"):
        ListenerHub().add(top.append, depth=0)
