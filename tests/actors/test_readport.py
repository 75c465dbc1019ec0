"""svc.book's lock-free read: consistent views while the writer is busy, fallback when it never settles."""

from __future__ import annotations

import threading

import attrs
import pytest

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.readport import BookReadPort, ReadPorts


def test_read_returns_a_consistent_sorted_view() -> None:
    book = OrderBook("X", max_levels=50)
    book.replace([(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)], seq=5)
    book.status = BookStatus.LIVE
    port = BookReadPort("X", book)
    view = port.read(depth=1)
    assert view is not None and view.seq == 5 and view.bids == ((10.0, 1.0),) and view.asks == ((11.0, 3.0),)
    assert view.complete_levels == (2, 1)


def test_reader_never_sees_a_half_written_batch() -> None:
    """The writer keeps both sides equal in size and seq == size; any torn read would break that."""
    book = OrderBook("X", max_levels=10_000)
    port = BookReadPort("X", book)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 20_000:
            port.gen += 1
            n += 1
            book.apply(True, float(n), 1.0)
            book.apply(False, float(100_000 + n), 1.0)
            book.last_seq = n
            port.gen += 1

    thread = threading.Thread(target=writer)
    thread.start()
    checked = 0
    try:
        while thread.is_alive():
            view = port.read(None)
            if view is None:
                continue
            assert len(view.bids) == len(view.asks) == view.seq
            checked += 1
    finally:
        stop.set()
        thread.join()
    assert checked > 0


def test_a_writer_that_never_settles_makes_read_give_up() -> None:
    port = BookReadPort("X", OrderBook("X"))
    port.gen = 1  # permanently "writing"
    assert port.read(None) is None


def test_ports_only_unregister_their_own() -> None:
    ports = ReadPorts()
    old, new = BookReadPort("X", OrderBook("X")), BookReadPort("X", OrderBook("X"))
    ports.register(old)
    ports.register(new)
    ports.unregister(old)
    assert ports.get("X") is new


def test_consistent_reads_between_messages_and_retries_a_read_the_writer_broke() -> None:
    port = BookReadPort("X", OrderBook("X"))
    assert port.consistent(lambda: 42) == 42
    calls = []

    def torn() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("deque mutated during iteration")  # the owner got in between
        if len(calls) == 2:
            port.gen += 2  # a whole message handled while we read: not consistent
        return len(calls)

    assert port.consistent(torn) == 3
    port.gen = 1  # mid-message forever: give up, the caller asks instead
    assert port.consistent(lambda: 1) is None


def test_stats_come_through_the_port_while_the_books_queue_is_stuck() -> None:
    """book_stats() must not wait behind a book's inbox: it reads between two of its messages."""
    import types

    from depthkeeper.actors.routing import RoutingTable
    from depthkeeper.supervisor.service.reads import Reads

    book = OrderBook("X")
    port = BookReadPort("X", book)
    port.sync.applied = 7
    book.last_seq = 9
    ports = ReadPorts()
    ports.register(port)

    class Stuck:
        def ask(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("asked: the port was not used")

    routes = RoutingTable()
    routes.set("X", Stuck())  # type: ignore[arg-type]
    runtime = types.SimpleNamespace(ports=ports, routes=routes)
    stats = Reads(runtime, 1.0, lambda: None).book_stats()  # type: ignore[arg-type]
    assert list(stats) == ["X"] and stats["X"].applied == 7 and stats["X"].seq == 9
    port.gen = 1  # mid-message forever: the read gives up and asks, which must answer in time
    with pytest.raises(AssertionError, match="asked"):
        Reads(runtime, 1.0, lambda: None).book_stats()  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [None, 1, 3, 10, 40, 1000])
def test_a_view_at_any_depth_is_the_books_own_top_with_its_horizons(depth: int | None) -> None:
    """Trimmed sides (a horizon each), levels beyond them written again: every view, whole or cut,
    shows exactly the book's own top and known-complete counts."""
    book = OrderBook("X", max_levels=8)
    book.replace([(100.0 - i, 1.0 + i) for i in range(30)], [(101.0 + i, 2.0 + i) for i in range(30)], seq=1)
    for i in range(20):
        book.apply(True, 60.0 - i, 0.5)  # beyond the bid horizon
        book.apply(False, 150.0 + i, 0.5)
    assert book.horizons() != (None, None)
    port = BookReadPort("X", book)
    for view in (port.read(depth), port.owner_view(depth)):
        assert view is not None
        assert (view.bids, view.asks) == book.top(depth)
        assert view.complete_levels == book.complete_levels()


def test_a_view_built_by_the_port_equals_the_attrs_constructed_one() -> None:
    """The port builds views through BookView's slot descriptors (readport._new_view): every field
    must land where ``BookView(...)`` puts it."""
    from depthkeeper.actors.messages import BookView
    from depthkeeper.actors.readport import _new_view

    args = ("X", BookStatus.LIVE, 7, ((10.0, 1.0),), ((11.0, 3.0),), 123.5, (1, 1), "in sync", 99.25)
    fast, slow = _new_view(*args), BookView(*args)  # type: ignore[arg-type]
    assert type(fast) is BookView and fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.seq = 8  # type: ignore[misc]
