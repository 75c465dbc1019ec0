"""The LIVE promise, enforced in one place.

A book is shown LIVE only while

(a) its socket is open and has delivered business data within the heartbeat silence bound,
(b) its seq chain is unbroken since a validated snapshot bridged onto *this* socket's stream,
(c) the venue has not rejected its subscription.

(b) and (c) are the BookActor's own state (its sync policy and the rejections it is told
of). (a) changes outside the book — a socket closes, goes silent, or its ConnectionActor
dies — and a BookActor learns of it only by a message that may sit behind a backlog. So the
socket's state is shared here, written by the ConnectionActor and its reader thread, and
every read of a book (``svc.book``, listeners, stats, health, ``wait_live``) passes the
book's own status through :func:`shown_status`. A LIVE book therefore reads as
DISCONNECTED the instant its socket is gone or silent, whatever its actor is doing; the
actor follows with a ``BookStatusChanged`` event when the tree tells it.
"""

from __future__ import annotations

import time

from depthkeeper.actors.core.orderbook import BookStatus

#: statuses that promise (LIVE) or still show (STALE) a socket-fed book
_FED = (BookStatus.LIVE, BookStatus.STALE)


class SocketState:
    """The current socket as every reader sees it. Plain attributes: single writers, racy
    readers (each read is one attribute load, atomic in CPython).

    ``epoch`` and ``down_reason`` are written by the ConnectionActor (and by the tree when the
    ConnectionActor dies); ``last_data_at`` by the reader thread, once per chunk of business
    data, and ``last_answer_at`` when the venue answers one of our requests; ``last_chain_at`` by
    the BookActors, when they apply data to their chain (or, while syncing, buffer it in order).

    Two kinds of "fed": the watchdog asks whether the venue still sends anything for our codes
    (``last_data_at``: a stream that buffers while every book syncs is alive); a LIVE view asks
    whether books are still being fed their chains (``last_chain_at``). They differ when the stream
    stops but a stray event still arrives -- a far-future event, one no chain can take: it is data,
    so the socket is not dead, but it feeds no book, and a LIVE view must not lean on it."""

    __slots__ = ("down_reason", "epoch", "last_answer_at", "last_chain_at", "last_data_at", "opened_at",
                 "silence_bound_s")

    def __init__(self, silence_bound_s: float) -> None:
        #: the epoch of the open socket; 0 while none is open
        self.epoch = 0
        #: monotonic time the open socket was opened
        self.opened_at = 0.0
        #: monotonic time business data was last read from the open socket
        self.last_data_at = 0.0
        #: monotonic time the venue last answered a request of ours on the open socket
        self.last_answer_at = 0.0
        #: read time (monotonic) of the newest data a book applied to its chain from the open socket
        self.last_chain_at = 0.0
        self.down_reason = "not connected yet"
        self.silence_bound_s = silence_bound_s

    def opened(self, epoch: int) -> None:
        now = time.monotonic()
        self.opened_at = now
        self.last_data_at = now  # silence is measured from the open, never from before it
        self.last_answer_at = now
        self.last_chain_at = now
        self.epoch = epoch

    def closed(self, epoch: int, reason: str) -> bool:
        """Mark socket ``epoch`` down (no-op for an older one); True if it was the open one."""
        if epoch != self.epoch or epoch == 0:
            return False
        self.down_reason = reason
        self.epoch = 0
        return True

    def fed(self, epoch: int, now: float) -> None:
        """Reader thread of socket ``epoch``: business data was just read (a late reader of an
        older socket never freshens the current one)."""
        if epoch == self.epoch:
            self.last_data_at = now

    def chained(self, epoch: int, read_at: float) -> None:
        """A book applied data of socket ``epoch``, read at ``read_at``, to its chain (or buffered it
        in order while syncing). Racy check-then-set from several threads: at worst it keeps a
        slightly older time, which only shortens what a view is allowed."""
        if epoch == self.epoch and read_at > self.last_chain_at:
            self.last_chain_at = read_at

    def answered(self, epoch: int, now: float) -> None:
        """Reader thread of socket ``epoch``: the venue just answered a request of ours."""
        if epoch == self.epoch:
            self.last_answer_at = now

    def silent_for(self, now: float) -> float:
        """How long no business data came: what a LIVE book's promise is judged on."""
        return now - self.last_data_at

    def idle_for(self, now: float) -> float:
        """How long the venue sent nothing of what we asked for, data or answers: what the watchdog
        judges the socket on. A venue still answering our requests is alive even while nothing
        streams (e.g. Binance refusing a whole SUBSCRIBE, answered again and again while it is
        split to find the bad code: no stream may stand on the socket for a while)."""
        return now - max(self.last_data_at, self.last_answer_at)

    def problem(self, epoch: int, now: float) -> str | None:
        """Why socket ``epoch`` cannot feed a LIVE book now, or None if it can."""
        current = self.epoch
        if current == 0:
            return f"socket down: {self.down_reason}"
        if epoch != current:
            return "socket replaced; resync pending"
        bound = self.silence_bound_s
        silent = now - self.last_data_at
        if silent > bound:
            return f"socket silent for {silent:.1f}s"
        unfed = now - self.last_chain_at
        if unfed > bound:
            return f"no book data for {unfed:.1f}s (the socket carries nothing a book's chain can take)"
        return None

    @property
    def connected(self) -> bool:
        return self.epoch != 0


def shown_status(status: BookStatus, reason: str, epoch: int, socket: SocketState | None,
                 now: float | None = None) -> tuple[BookStatus, str]:
    """The status a reader may be shown for a book whose actor holds ``status`` on ``epoch``."""
    if socket is None or status not in _FED:
        return status, reason
    problem = socket.problem(epoch, time.monotonic() if now is None else now)
    if problem is None:
        return status, reason
    return BookStatus.DISCONNECTED, problem
