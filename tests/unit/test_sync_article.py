"""The article sync policy: every transition and every bridge case."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthkeeper.actors.core.contiguous import ContiguousSync
from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.sync import ResyncReason, SyncAction
from depthkeeper.actors.core.wire import DiffEvent, Snapshot


def diff(seq: int, price: float = 100.0, size: float = 1.0, bid: bool = True) -> DiffEvent:
    return DiffEvent("X", seq, bid, price, size)


BOOK = (((99.0, 1.0), (98.0, 1.0)), ((101.0, 1.0), (102.0, 1.0)))


def snap(seq: int, bids: tuple = BOOK[0], asks: tuple = BOOK[1]) -> Snapshot:
    return Snapshot("X", seq, bids, asks)


def live_policy(seq: int = 10, limit: int = 100) -> ContiguousSync:
    """LIVE at ``seq``: a snapshot at seq bridged by the diff that reaches it."""
    policy = ContiguousSync(OrderBook("X"), limit)
    assert policy.start(ResyncReason.START) is SyncAction.FETCH_SNAPSHOT
    policy.on_diffs([diff(seq, 99.0)])
    policy.on_snapshot(snap(seq), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == seq
    return policy


def test_start_is_syncing_and_requests_snapshot() -> None:
    policy = ContiguousSync(OrderBook("X"), 10)
    assert policy.start(ResyncReason.START) is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.SYNCING and policy.awaiting_snapshot
    assert policy.on_diffs([diff(1)]) is SyncAction.NONE
    assert policy.buffer == [diff(1)]


def test_contiguous_diffs_apply() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([diff(11, 97.0), diff(12, 96.0)]) is SyncAction.NONE
    assert policy.book.last_seq == 12 and policy.counters.applied == 2
    assert policy.book.bids == {99.0: 1.0, 98.0: 1.0, 97.0: 1.0, 96.0: 1.0}


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
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(8, 90.0), diff(9, 91.0), diff(10, 92.0), diff(11, 93.0)])
    policy.on_snapshot(snap(9, ((50.0, 1.0),), ((200.0, 1.0),)), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 11
    assert set(policy.book.bids) == {50.0, 92.0, 93.0} and policy.counters.bridged == 2


def test_snapshot_at_the_last_buffered_seq_is_live_at_once() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(8), diff(9)])
    assert policy.on_snapshot(snap(9), policy.request_token) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 9


def test_snapshot_ahead_of_the_stream_is_held_until_the_stream_reaches_it() -> None:
    """Never LIVE on a snapshot the stream has not reached: diffs up to it are dropped while held."""
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(5)])
    assert policy.on_snapshot(snap(20), policy.request_token) is SyncAction.AWAIT_BRIDGE
    assert policy.book.status is BookStatus.SYNCING and policy.last_reason is ResyncReason.AHEAD_SNAPSHOT
    assert policy.on_diffs([diff(18), diff(19)]) is SyncAction.NONE
    assert policy.book.status is BookStatus.SYNCING
    assert policy.on_diffs([diff(20), diff(21, 1.0)]) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 21 and 1.0 in policy.book.bids
    # LIVE: a seq below last is a break, never silently dropped
    assert policy.on_diffs([diff(19)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.BACKWARDS


def test_snapshot_far_ahead_is_refetched_at_the_deadline_never_live() -> None:
    """Defect 5: a snapshot whose seq the stream never reaches must not make a LIVE book that
    drops every later diff; at the actor's deadline it is refetched (the actor backs off)."""
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(5)])
    token = policy.request_token
    assert policy.on_snapshot(snap(5 + 10_000), token) is SyncAction.AWAIT_BRIDGE
    policy.on_diffs([diff(6), diff(7)])
    assert policy.bridge_deadline(token) is SyncAction.RETRY_SNAPSHOT
    assert policy.counters.ahead_snapshots == 1 and policy.book.status is BookStatus.SYNCING
    assert policy.request_token == token + 1 and policy.candidate is None
    policy.on_diffs([diff(8)])
    policy.on_snapshot(snap(7), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 8


def test_a_quiet_stream_accepts_the_snapshot_at_the_deadline() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_snapshot(snap(40), token) is SyncAction.AWAIT_BRIDGE
    assert policy.bridge_deadline(token - 1) is SyncAction.NONE  # a stale deadline changes nothing
    assert policy.bridge_deadline(token) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 40
    assert policy.on_diffs([diff(41)]) is SyncAction.NONE and policy.book.last_seq == 41


def test_silence_is_a_quiet_stream_only_once_the_venue_confirmed_the_subscription() -> None:
    """Chaos (binance, seed 1): a held snapshot of a code whose subscription the venue had not
    confirmed (held back while a refused SUBSCRIBE was split) went LIVE at the deadline."""
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_snapshot(snap(40), token) is SyncAction.AWAIT_BRIDGE
    # not confirmed: held on (no snapshot spent), and looked at again
    assert policy.bridge_deadline(token, subscribed_at_fetch=False, subscribed_now=False) is SyncAction.AWAIT_BRIDGE
    assert policy.book.status is BookStatus.SYNCING and policy.candidate is not None
    assert "confirm" in policy.detail and policy.request_token == token
    # confirmed since the fetch: the snapshot may predate the stream's start -> fetch again
    assert policy.bridge_deadline(token, subscribed_at_fetch=False, subscribed_now=True) is SyncAction.RETRY_SNAPSHOT
    assert policy.book.status is BookStatus.SYNCING and policy.candidate is None
    # confirmed before the fetch: a quiet stream, accepted
    token = policy.request_token
    assert policy.on_snapshot(snap(45), token) is SyncAction.AWAIT_BRIDGE
    assert policy.bridge_deadline(token, subscribed_at_fetch=True, subscribed_now=True) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 45


def test_a_held_snapshot_waiting_for_the_subscription_is_bridged_by_the_first_diff() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_snapshot(snap(40), token) is SyncAction.AWAIT_BRIDGE
    assert policy.bridge_deadline(token, subscribed_at_fetch=False, subscribed_now=False) is SyncAction.AWAIT_BRIDGE
    assert policy.on_diffs([diff(41)]) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 41


def test_the_stream_skipping_a_held_snapshot_retries() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(5)])
    policy.on_snapshot(snap(10), policy.request_token)
    assert policy.on_diffs([diff(9), diff(12)]) is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is ResyncReason.STALE_SNAPSHOT and [d.seq for d in policy.buffer] == [12]


