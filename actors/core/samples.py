"""A fixed-size ring of numbers that the garbage collector never walks.

A ``deque(maxlen=4096)`` of floats is a GC-tracked container: every full (generation 2)
collection visits each of its items. With three such deques per book and 1000 books that
is ~10 million visits per collection -- a 30-40 ms pause of every thread, measured as the
worst latency at 1000 symbols. An ``array`` holds raw machine numbers, is not tracked, and
appending is one item store. And it is bounded: a full deque of 4096 floats costs ~130 KB
(three per book: ~400 MB for 1000 books after a few minutes), a full ring of 1024 ~8 KB.
"""

from __future__ import annotations

from array import array
from typing import Any


class Ring:
    """The last ``size`` values appended (``size`` a power of two), plus how many ever were.

    Storage starts small and doubles as values arrive, up to ``size`` (a quiet book costs
    little); from then on the oldest value is overwritten.
    """

    __slots__ = ("_buf", "_mask", "_size", "count")

    def __init__(self, size: int = 1024, typecode: str = "d", initial: int = 16) -> None:
        if size < 1 or size & (size - 1):
            raise ValueError("size must be a power of two")
        self._size = size
        self._buf: array[Any] = array(typecode, [0]) * min(size, max(1, initial))
        self._mask = len(self._buf) - 1
        #: values appended so far (the newest is number ``count``)
        self.count = 0

    def append(self, value: Any) -> None:
        n = self.count
        buf = self._buf
        if n == len(buf) and n < self._size:  # full but not yet wrapped: double (order kept)
            buf.extend(buf)
            self._mask = len(buf) - 1
        buf[n & self._mask] = value
        self.count = n + 1

    def __len__(self) -> int:
        return min(self.count, len(self._buf))

    def last(self, n: int | None = None) -> list[Any]:
        """The newest ``n`` (default: all kept) values, oldest first."""
        kept = len(self)
        n = kept if n is None else max(0, min(n, kept))
        if not n:
            return []
        mask, buf = self._mask, self._buf
        end = self.count & mask
        start = (self.count - n) & mask
        if start < end:
            return buf[start:end].tolist()
        return buf[start:].tolist() + buf[:end].tolist()

    def copy(self) -> array[Any]:
        """The kept values, in storage order (a C-level copy: safe against a concurrent writer)."""
        return self._buf[: len(self)]

    def sorted(self) -> list[Any]:
        return sorted(self._buf[: len(self)].tolist())


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of an ascending list (0.0 when empty)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Latencies:
    """One book's latency rings, written by its actor, copied by readers (C-level array copies).

    - ``e2e``: venue send -> applied, one sample per applied batch, timed from its oldest diff;
    - ``sizes``: the diffs in each of those batches (appended in step with ``e2e``);
    - ``hop``: reader thread -> applied (the in-process hop).
    """

    __slots__ = ("e2e", "hop", "sizes")

    def __init__(self, size: int) -> None:
        self.e2e = Ring(size)
        self.sizes = Ring(size, "I")
        self.hop = Ring(size)

    def record(self, e2e_s: float | None, diffs: int, hop_s: float) -> None:
        if e2e_s is not None:
            self.e2e.append(e2e_s)
            self.sizes.append(diffs)
        self.hop.append(hop_s)

    def window(self, since: int = 0) -> tuple[int, list[tuple[float, int]]]:
        """(samples ever recorded, the kept ``(latency, diffs)`` samples recorded after ``since``)."""
        count = self.e2e.count
        kept = count - since
        if kept <= 0:
            return count, []
        return count, list(zip(self.e2e.last(kept), self.sizes.last(kept), strict=True))
