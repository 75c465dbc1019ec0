"""The truth: one deterministic L2 book per symbol and the changes that move it.

Prices are integers in cents and sizes integers in 1e-4 units, so the book never carries a
float: the wire strings (``"64123.50"``, ``"0.25"``) are exact decimal renderings with few
significant digits, and ``float(text)`` on the client side is deterministic.

Each symbol owns an RNG seeded from ``(seed, era, code)`` and draws *only* content from it
(the pump draws arrival times from a separate RNG), so a symbol's diff sequence is the same for
a given seed however the event loop interleaves symbols or how fast the wall clock runs.

Model: a mid price on the symbol's tick grid does a ±1 tick random walk; bids live strictly
below the mid and asks strictly above, within ``levels`` ticks of it. When the mid moves, the
levels left on the wrong side (or beyond the window) are deleted by explicit diffs first, so the
book can never cross. Every other event sets or deletes one level.
"""

from __future__ import annotations

import collections
import heapq
import math
import random
from collections.abc import Iterable

from depthkeeper.simulator.errors import HistoryUnavailable, UnknownCode

#: Probability that an event first moves the mid one tick.
MOVE_PROBABILITY = 0.08
#: Probability that an event on an existing level deletes it instead of resizing it.
DELETE_PROBABILITY = 0.3
#: Probability that a level is present when a book is (re)generated.
FILL_PROBABILITY = 0.85
#: Mean size of a level, in 1e-4 units (0.5).
MEAN_SIZE_UNITS = 5000
#: Largest size, in 1e-4 units (999.9999): keeps sizes at <= 7 significant digits.
MAX_SIZE_UNITS = 9_999_999
#: Diffs kept for stale snapshots when full history is not recorded.
DEFAULT_HISTORY_LIMIT = 4096

#: One change: (seq, is_bid, price_cents, size_units); size 0 deletes the level.
#: A plain tuple, not an attrs class: the pump creates >100k of them per second.
DiffTuple = tuple[int, bool, int, int]
#: A level as the wire shows it: (price text, size text).
LevelText = tuple[str, str]


def format_price(cents: int) -> str:
    """Two decimals, always: ``6412350 -> "64123.50"``."""
    whole, frac = divmod(cents, 100)
    return f"{whole}.{frac:02d}"


def format_size(units: int) -> str:
    """Up to four decimals, trailing zeros dropped: ``2500 -> "0.25"``, ``10000 -> "1"``."""
    whole, frac = divmod(units, 10_000)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:04d}".rstrip("0")


