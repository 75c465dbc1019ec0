"""A consumer's view of one symbol's stream: a pure state machine (no I/O, no threads).

``apply`` takes stream entries in order and either applies one or says why the symbol must be
re-bootstrapped. The rules (the issue's "what a consumer needs to rebuild an exact book"):

- an entry is accepted when it continues the chain (same epoch, bus seq + 1), starts a new epoch
  (higher epoch, seq 1), or is a snapshot at a later position (it is self-contained);
- anything else re-bootstraps *this symbol only*: a gap (lost or trimmed entries), an epoch
  change without a snapshot, an epoch or seq regression (Redis lost data and restarted);
- a delta applies to the book; a status entry sets the publisher's state (a non-LIVE state drops
  the book: the next LIVE comes as a snapshot);
- while bootstrapping, an X or S entry anchors the chain wherever it is; deltas before any anchor
  are skipped (their base is unknown). :meth:`anchor` positions on the status hash when the
  stream has nothing to anchor on.

The *effective* status (what ``book()`` reports) also needs the publisher's heartbeat: see
:func:`effective_status`.
"""

from __future__ import annotations

from typing import Any

from depthkeeper.cluster.bus import parse_id
from depthkeeper.cluster.entries import DELTA, LIVE, REMOVED, SNAPSHOT, STATUS, decode_levels

#: consumer-side status names (mapped to the BookStatus enum by name by the consumer)
SYNCING, RESYNCING, STALE = "SYNCING", "RESYNCING", "STALE"


