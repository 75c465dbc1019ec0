"""The update-id range policy (Binance's documented algorithm): every transition, a property test,
and fidelity on real recorded frames (../shared/fixtures/binance)."""

from __future__ import annotations

import gzip
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.rangesync import RangeSync
from depthkeeper.actors.core.sync import ResyncReason, SyncAction
from depthkeeper.actors.core.wire import RangeDiff, Snapshot
from depthkeeper.actors.venues.binance import decode, decode_snapshot
from tests.support import binance_fixture

BOOK = (((99.0, 1.0), (98.0, 1.0)), ((101.0, 1.0), (102.0, 1.0)))


def event(first: int, last: int | None = None, bids: tuple = ((97.0, 1.0),), asks: tuple = (),
          event_time: float = 0.0) -> RangeDiff:
    return RangeDiff("X", first, first if last is None else last, bids, asks, 0.0, event_time)


def snap(seq: int, bids: tuple = BOOK[0], asks: tuple = BOOK[1]) -> Snapshot:
    return Snapshot("X", seq, bids, asks)


def started(limit: int = 100, max_levels: int = 50) -> RangeSync:
    policy = RangeSync(OrderBook("X", max_levels), limit)
    assert policy.start(ResyncReason.START) is SyncAction.FETCH_SNAPSHOT
    return policy