def test_snapshot_older_than_buffer_is_retried_keeping_buffer() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(15), diff(16)])
    token = policy.request_token
    assert policy.on_snapshot(snap(10), token) is SyncAction.RETRY_SNAPSHOT
    assert policy.counters.snapshot_refetches == 1 and [d.seq for d in policy.buffer] == [15, 16]
    assert policy.book.status is BookStatus.SYNCING and policy.last_reason is ResyncReason.STALE_SNAPSHOT
    policy.on_snapshot(snap(14), policy.request_token)
    assert policy.book.last_seq == 16 and policy.book.status is BookStatus.LIVE


def test_far_future_diff_at_the_buffer_head_is_skipped_by_a_bridging_snapshot() -> None:
    """Defect 4: one diff with seq 2**53 must not wedge the book: it is not part of the chain."""
    policy = live_policy(10)
    assert policy.on_diffs([diff(2**53)]) is SyncAction.FETCH_SNAPSHOT
    policy.on_diffs([diff(11), diff(12), diff(13)])
    policy.on_snapshot(snap(11), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 13
    assert policy.counters.suspect_diffs == 1


def test_snapshots_that_never_bridge_make_the_buffer_suspect_and_rebuilt() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(2**53)])
    for attempt in range(3):
        action = policy.on_snapshot(snap(20 + attempt), policy.request_token)
        assert action is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is ResyncReason.SUSPECT_STREAM and policy.buffer == []
    assert policy.counters.suspect_diffs == 1
    policy.on_diffs([diff(30)])
    policy.on_snapshot(snap(29), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 30


def test_gap_inside_buffer_restarts_resync() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(11), diff(13)])
    assert policy.on_snapshot(snap(10), policy.request_token) is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.RESYNCING and [d.seq for d in policy.buffer] == [13]


def test_reply_to_old_request_is_ignored() -> None:
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    old = policy.request_token
    policy.start(ResyncReason.RECONNECT)
    assert policy.on_snapshot(snap(10), old) is SyncAction.NONE
    assert policy.counters.ignored_snapshots == 1 and policy.awaiting_snapshot


def test_suspend_ignores_the_snapshot_in_flight_and_keeps_the_levels() -> None:
    policy = live_policy(10)
    policy.start(ResyncReason.GAP)
    policy.on_diffs([diff(12)])
    token = policy.request_token
    policy.suspend()
    assert policy.buffer == [] and policy.request_token == token + 1
    assert policy.on_snapshot(snap(11), token) is SyncAction.NONE


def test_snapshot_while_live_is_ignored() -> None:
    policy = live_policy(10)
    assert policy.on_snapshot(snap(50), policy.request_token) is SyncAction.NONE
    assert policy.book.last_seq == 10


def test_overflow_restarts_resync_never_silently() -> None:
    policy = ContiguousSync(OrderBook("X"), 3)
    policy.start(ResyncReason.START)
    token = policy.request_token
    assert policy.on_diffs([diff(1), diff(2), diff(3)]) is SyncAction.NONE
    assert policy.on_diffs([diff(4)]) is SyncAction.RETRY_SNAPSHOT
    assert policy.counters.overflows == 1 and policy.buffer == [] and policy.request_token == token + 1
    assert policy.last_reason is ResyncReason.OVERFLOW