class Follower:
    """One symbol, as rebuilt from its stream. ``changed`` is set on every applied change."""

    __slots__ = ("anchored", "asks", "bids", "code", "cursor", "diffs", "ep", "gaps", "healed", "rebootstraps",
                 "seen_ep", "sq", "state", "takeovers", "tp", "tu", "vs", "why")

    def __init__(self, code: str) -> None:
        self.code = code
        #: counters kept across re-bootstraps (the live view's columns): re-bootstraps, bus-seq gaps among
        #: them, new owner epochs seen (a takeover, or the first owner after a removal), and venue diffs
        #: covered by the entries applied on an unbroken chain (a rate is their difference over time)
        self.rebootstraps = 0
        self.gaps = 0
        self.takeovers = 0
        self.diffs = 0
        self.seen_ep = 0
        #: set when the last apply() crossed a gap on a snapshot (a re-bootstrap from the stream itself)
        self.healed: str | None = None
        self.reset()

    def reset(self) -> None:
        self.ep = 0
        self.sq = 0
        self.cursor = "0-0"
        self.anchored = False
        #: the publisher's state name (None: no publisher yet); bids None = no book to show
        self.state: str | None = None
        self.why = ""
        self.bids: dict[float, float] | None = None
        self.asks: dict[float, float] = {}
        self.vs = 0
        self.tu = 0.0
        self.tp = 0

    def anchor(self, status: dict[str, str], cursor: str) -> None:
        """Position on the status hash (no book): later entries continue from its (epoch, seq)."""
        if not status:
            self.cursor = cursor
            return
        self.ep, self.sq = int(status.get("ep", 0)), int(status.get("sq", 0))
        self._saw_epoch(self.ep)
        self.state = status.get("st") or None
        self.why = status.get("why", "")
        self.vs = int(status.get("vs", 0) or 0)
        self.cursor = status.get("id", cursor) or cursor
        self.anchored = True

    def apply(self, entry_id: str, fields: dict[str, str]) -> str | None:
        """Apply one entry; None when fine, else the reason to re-bootstrap this symbol."""
        ep, sq, kind = int(fields["ep"]), int(fields["sq"]), fields["t"]
        self.healed = None
        if not self.anchored:
            if kind == DELTA:
                self.cursor = entry_id
                return None  # no base to apply it to yet
        elif (ep == self.ep and sq == self.sq + 1) or (ep > self.ep and sq == 1):
            pass
        elif kind == SNAPSHOT and (ep > self.ep or (ep == self.ep and sq > self.sq)):
            self.healed = (f"gap: bus seq {self.sq} -> {sq}" if ep == self.ep
                           else f"epoch {self.ep} -> {ep} without a snapshot") + "; healed by a snapshot"
        elif ep < self.ep:
            return f"epoch went back ({self.ep} -> {ep})"
        elif ep == self.ep and sq <= self.sq:
            return f"bus seq went back ({self.sq} -> {sq})"
        elif ep == self.ep:
            return f"gap: bus seq {self.sq} -> {sq}"
        else:
            return f"epoch {self.ep} -> {ep} without a snapshot"
        self._take(kind, fields, continued=self.anchored and ep == self.ep and self.healed is None)
        self.ep, self.sq, self.cursor, self.anchored = ep, sq, entry_id, True
        self._saw_epoch(ep)
        return None

    def _saw_epoch(self, ep: int) -> None:
        if ep > self.seen_ep:
            if self.seen_ep:
                self.takeovers += 1
            self.seen_ep = ep

    def _take(self, kind: str, fields: dict[str, str], continued: bool) -> None:
        vs = int(fields["vs"])
        if continued and kind != STATUS and self.bids is not None and vs > self.vs:
            self.diffs += vs - self.vs
        self.vs = vs
        self.tp = int(fields.get("tp", 0))
        tu = float(fields.get("tu", 0.0))
        if kind == SNAPSHOT:
            self.bids = dict(decode_levels(fields.get("b", "")))
            self.asks = dict(decode_levels(fields.get("a", "")))
            self.state, self.why, self.tu = LIVE, "", tu
        elif kind == DELTA:
            if self.bids is None:
                return  # anchored on a status without a book: wait for the next snapshot
            _patch(self.bids, fields.get("b", ""))
            _patch(self.asks, fields.get("a", ""))
            self.tu = tu
        else:
            self.state, self.why = fields.get("st", ""), fields.get("why", "")
            if self.state != LIVE:
                self.bids, self.asks = None, {}

    def regressed(self, status: dict[str, str]) -> str | None:
        """Check a status hash read *now* (the cursor cannot have moved since): Redis must not be
        behind what this follower already saw. None when fine, else the reason to re-bootstrap."""
        if not status:
            return "the publisher's state is gone (Redis lost its data?)" if self.anchored and self.ep else None
        if parse_id(status.get("id", "")) < parse_id(self.cursor):
            return "stream id went back (Redis restarted?)"
        if int(status.get("ep", 0)) < self.ep and status.get("st") != REMOVED:  # REMOVED resets the epoch
            return f"epoch went back ({self.ep} -> {status.get('ep')})"
        return None

    def behind(self, status: dict[str, str]) -> str | None:
        """Check a status hash read *before* the last complete read of the stream: the chain must
        have reached it, or the entries in between are gone (trimmed while this consumer was slow)."""
        if not status:
            return None
        ep, sq = int(status.get("ep", 0)), int(status.get("sq", 0))
        if ep == self.ep and sq > self.sq:
            return f"entries up to bus seq {sq} are gone (trimmed?); at {self.sq}"
        if ep > self.ep:
            return f"entries of epoch {ep} are gone; at epoch {self.ep}"
        return None


def _patch(side: dict[float, float], text: str) -> None:
    for price, size in decode_levels(text):
        if size > 0.0:
            side[price] = size
        else:
            side.pop(price, None)


def effective_status(follower: Follower, hb_age_s: float, hb_timeout_s: float) -> tuple[str, str]:
    """(status name, reason) a consumer shows: LIVE only while the publisher says LIVE, the book
    came from a snapshot on an unbroken chain, and the publisher's heartbeat is fresh."""
    state = follower.state
    if state is None:
        return SYNCING, "no publisher yet"
    if state == LIVE:
        if follower.bids is None:
            return RESYNCING, "waiting for a snapshot"
        if hb_age_s > hb_timeout_s:
            return STALE, f"publisher heartbeat {hb_age_s:.1f}s old"
        return LIVE, ""
    return state, follower.why


def describe(follower: Follower) -> dict[str, Any]:
    return {"ep": follower.ep, "sq": follower.sq, "vs": follower.vs, "state": follower.state,
            "cursor": follower.cursor, "rebootstraps": follower.rebootstraps}
