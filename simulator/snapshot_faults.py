"""REST snapshots that are well-formed but wrong: ahead of the stream, empty, short, crossed.

A client must validate a snapshot before it shows a book LIVE from it (issue 12): one whose seq
is ahead of everything streamed, one with no levels or too few, one whose best bid is at or above
its best ask. These faults produce exactly such answers, and nothing else is wrong with them:
the JSON shape, the HTTP status and (except for the seq of a future snapshot) the levels are the
venue's current book.

Arming is per code or for any code, for the next ``count`` snapshots or until lifted. A REST
answer takes at most one shape per code: counted arms first (oldest first), then persistent
ones, so ``future_snapshot(count=1)`` armed on top of a persistent crossed snapshot still
happens once. Shapes work on the price->size dicts of `SymbolMarket.levels_at`, before the
dialect renders them, so both dialects share one implementation.
"""

from __future__ import annotations

import collections
import enum

import attrs


class SnapshotShape(str, enum.Enum):
    """How a snapshot is bent; each value is also the `FaultKind` counter it is counted under."""

    FUTURE = "future_snapshot"
    EMPTY = "empty_snapshot"
    SHORT = "short_snapshot"
    CROSSED = "crossed_snapshot"


@attrs.frozen
class ShapeFault:
    """One shape to apply: ``amount`` is the seq lead (FUTURE) or the levels kept per side (SHORT)."""

    shape: SnapshotShape
    amount: int = 0


@attrs.define
class _Arm:
    fault: ShapeFault
    code: str | None
    remaining: int | None  # None: until lifted


class ArmedShapes:
    """Armed snapshot shapes; `take` consumes the one that applies to a code's next snapshot."""

    def __init__(self, counts: collections.Counter[str]) -> None:
        self._counts = counts
        self._arms: list[_Arm] = []

    def arm(self, fault: ShapeFault, code: str | None, count: int | None) -> None:
        """``count=None``: until `lift`."""
        self._arms.append(_Arm(fault, code, count))

    def take(self, code: str) -> ShapeFault | None:
        """The shape of ``code``'s snapshot being answered now (counted), or None."""
        if not self._arms:
            return None
        candidates = [arm for arm in self._arms if arm.code is None or arm.code == code]
        if not candidates:
            return None
        counted = [arm for arm in candidates if arm.remaining is not None]
        arm = counted[0] if counted else candidates[0]
        if arm.remaining is not None:
            arm.remaining -= 1
            if arm.remaining <= 0:
                self._arms.remove(arm)
        self._counts[arm.fault.shape.value] += 1
        return arm.fault

    def lift(self) -> int:
        """Disarm every shape (counted and persistent); return how many arms were dropped."""
        lifted = len(self._arms)
        self._arms.clear()
        return lifted


Levels = dict[int, int]


def apply_shape(
    fault: ShapeFault, seq: int, bids: Levels, asks: Levels, tick_cents: int
) -> tuple[int, Levels, Levels]:
    """(seq, bids, asks) bent by ``fault``; prices in cents, sizes in 1e-4 units (new dicts)."""
    shape = fault.shape
    if shape is SnapshotShape.FUTURE:
        return seq + fault.amount, dict(bids), dict(asks)
    if shape is SnapshotShape.EMPTY:
        return seq, {}, {}
    if shape is SnapshotShape.SHORT:
        return seq, _best(bids, fault.amount, high=True), _best(asks, fault.amount, high=False)
    return seq, *_crossed(bids, asks, tick_cents)


def _best(levels: Levels, keep: int, *, high: bool) -> Levels:
    prices = sorted(levels, reverse=high)[:keep]
    return {price: levels[price] for price in prices}


def _crossed(bids: Levels, asks: Levels, tick_cents: int) -> tuple[Levels, Levels]:
    """The book with one extra level that makes best bid > best ask (strictly crossed).

    A bid one tick above the best ask when there are asks; else an ask one tick below the best
    bid; an empty book gets one crossed pair. Every other level stays as it is.
    """
    bids, asks = dict(bids), dict(asks)
    if asks:
        best_ask = min(asks)
        bids[best_ask + tick_cents] = bids[max(bids)] if bids else asks[best_ask]
    elif bids:
        best_bid = max(bids)
        asks[max(1, best_bid - tick_cents)] = bids[best_bid]
    else:
        bids[2 * tick_cents] = 10_000
        asks[tick_cents] = 10_000
    return bids, asks
