"""Periodic calibration: compare a live book with a REST snapshot *at the same seq*.

The article's tip ("REST snapshot calibration every 30 minutes") only makes sense if the
snapshot and the book describe the same version. The book keeps moving while the request
is in flight, so we record the diffs applied meanwhile and roll the snapshot forward to
the book's seq (article dialect), or compare only when the seqs match (alltick). Drifting
levels are counted and the book is repaired from the rolled-forward snapshot. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.wire import DepthPush, DiffEvent, Levels, RangeDiff, Snapshot

#: more recorded diffs than this and the calibration is abandoned (and counted)
MAX_RECORDED = 200_000


class Calibration:
    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.active = False
        self.token = 0
        self.pending_snapshot: Snapshot | DepthPush | None = None
        self._diffs: list[DiffEvent | RangeDiff] = []
        self.drifted_levels = 0
        self.completed = 0
        self.skipped = 0

    def begin(self) -> int:
        """Start one; returns the (negative, so never a sync token) request token."""
        self.active = True
        self.token -= 1
        self.pending_snapshot = None
        self._diffs = []
        return self.token

    def owns(self, token: int) -> bool:
        return token < 0 and token == self.token

    def record(self, diffs: Sequence[DiffEvent | RangeDiff]) -> None:
        self._diffs.extend(diffs)
        if len(self._diffs) > MAX_RECORDED:
            self._abandon()

    def receive(self, snapshot: Snapshot | DepthPush) -> None:
        if self.active:
            self.pending_snapshot = snapshot

    def cancel(self) -> None:
        if self.active:
            self._abandon()

    def _abandon(self) -> None:
        self.active = False
        self.pending_snapshot = None
        self._diffs = []
        self.skipped += 1

    def finish(self) -> int | None:
        """Drifted level count once comparable, else None (still waiting or abandoned)."""
        snap = self.pending_snapshot
        book = self.book
        if not self.active or snap is None:
            return None
        if book.status is not BookStatus.LIVE:
            self._abandon()
            return None
        if isinstance(snap, DepthPush):
            if snap.seq != book.last_seq:
                self._abandon()
                return None
            bids, asks = dict(snap.bids), dict(snap.asks)
        else:
            if snap.seq > book.last_seq:
                return None  # the book has not reached the snapshot's version yet
            rolled = self._roll_forward(snap)
            if rolled is None:
                self._abandon()
                return None
            bids, asks = rolled
        drift = _drift(book.top()[0], bids, reverse=True) + _drift(book.top()[1], asks, reverse=False)
        if drift:
            book.replace(bids.items(), asks.items(), book.last_seq)
        self.drifted_levels += drift
        self.completed += 1
        self.active = False
        self.pending_snapshot = None
        self._diffs = []
        return drift

    def _roll_forward(self, snap: Snapshot) -> tuple[dict[float, float], dict[float, float]] | None:
        bids, asks = dict(snap.bids), dict(snap.asks)
        expected = snap.seq + 1
        for d in self._diffs:
            if d.seq <= snap.seq:
                continue
            if d.seq > self.book.last_seq:
                break
            if not d.first <= expected <= d.seq:  # one-level diffs: seq == expected; ranges: U <= expected <= u
                return None
            if type(d) is DiffEvent:
                _set(bids if d.is_bid else asks, ((d.price, d.size),))
            else:
                _set(bids, d.bids)  # type: ignore[union-attr]
                _set(asks, d.asks)  # type: ignore[union-attr]
            expected = d.seq + 1
        return (bids, asks) if expected - 1 == self.book.last_seq else None


def _set(side: dict[float, float], levels: Levels) -> None:
    for price, size in levels:
        if size > 0.0:
            side[price] = size
        else:
            side.pop(price, None)


def _drift(known: Levels, truth: dict[float, float], *, reverse: bool) -> int:
    """Levels that differ within the book's known-complete depth."""
    best = sorted(truth.items(), reverse=reverse)[: len(known)] if known else []
    mine = dict(known)
    other = dict(best)
    if known and len(best) == len(known):
        # a truth level better than our worst known level that we lack is drift too
        edge = known[-1][0]
        other.update({p: s for p, s in truth.items() if (p >= edge if reverse else p <= edge)})
    elif not known:
        other = dict(truth)
    return sum(1 for p in mine.keys() | other.keys() if mine.get(p) != other.get(p))
