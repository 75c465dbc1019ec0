"""The update-id range policy: a venue whose events each cover a range of ids ``first..seq``.

Binance spot's diff-depth stream is the reference case (its "how to manage a local order book
correctly", 2025-11 wording; ../shared/notes/binance-and-peers.md section 1.6): every event
carries ``U`` (first update id) and ``u`` (last), and the levels that changed in that range
with their absolute new quantities.

- buffer the events, fetch a snapshot (``lastUpdateId`` = L) once the stream has begun;
- drop buffered events with ``u <= L``; the first applied event must satisfy ``U <= L+1 <= u``;
  a snapshot older than the stream (every event starts after L+1) is fetched again; one ahead of
  the stream is held until the stream reaches it (or refetched at the actor's deadline);
- then every event's ``U`` must equal the previous ``u + 1``; anything else resyncs this symbol
  only: ``U > u + 1`` a gap, ``u < previous u`` backwards (a venue restart), otherwise a repeat
  (an identical re-sent event is dropped and counted as a duplicate);
- the book's seq (and the view's) is the last applied ``u``; its event time the last ``E``.

Depth. Binance's own caveat: a snapshot holds at most ``limit`` levels a side, and a level beyond
it is learnt only when it changes ("for most use cases, seeing up to 5000 levels on each side is
enough"); like every peer we follow the documented procedure and take levels as they come. What
the BOOK forgets is different: trimming (``[book] max_levels``) marks a horizon beyond which views
show nothing. When the market moves past it, a side has no level known for sure, and the book
resyncs (``ResyncReason.DEPTH``) rather than show a LIVE book with an empty side. So keep
``max_levels`` near the snapshot limit on this venue (the binance default is 1000).

The bridge, the validation of snapshots, the held snapshot, suspect far-future events and the
per-book backoff are ContiguousSync's, written for ranges (the article is the case ``U = u``);
only the LIVE loop differs, because an event applies many levels at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthkeeper.actors.core.contiguous import ContiguousSync
from depthkeeper.actors.core.orderbook import OrderBook
from depthkeeper.actors.core.sync import Diff, ResyncReason, SyncAction


class RangeSync(ContiguousSync):
    """Contiguous update-id ranges with a REST snapshot bridge (see the module docstring)."""

    def on_diffs(self, diffs: Sequence[Diff]) -> SyncAction:  # type: ignore[override]
        if self.awaiting_snapshot:
            return self._syncing(diffs)
        book = self.book
        last = book.last_seq
        if len(diffs) == 1 and diffs[0].first == last + 1:
            # one event that extends the chain: a 100 ms stream's every turn, the loop below in short
            d = diffs[0]
            book.apply_levels(d.bids, d.asks)  # type: ignore[union-attr]  # a range policy is fed RangeDiffs
            self._applied(book, d.seq, d, 1)
            return self._top(book, d.seq)
        apply = book.apply_levels
        prev = self._last_diff
        applied = 0
        for i, d in enumerate(diffs):
            if d.first == last + 1:
                apply(d.bids, d.asks)  # type: ignore[union-attr]  # a range policy is fed RangeDiffs
                last = d.seq
                prev = d
                applied += 1
                continue
            if d == prev:  # the same event sent again
                self.counters.duplicates += 1
                continue
            self._applied(book, last, prev, applied)
            return self._break(d, last, diffs[i:])
        self._applied(book, last, prev, applied)
        return self._top(book, last) if applied else SyncAction.NONE

    def _top(self, book: OrderBook, last: int) -> SyncAction:
        """After applied events: the top check's quick part (not crossed, both sides complete), else all of it."""
        bids, asks = book.bid_prices, book.ask_prices
        if bids and asks and bids[-1] < asks[0] and book.bid_horizon is None and book.ask_horizon is None:
            return SyncAction.NONE
        return self._check_top(book, last)

    def _applied(self, book: OrderBook, last: int, prev: Diff | None, applied: int) -> None:
        book.last_seq = last
        self._last_diff = prev
        if applied:
            self.counters.applied += applied
            event_time = prev.event_time  # type: ignore[union-attr]
            if event_time:
                book.event_time = event_time

    def _check_top(self, book: OrderBook, last: int) -> SyncAction:
        """Once per batch: crossed, or nothing left that is known for sure on a side."""
        bids, asks = book.bid_prices, book.ask_prices
        best_bid = bids[-1] if bids else None
        best_ask = asks[0] if asks else None
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            self.counters.crossed += 1
            return self.start(ResyncReason.CROSSED, f"crossed at seq {last}")
        bid_h, ask_h = book.horizons()
        if bid_h is not None and (best_bid is None or best_bid < bid_h):
            return self.start(ResyncReason.DEPTH, f"no bid known below {bid_h} at seq {last}: a new snapshot must tell")
        if ask_h is not None and (best_ask is None or best_ask > ask_h):
            return self.start(ResyncReason.DEPTH, f"no ask known above {ask_h} at seq {last}: a new snapshot must tell")
        return SyncAction.NONE
