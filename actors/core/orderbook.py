"""The pure order book: two price->size maps, a version, a status, lazy sorted reads.

No threads and no I/O: a BookActor owns one and is its only writer. Writes are O(1) dict
operations; sorting happens only when somebody reads, and the sorted sides are cached
until the next write, so a stream of diffs never pays for sorting it does not need.

``max_levels`` caps memory honestly. A side is trimmed to its best ``max_levels`` levels
only when it grows past twice that (amortised O(1) per write). Trimming forgets levels
beyond a *horizon* price; levels at or better than the horizon stay exact because every
later diff for them is still applied. ``complete_levels()`` tells a reader how many
levels per side are known complete, and a view never claims more.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from operator import neg
from typing import Any

from depthkeeper.actors.core.wire import Levels


class BookStatus(enum.StrEnum):
    """A book's status; the value is the name, so ``status == "LIVE"`` and JSON read naturally."""

    #: first sync in progress, nothing trustworthy yet
    SYNCING = "SYNCING"
    #: in sync with the venue (the promise: see promise.py)
    LIVE = "LIVE"
    #: a gap, a restart or a reconnect forced a new sync; contents cleared
    RESYNCING = "RESYNCING"
    #: no update for longer than the configured staleness bound, or behind the stream
    STALE = "STALE"
    #: the socket that fed it is closed, silent or being replaced; levels are the last known
    DISCONNECTED = "DISCONNECTED"
    #: the venue refused its subscription; never fed, never LIVE until subscribed again
    REJECTED = "REJECTED"


