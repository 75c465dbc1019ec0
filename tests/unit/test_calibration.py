"""Calibration compares the book with a snapshot at the same seq, counts drift and repairs it."""

from __future__ import annotations

from depthkeeper.actors.core.calibration import Calibration
from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.wire import DepthPush, DiffEvent, RangeDiff, Snapshot


def live_book() -> OrderBook:
    book = OrderBook("X")
    book.replace([(10.0, 1.0), (9.0, 1.0)], [(11.0, 1.0), (12.0, 1.0)], seq=100)
    book.status = BookStatus.LIVE
    return book


def test_snapshot_older_than_book_is_rolled_forward_then_compared() -> None:
    book = live_book()
    cal = Calibration(book)
    token = cal.begin()
    assert cal.owns(token) and token < 0
    diffs = [DiffEvent("X", 99, True, 9.5, 1.0), DiffEvent("X", 100, True, 9.0, 1.0)]
    cal.record(diffs)
    # the venue at 98 had 10.0 and 9.5@1; diffs 99..100 roll it to our state, except a drifted 12.0 ask
    cal.receive(Snapshot("X", 98, ((10.0, 1.0), (9.5, 2.0)), ((11.0, 1.0), (12.0, 3.0))))
    assert cal.finish() == 2  # 9.5 we lack (it is in the venue's book), 12.0 size differs
    assert book.asks == {11.0: 1.0, 12.0: 3.0} and 9.5 in book.bids
    assert cal.drifted_levels == 2 and cal.completed == 1 and not cal.active


def test_matching_book_has_no_drift() -> None:
    book = live_book()
    cal = Calibration(book)
    cal.begin()
    cal.receive(Snapshot("X", 100, ((10.0, 1.0), (9.0, 1.0)), ((11.0, 1.0), (12.0, 1.0))))
    assert cal.finish() == 0 and cal.completed == 1


def test_snapshot_newer_than_book_waits_then_compares() -> None:
    book = live_book()
    cal = Calibration(book)
    cal.begin()
    cal.receive(Snapshot("X", 101, ((10.0, 1.0), (9.0, 1.0), (8.0, 1.0)), ((11.0, 1.0), (12.0, 1.0))))
    assert cal.finish() is None and cal.active
    book.apply(True, 8.0, 1.0)
    book.last_seq = 101
    assert cal.finish() == 0


def test_broken_recording_or_resync_abandons() -> None:
    book = live_book()
    cal = Calibration(book)
    cal.begin()
    cal.record([DiffEvent("X", 100, True, 9.0, 1.0)])
    cal.receive(Snapshot("X", 97, (), ()))  # 98 and 99 were never recorded
    assert cal.finish() is None and cal.skipped == 1
    cal.begin()
    cal.cancel()
    assert cal.skipped == 2 and not cal.active


def test_alltick_top_n_compared_only_at_the_same_seq() -> None:
    book = live_book()
    cal = Calibration(book)
    cal.begin()
    cal.receive(DepthPush("X", 100, 0.0, ((10.0, 1.0), (9.0, 5.0)), ((11.0, 1.0), (12.0, 1.0))))
    assert cal.finish() == 1 and book.bids[9.0] == 5.0
    cal.begin()
    cal.receive(DepthPush("X", 99, 0.0, (), ()))
    assert cal.finish() is None and cal.skipped == 1


def test_binance_events_roll_a_snapshot_forward_through_their_ranges() -> None:
    """Update-id ranges: the event straddling the snapshot's id + 1 applies whole, then U = u + 1."""
    book = live_book()
    cal = Calibration(book)
    cal.begin()
    cal.record([RangeDiff("X", 90, 96, ((9.0, 7.0),), ()),           # u <= snapshot: skipped
                RangeDiff("X", 97, 99, ((9.5, 1.0),), ((12.0, 0.0),)),  # straddles 98 + 1
                RangeDiff("X", 100, 100, ((9.0, 1.0),), ((12.0, 1.0),))])
    cal.receive(Snapshot("X", 98, ((10.0, 1.0), (9.0, 2.0)), ((11.0, 1.0), (12.0, 5.0))))
    assert cal.finish() == 1 and book.bids == {10.0: 1.0, 9.5: 1.0, 9.0: 1.0}  # 9.5 was missing here
    cal.begin()
    cal.record([RangeDiff("X", 99, 99, (), ()), RangeDiff("X", 101, 101, (), ())])  # a hole at 100
    book.last_seq = 101
    cal.receive(Snapshot("X", 98, ((10.0, 1.0),), ((11.0, 1.0),)))
    assert cal.finish() is None and cal.skipped == 1
