"""The contiguous update-id policy: a book synced from a REST snapshot bridged onto its stream.

One implementation for one-level diffs (the article: ``first == seq``) and, through
``rangesync.RangeSync``, for events covering a range of ids (Binance); see sync.py for the base
(validation of snapshots, the (re)start, tokens).

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
"""

from __future__ import annotations

from collections.abc import Sequence

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.sync import SUSPECT_AFTER, Diff, ResyncReason, SyncAction, SyncPolicy
from depthkeeper.actors.core.wire import DiffEvent, RangeDiff, Snapshot


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

    def in_order(self, diffs: Sequence[Diff]) -> bool:
        buffer = self.buffer
        return len(buffer) >= 2 and buffer[-1] is diffs[-1] and buffer[-1].first == buffer[-2].seq + 1

    def on_diffs(self, diffs: Sequence[Diff]) -> SyncAction:  # type: ignore[override]
        if self.awaiting_snapshot:
            return self._syncing(diffs)
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

    def _syncing(self, diffs: Sequence[Diff]) -> SyncAction:
        """Diffs while a snapshot is awaited: toward a held snapshot, or into the buffer."""
        if self.candidate is not None:
            return self._toward_candidate(diffs)
        return self._buffer(diffs)

    def _buffer(self, diffs: Sequence[Diff]) -> SyncAction:
        self.buffer.extend(diffs)
        if len(self.buffer) > self.buffer_limit:
            self.counters.overflows += 1
            self.buffer = []
            return self._retry(ResyncReason.OVERFLOW, f"buffer overflow ({self.buffer_limit} diffs)")
        return SyncAction.NONE

    def _use_snapshot(self, snap: Snapshot) -> SyncAction:
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
