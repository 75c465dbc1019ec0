"""The shared socket state: what a LIVE promise is judged on, and what the watchdog is judged on."""

from __future__ import annotations

import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.promise import SocketState, shown_status


def test_an_answer_keeps_the_watchdog_quiet_but_never_a_live_book() -> None:
    socket = SocketState(silence_bound_s=0.75)
    socket.opened(3)
    opened = socket.opened_at
    socket.answered(3, opened + 0.6)  # the venue answered a request; no business data yet
    socket.answered(2, opened + 0.7)  # a late reader of an older socket changes nothing
    now = opened + 1.0
    assert socket.idle_for(now) == pytest.approx(0.4) and socket.silent_for(now) == pytest.approx(1.0)
    status, reason = shown_status(BookStatus.LIVE, "in sync", 3, socket, now)
    assert status is BookStatus.DISCONNECTED and "silent" in reason
    socket.fed(3, opened + 0.9)
    assert socket.idle_for(now) == socket.silent_for(now) == pytest.approx(0.1)
    # data came, but no book took any of it into its chain (a stray far-future event, say)
    status, reason = shown_status(BookStatus.LIVE, "in sync", 3, socket, now)
    assert status is BookStatus.DISCONNECTED and "no book data" in reason
    socket.chained(2, opened + 0.9)  # an older socket's data never counts
    assert shown_status(BookStatus.LIVE, "in sync", 3, socket, now)[0] is BookStatus.DISCONNECTED
    socket.chained(3, opened + 0.9)
    socket.chained(3, opened + 0.5)  # never backwards
    assert socket.last_chain_at == opened + 0.9
    assert shown_status(BookStatus.LIVE, "in sync", 3, socket, now) == (BookStatus.LIVE, "in sync")