class OrderBook:
    """Bids and asks for one symbol. See the module docstring for the trimming rules."""

    __slots__ = (
        "_ask_horizon",
        "_bid_horizon",
        "_sorted_asks",
        "_sorted_bids",
        "asks",
        "bids",
        "code",
        "event_time",
        "last_seq",
        "max_levels",
        "reason",
        "status",
    )

    def __init__(self, code: str, max_levels: int = 50) -> None:
        if max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels}")
        self.code = code
        self.max_levels = max_levels
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_seq = 0
        #: the venue's time of the last event applied (seconds since the epoch; 0.0 = unknown)
        self.event_time = 0.0
        self.status = BookStatus.SYNCING
        #: why the book has its status (shown with every non-LIVE view)
        self.reason = "starting"
        self._sorted_bids: Levels | None = None
        self._sorted_asks: Levels | None = None
        # Worst price still known exact on each side; None = the side is complete.
        self._bid_horizon: float | None = None
        self._ask_horizon: float | None = None

    def __repr__(self) -> str:
        return (
            f"<OrderBook {self.code} {self.status.name} seq={self.last_seq} "
            f"bids={len(self.bids)} asks={len(self.asks)}>"
        )

    # -- writes -------------------------------------------------------------------------

    def apply(self, is_bid: bool, price: float, size: float) -> None:
        """Set (size > 0) or delete (size == 0) one level."""
        side = self.bids if is_bid else self.asks
        if size > 0.0:
            side[price] = size
            if len(side) > 2 * self.max_levels:
                self._trim(is_bid)
        else:
            side.pop(price, None)
        if is_bid:
            self._sorted_bids = None
        else:
            self._sorted_asks = None

    def apply_levels(self, bids: Levels, asks: Levels) -> None:
        """Apply one event's levels (absolute sizes, 0 deletes; deleting an unknown level is normal).

        One call per event, not per level: a Binance event carries tens of levels, and the side,
        the cache and the trim check are looked at once per side. A side that grows past twice
        ``max_levels`` is trimmed after the event (the horizon rule holds as for ``apply``)."""
        if bids:
            side = self.bids
            for price, size in bids:
                if size > 0.0:
                    side[price] = size
                else:
                    side.pop(price, None)
            self._sorted_bids = None
            if len(side) > 2 * self.max_levels:
                self._trim(True)
        if asks:
            side = self.asks
            for price, size in asks:
                if size > 0.0:
                    side[price] = size
                else:
                    side.pop(price, None)
            self._sorted_asks = None
            if len(side) > 2 * self.max_levels:
                self._trim(False)

    def apply_event(self, bids: Levels, asks: Levels,
                    best: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
        """``apply_levels``, returning the best (bid, ask) after the event given the best before it
        (None: that side is empty). A side's best is recomputed over the side only when the event
        removed it: the top of a deep book is known without scanning it per event."""
        best_bid, best_ask = best
        if bids:
            side = self.bids
            stale = best_bid is None
            for price, size in bids:
                if size > 0.0:
                    side[price] = size
                    if not stale and price > best_bid:  # type: ignore[operator]  # not stale: a float
                        best_bid = price
                elif side.pop(price, None) is not None and price == best_bid:
                    stale = True
            self._sorted_bids = None
            if len(side) > 2 * self.max_levels:
                self._trim(True)  # keeps the best levels: never the top
            if stale:
                best_bid = max(self.bids) if self.bids else None
        if asks:
            side = self.asks
            stale = best_ask is None
            for price, size in asks:
                if size > 0.0:
                    side[price] = size
                    if not stale and price < best_ask:  # type: ignore[operator]
                        best_ask = price
                elif side.pop(price, None) is not None and price == best_ask:
                    stale = True
            self._sorted_asks = None
            if len(side) > 2 * self.max_levels:
                self._trim(False)
            if stale:
                best_ask = min(self.asks) if self.asks else None
        return best_bid, best_ask

    def replace(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]], seq: int) -> None:
        """Load a whole book (a snapshot or a full top-N push). Zero sizes are skipped."""
        self.bids = {p: s for p, s in bids if s > 0.0}
        self.asks = {p: s for p, s in asks if s > 0.0}
        self.last_seq = seq
        self._bid_horizon = self._ask_horizon = None
        self._sorted_bids = self._sorted_asks = None
        if len(self.bids) > self.max_levels:
            self._trim(True)
        if len(self.asks) > self.max_levels:
            self._trim(False)

    def clear(self) -> None:
        """Forget every level (the version is kept for diagnostics; the event time is unknown again)."""
        self.bids = {}
        self.asks = {}
        self.event_time = 0.0
        self._bid_horizon = self._ask_horizon = None
        self._sorted_bids = self._sorted_asks = ()

    def mark_partial(self, bid_horizon: float | None, ask_horizon: float | None) -> None:
        """Declare that levels worse than these prices may be missing (a top-N source)."""
        self._bid_horizon = bid_horizon
        self._ask_horizon = ask_horizon

    def _trim(self, is_bid: bool) -> None:
        ordered = self.sorted_bids() if is_bid else self.sorted_asks()
        kept = ordered[: self.max_levels]
        worst = kept[-1][0]
        if is_bid:
            self.bids = dict(kept)
            self._sorted_bids = kept
            old = self._bid_horizon
            self._bid_horizon = worst if old is None else max(old, worst)
        else:
            self.asks = dict(kept)
            self._sorted_asks = kept
            old = self._ask_horizon
            self._ask_horizon = worst if old is None else min(old, worst)

    # -- reads --------------------------------------------------------------------------

    def sorted_bids(self) -> Levels:
        cached = self._sorted_bids
        if cached is None:
            cached = self._sorted_bids = tuple(sorted(self.bids.items(), reverse=True))
        return cached

    def sorted_asks(self) -> Levels:
        cached = self._sorted_asks
        if cached is None:
            cached = self._sorted_asks = tuple(sorted(self.asks.items()))
        return cached

    def top(self, depth: int | None = None) -> tuple[Levels, Levels]:
        """Best-first (bids, asks), cut to ``depth`` and to the levels known complete."""
        bids, asks = self.sorted_bids(), self.sorted_asks()
        nb, na = self.complete_levels()
        if depth is not None:
            nb, na = min(nb, depth), min(na, depth)
        return bids[:nb], asks[:na]

    def horizons(self) -> tuple[float | None, float | None]:
        """(bid, ask) prices beyond which levels may be missing; None = side complete."""
        return self._bid_horizon, self._ask_horizon

    def complete_levels(self) -> tuple[int, int]:
        """How many levels per side are known exact (all of them unless trimmed/partial)."""
        return complete_counts(self.sorted_bids(), self.sorted_asks(), self.horizons(), pairs=True)

    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    def is_crossed(self) -> bool:
        """True when best bid >= best ask: the book cannot be right and must resync."""
        if not self.bids or not self.asks:
            return False
        return max(self.bids) >= min(self.asks)


def complete_counts(bids: Sequence[Any], asks: Sequence[Any], horizons: tuple[float | None, float | None], *,
                    pairs: bool) -> tuple[int, int]:
    """How many of each side's best-first levels are known exact: all of a side, or those at or better
    than its horizon. ``bids`` / ``asks`` are (price, size) pairs, or bare prices with ``pairs=False``."""
    bid_h, ask_h = horizons
    nb = len(bids) if bid_h is None else bisect_right(bids, -bid_h, key=_neg_price if pairs else neg)
    na = len(asks) if ask_h is None else bisect_right(asks, ask_h, key=_price if pairs else None)
    return nb, na


def _price(level: tuple[float, float]) -> float:
    return level[0]


def _neg_price(level: tuple[float, float]) -> float:
    return -level[0]
