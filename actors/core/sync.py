"""Sync policies: what a venue message means for one book. Pure; one instance per book.

This module holds the base (validated snapshots, the (re)start, suspend, the actions and reasons);
each policy lives in its own module: the contiguous update-id policy in ``contiguous.py``, its
range variant in ``rangesync.py``, a venue-specific one in ``venues/``; each venue's
``make_policy`` chooses.

Update-id ranges. A diff covers the ids ``first..seq``: the article sends one level per id
(``first == seq``), Binance one event per 100 ms covering ``U..u``. The bridge (contiguous.py) is written
for ranges, so one implementation serves both (Binance's documented algorithm is the general
case: drop ``u <= snapshot``, the first applied event must satisfy ``U <= snapshot+1 <= u``,
then each ``U`` must be the previous ``u + 1``); only the LIVE hot loop is per policy
(``contiguous.ContiguousSync.on_diffs`` for one-level diffs, ``rangesync.RangeSync`` for events).

A policy owns the book's sync state machine and returns a :class:`SyncAction` telling its
actor what to do next (fetch a snapshot, retry one after a backoff, wait for the stream to
reach a held snapshot). It never does I/O and never reads a clock.

Snapshot requests carry a token; a reply to an older request (fetched before a venue restart,
a disconnect or a retry) is ignored, so a snapshot can never be bridged onto a stream of
another era.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, TypeAlias

import attrs

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.wire import DepthPush, DiffEvent, Levels, RangeDiff, Snapshot

#: a diff of either shape: both have ``code``, ``first``, ``seq`` (the last id) and ``sent_at``
Diff: TypeAlias = DiffEvent | RangeDiff

#: stale snapshots (or stale pushes) in a row before the buffered stream (or the book's seq) is suspect
SUSPECT_AFTER = 3
#: a snapshot side with fewer than this fraction of the levels the book last held LIVE is short
SHORT_FRACTION = 0.5


class SyncAction(enum.Enum):
    NONE = "none"
    #: request a snapshot now (a new sync)
    FETCH_SNAPSHOT = "fetch_snapshot"
    #: the last snapshot failed validation or could not bridge: request another after a backoff
    RETRY_SNAPSHOT = "retry_snapshot"
    #: a snapshot ahead of the stream is held: give the stream a bounded time to reach it
    AWAIT_BRIDGE = "await_bridge"


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
    RESUBSCRIBED = "resubscribed"
    STALE_SNAPSHOT = "stale_snapshot"
    AHEAD_SNAPSHOT = "ahead_snapshot"
    BAD_SNAPSHOT = "bad_snapshot"
    SUSPECT_STREAM = "suspect_stream"
    #: the book no longer knows any level on a side for sure (the market moved past the levels
    #: trimming kept, see OrderBook): only a new snapshot can tell
    DEPTH = "depth"
    #: not a resync: the sync completed (the reason a book went LIVE)
    IN_SYNC = "in_sync"


#: reasons that are breaks in the venue's seq chain (logged as ``seq_break``)
SEQ_BREAKS = frozenset({ResyncReason.GAP, ResyncReason.REPEAT, ResyncReason.BACKWARDS})


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
    #: snapshots refused: empty or short
    bad_snapshots: int = 0
    #: snapshots ahead of the stream that it never reached
    ahead_snapshots: int = 0
    #: buffered diffs (or a book seq) skipped as not part of the venue's chain
    suspect_diffs: int = 0


def snapshot_problem(bids: Levels, asks: Levels, memory: tuple[int, int]) -> str | None:
    """Why a snapshot (or full push) cannot be made LIVE, or None. ``memory`` = the levels per
    side the book held when it was last LIVE (0 = unknown)."""
    if not bids or not asks:
        return f"snapshot empty ({len(bids)} bids, {len(asks)} asks)"
    for name, got, had in (("bid", len(bids), memory[0]), ("ask", len(asks), memory[1])):
        if got < had * SHORT_FRACTION:
            return f"snapshot short: {got} {name} levels, the book held {had}"
    if bids[0][0] >= asks[0][0]:
        return f"snapshot crossed: bid {bids[0][0]} >= ask {asks[0][0]}"
    return None


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
        #: a human line for the last reason (shown in the book's status)
        self.detail = "starting"
        #: levels per side when the book was last LIVE (short-snapshot check)
        self.memory: tuple[int, int] = (0, 0)
        self._short_in_row = 0

    def start(self, reason: ResyncReason, detail: str | None = None) -> SyncAction:
        """Forget the book and ask for a snapshot; SYNCING the first time, else RESYNCING."""
        book = self.book
        if reason is not ResyncReason.START:
            self.counters.resyncs += 1
        if book.status is BookStatus.LIVE:
            self.memory = (len(book.bids), len(book.asks))
        book.status = BookStatus.SYNCING if reason is ResyncReason.START else BookStatus.RESYNCING
        book.clear()
        self.awaiting_snapshot = True
        self._note(reason, detail)
        self._on_start()
        return self._fetch()

    def levels_held(self) -> tuple[int, int]:
        """Levels per side the book holds now if LIVE, else what it held when last LIVE."""
        book = self.book
        return (len(book.bids), len(book.asks)) if book.status is BookStatus.LIVE else self.memory

    def suspend(self) -> None:
        """Stop syncing (socket gone, code rejected): drop what is buffered and ignore any snapshot
        in flight. The levels stay (the actor shows them with a non-LIVE status)."""
        if self.book.status is BookStatus.LIVE:
            self.memory = (len(self.book.bids), len(self.book.asks))
        self.awaiting_snapshot = True
        self.request_token += 1
        self._on_start()

    def _note(self, reason: ResyncReason, detail: str | None = None) -> None:
        self.last_reason = reason
        self.detail = detail or reason.value

    def _fetch(self) -> SyncAction:
        self.request_token += 1
        return SyncAction.FETCH_SNAPSHOT

    def _retry(self, reason: ResyncReason, detail: str) -> SyncAction:
        self.counters.snapshot_refetches += 1
        self._note(reason, detail)
        self.request_token += 1
        return SyncAction.RETRY_SNAPSHOT

    def refetch(self) -> SyncAction:
        """A new request (new token) for the snapshot we still wait for (e.g. its fetcher died)."""
        return self._fetch() if self.awaiting_snapshot else SyncAction.NONE

    def bridge_deadline(self, token: int, *, subscribed_at_fetch: bool = True,
                        subscribed_now: bool = True) -> SyncAction:
        """The actor's deadline for a held snapshot (``AWAIT_BRIDGE``) has passed. ``subscribed_*``:
        whether the venue had confirmed the code's subscription on this socket when the snapshot
        was requested, and now (a stream that sent nothing is quiet only once it has begun)."""
        return SyncAction.NONE

    def _on_start(self) -> None:
        """Subclass hook: reset dialect state."""

    def _refused(self, snap: Snapshot | DepthPush) -> SyncAction | None:
        """Validate a snapshot before any use: a RETRY action if it must not be used."""
        problem = snapshot_problem(snap.bids, snap.asks, self.memory)
        if problem is None:
            self._short_in_row = 0
            return None
        if problem.startswith("snapshot crossed"):
            self.counters.crossed += 1
            return self._retry(ResyncReason.CROSSED, problem)
        self.counters.bad_snapshots += 1
        if problem.startswith("snapshot short"):
            self._short_in_row += 1
            if self._short_in_row >= SUSPECT_AFTER:
                # Snapshot after snapshot agrees the book is thinner than it was: the market
                # thinned. The next one is judged on its own (it must still be non-empty).
                self.memory = (0, 0)
                self._short_in_row = 0
        return self._retry(ResyncReason.BAD_SNAPSHOT, problem)

    @property
    def buffered(self) -> int:
        """Diffs held while waiting for a snapshot."""
        return 0

    def in_order(self, diffs: Sequence[Diff]) -> bool:
        """While syncing: did ``diffs`` go into the buffer continuing the diff before them? The stream
        then flows in order though no book applies it yet (the LIVE promise's socket check counts it)."""
        return False

    def on_diffs(self, diffs: Sequence[Diff]) -> SyncAction:
        raise NotImplementedError

    def on_push(self, push: DepthPush) -> SyncAction:
        raise NotImplementedError

    #: the reply type this policy syncs from (a REST Snapshot, or a full-depth DepthPush)
    snapshot_type: type[Snapshot | DepthPush] = Snapshot

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        """A snapshot reply: ignored (counted) unless it answers the request awaited now and is
        of this policy's kind; validated before any use; then :meth:`_use_snapshot`."""
        if not self.awaiting_snapshot or token != self.request_token or not isinstance(snap, self.snapshot_type):
            self.counters.ignored_snapshots += 1
            return SyncAction.NONE
        self.counters.snapshots += 1
        refused = self._refused(snap)
        if refused is not None:
            return refused
        return self._use_snapshot(snap)

    def _use_snapshot(self, snap: Any) -> SyncAction:
        """Subclass hook: a validated snapshot of ``snapshot_type`` answering the awaited request."""
        raise NotImplementedError
