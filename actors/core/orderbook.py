"""The pure order book: two price->size maps kept with their prices in order, a version, a status.

No threads and no I/O: a BookActor owns one and is its only writer. Each side is a dict (size by
price) plus the list of its prices, ascending, kept sorted as levels come and go: a level whose size
changes is one dict write; a new or removed price is a binary search and a move of the list's tail (C
calls, ~50 floats). In return every read is in order without sorting: the best price is an end of the
list, a depth-N view slices N prices, a trim cuts the list. Most of a feed's level changes are sizes of
prices already held, so keeping the order costs the writer less than sorting costs each reader.

``max_levels`` caps memory honestly. A side is trimmed to its best ``max_levels`` levels
only when it grows past twice that (amortised O(1) per write). Trimming forgets levels
beyond a *horizon* price; levels at or better than the horizon stay exact because every
later diff for them is still applied. ``complete_levels()`` tells a reader how many
levels per side are known complete, and a view never claims more.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence

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
    """Bids and asks for one symbol. See the module docstring for the order and trimming rules.

    ``bids`` / ``asks``: size by price. ``bid_prices`` / ``ask_prices``: the same prices ascending
    (best bid last, best ask first). Write through the methods only: they keep each pair in step."""

    __slots__ = (
        "_sorted_asks",
        "_sorted_bids",
        "ask_horizon",
        "ask_prices",
        "asks",
        "bid_horizon",
        "bid_prices",
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
        self.bid_prices: list[float] = []
        self.ask_prices: list[float] = []
        self.last_seq = 0
        #: the venue's time of the last event applied (seconds since the epoch; 0.0 = unknown)
        self.event_time = 0.0
        self.status = BookStatus.SYNCING
        #: why the book has its status (shown with every non-LIVE view)
        self.reason = "starting"
        self._sorted_bids: Levels | None = None
        self._sorted_asks: Levels | None = None
        #: worst price still known exact on each side; None = the side is complete (read-only outside:
        #: ``mark_partial`` and the trims write them)
        self.bid_horizon: float | None = None
        self.ask_horizon: float | None = None

    def __repr__(self) -> str:
        return (
            f"<OrderBook {self.code} {self.status.name} seq={self.last_seq} "
            f"bids={len(self.bids)} asks={len(self.asks)}>"
        )

    # -- writes -------------------------------------------------------------------------

    def apply(self, is_bid: bool, price: float, size: float) -> None:
        """Set (size > 0) or delete (size == 0) one level."""
        if is_bid:
            side, prices = self.bids, self.bid_prices
            self._sorted_bids = None
        else:
            side, prices = self.asks, self.ask_prices
            self._sorted_asks = None
        if size > 0.0:
            if price not in side:
                insort(prices, price)
            side[price] = size
            if len(prices) > 2 * self.max_levels:
                self._trim(is_bid)
        elif side.pop(price, None) is not None:
            del prices[bisect_left(prices, price)]

    def apply_levels(self, bids: Levels, asks: Levels) -> None:
        """Apply one event's levels (absolute sizes, 0 deletes; deleting an unknown level is normal).

        One call per event, not per level: a Binance event carries tens of levels, and the side,
        the cache and the trim check are looked at once per side. A side that grows past twice
        ``max_levels`` is trimmed after the event (the horizon rule holds)."""
        # the two sides written out: a helper called per side costs more than the loop it runs
        if bids:
            side, prices = self.bids, self.bid_prices
            for price, size in bids:
                if size > 0.0:
                    if price not in side:
                        insort(prices, price)
                    side[price] = size
                elif side.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
            self._sorted_bids = None
            if len(prices) > 2 * self.max_levels:
                self._trim(True)
        if asks:
            side, prices = self.asks, self.ask_prices
            for price, size in asks:
                if size > 0.0:
                    if price not in side:
                        insort(prices, price)
                    side[price] = size
                elif side.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
            self._sorted_asks = None
            if len(prices) > 2 * self.max_levels:
                self._trim(False)

    def replace(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]], seq: int) -> None:
        """Load a whole book (a snapshot or a full top-N push). Zero sizes are skipped."""
        self.bids = {p: s for p, s in bids if s > 0.0}
        self.asks = {p: s for p, s in asks if s > 0.0}
        self.bid_prices = sorted(self.bids)
        self.ask_prices = sorted(self.asks)
        self.last_seq = seq
        self.bid_horizon = self.ask_horizon = None
        self._sorted_bids = self._sorted_asks = None
        if len(self.bids) > self.max_levels:
            self._trim(True)
        if len(self.asks) > self.max_levels:
            self._trim(False)

    def clear(self) -> None:
        """Forget every level (the version is kept for diagnostics; the event time is unknown again)."""
        self.bids = {}
        self.asks = {}
        self.bid_prices = []
        self.ask_prices = []
        self.event_time = 0.0
        self.bid_horizon = self.ask_horizon = None
        self._sorted_bids = self._sorted_asks = ()

    def mark_partial(self, bid_horizon: float | None, ask_horizon: float | None) -> None:
        """Declare that levels worse than these prices may be missing (a top-N source)."""
        self.bid_horizon = bid_horizon
        self.ask_horizon = ask_horizon

    def _trim(self, is_bid: bool) -> None:
        keep = self.max_levels
        if is_bid:
            kept = self.bid_prices[-keep:]
            side = self.bids
            self.bids = dict(levels_of(side, kept))
            self.bid_prices = kept
            self._sorted_bids = None
            old = self.bid_horizon
            self.bid_horizon = kept[0] if old is None else max(old, kept[0])
        else:
            kept = self.ask_prices[:keep]
            side = self.asks
            self.asks = dict(levels_of(side, kept))
            self.ask_prices = kept
            self._sorted_asks = None
            old = self.ask_horizon
            self.ask_horizon = kept[-1] if old is None else min(old, kept[-1])

    # -- reads --------------------------------------------------------------------------

    def sorted_bids(self) -> Levels:
        """Every bid level, best (highest) first; the same tuple until the next write."""
        cached = self._sorted_bids
        if cached is None:
            prices = self.bid_prices[::-1]
            cached = self._sorted_bids = levels_of(self.bids, prices)
        return cached

    def sorted_asks(self) -> Levels:
        """Every ask level, best (lowest) first; the same tuple until the next write."""
        cached = self._sorted_asks
        if cached is None:
            prices = self.ask_prices
            cached = self._sorted_asks = levels_of(self.asks, prices)
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
        return self.bid_horizon, self.ask_horizon

    def complete_levels(self) -> tuple[int, int]:
        """How many levels per side are known exact (all of them unless trimmed/partial)."""
        bids, asks = self.bid_prices, self.ask_prices
        bid_h, ask_h = self.bid_horizon, self.ask_horizon
        nb = len(bids) if bid_h is None else len(bids) - bisect_left(bids, bid_h)
        na = len(asks) if ask_h is None else bisect_right(asks, ask_h)
        return nb, na

    def best_bid(self) -> float | None:
        prices = self.bid_prices
        return prices[-1] if prices else None

    def best_ask(self) -> float | None:
        prices = self.ask_prices
        return prices[0] if prices else None

    def is_crossed(self) -> bool:
        """True when best bid >= best ask: the book cannot be right and must resync."""
        bids, asks = self.bid_prices, self.ask_prices
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]


def levels_of(side: dict[float, float], prices: Sequence[float]) -> Levels:
    """``(price, size)`` pairs of ``side`` for ``prices``, in their order (C calls only: a reader on
    another thread gets a KeyError, never a wrong pair, if a price goes meanwhile)."""
    return tuple(zip(prices, map(side.__getitem__, prices)))
