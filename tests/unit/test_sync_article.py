"""The article sync policy: every transition and every bridge case."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from depthkeeper.actors.orderbook import BookStatus, OrderBook
from depthkeeper.actors.sync import ArticleSync, ResyncReason, SyncAction
from depthkeeper.actors.wire import DiffEvent, Snapshot


def diff(seq: int, price: float = 100.0, size: float = 1.0, bid: bool = True) -> DiffEvent:
    return DiffEvent("X", seq, bid, price, size)


def live_policy(seq: int = 10, limit: int = 100) -> ArticleSync:
    policy = ArticleSync(OrderBook("X"), limit)
    assert policy.start(ResyncReason.START) is SyncAction.FETCH_SNAPSHOT
    policy.on_snapshot(Snapshot("X", seq, ((99.0, 1.0),), ((101.0, 1.0),)), policy.request_token)
    assert policy.book.status is BookStatus.LIVE
    return policy


def test_start_is_syncing_and_requests_snapshot() -> None:
    policy = ArticleSync(OrderBook("X"), 10)
    assert policy.start(ResyncReason.START) is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.SYNCING and policy.awaiting_snapshot
    assert policy.on_diffs([diff(1)]) is SyncAction.NONE
    assert policy.buffer == [diff(1)]


def test_contiguous_diffs_apply() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([diff(11, 98.0), diff(12, 97.0)]) is SyncAction.NONE
    assert policy.book.last_seq == 12 and policy.counters.applied == 2
    assert policy.book.bids == {99.0: 1.0, 98.0: 1.0, 97.0: 1.0}


def test_gap_clears_resyncs_and_buffers_the_rest() -> None:
    policy = live_policy(10)
    token = policy.request_token
    assert policy.on_diffs([diff(11), diff(13), diff(14)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.RESYNCING
    assert policy.book.bids == {} and policy.counters.gaps == 1 and policy.counters.resyncs == 1
    assert [d.seq for d in policy.buffer] == [13, 14]
    assert policy.request_token == token + 1


def test_exact_repeat_is_dropped_other_repeat_resyncs() -> None:
    policy = live_policy(10)
    policy.on_diffs([diff(11, 98.0)])
    assert policy.on_diffs([diff(11, 98.0)]) is SyncAction.NONE
    assert policy.counters.duplicates == 1 and policy.book.status is BookStatus.LIVE
    assert policy.on_diffs([diff(11, 50.0)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.REPEAT


def test_backwards_seq_means_venue_restart() -> None:
    policy = live_policy(10)
    policy.on_diffs([diff(11)])
    assert policy.on_diffs([diff(1)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.BACKWARDS and policy.book.status is BookStatus.RESYNCING


def test_snapshot_bridges_buffer_dropping_older_diffs() -> None:
    policy = ArticleSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(8, 90.0), diff(9, 91.0), diff(10, 92.0), diff(11, 93.0)])
    policy.on_snapshot(Snapshot("X", 9, ((50.0, 1.0),), ((200.0, 1.0),)), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 11
    assert set(policy.book.bids) == {50.0, 92.0, 93.0}


def test_snapshot_newer_than_stream_drops_stream_until_next() -> None:
    policy = ArticleSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(5)])
    policy.on_snapshot(Snapshot("X", 20, (), ()), policy.request_token)
    assert policy.on_diffs([diff(18), diff(19), diff(20)]) is SyncAction.NONE
    assert policy.counters.bridged == 3
    assert policy.on_diffs([diff(21, 1.0)]) is SyncAction.NONE
    assert policy.book.last_seq == 21 and policy.book.bids == {1.0: 1.0}
    # once a diff is applied, a seq below last is a repeat again, not a bridge
    assert policy.on_diffs([diff(19)]) is SyncAction.FETCH_SNAPSHOT


def test_snapshot_older_than_buffer_is_refetched_keeping_buffer() -> None:
    policy = ArticleSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(15), diff(16)])
    token = policy.request_token
    assert policy.on_snapshot(Snapshot("X", 10, (), ()), token) is SyncAction.FETCH_SNAPSHOT
    assert policy.counters.snapshot_refetches == 1 and [d.seq for d in policy.buffer] == [15, 16]
    assert policy.book.status is BookStatus.SYNCING
    policy.on_snapshot(Snapshot("X", 14, (), ()), policy.request_token)
    assert policy.book.last_seq == 16 and policy.book.status is BookStatus.LIVE


def test_gap_inside_buffer_restarts_resync() -> None:
    policy = ArticleSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(11), diff(13)])
    assert policy.on_snapshot(Snapshot("X", 10, (), ()), policy.request_token) is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.RESYNCING and [d.seq for d in policy.buffer] == [13]


def test_reply_to_old_request_is_ignored() -> None:
    policy = ArticleSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    old = policy.request_token
    policy.start(ResyncReason.RECONNECT)
    assert policy.on_snapshot(Snapshot("X", 10, (), ()), old) is SyncAction.NONE
    assert policy.counters.ignored_snapshots == 1 and policy.awaiting_snapshot


def test_snapshot_while_live_is_ignored() -> None:
    policy = live_policy(10)
    assert policy.on_snapshot(Snapshot("X", 50, (), ()), policy.request_token) is SyncAction.NONE
    assert policy.book.last_seq == 10


def test_overflow_restarts_resync_never_silently() -> None:
    policy = ArticleSync(OrderBook("X"), 3)
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_diffs([diff(1), diff(2), diff(3)]) is SyncAction.NONE
    assert policy.on_diffs([diff(4)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.counters.overflows == 1 and policy.buffer == [] and policy.request_token == token + 1
    assert policy.last_reason is ResyncReason.OVERFLOW


def test_crossed_book_resyncs() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([diff(11, 105.0, bid=True)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.counters.crossed == 1 and policy.last_reason is ResyncReason.CROSSED


def test_crossed_snapshot_resyncs() -> None:
    policy = ArticleSync(OrderBook("X"), 10)
    policy.start(ResyncReason.START)
    action = policy.on_snapshot(Snapshot("X", 3, ((10.0, 1.0),), ((9.0, 1.0),)), policy.request_token)
    assert action is SyncAction.FETCH_SNAPSHOT and policy.book.status is BookStatus.RESYNCING


class Venue:
    """A reference venue: a truth book with a per-symbol seq and a history of snapshots."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.book: dict[tuple[bool, float], float] = {}
        self.seq = 0
        self.history: dict[int, tuple] = {0: ((), ())}

    def step(self) -> DiffEvent:
        is_bid = self.rng.random() < 0.5
        price = float(self.rng.randrange(1, 20)) if is_bid else float(self.rng.randrange(21, 40))
        size = 0.0 if self.rng.random() < 0.3 else float(self.rng.randrange(1, 5))
        self.seq += 1
        if size:
            self.book[(is_bid, price)] = size
        else:
            self.book.pop((is_bid, price), None)
        self.history[self.seq] = self.snapshot_levels()
        return DiffEvent("X", self.seq, is_bid, price, size)

    def snapshot_levels(self) -> tuple:
        bids = tuple(sorted(((p, s) for (b, p), s in self.book.items() if b), reverse=True))
        asks = tuple(sorted((p, s) for (b, p), s in self.book.items() if not b))
        return bids, asks


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000), faults=st.lists(st.sampled_from(["drop", "dup", "swap", "none"]), max_size=40))
def test_any_fault_sequence_converges_to_truth(seed: int, faults: list[str]) -> None:
    """Drops, duplicates and reorders, with snapshots served at random versions, end exact."""
    rng = random.Random(seed)
    venue = Venue(rng)
    policy = ArticleSync(OrderBook("X", max_levels=100), 50)
    action = policy.start(ResyncReason.START)
    pending: int | None = policy.request_token
    for fault in faults + ["none"] * 30:
        batch = [venue.step() for _ in range(rng.randrange(1, 4))]
        if fault == "drop":
            batch = batch[1:]
        elif fault == "dup":
            batch = batch + batch[-1:]
        elif fault == "swap" and len(batch) > 1:
            batch[0], batch[1] = batch[1], batch[0]
        if policy.on_diffs(batch) is SyncAction.FETCH_SNAPSHOT:
            pending = policy.request_token
        if pending is not None and rng.random() < 0.5:
            at = rng.randrange(max(0, venue.seq - 3), venue.seq + 1)
            bids, asks = venue.history[at]
            token, pending = pending, None
            if policy.on_snapshot(Snapshot("X", at, bids, asks), token) is SyncAction.FETCH_SNAPSHOT:
                pending = policy.request_token
    # quiesce: serve the current snapshot until live
    for _ in range(5):
        if not policy.awaiting_snapshot:
            break
        bids, asks = venue.history[venue.seq]
        policy.on_snapshot(Snapshot("X", venue.seq, bids, asks), policy.request_token)
    assert action is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.LIVE
    if policy.book.last_seq == venue.seq:
        assert policy.book.top() == venue.snapshot_levels()
    else:  # live but behind: must equal the truth at its own seq
        assert policy.book.top() == venue.history[policy.book.last_seq]
