"""An inline hook's view copies its levels when first read, and one that is kept shows its own turn."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import weakref
from typing import Any

import attrs
import pytest
from loguru import logger

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.messages import BookUpdated, BookView
from depthkeeper.actors.readport import BookReadPort, PendingView, settle


def _port(levels: int = 30) -> BookReadPort:
    book = OrderBook("X", max_levels=8)
    book.replace([(100.0 - i, 1.0 + i) for i in range(levels)], [(101.0 + i, 2.0 + i) for i in range(levels)], seq=1)
    book.status = BookStatus.LIVE
    return BookReadPort("X", book)


def _turn(port: BookReadPort, n: int) -> None:
    """What the owner does between two turns: the book moves on."""
    port.gen += 1
    port.book.apply(True, 100.0, 10.0 + n)
    port.book.apply(False, 101.0 + n % 3, 0.0)
    port.book.apply(False, 90.0 + 20 + n, 1.0)
    port.book.last_seq += 1
    port.gen += 1


@pytest.mark.parametrize("depth", [None, 1, 3, 10])
def test_a_pending_view_is_the_owner_view_and_becomes_a_plain_one(depth: int | None) -> None:
    port = _port()
    plain = port.owner_view(depth)
    for touch in (lambda v: v.bids, lambda v: v.asks, lambda v: v.complete_levels, lambda v: v.best_ask,
                  lambda v: v == plain, hash, repr, settle, copy.copy, lambda v: pickle.dumps(v),
                  lambda v: attrs.asdict(v), lambda v: attrs.evolve(v, seq=v.seq)):
        view = port.owner_pending_view(depth)
        assert type(view) is PendingView and isinstance(view, BookView) and view.seq == plain.seq
        touch(view)
        assert type(view) is BookView, touch  # one read of any level field settles it
        assert view == plain and hash(view) == hash(plain) and repr(view) == repr(plain)
    kept = port.owner_pending_view(depth)
    assert pickle.loads(pickle.dumps(kept)) == plain and type(attrs.evolve(kept)) is BookView
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        kept.seq = 8  # type: ignore[misc]


def _deliver(hub: ListenerHub, port: BookReadPort) -> None:
    port.gen += 1
    port.gen += 1  # a turn that wrote nothing: the hook runs after it, as BookActor.on_receive does
    hub.deliver_inline("X", [], port)


def _turns(hub: ListenerHub, port: BookReadPort, count: int, depths: tuple[int, ...]) -> list[BookView]:
    """``count`` deliveries, each followed by the book moving on; the eager views of each turn."""
    expected: list[BookView] = []
    for n in range(count):
        _deliver(hub, port)
        expected.extend(port.owner_view(depth) for depth in depths)
        _turn(port, n)
    return expected


def test_a_view_the_hook_keeps_shows_its_own_turn_after_the_book_moved_on() -> None:
    """Kept whole (the event), kept as its view, handed to a list: each is settled before the owner
    moves on, so it reads as the book was at its turn; a view nobody kept is simply dropped unread."""
    port = _port()
    hub = ListenerHub()
    kept: list[Any] = []
    dropped: list[Any] = []

    def keep_event(event: BookUpdated) -> None:
        kept.append(event)

    def keep_view(event: BookUpdated) -> None:
        kept.append(event.view)

    def look_only(event: BookUpdated) -> None:
        assert event.view.seq == port.book.last_seq
        dropped.append(weakref.ref(event.view))

    for hook, depth in ((keep_event, 5), (keep_view, 3), (look_only, 2)):
        hub.add(hook, depth=depth, inline=True)
    expected = _turns(hub, port, 20, (5, 3))
    gc.collect()
    views = [x.view if isinstance(x, BookUpdated) else x for x in kept]
    assert all(type(v) is BookView for v in views)
    assert views == expected  # each as it was at its turn, not as the book is now
    assert len({v.bids for v in views}) > 2
    assert dropped and all(ref() is None for ref in dropped)


def test_a_view_passed_to_another_thread_reads_its_own_turn_however_the_threads_race() -> None:
    """A hook hands its view to a consumer thread that reads the levels at once, while the owner
    settles the same view and goes on changing the book: whoever copies, the levels are the turn's."""
    port = _port(levels=200)
    hub = ListenerHub()
    handed: list[tuple[BookView, BookView]] = []
    lock = threading.Condition()
    wrong: list[int] = []
    done = threading.Event()

    def hook(event: BookUpdated) -> None:
        with lock:
            handed.append((event.view, port.owner_view(None)))
            lock.notify()

    def consumer() -> None:
        seen = 0
        while not done.is_set() or seen < len(handed):
            with lock:
                lock.wait_for(lambda: seen < len(handed) or done.is_set(), timeout=1)
                batch = handed[seen:]
            for view, truth in batch:
                if (view.bids, view.asks, view.complete_levels) != (truth.bids, truth.asks, truth.complete_levels):
                    wrong.append(view.seq)
            seen += len(batch)

    hub.add(hook, inline=True)
    thread = threading.Thread(target=consumer)
    thread.start()
    try:
        for n in range(2000):
            _deliver(hub, port)
            _turn(port, n)
    finally:
        done.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and len(handed) == 2000
    assert not wrong


