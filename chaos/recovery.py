"""Time to recover, per fault kind, measured from outside the tree like a user would see it.

"Recovered" is deliberately strict: the books a fault hit are LIVE *and* caught up with
the market as it was when the fault struck (seq >= the venue's seq then), on the right
incarnation (a new BookActor ref after a book kill; a newer connection epoch after a
connection kill, an abrupt close or a venue restart). A book that is LIVE but still
showing pre-fault data does not count, nor does a killed book that simply has not
processed its Crash yet. A book whose subscription the venue refuses must instead show
REJECTED (a reject, or a kill of that book while the reject stands); once the reject is
lifted and the code subscribed again, "resubscribe" measures the way back to LIVE.

One tracker thread polls (every ``interval_s``, only while something is pending) the
books involved with non-blocking asks. A fault that does not recover within
``timeout_s`` is counted as unrecovered -- an invariant failure, not a statistic.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import pykka

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import GetBookStats, GetCounters

#: how long one poll waits for the books' answers (a busy book answers behind its backlog)
ASK_BUDGET_S = 0.2


@attrs.define
class Pending:
    """One fault (or kill) whose recovery is being waited for."""

    kind: str
    started_s: float
    codes: tuple[str, ...] = ()
    min_seq: dict[str, int] = attrs.Factory(dict)
    #: book kills: the route must point elsewhere; singleton kills: the peer ref must differ
    old_ref: Any = None
    #: "subscription" | "snapshot" | "archive": a singleton that must be back and answering
    peer: str | None = None
    #: books must be on a connection epoch >= this
    min_epoch: int = 0
    #: a stall: thresholds are taken when it ends (until then nothing can recover)
    seqs_at_s: float | None = None
    label: str = ""
    #: id of the chaos event that caused it (the runner's event log)
    source: int = 0
    #: the status that counts as recovered: LIVE (with the seq and epoch above), or REJECTED
    #: for a book whose subscription the venue refuses (shown as such: no seq, no epoch)
    status: BookStatus = BookStatus.LIVE


@attrs.frozen
class Recovered:
    """One measured recovery."""

    kind: str
    started_s: float
    ended_s: float
    codes: tuple[str, ...]
    label: str
    source: int = 0

    @property
    def seconds(self) -> float:
        return self.ended_s - self.started_s


@attrs.frozen
class Event:
    """One executed chaos action (the runner's log), for telling which recoveries overlapped."""

    id: int
    what: str
    start_s: float
    end_s: float  # > start_s for a stall: it disrupts every book while it lasts
    code: str | None = None


#: REST faults are spent by whichever fetch comes next: one armed shortly before may slow any resync
#: (the bad snapshot shapes are aimed at one code: another recovery of that code overlaps them)
_REST_FAULTS = frozenset({"fault:rest_delay", "fault:rest_fail", "fault:stale_snapshot"})
_REST_LOOKBACK_S = 1.0


def isolated(rec: Recovered, records: list[Recovered], events: list[Event]) -> bool:
    """True when no other disruption of the same books was in progress during ``rec``.

    In progress = another measured recovery of one of its books (global faults cover every
    book) overlapping it, a snapshot-actor recovery overlapping it, a stall in progress, or
    a REST fault armed within ``_REST_LOOKBACK_S`` before it (it may be spent on this resync).
    """
    codes = set(rec.codes)
    for other in records:
        if other.source == rec.source or other.ended_s < rec.started_s or other.started_s > rec.ended_s:
            continue
        if codes & set(other.codes) or other.kind in ("snapshot", "zombie:snapshot"):
            return False
    for e in events:
        if e.id == rec.source:
            continue
        if e.what in _REST_FAULTS and rec.started_s - _REST_LOOKBACK_S <= e.start_s <= rec.ended_s:
            return False
        if e.start_s < e.end_s and e.start_s <= rec.ended_s and e.end_s >= rec.started_s:
            return False  # a stall: no frame reaches any book (its own recovery starts at its end)
    return True


@attrs.frozen
class RecoveryFigures:
    """Recovery times of one kind, seconds (nearest-rank percentiles).

    ``isolated_*`` cover only the recoveries no other disruption overlapped (the runner
    decides which): they show the cost of this fault alone, the others the cost in the mix.
    """

    kind: str
    count: int
    p50_s: float
    p99_s: float
    max_s: float
    unrecovered: int
    isolated_count: int = 0
    isolated_p99_s: float = 0.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(len(ordered), rank) - 1]


