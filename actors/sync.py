"""Sync policies: what a venue message means for one book. Pure; one instance per book.

A policy owns the book's sync state machine and returns a :class:`SyncAction` telling its
actor whether a REST snapshot must be fetched. It never does I/O itself.

article (per-symbol contiguous seq)::

    SYNCING/RESYNCING --diffs--> buffer (bounded) ...... FETCH snapshot
         |  snapshot: drop buffered seq <= S; first kept must be S+1 (else FETCH again)
         v
       LIVE --seq == last+1--> apply
         |--seq <= last while bridging (just after the snapshot)--> drop (counted)
         |--exact repeat of the last diff--> drop (counted)
         '--gap / other repeat / backwards (venue restart) / crossed--> clear, RESYNCING, FETCH

Buffer overflow never drops silently: the buffer is discarded, counted, and a fresh
snapshot is requested (the resync restarts).

alltick (each push is a complete top-N book): replace when the push's seq is newer, drop
(and count) stale or duplicate pushes. Seq is not contiguous there, so it never means a gap.

Snapshot requests carry a token; a reply to an older request (e.g. fetched before a venue
restart) is ignored, so a snapshot can never be bridged onto a stream of another era.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from depthkeeper.actors.orderbook import BookStatus, OrderBook
from depthkeeper.actors.wire import DepthPush, DiffEvent, Snapshot


class SyncAction(enum.Enum):
    NONE = "none"
    FETCH_SNAPSHOT = "fetch_snapshot"


class ResyncReason(enum.Enum):
    START = "start"
    GAP = "gap"
    REPEAT = "repeat"
    BACKWARDS = "backwards"
    CROSSED = "crossed"
    OVERFLOW = "overflow"
    RECONNECT = "reconnect"
    RESTART = "restart"
    REQUESTED = "requested"
    STALE_SNAPSHOT = "stale_snapshot"


@attrs.define
class SyncCounters:
    """Cumulative per-book counters (reported by stats and metrics)."""

    applied: int = 0
    gaps: int = 0
    resyncs: int = 0
    duplicates: int = 0
    bridged: int = 0
    stale_dropped: int = 0
    overflows: int = 0
    crossed: int = 0
    snapshots: int = 0
    snapshot_refetches: int = 0
    ignored_snapshots: int = 0


class SyncPolicy:
    """Base: shared state and the (re)start transition."""

    #: True when a snapshot can only bridge a stream that has begun (fetch after the first diff)
    fetch_after_first_diff = False

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.counters = SyncCounters()
        #: True from a (re)start until a snapshot has been bridged
        self.awaiting_snapshot = False
        #: token of the snapshot request whose reply we will accept
        self.request_token = 0
        self.last_reason: ResyncReason = ResyncReason.START

    def start(self, reason: ResyncReason) -> SyncAction:
        """Forget the book and ask for a snapshot; SYNCING the first time, else RESYNCING."""
        book = self.book
        if reason is not ResyncReason.START:
            self.counters.resyncs += 1
        book.status = BookStatus.SYNCING if reason is ResyncReason.START else BookStatus.RESYNCING
        book.clear()
        self.awaiting_snapshot = True
        self.last_reason = reason
        self._on_start()
        return self._fetch()

    def _fetch(self) -> SyncAction:
        self.request_token += 1
        return SyncAction.FETCH_SNAPSHOT

    def refetch(self) -> SyncAction:
        """A new request (new token) for the snapshot we still wait for (e.g. its fetcher died)."""
        return self._fetch() if self.awaiting_snapshot else SyncAction.NONE

    def _on_start(self) -> None:
        """Subclass hook: reset dialect state."""

    @property
    def buffered(self) -> int:
        """Diffs held while waiting for a snapshot."""
        return 0

    def on_diffs(self, diffs: Sequence[DiffEvent]) -> SyncAction:
        raise NotImplementedError

    def on_push(self, push: DepthPush) -> SyncAction:
        raise NotImplementedError

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        raise NotImplementedError


class ArticleSync(SyncPolicy):
    """Contiguous per-symbol seq with a REST snapshot bridge (see module docstring)."""

    fetch_after_first_diff = True

    def __init__(self, book: OrderBook, buffer_limit: int) -> None:
        super().__init__(book)
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be >= 1, got {buffer_limit}")
        self.buffer_limit = buffer_limit
        self.buffer: list[DiffEvent] = []
        #: just after a snapshot: diffs at or below its seq are expected and dropped
        self._bridging = False
        self._last_diff: DiffEvent | None = None

    def _on_start(self) -> None:
        self.buffer = []
        self._bridging = False
        self._last_diff = None

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def on_diffs(self, diffs: Sequence[DiffEvent]) -> SyncAction:
        if self.awaiting_snapshot:
            return self._buffer(diffs)
        book = self.book
        apply = book.apply
        last = book.last_seq
        prev = self._last_diff
        applied = 0
        for i, d in enumerate(diffs):
            seq = d.seq
            if seq == last + 1:
                apply(d.is_bid, d.price, d.size)
                last = seq
                prev = d
                applied += 1
                continue
            if seq <= last and (self._bridging and applied == 0):
                self.counters.bridged += 1
                continue
            if seq == last and prev is not None and d[1:5] == prev[1:5]:
                self.counters.duplicates += 1
                continue
            book.last_seq = last
            self.counters.applied += applied
            return self._break(seq, last, diffs[i:])
        book.last_seq = last
        self._last_diff = prev
        if applied:
            self._bridging = False
            self.counters.applied += applied
            if book.is_crossed():
                self.counters.crossed += 1
                return self.start(ResyncReason.CROSSED)
        return SyncAction.NONE

    def _break(self, seq: int, last: int, rest: Sequence[DiffEvent]) -> SyncAction:
        if seq > last:
            self.counters.gaps += 1
            reason = ResyncReason.GAP
        elif seq == last:
            reason = ResyncReason.REPEAT
        else:
            reason = ResyncReason.BACKWARDS
        action = self.start(reason)
        self._buffer(rest)
        return action

    def _buffer(self, diffs: Sequence[DiffEvent]) -> SyncAction:
        self.buffer.extend(diffs)
        if len(self.buffer) > self.buffer_limit:
            self.counters.overflows += 1
            self.buffer = []
            self.last_reason = ResyncReason.OVERFLOW
            return self._fetch()
        return SyncAction.NONE

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        if not self.awaiting_snapshot or token != self.request_token:
            self.counters.ignored_snapshots += 1
            return SyncAction.NONE
        self.counters.snapshots += 1
        kept = [d for d in self.buffer if d.seq > snap.seq]
        if kept and kept[0].seq > snap.seq + 1:
            # The snapshot is older than the oldest diff we hold: the bridge is broken.
            self.counters.snapshot_refetches += 1
            self.buffer = kept
            self.last_reason = ResyncReason.STALE_SNAPSHOT
            return self._fetch()
        self.book.replace(snap.bids, snap.asks, snap.seq)
        self.awaiting_snapshot = False
        self.buffer = []
        self._last_diff = None
        self.book.status = BookStatus.LIVE
        if self.book.is_crossed():
            self.counters.crossed += 1
            return self.start(ResyncReason.CROSSED)
        self._bridging = True
        # Diffs between the snapshot and now; a gap among them restarts the sync.
        return self.on_diffs(kept) if kept else SyncAction.NONE


class AlltickSync(SyncPolicy):
    """Full top-N replace when the push is newer; stale and duplicate pushes dropped."""

    def on_push(self, push: DepthPush) -> SyncAction:
        book = self.book
        if push.seq <= book.last_seq:
            self.counters.stale_dropped += 1
            return SyncAction.NONE
        book.replace(push.bids, push.asks, push.seq)
        # Only the pushed top-N is known; deeper levels may exist at the venue.
        book.mark_partial(
            push.bids[-1][0] if push.bids else None,
            push.asks[-1][0] if push.asks else None,
        )
        self.counters.applied += 1
        if book.is_crossed():
            self.counters.crossed += 1
            return self.start(ResyncReason.CROSSED)
        book.status = BookStatus.LIVE
        self.awaiting_snapshot = False
        return SyncAction.NONE

    def on_diffs(self, diffs: Sequence[DiffEvent]) -> SyncAction:
        raise TypeError("the alltick dialect has no incremental diffs")

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        if token != self.request_token or not isinstance(snap, DepthPush):
            self.counters.ignored_snapshots += 1
            return SyncAction.NONE
        self.counters.snapshots += 1
        return self.on_push(snap)

    def start(self, reason: ResyncReason) -> SyncAction:
        action = super().start(reason)
        # Seq is a per-code quote number; after a resync accept whatever is newest.
        self.book.last_seq = 0
        return action


def make_policy(dialect: str, book: OrderBook, buffer_limit: int) -> SyncPolicy:
    """The sync policy for a venue dialect ("article" or "alltick")."""
    if dialect == "article":
        return ArticleSync(book, buffer_limit)
    if dialect == "alltick":
        return AlltickSync(book)
    raise ValueError(f"unknown dialect {dialect!r}")
