"""The alltick replace policy."""

from __future__ import annotations

from depthkeeper.actors.orderbook import BookStatus, OrderBook
from depthkeeper.actors.sync import AlltickSync, ResyncReason, SyncAction, make_policy
from depthkeeper.actors.wire import DepthPush, Snapshot

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


def test_stale_and_duplicate_pushes_dropped_and_counted() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.on_push(push(9))
    policy.on_push(push(9, bid=1.0))
    policy.on_push(push(3, bid=1.0))
    assert policy.counters.stale_dropped == 2 and policy.book.best_bid() == 10.0


def test_rest_fill_uses_same_rule_and_token() -> None:
    policy = AlltickSync(OrderBook("X"))
    policy.start(ResyncReason.START)
    token = policy.request_token
    policy.on_push(push(10))
    assert policy.on_snapshot(push(8, bid=1.0), token) is SyncAction.NONE  # older: dropped
    assert policy.book.best_bid() == 10.0
    assert policy.on_snapshot(push(12, bid=5.0, ask=6.0), token - 1) is SyncAction.NONE
    assert policy.counters.ignored_snapshots == 1
    policy.on_snapshot(push(12, bid=5.0, ask=6.0), token)
    assert policy.book.best_bid() == 5.0
    assert policy.on_snapshot(Snapshot("X", 99, (), ()), token) is SyncAction.NONE


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
    assert isinstance(make_policy("alltick", OrderBook("X"), 1), AlltickSync)
    with pytest.raises(ValueError):
        make_policy("binance", OrderBook("X"), 1)
    with pytest.raises(TypeError):
        AlltickSync(OrderBook("X")).on_diffs([])