def live_policy(last: int = 10) -> RangeSync:
    """LIVE at ``last``: a snapshot at ``last`` bridged by an event ending there."""
    policy = started()
    policy.on_diffs([event(last - 2, last)])
    policy.on_snapshot(snap(last), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == last
    return policy


def test_events_are_buffered_until_the_snapshot() -> None:
    policy = started()
    assert policy.on_diffs([event(1, 3), event(4, 6)]) is SyncAction.NONE
    assert [d.seq for d in policy.buffer] == [3, 6] and policy.book.status is BookStatus.SYNCING


def test_drop_u_at_or_below_the_snapshot_then_the_straddling_event_bridges() -> None:
    """u <= lastUpdateId dropped; the first applied event has U <= L+1 <= u (here it straddles: U < L+1)."""
    policy = started()
    policy.on_diffs([event(1, 3, ((90.0, 1.0),)), event(4, 8, ((91.0, 2.0),)), event(9, 12, ((92.0, 3.0),))])
    assert policy.on_snapshot(snap(6), policy.request_token) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 12
    assert policy.book.bids == {99.0: 1.0, 98.0: 1.0, 91.0: 2.0, 92.0: 3.0}
    assert policy.counters.bridged == 1 and policy.counters.applied == 2


def test_the_exact_fit_u_equals_snapshot_plus_one_bridges() -> None:
    """The docs' step 5 wording ('L within [U;u]') would refuse U == L+1; the update procedure accepts it."""
    policy = started()
    policy.on_diffs([event(5, 7), event(8, 9)])
    policy.on_snapshot(snap(7), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 9


def test_snapshot_at_the_last_buffered_u_is_live_at_once() -> None:
    policy = started()
    policy.on_diffs([event(1, 4), event(5, 9)])
    assert policy.on_snapshot(snap(9), policy.request_token) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 9 and policy.buffered == 0


def test_snapshot_older_than_every_buffered_event_is_refetched() -> None:
    """Step 4: lastUpdateId + 1 < the first buffered U: the snapshot is too old, fetch again (backoff)."""
    policy = started()
    policy.on_diffs([event(20, 25)])
    token = policy.request_token
    assert policy.on_snapshot(snap(10), token) is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is ResyncReason.STALE_SNAPSHOT and policy.request_token == token + 1
    assert policy.on_snapshot(snap(21), policy.request_token) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 25


def test_snapshot_ahead_of_the_stream_is_held_until_an_event_reaches_it() -> None:
    policy = started()
    policy.on_diffs([event(1, 3)])
    assert policy.on_snapshot(snap(10), policy.request_token) is SyncAction.AWAIT_BRIDGE
    assert policy.on_diffs([event(4, 7)]) is SyncAction.NONE and policy.book.status is BookStatus.SYNCING
    assert policy.on_diffs([event(8, 12, ((95.0, 1.0),))]) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 12 and 95.0 in policy.book.bids


def test_held_snapshot_skipped_by_the_stream_is_refetched() -> None:
    policy = started()
    policy.on_diffs([event(1, 3)])
    policy.on_snapshot(snap(10), policy.request_token)
    assert policy.on_diffs([event(13, 15)]) is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is ResyncReason.STALE_SNAPSHOT and [d.seq for d in policy.buffer] == [15]


def test_held_snapshot_never_reached_is_refetched_at_the_deadline() -> None:
    policy = started()
    policy.on_diffs([event(1, 3)])
    token = policy.request_token
    policy.on_snapshot(snap(10_000), token)
    policy.on_diffs([event(4, 6)])
    assert policy.bridge_deadline(token) is SyncAction.RETRY_SNAPSHOT
    assert policy.counters.ahead_snapshots == 1 and policy.book.status is BookStatus.SYNCING


def test_live_chain_u_plus_one_applies_and_carries_the_event_time() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([event(11, 15, ((96.0, 2.0),), ((101.0, 0.0),), event_time=1723161255.5)]) is \
        SyncAction.NONE
    assert policy.book.last_seq == 15 and policy.book.event_time == 1723161255.5
    assert policy.book.bids[96.0] == 2.0 and 101.0 not in policy.book.asks  # qty 0 removes


def test_removing_a_level_we_do_not_hold_is_normal() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([event(11, 11, ((50.0, 0.0),))]) is SyncAction.NONE
    assert policy.book.status is BookStatus.LIVE


@pytest.mark.parametrize(("bad", "reason"), [
    (event(13, 14), ResyncReason.GAP),        # U > previous u + 1
    (event(10, 12), ResyncReason.REPEAT),     # overlaps ids already applied
    (event(11, 11, ((1.0, 1.0),)), ResyncReason.REPEAT),  # same ids, other content
    (event(2, 3), ResyncReason.BACKWARDS),    # a venue restart: ids start over
])
def test_anything_but_u_plus_one_resyncs_this_book(bad: RangeDiff, reason: ResyncReason) -> None:
    policy = live_policy(10)
    policy.on_diffs([event(11, 11)])
    token = policy.request_token
    assert policy.on_diffs([bad]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is reason and policy.book.status is BookStatus.RESYNCING
    assert policy.book.bids == {} and policy.request_token == token + 1
    assert policy.counters.gaps == (1 if reason is ResyncReason.GAP else 0)
    assert policy.buffer == [bad]


def test_the_same_event_sent_twice_is_a_duplicate() -> None:
    policy = live_policy(10)
    policy.on_diffs([event(11, 13)])
    assert policy.on_diffs([event(11, 13)]) is SyncAction.NONE
    assert policy.counters.duplicates == 1 and policy.book.status is BookStatus.LIVE


def test_a_far_future_event_ahead_of_the_buffer_is_skipped_by_a_bridging_snapshot() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([event(2**53)]) is SyncAction.FETCH_SNAPSHOT
    policy.on_diffs([event(11, 12), event(13, 14)])
    policy.on_snapshot(snap(11), policy.request_token)
    assert policy.book.status is BookStatus.LIVE and policy.book.last_seq == 14 and policy.counters.suspect_diffs == 1


def test_crossed_by_an_event_resyncs() -> None:
    policy = live_policy(10)
    assert policy.on_diffs([event(11, 11, ((105.0, 1.0),))]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.CROSSED and policy.counters.crossed == 1


def test_crossed_by_the_straddling_event_resyncs() -> None:
    policy = started()
    policy.on_diffs([event(5, 9, ((105.0, 1.0),))])
    assert policy.on_snapshot(snap(7), policy.request_token) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.CROSSED


@pytest.mark.parametrize(("bids", "asks", "reason"), [
    ((), (), ResyncReason.BAD_SNAPSHOT),
    (((10.0, 1.0),), ((9.0, 1.0),), ResyncReason.CROSSED),
])
def test_unusable_snapshots_are_retried_keeping_the_buffer(bids: tuple, asks: tuple, reason: ResyncReason) -> None:
    policy = started()
    policy.on_diffs([event(3, 5)])
    assert policy.on_snapshot(Snapshot("X", 4, bids, asks), policy.request_token) is SyncAction.RETRY_SNAPSHOT
    assert policy.last_reason is reason and [d.seq for d in policy.buffer] == [5]


def test_buffer_overflow_restarts_never_silently() -> None:
    policy = started(limit=2)
    policy.on_diffs([event(1), event(2)])
    assert policy.on_diffs([event(3)]) is SyncAction.RETRY_SNAPSHOT
    assert policy.counters.overflows == 1 and policy.buffer == []


def test_reply_to_an_old_request_is_ignored() -> None:
    policy = started()
    old = policy.request_token
    policy.start(ResyncReason.RECONNECT)
    policy.on_diffs([event(1, 3)])
    assert policy.on_snapshot(snap(2), old) is SyncAction.NONE and policy.counters.ignored_snapshots == 1


def test_a_side_with_no_level_known_for_sure_resyncs() -> None:
    """Trimming forgot the levels beyond the horizon; when the market moves past it, only a snapshot can tell."""
    policy = RangeSync(OrderBook("X", max_levels=2), 100)
    policy.start(ResyncReason.START)
    policy.on_diffs([event(1, 1)])
    bids = tuple((99.0 - i, 1.0) for i in range(5))
    policy.on_snapshot(snap(1, bids, ((101.0, 1.0),)), policy.request_token)
    assert policy.book.horizons() == (98.0, None)
    assert policy.on_diffs([event(2, 2, ((99.0, 0.0),))]) is SyncAction.NONE  # 98 still known
    assert policy.on_diffs([event(3, 3, ((98.0, 0.0),))]) is SyncAction.FETCH_SNAPSHOT
    assert policy.last_reason is ResyncReason.DEPTH


# -- property: any fault sequence on a range venue converges to the truth ---------------------------------

FETCHES = (SyncAction.FETCH_SNAPSHOT, SyncAction.RETRY_SNAPSHOT)


class RangeVenue:
    """A reference venue: one id per level change, events that aggregate several ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.book: dict[tuple[bool, float], float] = {}
        self.seq = 0
        self.history: dict[int, tuple] = {0: ((), ())}

    def step(self) -> RangeDiff:
        first = self.seq + 1
        changes: dict[tuple[bool, float], float] = {}
        for _ in range(self.rng.randrange(1, 5)):
            is_bid = self.rng.random() < 0.5
            price = float(self.rng.randrange(1, 20)) if is_bid else float(self.rng.randrange(21, 40))
            size = 0.0 if self.rng.random() < 0.3 else float(self.rng.randrange(1, 5))
            self.seq += 1
            changes[(is_bid, price)] = size
            if size:
                self.book[(is_bid, price)] = size
            else:
                self.book.pop((is_bid, price), None)
            self.history[self.seq] = self.levels()
        bids = tuple((p, s) for (b, p), s in changes.items() if b)
        asks = tuple((p, s) for (b, p), s in changes.items() if not b)
        return RangeDiff("X", first, self.seq, bids, asks)

    def levels(self) -> tuple:
        bids = tuple(sorted(((p, s) for (b, p), s in self.book.items() if b), reverse=True))
        asks = tuple(sorted((p, s) for (b, p), s in self.book.items() if not b))
        return bids, asks


def _serve(policy: RangeSync, venue: RangeVenue, at: int, token: int) -> int | None:
    """Answer the pending request with the venue's book at ``at``; the new pending token, if any."""
    bids, asks = venue.history[at]
    reply = policy.on_snapshot(Snapshot("X", at, bids, asks), token)
    if reply in FETCHES:
        return policy.request_token
    if reply is SyncAction.AWAIT_BRIDGE and policy.bridge_deadline(token) in FETCHES:
        return policy.request_token
    return None


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000),
       faults=st.lists(st.sampled_from(["drop", "dup", "swap", "future", "none"]), max_size=40))
def test_any_fault_sequence_converges_to_truth(seed: int, faults: list[str]) -> None:
    """Dropped, duplicated, swapped and far-future events, snapshots at random ids: LIVE is always exact."""
    rng = random.Random(seed)
    venue = RangeVenue(rng)
    policy = RangeSync(OrderBook("X", max_levels=100), 50)
    policy.start(ResyncReason.START)
    pending: int | None = policy.request_token
    for fault in faults + ["none"] * 30:
        batch = [venue.step() for _ in range(rng.randrange(1, 4))]
        if fault == "drop":
            batch = batch[1:]
        elif fault == "dup":
            batch = batch + batch[-1:]
        elif fault == "swap" and len(batch) > 1:
            batch[0], batch[1] = batch[1], batch[0]
        elif fault == "future":
            batch.append(RangeDiff("X", 2**53, 2**53, ((1.0, 1.0),), ()))
        if policy.on_diffs(batch) in FETCHES:
            pending = policy.request_token
        if pending is not None and rng.random() < 0.5:
            token, pending = pending, None
            pending = _serve(policy, venue, rng.randrange(max(0, venue.seq - 6), venue.seq + 1), token)
        book = policy.book
        assert book.status is not BookStatus.LIVE or book.top() == venue.history[book.last_seq]
    for _ in range(10):  # quiesce: the stream moves on and a recent snapshot is served until LIVE
        if not policy.awaiting_snapshot:
            break
        policy.on_diffs([venue.step()])
        _serve(policy, venue, venue.seq - 1 if venue.seq > 1 else venue.seq, policy.request_token)
    assert policy.book.status is BookStatus.LIVE
    assert policy.book.top() == venue.history[policy.book.last_seq]


# -- fidelity on real data ------------------------------------------------------------------------------


def replay_fixture(name: str, max_levels: int) -> tuple[RangeSync, int, int]:
    """Feed a recording's frames through the codec and the policy in recorded order (the snapshot where it
    was recorded); at every bookTicker whose ``u`` is the book's last applied ``u``, compare the top."""
    lines = gzip.open(binance_fixture(name), "rb").read().splitlines()
    tickers: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        text = line.partition(b" ")[2]
        if b"@bookTicker" in text[:40]:
            data = orjson.loads(text)["data"]
            tickers.setdefault(data["u"], []).append(data)
    policy = RangeSync(OrderBook("BTCUSDT", max_levels), 10_000)
    policy.start(ResyncReason.START)
    checkpoints = mismatches = 0
    for line in lines:
        text = line.partition(b" ")[2]
        if text.startswith(b'{"lastUpdateId"'):
            snapshot = decode_snapshot(text, "BTCUSDT")
            assert isinstance(snapshot, Snapshot)
            assert policy.on_snapshot(snapshot, policy.request_token) is SyncAction.NONE
            continue
        frame = decode(text)
        if type(frame) is not RangeDiff:
            continue
        assert policy.on_diffs([frame]) is SyncAction.NONE
        if policy.book.status is BookStatus.LIVE and frame.seq in tickers:
            bids, asks = policy.book.top(1)
            for ticker in tickers[frame.seq]:
                checkpoints += 1
                if bids[:1] != ((float(ticker["b"]), float(ticker["B"])),) or \
                        asks[:1] != ((float(ticker["a"]), float(ticker["A"])),):
                    mismatches += 1
    return policy, checkpoints, mismatches


@pytest.mark.parametrize(("name", "expected"), [("btcusdt_20240808.gz", 564), ("ethusdt_20240808.gz", 577)])
def test_real_frames_match_every_book_ticker_checkpoint(name: str, expected: int) -> None:
    """The venue's own oracle: at each bookTicker's update id our best bid and ask (price and quantity)
    equal it. Run with the binance default max_levels (1000, the recorded snapshot's depth)."""
    policy, checkpoints, mismatches = replay_fixture(name, max_levels=1000)
    assert (checkpoints, mismatches) == (expected, 0)
    assert policy.book.status is BookStatus.LIVE and policy.counters.resyncs == 0
    assert policy.counters.bridged == 2 and policy.book.event_time > 1723161000  # 2024-08-08, seconds


def test_in_order_tells_a_flowing_stream_from_a_stray_event_while_syncing() -> None:
    """What a syncing book tells the socket state (promise.py): events buffered in order show the
    stream flows; the first event, a far-future one or a repeat do not."""
    policy = started()
    first = [event(5, 7)]
    policy.on_diffs(first)
    assert not policy.in_order(first)  # nothing before it to continue
    nxt = [event(8, 9)]
    policy.on_diffs(nxt)
    assert policy.in_order(nxt)
    stray = [event(2 ** 53, 2 ** 53)]
    policy.on_diffs(stray)
    assert not policy.in_order(stray)
    again = [event(2 ** 53, 2 ** 53)]
    policy.on_diffs(again)
    assert not policy.in_order(again)
    assert not live_policy().in_order([event(11)])  # LIVE: applied, not buffered
