"""Inline listeners: called by the book itself at the end of each turn that changed it."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookStatusChanged, BookUpdated
from tests.support import converge_exact, wait_until

pytestmark = pytest.mark.integration


def test_an_inline_listener_sees_each_turn_in_order_and_reads_the_same_book(service) -> None:
    """Views arrive in seq order per code, after the status change that made them LIVE; inside the
    callback the book is exactly the view (its owner is the caller), and ``svc.book`` answers at once."""
    svc = service()
    lock = threading.Lock()
    events: list[tuple[str, str, int, BookStatus]] = []
    torn: list[tuple[int, int]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, BookUpdated):
            view = event.view
            if view.status is BookStatus.LIVE:
                now = svc.book(view.code, depth=5)  # no deadlock, and nothing moved under us
                if (now.seq, now.bids, now.asks) != (view.seq, view.bids, view.asks):
                    torn.append((view.seq, now.seq))
            with lock:
                events.append(("view", view.code, view.seq, view.status))
        elif isinstance(event, BookStatusChanged):
            with lock:
                events.append(("status", event.code, event.seq, event.new))

    listener = svc.add_listener(on_event, depth=5, inline=True)
    assert svc.wait_live(timeout=10)
    wait_until(lambda: sum(1 for e in list(events) if e[0] == "view" and e[3] is BookStatus.LIVE) >= 50, 10,
               "live views")
    converge_exact(svc)
    assert torn == []
    for code in ("BTCUSDT", "ETHUSDT"):
        mine = [e for e in list(events) if e[1] == code]
        first_live = next(i for i, e in enumerate(mine) if e[0] == "view" and e[3] is BookStatus.LIVE)
        assert any(e[0] == "status" and e[3] is BookStatus.LIVE for e in mine[:first_live])
        live_seqs = [e[2] for e in mine[first_live:] if e[0] == "view"]
        assert live_seqs == sorted(live_seqs), "views in seq order (a status change re-sends one at its seq)"
    stats = svc.stats().listeners[listener]
    assert stats["errors"] == 0 and stats["delivered"] >= 50 and stats["conflated"] == 0


def test_a_failing_inline_listener_is_counted_and_harms_no_book(service) -> None:
    """Its exceptions are counted (and logged, rate-limited); the books stay exact, other listeners fed."""
    svc = service()
    seen: list[int] = []

    def broken(event: Any) -> None:
        raise RuntimeError("a host's bug")

    bad = svc.add_listener(broken, inline=True)
    good = svc.add_listener(lambda event: seen.append(1), inline=True)
    assert svc.wait_live(timeout=10)
    wait_until(lambda: len(seen) >= 20 and svc.stats().listeners[bad]["errors"] >= 20, 10, "both fed")
    converge_exact(svc)
    stats = svc.stats()
    assert all(book.status is BookStatus.LIVE and book.resyncs == 0 for book in stats.books.values())
    assert stats.listeners[good]["errors"] == 0
    assert svc.remove_listener(bad)
    count = len(seen)
    wait_until(lambda: len(seen) >= count + 10, 10, "the good listener still fed")
    assert bad not in svc.stats().listeners


def test_inline_listeners_must_be_plain_callables(service) -> None:
    svc = service()

    class Host(pykka.ThreadingActor):
        pass

    ref = Host.start()
    try:
        with pytest.raises(ValueError, match="callable"):
            svc.add_listener(ref, inline=True)
    finally:
        ref.stop()
    with pytest.raises(ValueError, match="min_interval_s"):
        svc.add_listener(print, inline=True, min_interval_s=0.5)
