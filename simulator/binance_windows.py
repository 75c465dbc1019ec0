"""Binance's update speed: all changes of a symbol in one 100 ms (or 1 s) window make one event.

The generated market moves one update id per level change (simulator/market.py: seq = update id).
A diff-depth event covers the ids ``U..u`` of its window and carries, per touched price, only the
level's final quantity in that window (quantities are absolute, so intermediate values are
irrelevant), bids best first and asks best first. Consecutive events of a symbol are contiguous
(``U == previous u + 1``) as long as every change is accumulated.

A window is only accumulated while somebody is subscribed to its stream. When a change arrives that
does not continue the pending window (ids skipped while nobody listened, or a restart began a new
era), the stale window is discarded instead of being merged: merging would produce an event whose
``U..u`` claims changes it does not contain, a silent corruption no client could detect.
"""

from __future__ import annotations

from depthkeeper.simulator.binance_wire import depth_update, price_text, render_levels, size_text
from depthkeeper.simulator.market import DiffTuple

#: Rendered prices/sizes are cached; the caches are cleared when they grow past this.
_CACHE_LIMIT = 200_000


class Window:
    """The pending changes of one symbol: ids ``first..last`` and the last size per price."""

    __slots__ = ("asks", "bids", "era", "first", "last")

    def __init__(self, first: int, era: int) -> None:
        self.first = first
        self.last = first - 1
        self.era = era
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}


class DepthWindows:
    """Pending windows of every symbol for one update speed."""

    def __init__(self) -> None:
        self.pending: dict[str, Window] = {}
        self.discarded = 0

    def add(self, code: str, era: int, diffs: list[DiffTuple]) -> None:
        """Accumulate a batch of one symbol's changes (contiguous ids, oldest first)."""
        if not diffs:
            return
        window = self.pending.get(code)
        if window is not None and (window.era != era or window.last + 1 != diffs[0][0]):
            self.discarded += 1
            window = None
        if window is None:
            window = self.pending[code] = Window(diffs[0][0], era)
        bids, asks = window.bids, window.asks
        for _seq, is_bid, cents, units in diffs:
            if is_bid:
                bids[cents] = units
            else:
                asks[cents] = units
        window.last = diffs[-1][0]

    def take(self) -> dict[str, Window]:
        """Every pending window (the next events); start over empty."""
        pending, self.pending = self.pending, {}
        return pending


class EventRenderer:
    """Renders windows as ``depthUpdate`` payloads, caching the 8-decimal text of prices and sizes."""

    def __init__(self, codes: tuple[str, ...], stamp: bool) -> None:
        self._codes = {code: code.encode() for code in codes}
        self._stamp = stamp
        self._prices: dict[int, bytes] = {}
        self._sizes: dict[int, bytes] = {}

    def _levels(self, side: dict[int, int], best_high: bool) -> bytes:
        prices, sizes = self._prices, self._sizes
        rendered = []
        for cents in sorted(side, reverse=best_high):
            price = prices.get(cents)
            if price is None:
                price = prices[cents] = price_text(cents)
            units = side[cents]
            size = sizes.get(units)
            if size is None:
                size = sizes[units] = size_text(units)
            rendered.append((price, size))
        return render_levels(rendered)

    def render(self, code: str, window: Window, event_ms: int, now_s: float) -> bytes:
        if len(self._prices) > _CACHE_LIMIT or len(self._sizes) > _CACHE_LIMIT:
            self._prices.clear()
            self._sizes.clear()
        return depth_update(
            event_ms, self._codes[code], window.first, window.last,
            self._levels(window.bids, True), self._levels(window.asks, False),
            now_s if self._stamp else None,
        )
