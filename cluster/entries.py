"""What one stream entry carries, and how a publisher turns the service's book events into entries.

The BookService listener delivers *conflated* views (the newest view wins), not every venue
diff. A view is exact: it is the venue's book at ``view.seq``. So the bus carries views, as a
snapshot followed by deltas *between consecutive published views*: the consumer applying a
delta to the previous view gets exactly the next view, hence exactly the venue's book at that
seq. Nothing is lost by conflation (a delta spans every diff in between), the bus load follows
what the shard can publish rather than the venue's rate, and no hook into the service is needed.

An entry is ``(t, sq, vs, tu, b, a, st, why)``:

- ``t``: ``S`` snapshot (a full book), ``D`` delta (changed levels; size 0 deletes), ``X`` status;
- ``sq``: the bus seq, contiguous per symbol within one owner epoch (the script checks it);
- ``vs``: the venue seq the book is at after this entry (``BookView.seq``);
- ``tu``: wall-clock seconds when the shard's book last changed (``BookView.updated_at``);
- ``b``/``a``: levels as decimal strings ``"price:size,price:size"`` (``repr`` of the float the
  shard holds, so the consumer parses back the identical float);
- ``st``/``why``: on X entries, the status *name* (statuses are treated by name: new ones need
  no change here) and the reason.

The script adds ``ep`` (owner epoch) and ``tp`` (publish time, Redis clock, µs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SNAPSHOT, DELTA, STATUS = "S", "D", "X"
LIVE = "LIVE"
#: a code that left the cluster's desired set (its keys shrink to this one entry)
REMOVED = "REMOVED"
#: a code this shard's rules or the venue refused
REJECTED = "REJECTED"

Entry = tuple[str, int, int, float, str, str, str, str]
Levels = tuple[tuple[float, float], ...]


def encode_levels(levels: Iterable[tuple[float, float]]) -> str:
    return ",".join(f"{price!r}:{size!r}" for price, size in levels)


def decode_levels(text: str) -> list[tuple[float, float]]:
    if not text:
        return []
    out = []
    for part in text.split(","):
        price, _, size = part.partition(":")
        out.append((float(price), float(size)))
    return out


def status_name(status: Any) -> str:
    """A status enum's name (or the string itself): statuses travel by name."""
    return str(getattr(status, "name", status))


def _diff(old: dict[float, float], new: Levels) -> tuple[str, dict[float, float]]:
    """Changed levels from ``old`` to ``new`` as wire text (deletions have size 0), and ``new`` as a dict."""
    now = dict(new)
    if now == old:
        return "", now
    parts = [f"{p!r}:{s!r}" for p, s in new if old.get(p) != s]
    parts.extend(f"{p!r}:0.0" for p in old if p not in now)
    return ",".join(parts), now


class Track:
    """One code's publishing state within one epoch: the next bus seq and the last published book.

    Pure (no I/O): :meth:`view` and :meth:`status` return the entry to publish, or None.
    """

    __slots__ = ("asks", "bids", "since_snapshot", "sq", "state", "tu", "vs")

    def __init__(self) -> None:
        self.sq = 0
        #: status name last published (None: nothing yet in this epoch)
        self.state: str | None = None
        #: the last published LIVE book; None = the next LIVE view goes out as a snapshot
        self.bids: dict[float, float] | None = None
        self.asks: dict[float, float] = {}
        self.vs = 0
        self.tu = 0.0
        self.since_snapshot = 0

    def _next(self) -> int:
        self.sq += 1
        return self.sq

    def view(self, view: Any, snapshot_every: int) -> Entry | None:
        """A view from the service: a snapshot, a delta, a status entry, or nothing new."""
        name = status_name(view.status)
        if name != LIVE:
            return self.status(name, str(getattr(view, "reason", "") or ""), view.seq)
        if self.bids is None or self.state != LIVE or self.since_snapshot >= snapshot_every:
            return self.snapshot(view)
        b, bids = _diff(self.bids, view.bids)
        a, asks = _diff(self.asks, view.asks)
        if not b and not a and view.seq == self.vs:
            return None
        self.bids, self.asks, self.vs, self.tu = bids, asks, view.seq, view.updated_at
        self.since_snapshot += 1
        return (DELTA, self._next(), view.seq, view.updated_at, b, a, "", "")

    def snapshot(self, view: Any) -> Entry:
        self.bids, self.asks, self.vs, self.tu = dict(view.bids), dict(view.asks), view.seq, view.updated_at
        self.state = LIVE
        self.since_snapshot = 0
        return (SNAPSHOT, self._next(), view.seq, view.updated_at, encode_levels(view.bids),
                encode_levels(view.asks), LIVE, "")

    def restate(self, sq: int) -> Entry:
        """Everything after bus seq ``sq`` collapsed into one entry stating the current state
        (a snapshot when LIVE): used when a backlog of unsent entries grows too long."""
        self.sq = sq
        if self.state == LIVE and self.bids is not None:
            self.since_snapshot = 0
            return (SNAPSHOT, self._next(), self.vs, self.tu, encode_levels(sorted(self.bids.items(), reverse=True)),
                    encode_levels(sorted(self.asks.items())), LIVE, "")
        return (STATUS, self._next(), self.vs, 0.0, "", "", self.state or "RESYNCING", "backlog collapsed")

    def status(self, name: str, why: str, vs: int | None = None) -> Entry | None:
        """A status event: non-LIVE names go out at once (and forget the book); LIVE comes with a view."""
        if name == LIVE or (name == self.state and self.bids is None):
            return None
        self.state = name
        self.bids = None
        self.asks = {}
        if vs is not None:
            self.vs = vs
        return (STATUS, self._next(), self.vs, 0.0, "", "", name, why)
