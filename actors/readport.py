"""Lock-free reads of a live book from outside the tree (``svc.book``), validated by a seqlock.

An ``ask`` to the BookActor costs two thread wake-ups and waits behind the book's backlog.
Instead the BookActor bumps ``gen`` before and after every message it handles (odd =
writing). A reader copies the two price maps (``dict.copy`` of float keys runs entirely in
C, so under the GIL it is atomic) plus the version fields, then checks ``gen`` did not
move; if it did, it retries. The copy is sorted in the *caller's* thread. The BookActor
never waits for a reader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from depthkeeper.actors.messages import BookView
from depthkeeper.actors.core.orderbook import top_of
from depthkeeper.actors.core.promise import shown_status

if TYPE_CHECKING:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.core.promise import SocketState

T = TypeVar("T")

#: attempts before the caller falls back to asking the actor
MAX_ATTEMPTS = 16


class BookReadPort:
    __slots__ = ("book", "code", "epoch", "gen", "owner", "socket", "updated_at")

    def __init__(self, code: str, book: OrderBook, owner: Any = None) -> None:
        self.code = code
        self.book = book
        #: the BookActor object, whose counters ``consistent`` reads (stats without a message)
        self.owner = owner
        self.gen = 0
        self.updated_at = 0.0
        #: the socket epoch the book syncs on, and the shared socket state (the LIVE promise)
        self.epoch = 0
        self.socket: SocketState | None = None

    def status(self) -> Any:
        """The status a reader may be shown (one attribute read per field: no copy, no sort)."""
        book = self.book
        return shown_status(book.status, book.reason, self.epoch, self.socket)[0]

    def consistent(self, read: Callable[[], T]) -> T | None:
        """``read()`` run between two messages of the owner (retried if one was handled meanwhile).

        Used for views and for stats: an ask queued behind a book's backlog answers late, and a
        thousand of them at once hold up every book's data on a shared dispatcher; this reads in
        the caller's thread instead. ``read`` must only copy (C-level copies are atomic under the
        GIL); work on the copy belongs outside it."""
        for attempt in range(MAX_ATTEMPTS):
            gen = self.gen
            if not gen & 1:
                try:
                    result = read()
                except RuntimeError:  # "mutated during iteration": the owner got in between
                    result = None
                else:
                    if self.gen == gen:
                        return result
            if attempt:
                time.sleep(0)
        return None

    def read(self, depth: int | None) -> BookView | None:
        """A consistent view, or None if the book kept changing under us."""
        copied = self.consistent(self._copy)
        if copied is None:
            return None
        bids, asks, status, reason, seq, horizons, updated_at, epoch = copied
        top_bids, top_asks, complete = top_of(bids, asks, horizons, depth)  # sorted outside the retry loop
        status, reason = shown_status(status, reason, epoch, self.socket)
        return BookView(self.code, status, seq, top_bids, top_asks, updated_at, complete, reason)

    def _copy(self) -> tuple[Any, ...]:
        book = self.book
        return (book.bids.copy(), book.asks.copy(), book.status, book.reason, book.last_seq, book.horizons(),
                self.updated_at, self.epoch)


class ReadPorts:
    """code -> the live BookActor's port; each actor registers itself and removes only its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ports: dict[str, BookReadPort] = {}
        #: code -> levels per side its book last held LIVE, left by a stopped incarnation for the
        #: next one (a restarted book must still know a short snapshot when it sees one)
        self._levels_held: dict[str, tuple[int, int]] = {}

    def register(self, port: BookReadPort) -> None:
        with self._lock:
            self._ports[port.code] = port

    def unregister(self, port: BookReadPort) -> None:
        with self._lock:
            if self._ports.get(port.code) is port:
                del self._ports[port.code]
                if port.owner is not None:
                    self._levels_held[port.code] = port.owner.policy.levels_held()

    def levels_held(self, code: str) -> tuple[int, int]:
        """What the previous incarnation of ``code``'s book last held LIVE: from its port if it is
        still registered (a zombie runs no cleanup), else what it left when it stopped."""
        with self._lock:
            port = self._ports.get(code)
            if port is not None and port.owner is not None:
                return port.owner.policy.levels_held()  # type: ignore[no-any-return]
            return self._levels_held.get(code, (0, 0))

    def get(self, code: str) -> BookReadPort | None:
        return self._ports.get(code)