class RecoveryTracker:
    """Watches pending recoveries on a thread of its own; see the module docstring."""

    def __init__(self, svc: Any, sim: Any, *, timeout_s: float, interval_s: float = 0.01) -> None:
        self._svc = svc
        self._sim = sim
        self.timeout_s = timeout_s
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._pending: list[Pending] = []
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depthkeeper-chaos-recovery", daemon=True)
        self.records: list[Recovered] = []
        self._avoid: set[Any] = set()
        self.unrecovered: Counter[str] = Counter()
        self.cancelled = 0
        self.texts: list[str] = []

    # -- API (runner thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5.0)

    def add(self, pending: Pending) -> None:
        with self._lock:
            self._pending.append(pending)
        self._wake.set()

    def on_new_era(self, epoch_before: int, seqs: dict[str, int]) -> None:
        """A venue restart: old-era seq thresholds mean nothing now; require the new era."""
        with self._lock:
            for p in self._pending:
                p.min_epoch = max(p.min_epoch, epoch_before + 1)
                if p.seqs_at_s is None:
                    p.min_seq = {c: seqs.get(c, 0) for c in p.codes}

    def avoid(self, ref: Any) -> None:
        """Never ask ``ref`` again (a zombie: its asks would only time out)."""
        self._avoid.add(ref)

    def cancel_code(self, code: str) -> None:
        """``code`` was unsubscribed: stop waiting for it (recoveries of other codes go on)."""
        with self._lock:
            for p in list(self._pending):
                if code in p.codes:
                    p.codes = tuple(c for c in p.codes if c != code)
                    p.min_seq.pop(code, None)
                    if not p.codes and p.peer is None:
                        self._pending.remove(p)
                        self.cancelled += 1

    def cancel_source(self, source: int) -> bool:
        """Stop waiting for the recovery caused by event ``source``; True if it was still pending."""
        with self._lock:
            mine = [p for p in self._pending if p.source == source]
            self._pending = [p for p in self._pending if p.source != source]
            self.cancelled += len(mine)
        return bool(mine)

    def waiting(self, source: int, status: BookStatus) -> bool:
        """True while a recovery to ``status`` caused by event ``source`` is pending (not measured,
        not timed out)."""
        with self._lock:
            return any(p.source == source and p.status is status for p in self._pending)

    def complete_status(self, code: str, status: BookStatus, ended_s: float) -> None:
        """``code`` was seen showing ``status`` at ``ended_s`` by the runner itself (between two of
        our polls): the recoveries waiting for exactly that are measured now."""
        with self._lock:
            done = [p for p in self._pending
                    if p.status is status and p.codes == (code,) and p.peer is None and p.old_ref is None]
            self._pending = [p for p in self._pending if p not in done]
            for p in done:
                self.records.append(Recovered(p.kind, p.started_s, ended_s, p.codes, p.label, p.source))

    def cancel_status(self, code: str, status: BookStatus) -> None:
        """Stop waiting for ``code`` to show ``status`` (a reject was lifted: REJECTED is over)."""
        with self._lock:
            gone = [p for p in self._pending if p.status is status and code in p.codes]
            self._pending = [p for p in self._pending if p not in gone]
            self.cancelled += len(gone)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is pending (every recovery measured or timed out)."""
        deadline = time.monotonic() + timeout_s
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            self._stopping.wait(0.01)
        return True

    def figures(self, isolated: Callable[[Recovered], bool] = lambda _r: True) -> list[RecoveryFigures]:
        kinds = sorted({r.kind for r in self.records} | set(self.unrecovered))
        out = []
        for kind in kinds:
            mine = [r for r in self.records if r.kind == kind]
            ordered = sorted(r.seconds for r in mine)
            alone = sorted(r.seconds for r in mine if isolated(r))
            out.append(RecoveryFigures(kind, len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.99),
                                       ordered[-1] if ordered else 0.0, self.unrecovered[kind], len(alone),
                                       percentile(alone, 0.99)))
        return out

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.pending:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            self._tick()
            self._stopping.wait(self._interval_s)

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            pending = list(self._pending)
        self._take_stall_thresholds(pending, now)
        books = self._book_stats({c for p in pending if p.seqs_at_s is None for c in p.codes})
        done: list[Pending] = []
        for p in pending:
            ended_s = self._recovered(p, books) if p.seqs_at_s is None else None
            if ended_s is not None:
                self.records.append(Recovered(p.kind, p.started_s, ended_s, p.codes, p.label, p.source))
                done.append(p)
            elif now - p.started_s > self.timeout_s:
                self.unrecovered[p.kind] += 1
                if len(self.texts) < 50:
                    self.texts.append(f"{p.kind} {p.label} did not recover within {self.timeout_s}s")
                done.append(p)
        if done:
            with self._lock:
                self._pending = [p for p in self._pending if p not in done]

    def _take_stall_thresholds(self, pending: list[Pending], now: float) -> None:
        due = [p for p in pending if p.seqs_at_s is not None and now >= p.seqs_at_s]
        if not due:
            return
        try:
            seqs = self._sim.state()["seqs"]
        except Exception:  # noqa: BLE001 - the simulator is stopping; the timeout will tell
            return
        with self._lock:
            for p in due:
                p.min_seq = {c: seqs.get(c, 0) for c in p.codes}
                p.started_s = p.seqs_at_s or p.started_s  # a stall is measured from its end
                p.seqs_at_s = None

    def _book_stats(self, codes: set[str]) -> dict[str, tuple[Any, Any, float]]:
        """code -> (ref, BookStats, when the answer was in hand) for the books that answered.

        The asks go out in parallel; the answer time is taken after each ``get``, so it is an
        upper bound and a recovery is never reported faster than it was. Known zombies are
        never asked: they would only make every other measurement wait for a timeout.
        """
        futures = {}
        for code in codes:
            ref = self._svc.tree.ref(f"book:{code}")
            if ref is not None and ref not in self._avoid:
                try:
                    futures[code] = (ref, ref.ask(GetBookStats(), block=False))
                except pykka.ActorDeadError:
                    continue
        out = {}
        deadline = time.monotonic() + ASK_BUDGET_S
        for code, (ref, future) in futures.items():
            try:
                stats = future.get(timeout=max(0.001, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - timeout, dead, or a zombie bullet spent on this ask
                continue
            out[code] = (ref, stats, time.monotonic())
        return out

    def _recovered(self, p: Pending, books: dict[str, tuple[Any, Any, float]]) -> float | None:
        """When ``p`` was seen recovered (an upper bound), or None if it is not yet."""
        seen_s: list[float] = []
        if p.peer is not None:
            peer_s = self._peer_back(p)
            if peer_s is None:
                return None
            seen_s.append(peer_s)
        for code in p.codes:
            ref, stats, answered_s = books.get(code, (None, None, 0.0))
            if stats is None or (p.old_ref is not None and ref is p.old_ref):
                return None
            if p.status is not BookStatus.LIVE:
                if stats.status is not p.status:
                    return None
            elif stats.status is not BookStatus.LIVE or stats.seq < p.min_seq.get(code, 0) or stats.epoch < p.min_epoch:
                return None
            seen_s.append(answered_s)
        return max(seen_s, default=time.monotonic())

    def _peer_back(self, p: Pending) -> float | None:
        ref = self._svc.tree.ref(p.peer) if p.peer else None
        if ref is None or ref is p.old_ref or ref in self._avoid:
            return None
        try:
            ref.ask(GetCounters(), timeout=ASK_BUDGET_S)
        except Exception:  # noqa: BLE001 - timeout, dead, or a zombie bullet spent on this ask
            return None
        return time.monotonic()