class SymbolMarket:
    """One symbol's truth book, its version (seq), its generator and its undo log."""

    def __init__(self, code: str, *, seed: int, era: int, levels: int, history_limit: int | None) -> None:
        self.code = code
        self.levels = levels
        self.seq = 0
        self._rng = random.Random(f"depthkeeper.simulator:{seed}:{era}:{code}")
        base_price = math.exp(self._rng.uniform(0.0, math.log(60_000.0)))
        self.tick_cents = 10 ** max(0, int(math.log10(base_price)) - 3)
        self._mid_ticks = max(levels + 2, round(base_price * 100 / self.tick_cents))
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        #: (seq, is_bid, price_cents, size before the change), oldest first, contiguous seqs.
        self._undo: collections.deque[DiffTuple] = collections.deque(maxlen=history_limit)
        for k in range(1, levels + 1):
            if self._rng.random() < FILL_PROBABILITY:
                self.bids[(self._mid_ticks - k) * self.tick_cents] = self._draw_size()
            if self._rng.random() < FILL_PROBABILITY:
                self.asks[(self._mid_ticks + k) * self.tick_cents] = self._draw_size()

    def _draw_size(self) -> int:
        return min(MAX_SIZE_UNITS, 1 + int(self._rng.expovariate(1.0 / MEAN_SIZE_UNITS)))

    def _apply(self, is_bid: bool, price_cents: int, size_units: int, out: list[DiffTuple]) -> None:
        book = self.bids if is_bid else self.asks
        previous = book.get(price_cents, 0)
        if size_units:
            book[price_cents] = size_units
        else:
            del book[price_cents]
        self.seq += 1
        self._undo.append((self.seq, is_bid, price_cents, previous))
        out.append((self.seq, is_bid, price_cents, size_units))

    def _delete_if_present(self, is_bid: bool, ticks: int, out: list[DiffTuple]) -> None:
        price_cents = ticks * self.tick_cents
        if price_cents in (self.bids if is_bid else self.asks):
            self._apply(is_bid, price_cents, 0, out)

    def _move_mid(self, out: list[DiffTuple]) -> None:
        up = self._rng.random() < 0.5 or self._mid_ticks - self.levels <= 1
        if up:
            self._mid_ticks += 1
            self._delete_if_present(False, self._mid_ticks, out)
            self._delete_if_present(True, self._mid_ticks - self.levels - 1, out)
        else:
            self._mid_ticks -= 1
            self._delete_if_present(True, self._mid_ticks, out)
            self._delete_if_present(False, self._mid_ticks + self.levels + 1, out)

    def step(self, out: list[DiffTuple]) -> int:
        """Advance the book by one event; append its diffs (1 to 3) to ``out``; return how many."""
        before = len(out)
        rng = self._rng
        if rng.random() < MOVE_PROBABILITY:
            self._move_mid(out)
        is_bid = rng.random() < 0.5
        offset = 1 + min(self.levels - 1, int(rng.random() ** 2 * self.levels))
        ticks = self._mid_ticks - offset if is_bid else self._mid_ticks + offset
        price_cents = ticks * self.tick_cents
        current = (self.bids if is_bid else self.asks).get(price_cents)
        if current is not None and rng.random() < DELETE_PROBABILITY:
            size_units = 0
        else:
            size_units = self._draw_size()
            if size_units == current:
                size_units = current + 1 if current < MAX_SIZE_UNITS else current - 1
        self._apply(is_bid, price_cents, size_units, out)
        return len(out) - before

    def oldest_seq(self) -> int:
        """The oldest seq whose book can still be rebuilt from the undo log."""
        return self._undo[0][0] - 1 if self._undo else self.seq

    def levels_at(self, seq: int | None = None) -> tuple[int, dict[int, int], dict[int, int]]:
        """(seq, bids, asks) as they were at ``seq`` (default: now), by undoing newer diffs."""
        if seq is None or seq == self.seq:
            return self.seq, dict(self.bids), dict(self.asks)
        if not self.oldest_seq() <= seq <= self.seq:
            raise HistoryUnavailable(
                f"{self.code}: seq {seq} not in retained history [{self.oldest_seq()}, {self.seq}]"
            )
        bids, asks = dict(self.bids), dict(self.asks)
        for entry_seq, is_bid, price_cents, previous in reversed(self._undo):
            if entry_seq <= seq:
                break
            book = bids if is_bid else asks
            if previous:
                book[price_cents] = previous
            else:
                book.pop(price_cents, None)
        return seq, bids, asks

    def top(self, depth: int) -> tuple[list[LevelText], list[LevelText]]:
        """Best ``depth`` levels per side, best first, as wire text."""
        return render_side(self.bids, depth, best_high=True), render_side(self.asks, depth, best_high=False)


def render_side(book: dict[int, int], depth: int | None, *, best_high: bool) -> list[LevelText]:
    """Sort one side best-first (bids high to low, asks low to high) and render it as text."""
    if depth is None:
        prices: Iterable[int] = sorted(book, reverse=best_high)
    elif best_high:
        prices = heapq.nlargest(depth, book)
    else:
        prices = heapq.nsmallest(depth, book)
    return [(format_price(p), format_size(book[p])) for p in prices]


class Market:
    """All symbols of the venue, for the current era (a restart starts a new era)."""

    def __init__(self, symbols: Iterable[str], *, seed: int, levels: int, record_history: bool) -> None:
        self.codes: tuple[str, ...] = tuple(symbols)
        self.seed = seed
        self.levels = levels
        self.history_limit = None if record_history else DEFAULT_HISTORY_LIMIT
        self.era = 0
        self.symbols: dict[str, SymbolMarket] = {}
        self.regenerate()

    def regenerate(self) -> None:
        """Start a new era: fresh books, every seq back to 0 (the next diff is seq 1)."""
        self.era += 1
        self.symbols = {
            code: SymbolMarket(
                code, seed=self.seed, era=self.era, levels=self.levels, history_limit=self.history_limit
            )
            for code in self.codes
        }

    def get(self, code: str) -> SymbolMarket:
        try:
            return self.symbols[code]
        except KeyError:
            raise UnknownCode(code) from None

    def book(self, code: str, seq: int | None = None) -> dict[str, object]:
        """The full book in the article REST shape: ``{"code","seq","bids","asks"}``, best first."""
        symbol = self.get(code)
        at_seq, bids, asks = symbol.levels_at(seq)
        return {
            "code": code,
            "seq": at_seq,
            "bids": [list(level) for level in render_side(bids, None, best_high=True)],
            "asks": [list(level) for level in render_side(asks, None, best_high=False)],
        }

    def lagged_seq(self, code: str, lag: int) -> int:
        """The seq ``lag`` diffs ago, clamped to what the undo log still holds."""
        symbol = self.get(code)
        return max(symbol.oldest_seq(), symbol.seq - lag)
