"""Sync policies: what a venue message means for one book. Pure; one instance per book.

This module holds the base (validated snapshots, the (re)start, suspend) and the contiguous
update-id policy; a venue whose messages need another policy keeps it in its own module
(``venues/``, or ``core/`` when it is generic), and each venue's ``make_policy`` chooses.

Update-id ranges. A diff covers the ids ``first..seq``: the article sends one level per id
(``first == seq``), Binance one event per 100 ms covering ``U..u``. The bridge below is written
for ranges, so one implementation serves both (Binance's documented algorithm is the general
case: drop ``u <= snapshot``, the first applied event must satisfy ``U <= snapshot+1 <= u``,
then each ``U`` must be the previous ``u + 1``); only the LIVE hot loop is per policy
(``ContiguousSync.on_diffs`` for one-level diffs, ``rangesync.RangeSync`` for events).

A policy owns the book's sync state machine and returns a :class:`SyncAction` telling its
actor what to do next (fetch a snapshot, retry one after a backoff, wait for the stream to
reach a held snapshot). It never does I/O and never reads a clock.

contiguous ids (article: one level per diff, ``seq`` +1 per symbol; ranges: ``first`` = last + 1)::

    SYNCING/RESYNCING --diffs--> buffer (bounded) ............ FETCH snapshot
         |  snapshot validated (non-empty, not short, not crossed), else RETRY (backoff)
         |  the buffer holds snapshot+1 (an event whose range contains it): drop what is older,
         |     bridge, apply the rest -> LIVE
         |  the buffer is entirely newer than snapshot+1: the snapshot is stale -> RETRY
         |  the snapshot is ahead of everything buffered: HOLD it; diffs up to its seq are
         |     dropped, snapshot+1 bridges -> LIVE; a diff past snapshot+1 -> RETRY; nothing
         |     bridged by the actor's deadline -> RETRY (a quiet stream, nothing buffered and
         |     nothing arrived: accepted, the next diff validates it -- if the venue had
         |     confirmed the subscription before the fetch; not yet confirmed: held on)
         v
       LIVE --seq == last+1--> apply
         |--exact repeat of the last diff--> drop (counted)
         '--gap / other repeat / backwards (venue restart) / crossed--> clear, RESYNCING, FETCH

LIVE is only ever entered on a proven bridge, so no diff at or below the book's seq is
silently dropped while LIVE. Buffer overflow never drops silently: the buffer is discarded,
counted, and the resync restarts. A buffered diff that is not part of the chain a snapshot
bridges (a far-future seq, or the tail of an older era) is skipped when a later diff
bridges; if snapshots keep failing to bridge (``SUSPECT_AFTER`` stale snapshots in a row),
the buffer itself is suspect and is rebuilt from fresh diffs.

Snapshot requests carry a token; a reply to an older request (fetched before a venue restart,
a disconnect or a retry) is ignored, so a snapshot can never be bridged onto a stream of
another era.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TypeAlias

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

    def on_diffs(self, diffs: Sequence[Diff]) -> SyncAction:
        raise NotImplementedError

    def on_push(self, push: DepthPush) -> SyncAction:
        raise NotImplementedError

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        raise NotImplementedError


class ContiguousSync(SyncPolicy):
    """Contiguous per-symbol seq with a REST snapshot bridge (see module docstring)."""

    fetch_after_first_diff = True

    def __init__(self, book: OrderBook, buffer_limit: int) -> None:
        super().__init__(book)
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be >= 1, got {buffer_limit}")
        self.buffer_limit = buffer_limit
        self.buffer: list[Diff] = []
        #: a validated snapshot ahead of the stream, held until the stream reaches it
        self.candidate: Snapshot | None = None
        #: diffs seen since the candidate was held (a quiet stream is accepted at the deadline)
        self._seen_since_candidate = 0
        #: stale snapshots in a row (the buffered stream becomes suspect)
        self._stale_in_row = 0
        self._last_diff: Diff | None = None

    def _on_start(self) -> None:
        self.buffer = []
        self.candidate = None
        self._seen_since_candidate = 0
        self._stale_in_row = 0
        self._last_diff = None

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def on_diffs(self, diffs: Sequence[Diff]) -> SyncAction:  # type: ignore[override]
        if self.awaiting_snapshot:
            if self.candidate is not None:
                return self._toward_candidate(diffs)
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
            if seq == last and prev is not None and d[1:5] == prev[1:5]:
                self.counters.duplicates += 1
                continue
            book.last_seq = last
            self.counters.applied += applied
            return self._break(d, last, diffs[i:])
        book.last_seq = last
        self._last_diff = prev
        if applied:
            self.counters.applied += applied
            if book.is_crossed():
                self.counters.crossed += 1
                return self.start(ResyncReason.CROSSED, f"crossed at seq {last}")
        return SyncAction.NONE

    def _break(self, d: Diff, last: int, rest: Sequence[Diff]) -> SyncAction:
        """``d`` does not continue the chain at ``last``: a gap, a repeat (ids we have), or
        backwards (a venue restart)."""
        if d.first > last + 1:
            self.counters.gaps += 1
            reason = ResyncReason.GAP
        elif d.seq < last:
            reason = ResyncReason.BACKWARDS
        else:
            reason = ResyncReason.REPEAT
        ids = f"seq {d.seq}" if d.first == d.seq else f"ids {d.first}..{d.seq}"
        action = self.start(reason, f"{reason.value}: {ids} after {last}")
        self._buffer(rest)
        return action

    def _buffer(self, diffs: Sequence[Diff]) -> SyncAction:
        self.buffer.extend(diffs)
        if len(self.buffer) > self.buffer_limit:
            self.counters.overflows += 1
            self.buffer = []
            return self._retry(ResyncReason.OVERFLOW, f"buffer overflow ({self.buffer_limit} diffs)")
        return SyncAction.NONE

    def on_snapshot(self, snap: Snapshot | DepthPush, token: int) -> SyncAction:
        if not self.awaiting_snapshot or token != self.request_token or not isinstance(snap, Snapshot):
            self.counters.ignored_snapshots += 1
            return SyncAction.NONE
        self.counters.snapshots += 1
        refused = self._refused(snap)
        if refused is not None:
            return refused
        buffer = self.buffer
        want = snap.seq + 1
        for i, d in enumerate(buffer):
            if d.first <= want <= d.seq:  # the event that bridges (article: seq == snapshot + 1)
                self.counters.suspect_diffs += sum(1 for e in buffer[:i] if e.seq > snap.seq)
                self.counters.bridged += sum(1 for e in buffer[:i] if e.seq <= snap.seq)
                return self._go_live(snap, buffer[i:])
        if buffer and buffer[-1].seq == snap.seq:
            self.counters.bridged += len(buffer)
            return self._go_live(snap, [])
        if any(d.first > want for d in buffer):
            return self._stale(snap)
        # Ahead of everything buffered (or nothing buffered yet): hold it for the stream.
        self.counters.bridged += len(buffer)
        self.buffer = []
        self.candidate = snap
        self._seen_since_candidate = 0
        self._note(ResyncReason.AHEAD_SNAPSHOT, f"waiting for the stream to reach snapshot seq {snap.seq}")
        return SyncAction.AWAIT_BRIDGE

    def _stale(self, snap: Snapshot) -> SyncAction:
        """Every buffered diff past the snapshot is newer than snapshot+1: it cannot bridge."""
        self._stale_in_row += 1
        if self._stale_in_row >= SUSPECT_AFTER:
            # Snapshot after snapshot misses the buffered chain: the buffer is what is wrong
            # (e.g. one diff with a far-future seq at its head). Rebuild it from fresh diffs.
            self.counters.suspect_diffs += len(self.buffer)
            self.buffer = []
            self._stale_in_row = 0
            return self._retry(ResyncReason.SUSPECT_STREAM,
                               f"{SUSPECT_AFTER} snapshots could not bridge the buffered stream; rebuilt it")
        first = min(d.first for d in self.buffer if d.first > snap.seq + 1)
        return self._retry(ResyncReason.STALE_SNAPSHOT, f"snapshot seq {snap.seq} older than the stream ({first})")

    def _toward_candidate(self, diffs: Sequence[Diff]) -> SyncAction:
        snap = self.candidate
        assert snap is not None
        self._seen_since_candidate += len(diffs)
        want = snap.seq + 1
        for i, d in enumerate(diffs):
            if d.first <= want <= d.seq:
                return self._go_live(snap, diffs[i:])
            if d.seq == snap.seq:
                return self._go_live(snap, diffs[i + 1:])
            if d.first > want:
                self.candidate = None
                self.buffer = list(diffs[i:])
                return self._retry(ResyncReason.STALE_SNAPSHOT,
                                   f"the stream skipped snapshot seq {snap.seq} (next was {d.first})")
            self.counters.bridged += 1
        return SyncAction.NONE

    def bridge_deadline(self, token: int, *, subscribed_at_fetch: bool = True,
                        subscribed_now: bool = True) -> SyncAction:
        snap = self.candidate
        if snap is None or token != self.request_token:
            return SyncAction.NONE
        if not self._seen_since_candidate:
            if not subscribed_now:
                # The stream has not begun (the venue has not confirmed the subscription yet):
                # keep the snapshot for the first diff to bridge or refute, and look again later.
                self._note(ResyncReason.AHEAD_SNAPSHOT,
                           f"waiting for the venue to confirm the subscription (snapshot seq {snap.seq} held)")
                return SyncAction.AWAIT_BRIDGE
            self.candidate = None
            if subscribed_at_fetch:
                return self._go_live(snap, [])  # a quiet stream: nothing to bridge; the next diff validates
            # confirmed only since the fetch: changes between the snapshot and the stream's start
            # were never streamed, so silence does not vouch for this snapshot; fetch one now
            return self._retry(ResyncReason.AHEAD_SNAPSHOT,
                               f"snapshot seq {snap.seq} predates the confirmed subscription; fetching again")
        self.candidate = None
        self.counters.ahead_snapshots += 1
        return self._retry(ResyncReason.AHEAD_SNAPSHOT,
                           f"snapshot seq {snap.seq} is ahead of the stream, which did not reach it")

    def _go_live(self, snap: Snapshot, rest: Sequence[Diff]) -> SyncAction:
        book = self.book
        book.replace(snap.bids, snap.asks, snap.seq)
        self.awaiting_snapshot = False
        self.buffer = []
        self.candidate = None
        self._stale_in_row = 0
        self._last_diff = None
        book.status = BookStatus.LIVE
        self._note(ResyncReason.IN_SYNC, "in sync")
        if rest and rest[0].first <= snap.seq:
            # An event straddling the snapshot (U <= snapshot < u): its sizes are absolute, so
            # applying all of it gives the book at u. Only ranges straddle; the strict chain follows.
            bridge = rest[0]
            self._apply_event(bridge)
            book.last_seq = bridge.seq
            self._last_diff = bridge
            self.counters.applied += 1
            rest = rest[1:]
            if not rest and book.is_crossed():
                self.counters.crossed += 1
                return self.start(ResyncReason.CROSSED, f"crossed at seq {bridge.seq}")
        # Diffs between the snapshot and now; a gap among them restarts the sync.
        return self.on_diffs(rest) if rest else SyncAction.NONE

    def _apply_event(self, d: Diff) -> None:
        """Apply one diff outside the hot loop (the event that bridges a snapshot)."""
        if type(d) is DiffEvent:
            self.book.apply(d.is_bid, d.price, d.size)
        else:
            assert type(d) is RangeDiff
            self.book.apply_levels(d.bids, d.asks)
            if d.event_time:
                self.book.event_time = d.event_time
