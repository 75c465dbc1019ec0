"""Ghosts: frames for a code we left on this socket, and when they mean the venue ignored us.

Only a code THIS socket subscribed and we then left can be a ghost; a code we never subscribed
on this socket (a venue bug, a flood of made-up codes) is counted and never answered: one
unsubscribe per made-up code would be a flood of our own, and on AllTick every client frame is
rate-limited. Frames for a code we are leaving are in flight, not ghosts, until the venue has
acknowledged that unsubscribe (the reader tells acks after the data read before them, so
stream order holds); when the venue sends no acks, a grace period from the moment the
unsubscribe was issued (plus the pacing) stands in for the ack. Each left code is reaped at most
once per socket, and the per-code state lives in a bounded LRU that a new socket clears.

Pure: the SubscriptionActor owns one ``LeftCodes`` per socket and acts on what it says.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterable

import attrs

#: without acks on this socket: frames this long (+ two pacing intervals) after we issued an
#: unsubscribe are still in flight, not ghosts
UNSUB_GRACE_S = 1.0
#: with acks on this socket we wait for the unsubscribe's ack, but never longer than this
UNSUB_ACK_TIMEOUT_S = 10.0
#: codes left on one socket whose ghost state we keep (least recently left forgotten first)
LEFT_CODES_LIMIT = 4096


@attrs.define
class LeftCode:
    """A code this socket subscribed and then left: is its data still in flight, or a ghost?"""

    #: unsubscribe commands (article) naming it on this socket, and acks of them seen
    unsubs: int = 0
    unsub_acks: int = 0
    #: id of the last request that left it (venues with ids); settled once an answer >= it arrives
    request: int = 0
    #: when we issued the last unsubscribe (monotonic seconds)
    left_at_s: float = 0.0
    #: frames seen after the unsubscribe settled
    frames: int = 0
    #: already unsubscribed again as a ghost on this socket (never twice)
    reaped: bool = False


class Frames(enum.Enum):
    """What frames for a code without a book are."""

    #: a code this socket never subscribed: counted, never answered
    UNKNOWN = "unknown"
    #: sent before the venue processed our unsubscribe
    IN_FLIGHT = "in_flight"
    #: a left code already unsubscribed again on this socket
    REAPED = "reaped"
    #: a left code the venue keeps sending: below the threshold so far
    GHOST = "ghost"
    #: ... and this batch crossed it: unsubscribe it again (once)
    REAP = "reap"


class LeftCodes:
    """The codes this socket left, what the venue acknowledged, and the ghost verdicts."""

    def __init__(self, limit: int = LEFT_CODES_LIMIT) -> None:
        self._limit = limit
        self._left: OrderedDict[str, LeftCode] = OrderedDict()
        #: answers seen on this socket, and the newest request id the venue answered (in order)
        self.acks_seen = 0
        self.acked_request = 0

    def __len__(self) -> int:
        return len(self._left)

    def clear(self) -> None:
        self._left.clear()
        self.acks_seen = self.acked_request = 0

    def left(self, codes: Iterable[str], request: int, now: float) -> None:
        """We just issued the command that leaves ``codes`` (``request``: its id, if the venue uses ids)."""
        left = self._left
        for code in codes:
            entry = left.pop(code, None) or LeftCode()
            entry.unsubs += 1
            entry.request = request
            entry.left_at_s = now
            entry.frames = 0
            left[code] = entry  # most recently left last
        while len(left) > self._limit:
            left.popitem(last=False)

    def answered(self, settled_through: int, unsubscribed: Iterable[str]) -> None:
        """An answer on this socket: requests up to ``settled_through`` processed; unsubscribes named."""
        self.acks_seen += 1
        self.acked_request = max(self.acked_request, settled_through)
        for code in unsubscribed:
            entry = self._left.get(code)
            if entry is not None and entry.unsub_acks < entry.unsubs:
                entry.unsub_acks += 1

    def settled(self, entry: LeftCode, now: float, pacing_s: float) -> bool:
        """Has the venue certainly processed our last unsubscribe of this code?"""
        if entry.request and self.acked_request >= entry.request:
            return True  # answers come in request order
        if entry.unsub_acks >= entry.unsubs:
            return True  # the venue's answers named the code each time
        waited_s = now - entry.left_at_s
        if self.acks_seen:
            return waited_s >= UNSUB_ACK_TIMEOUT_S  # an ack went missing: do not wait forever
        return waited_s >= UNSUB_GRACE_S + 2 * pacing_s

    def classify(self, code: str, frames: int, now: float, pacing_s: float, threshold: int) -> Frames:
        """What ``frames`` frames for ``code`` (which has no book and is not wanted) are."""
        entry = self._left.get(code)
        if entry is None:
            return Frames.UNKNOWN
        if entry.reaped:
            return Frames.REAPED
        if not self.settled(entry, now, pacing_s):
            return Frames.IN_FLIGHT
        entry.frames += frames
        if entry.frames >= threshold:
            entry.reaped = True
            return Frames.REAP
        return Frames.GHOST
