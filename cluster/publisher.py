"""``SlotPublisher``: one slot's books (one BookService, one venue socket) onto the bus, under one epoch.

It is a BookService listener (a callable): each BookUpdated / BookStatusChanged becomes at most one
entry (entries.Track decides: snapshot, delta between published views, or status), appended to
the code's pending list. A flusher thread publishes everything pending in one pipelined round
(one fenced script call per bucket), so a backlog becomes bigger batches, not more round trips.

Any refusal (FENCED: a newer owner took the slot; LOST: Redis lost our state; BADSEQ) or an
unknown outcome (Redis unreachable mid-call) closes the publisher at once and reports it: the
shard then stops the slot's socket. Nothing is written after that.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from depthkeeper.cluster.bus import Bus, BusUnavailable, refused
from depthkeeper.cluster.compat import BookStatusChanged, BookUpdated, reason_of
from depthkeeper.cluster.entries import LIVE, REJECTED, REMOVED, Entry, Track, status_name

#: pending entries of one code beyond which they collapse into one snapshot (a slow Redis)
MAX_PENDING = 2000

#: how long the flusher waits for more entries before a round trip (see _run)
LINGER_S = 0.0

OnRefused = Callable[[int, str, str], None]


class SlotPublisher:
    def __init__(self, bus: Bus, slot: int, epoch: int, owner: str, *, snapshot_every: int,
                 on_refused: OnRefused, linger_s: float = LINGER_S) -> None:
        self.bus = bus
        self.slot = slot
        self.epoch = epoch
        self.owner = owner
        self.snapshot_every = snapshot_every
        self.linger_s = linger_s
        self._on_refused = on_refused
        self._tracks: dict[str, Track] = {}
        self._pending: dict[str, list[Entry]] = {}
        #: last bus seq handed to the flusher, per code (a collapse restarts after it)
        self._taken: dict[str, int] = {}
        #: codes with at least one entry accepted in this epoch (heartbeats go only to these)
        self._acked: set[str] = set()
        self._cond = threading.Condition()
        self.closed = False
        self._inflight = False
        self._handing_over = False
        self.read_view: Callable[[str], Any] | None = None
        self.counters: Counter[str] = Counter()
        self._log = logger.bind(actor="publisher", slot=slot, epoch=epoch)
        self._thread = threading.Thread(target=self._run, name=f"depthkeeper-publisher-{slot}", daemon=True)
        self._thread.start()

    # -- entries in ------------------------------------------------------------------------

    def _push(self, code: str, entry: Entry | None) -> None:
        """Queue one entry (condition held)."""
        if entry is None or self.closed or self._handing_over:
            return
        pending = self._pending.setdefault(code, [])
        pending.append(entry)
        track = self._tracks.get(code)
        if len(pending) > MAX_PENDING and track is not None:
            pending[:] = [track.restate(self._taken.get(code, 0))]
            self.counters["collapsed"] += 1
        self._cond.notify_all()

    def claim(self, codes: Iterable[str], why: str) -> None:
        """Start codes in this epoch: a RESYNCING entry with bus seq 1 fences the previous owner."""
        with self._cond:
            for code in codes:
                if code not in self._tracks:
                    track = self._tracks[code] = Track()
                    self._push(code, track.status("RESYNCING", why))

    def retire(self, codes: Iterable[str]) -> None:
        """Codes left the desired set: a final REMOVED entry (the script shrinks the stream to it and
        resets the code's fencing state); the code is forgotten here (a later claim starts afresh)."""
        with self._cond:
            for code in codes:
                track = self._tracks.pop(code, None)
                if track is not None:
                    self._push(code, track.status(REMOVED, "removed from the cluster's desired set"))
                    self._taken.pop(code, None)

    def handover(self, why: str, timeout_s: float = 2.0) -> None:
        """Graceful end: every code goes RESYNCING (``why``), those entries are flushed, then close."""
        with self._cond:
            for code, track in self._tracks.items():
                if track.state not in (REMOVED, REJECTED):
                    self._push(code, track.status("RESYNCING", why))
            self._handing_over = True  # nothing the service still says may follow those entries
        self.flush(timeout_s)
        self.close()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued so far is published (False: closed or timed out)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._pending or self._inflight) and not self.closed and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return not (self._pending or self._inflight or self.closed)

    def reject(self, code: str, reason: str) -> None:
        with self._cond:
            track = self._tracks.get(code)
            if track is not None:
                self._push(code, track.status(REJECTED, reason))

    def __call__(self, event: Any) -> None:
        """BookService listener: runs on the service's listener thread."""
        if isinstance(event, BookUpdated):
            self.offer_view(event.view)
        elif isinstance(event, BookStatusChanged):
            name = status_name(event.new)
            if name == LIVE:
                view = self._current(event.code)  # the LIVE book itself comes with a view
                if view is not None:
                    self.offer_view(view)
                return
            with self._cond:
                track = self._tracks.get(event.code)
                if track is not None:
                    self._push(event.code, track.status(name, reason_of(event) or f"{status_name(event.old)} -> {name}",
                                                        event.seq))

    def offer_view(self, view: Any) -> None:
        with self._cond:
            track = self._tracks.get(view.code)
            if track is not None and track.state not in (REMOVED, REJECTED):
                self._push(view.code, track.view(view, self.snapshot_every))

    def sweep(self, codes: Iterable[str]) -> None:
        """Publish each code's current view (a book that went LIVE before we listened, a quiet market)."""
        for code in codes:
            view = self._current(code)
            if view is not None:
                self.offer_view(view)

    def _current(self, code: str) -> Any:
        if self.read_view is None:
            return None
        try:
            return self.read_view(code)
        except Exception:  # noqa: BLE001 - not subscribed yet / restarting: the next event brings it
            return None

    # -- out to the bus --------------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        """A round trip to the bus is under way."""
        return self._inflight

    def acked(self) -> list[str]:
        """Codes of this slot with an accepted entry in this epoch (what the heartbeat may stamp)."""
        with self._cond:
            return sorted(self._acked.intersection(self._tracks))

    def codes(self) -> list[str]:
        with self._cond:
            return sorted(self._tracks)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self.closed:
                    self._cond.wait()
            if self.linger_s:
                # entries arriving together share one round trip: fewer, larger script calls cost the
                # shard far less CPU (its GIL is the books' too)
                time.sleep(self.linger_s)
            with self._cond:
                if self.closed:
                    return
                batches, self._pending = self._pending, {}
                for code, entries in batches.items():
                    self._taken[code] = entries[-1][1]
                self._inflight = True
            ok = self._publish(batches)
            with self._cond:
                self._inflight = False
                self._cond.notify_all()
            if not ok:
                return

    def _publish(self, batches: dict[str, list[Entry]]) -> bool:
        try:
            verdicts = self.bus.publish(self.epoch, self.owner, self.slot, batches)
        except BusUnavailable as exc:
            self._refuse("-", f"UNKNOWN: Redis unavailable mid-publish ({exc})")
            return False
        for code, verdict in verdicts.items():
            if refused(verdict):
                self._refuse(code, verdict)
                return False
        self.counters["entries"] += sum(len(v) for v in batches.values())
        self.counters["calls"] += 1
        with self._cond:
            self._acked.update(verdicts)
        return True

    def _refuse(self, code: str, verdict: str) -> None:
        kind = verdict.split(":")[0].lower()
        self.counters[kind] += 1
        self._log.bind(symbol=code).warning("publish refused ({}): stopping slot {}", verdict, self.slot)
        self.close()
        self._on_refused(self.slot, code, verdict)

    def close(self) -> None:
        """Stop publishing at once (pending entries are dropped). Idempotent, any thread."""
        with self._cond:
            self.closed = True
            self._pending = {}
            self._cond.notify_all()

    def join(self, timeout_s: float = 5.0) -> None:
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
