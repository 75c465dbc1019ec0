"""A book's latency samples: a fixed-size ring of numbers that the garbage collector never walks.

A ``deque(maxlen=4096)`` of floats is a GC-tracked container: every full (generation 2)
collection visits each of its items. With three such deques per book and 1000 books that
is ~10 million visits per collection -- a 30-40 ms pause of every thread, measured as the
worst latency at 1000 symbols. An ``array`` holds raw machine numbers that no collection visits, and
recording a sample is three item stores. And it is bounded: a full deque of 4096 floats costs ~130 KB
(three per book: ~400 MB for 1000 books after a few minutes), a full ring of 1024 samples ~24 KB.
"""

from __future__ import annotations

from array import array


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of an ascending list (0.0 when empty)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Latencies:
    """One book's latency samples, written by its actor, copied by readers (C-level array copies).

    One sample per applied batch, three numbers in one ring (one array of doubles, its storage
    doubling from ``initial`` samples up to ``size`` as they arrive, so a quiet book costs little, then
    overwritten oldest first): ``e2e`` venue send -> applied, timed from the batch's
    oldest diff (NaN when the venue sent no stamp); the batch's ``diffs``; ``hop`` reader thread ->
    applied (the in-process hop). One ring, not three: a turn writes three items of one object
    instead of calling three rings (a BookActor records every turn, and at 1000 books each object
    a turn touches is a cache miss).
    """

    __slots__ = ("_buf", "_mask", "_size", "count")

    def __init__(self, size: int, initial: int = 16) -> None:
        if size < 1 or size & (size - 1):
            raise ValueError("size must be a power of two")
        self._size = size
        self._buf: array[float] = array("d", [0.0]) * (_STRIDE * min(size, max(1, initial)))
        self._mask = len(self._buf) // _STRIDE - 1
        #: samples recorded so far (the newest is number ``count``)
        self.count = 0

    def record(self, e2e_s: float | None, diffs: int, hop_s: float) -> None:
        n = self.count
        buf = self._buf
        if n * _STRIDE == len(buf) and n < self._size:  # full but not yet wrapped: double (order kept)
            buf.extend(buf)
            self._mask = len(buf) // _STRIDE - 1
        at = (n & self._mask) * _STRIDE
        buf[at] = _NAN if e2e_s is None else e2e_s
        buf[at + 1] = diffs
        buf[at + 2] = hop_s
        self.count = n + 1

    def __len__(self) -> int:
        """Samples kept."""
        return min(self.count, len(self._buf) // _STRIDE)

    def last(self, n: int) -> array[float]:
        """The newest ``n`` kept samples, oldest first, flat (three numbers each; one C-level copy)."""
        n = max(0, min(n, len(self)))
        if not n:
            return array("d")
        buf, mask, count = self._buf, self._mask, self.count
        end, start = (count & mask) * _STRIDE, ((count - n) & mask) * _STRIDE
        return buf[start:end] if start < end else buf[start:] + buf[:end]

    def copy(self) -> array[float]:
        """Every kept sample, in storage order, flat (a C-level copy: safe against a concurrent writer)."""
        return self._buf[: len(self) * _STRIDE]

    def window(self, since: int = 0) -> tuple[int, list[tuple[float, int]]]:
        """(samples ever recorded, the kept ``(latency, diffs)`` samples after number ``since`` that
        have a latency)."""
        count = self.count
        return count, pairs(self.last(count - since))


_STRIDE = 3
_NAN = float("nan")


def pairs(flat: array[float]) -> list[tuple[float, int]]:
    """``(e2e, diffs)`` of flat samples (``Latencies.last``), those without a latency left out."""
    return [(e2e, int(diffs)) for e2e, diffs in zip(flat[0::_STRIDE], flat[1::_STRIDE]) if e2e == e2e]


def split(flat: array[float]) -> tuple[list[float], list[float]]:
    """(e2e latencies, hops) of flat samples, those without a latency left out of the first."""
    return [e2e for e2e in flat[0::_STRIDE] if e2e == e2e], flat[2::_STRIDE].tolist()
