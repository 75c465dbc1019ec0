"""The alltick replace policy."""

from __future__ import annotations

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.settings import BookConfig, VenueConfig
from depthkeeper.actors.core.sync import ResyncReason, SyncAction
from depthkeeper.actors.venues import VENUES, venue_class
from depthkeeper.actors.venues.alltick import AlltickSync
from depthkeeper.actors.core.wire import DepthPush, Snapshot

import pytest


def push(seq: int, bid: float = 10.0, ask: float = 11.0) -> DepthPush:
    return DepthPush("X", seq, 1.0, ((bid, 1.0), (bid - 1, 2.0)), ((ask, 1.0),))


def test_newer_push_replaces_book() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.start(ResyncReason.START)
    assert policy.on_push(push(5)) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 5
    policy.on_push(push(9, bid=20.0, ask=21.0))
    assert policy.book.bids == {20.0: 1.0, 19.0: 2.0} and policy.book.asks == {21.0: 1.0}
    assert policy.book.event_time == 1.0  # the push's tick_time: views carry it as event_time


def test_stale_and_duplicate_pushes_dropped_and_counted() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.on_push(push(9))
    policy.on_push(push(9, bid=1.0))
    policy.on_push(push(3, bid=1.0))
    assert policy.counters.stale_dropped == 2 and policy.book.best_bid() == 10.0


def test_rest_fill_only_while_awaiting_and_only_with_its_token() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_snapshot(push(12, bid=5.0, ask=6.0), token - 1) is SyncAction.NONE
    assert policy.counters.ignored_snapshots == 1 and policy.book.status is BookStatus.SYNCING
    assert policy.on_snapshot(Snapshot("X", 99, (), ()), token) is SyncAction.NONE  # not a depth-tick row
    assert policy.counters.ignored_snapshots == 2
    policy.on_snapshot(push(12, bid=5.0, ask=6.0), token)
    assert policy.book.best_bid() == 5.0 and policy.book.status is BookStatus.LIVE
    # The book is in sync: a late reply (the stream got there first) is ignored.
    assert policy.on_snapshot(push(8, bid=1.0), token) is SyncAction.NONE
    assert policy.book.best_bid() == 5.0 and policy.counters.ignored_snapshots == 3


@pytest.mark.parametrize(("snap", "reason", "counter"), [
    (DepthPush("X", 5, 1.0, (), ((11.0, 1.0),)), ResyncReason.BAD_SNAPSHOT, "bad_snapshots"),
    (DepthPush("X", 5, 1.0, ((12.0, 1.0),), ((11.0, 1.0),)), ResyncReason.CROSSED, "crossed"),
])
def test_unusable_rest_fill_is_retried_never_live(snap: DepthPush, reason: ResyncReason, counter: str) -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_snapshot(snap, token) is SyncAction.RETRY_SNAPSHOT
    assert policy.book.status is BookStatus.SYNCING and policy.last_reason is reason
    assert getattr(policy.counters, counter) == 1 and policy.request_token == token + 1


def test_a_far_future_seq_is_suspect_after_stale_pushes_in_a_row() -> None:
    """One push with seq 2**53 must not freeze the book: the venue's next pushes win."""
    policy = AlltickSync(OrderBook("X"))
    policy.on_push(push(100))
    policy.on_push(push(2**53, bid=1.0, ask=2.0))
    for seq in (101, 102):
        policy.on_push(push(seq, bid=float(seq), ask=float(seq + 1)))
        assert policy.book.last_seq == 2**53
    policy.on_push(push(103, bid=103.0, ask=104.0))
    assert policy.book.last_seq == 103 and policy.book.best_bid() == 103.0
    assert policy.counters.suspect_diffs == 1 and policy.book.status is BookStatus.LIVE


def test_resync_accepts_any_newer_push_and_claims_only_top_n() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.on_push(push(100))
    policy.start(ResyncReason.RECONNECT)
    assert policy.book.status is BookStatus.RESYNCING and policy.book.last_seq == 0
    policy.on_push(push(50))
    assert policy.book.status is BookStatus.LIVE
    assert policy.book.complete_levels() == (2, 1)


def test_crossed_push_resyncs() -> None:
    policy = AlltickSync(OrderBook("X"))
    assert policy.on_push(push(1, bid=12.0, ask=11.0)) is SyncAction.FETCH_SNAPSHOT
    assert policy.counters.crossed == 1


def test_make_policy() -> None:
    assert isinstance(venue_class("alltick")(VenueConfig()).make_policy(OrderBook("X"), BookConfig()), AlltickSync)
    assert set(VENUES) >= {"article", "alltick"}
    with pytest.raises(ValueError):
        venue_class("nosuchvenue")
    with pytest.raises(TypeError):
        AlltickSync(OrderBook("X")).on_diffs([])