def test_crossed_book_resyncs() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([diff(11, 105.0, bid=True)]) is SyncAction.FETCH_SNAPSHOT
    assert policy.counters.crossed == 1 and policy.last_reason is ResyncReason.CROSSED


@pytest.mark.parametrize(("bids", "asks", "reason", "counter"), [
    (((10.0, 1.0),), ((9.0, 1.0),), ResyncReason.CROSSED, "crossed"),
    ((), (), ResyncReason.BAD_SNAPSHOT, "bad_snapshots"),
    (((10.0, 1.0),), (), ResyncReason.BAD_SNAPSHOT, "bad_snapshots"),
])
def test_unusable_snapshot_is_retried_never_live(bids: tuple, asks: tuple, reason: ResyncReason,
                                                 counter: str) -> None:
    """Defects 7 and 8: empty or crossed snapshots never make a LIVE book; the actor backs off."""
    policy = ContiguousSync(OrderBook("X"), 10)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(3)])
    token = policy.request_token
    assert policy.on_snapshot(Snapshot("X", 3, bids, asks), token) is SyncAction.RETRY_SNAPSHOT
    assert policy.book.status is BookStatus.SYNCING and policy.last_reason is reason
    assert getattr(policy.counters, counter) == 1 and policy.request_token == token + 1
    assert [d.seq for d in policy.buffer] == [3]  # the buffer is kept for the next snapshot


def test_short_snapshot_against_the_depth_the_book_held_is_retried() -> None:
    """Defect 7: a well-formed snapshot with far fewer levels than the book held when LIVE."""
    policy = ContiguousSync(OrderBook("X"), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([diff(1)])
    deep = snap(1, tuple((100.0 - i, 1.0) for i in range(20)), tuple((101.0 + i, 1.0) for i in range(20)))
    policy.on_snapshot(deep, policy.request_token)
    assert policy.book.status is BookStatus.LIVE
    policy.on_diffs([diff(5)])  # gap
    policy.on_diffs([diff(6)])
    assert policy.on_snapshot(snap(5), policy.request_token) is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is ResyncReason.BAD_SNAPSHOT and "short" in policy.detail
    policy.on_snapshot(snap(5, deep.bids, deep.asks), policy.request_token)
    assert policy.book.status is BookStatus.LIVE


FETCHES = (SyncAction.FETCH_SNAPSHOT, SyncAction.RETRY_SNAPSHOT)


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
@given(seed=st.integers(0, 10_000), faults=st.lists(st.sampled_from(["drop", "dup", "swap", "future", "none"]), max_size=40))
def test_any_fault_sequence_converges_to_truth(seed: int, faults: list[str]) -> None:
    """Drops, duplicates and reorders, with snapshots served at random versions, end exact."""
    rng = random.Random(seed)
    venue = Venue(rng)
    policy = ContiguousSync(OrderBook("X", max_levels=100), 50)
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
        if fault == "future":
            batch.append(DiffEvent("X", 2**53, True, 1.0, 1.0))
        if policy.on_diffs(batch) in FETCHES:
            pending = policy.request_token
        if pending is not None and rng.random() < 0.5:
            at = rng.randrange(max(1, venue.seq - 3), venue.seq + 1)
            bids, asks = venue.history[at]
            token, pending = pending, None
            reply = policy.on_snapshot(Snapshot("X", at, bids, asks), token)
            if reply in FETCHES:
                pending = policy.request_token
            elif reply is SyncAction.AWAIT_BRIDGE and policy.bridge_deadline(token) in FETCHES:
                pending = policy.request_token  # a deadline at once: the stream did not reach it
        assert policy.book.status is not BookStatus.LIVE or policy.book.top() == venue.history[policy.book.last_seq]
    # quiesce: the stream moves on and the current snapshot is served until live
    for _ in range(10):
        if not policy.awaiting_snapshot:
            break
        policy.on_diffs([venue.step()])
        bids, asks = venue.history[venue.seq - 1]
        if policy.on_snapshot(Snapshot("X", venue.seq - 1, bids, asks), policy.request_token) is SyncAction.AWAIT_BRIDGE:
            policy.bridge_deadline(policy.request_token)
    assert action is SyncAction.FETCH_SNAPSHOT
    assert policy.book.status is BookStatus.LIVE
    if policy.book.last_seq == venue.seq:
        assert policy.book.top() == venue.snapshot_levels()
    else:  # live but behind: must equal the truth at its own seq
        assert policy.book.top() == venue.history[policy.book.last_seq]