def test_a_hook_that_raises_holding_the_view_still_leaves_it_right() -> None:
    port = _port()
    hub = ListenerHub()
    kept: list[BookView] = []

    def hook(event: BookUpdated) -> None:
        kept.append(event.view)
        raise ValueError("boom")

    listener = hub.add(hook, depth=4, inline=True)
    logger.disable("depthkeeper")  # (the error log's traceback would print, and so settle, the view)
    try:
        _deliver(hub, port)
    finally:
        logger.enable("depthkeeper")
    truth = port.owner_view(4)
    _turn(port, 1)
    assert kept == [truth] and hub.stats()[listener]["errors"] == 1


def test_a_view_reachable_by_a_weak_reference_is_settled_before_the_book_moves_on() -> None:
    """One listener keeps only weak references (to the event, or to its view); another, at another
    depth and so with its own view, makes them strong during the same delivery: what it holds must
    still be the turn's book, not the book as it is when it reads it."""
    port = _port()
    hub = ListenerHub()
    weak: list[Any] = []
    strong: list[Any] = []

    def weak_event(event: BookUpdated) -> None:
        weak.append(weakref.ref(event))

    def weak_view(event: BookUpdated) -> None:
        weak.append(weakref.ref(event.view))

    def make_strong(event: BookUpdated) -> None:
        strong.extend(ref() for ref in weak[-2:])

    hub.add(weak_event, depth=5, inline=True)
    hub.add(weak_view, depth=3, inline=True)
    hub.add(make_strong, depth=1, inline=True)
    expected = _turns(hub, port, 10, (5, 3))
    views = [x.view if isinstance(x, BookUpdated) else x for x in strong]
    assert views == expected and all(type(v) is BookView for v in views)


def test_two_threads_settling_one_view_at_once_both_get_the_turns_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner is copying when a consumer thread settles the same view (both read it while it is
    pending): neither raises, and the view ends as the book was."""
    from depthkeeper.actors import readport

    for depth in (None, 3):
        port = _port()
        view = port.owner_pending_view(depth)
        truth = port.owner_view(depth)
        real = BookReadPort._levels
        other: list[Any] = []

        def levels(self: BookReadPort, depth: int | None, view: BookView = view) -> Any:
            if not other and threading.current_thread() is threading.main_thread():
                thread = threading.Thread(target=lambda: other.append(settle(view)))
                thread.start()
                thread.join()
            return real(self, depth)

        monkeypatch.setattr(readport.BookReadPort, "_levels", levels)
        assert settle(view) is view and type(view) is BookView and view == truth
        assert other == [truth]
        monkeypatch.setattr(readport.BookReadPort, "_levels", real)


def test_a_pending_view_read_after_its_book_moved_on_raises_instead_of_showing_another_turn() -> None:
    """Only reachable around the owner's checks (here: by hand); a copy then would pair this turn's
    seq with another turn's levels, so it is refused."""
    from depthkeeper.actors.readport import StaleViewError

    port = _port()
    view = port.owner_pending_view(5)
    _turn(port, 1)
    with pytest.raises(StaleViewError, match="moved on"):
        view.bids  # noqa: B018
