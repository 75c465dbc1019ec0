"""Time to recover, per fault kind, measured from outside the tree like a user would see it.

"Recovered" is deliberately strict: the books a fault hit are LIVE *and* caught up with
the market as it was when the fault struck (seq >= the venue's seq then), on the right
incarnation (a new BookActor ref after a book kill; a newer connection epoch after a
connection kill, an abrupt close or a venue restart). A book that is LIVE but still
showing pre-fault data does not count, nor does a killed book that simply has not
processed its Crash yet.

One tracker thread polls (every ``interval_s``, only while something is pending) the
books involved with non-blocking asks. A fault that does not recover within
``timeout_s`` is counted as unrecovered -- an invariant failure, not a statistic.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from typing import Any

import attrs
import pykka

from depthkeeper.actors.messages import GetBookStats, GetCounters
from depthkeeper.actors.orderbook import BookStatus
from depthkeeper.supervisor.messages import GetChildren


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


@attrs.frozen
class RecoveryFigures:
    """Recovery times of one kind, seconds (nearest-rank percentiles)."""

    kind: str
    count: int
    p50_s: float
    p99_s: float
    max_s: float
    unrecovered: int


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
        self.times: defaultdict[str, list[float]] = defaultdict(list)
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

    def figures(self) -> list[RecoveryFigures]:
        kinds = sorted(set(self.times) | set(self.unrecovered))
        out = []
        for kind in kinds:
            ordered = sorted(self.times.get(kind, []))
            out.append(RecoveryFigures(kind, len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.99),
                                       ordered[-1] if ordered else 0.0, self.unrecovered[kind]))
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
            if p.seqs_at_s is None and self._recovered(p, books):
                self.times[p.kind].append(now - p.started_s)
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
                p.seqs_at_s = None

    def _book_stats(self, codes: set[str]) -> dict[str, tuple[Any, Any]]:
        """code -> (ref, BookStats) for the books that answered (asks in parallel)."""
        futures = {}
        for code in codes:
            ref = self._svc.routes.get(code)
            if ref is not None:
                try:
                    futures[code] = (ref, ref.ask(GetBookStats(), block=False))
                except pykka.ActorDeadError:
                    continue
        out = {}
        deadline = time.monotonic() + 0.5
        for code, (ref, future) in futures.items():
            try:
                out[code] = (ref, future.get(timeout=max(0.01, deadline - time.monotonic())))
            except (pykka.Timeout, pykka.ActorDeadError):
                continue
        return out

    def _recovered(self, p: Pending, books: dict[str, tuple[Any, Any]]) -> bool:
        if p.peer is not None and not self._peer_back(p):
            return False
        for code in p.codes:
            ref, stats = books.get(code, (None, None))
            if stats is None or (p.old_ref is not None and ref is p.old_ref):
                return False
            if stats.status is not BookStatus.LIVE or stats.seq < p.min_seq.get(code, 0) or stats.epoch < p.min_epoch:
                return False
        return True

    def _peer_back(self, p: Pending) -> bool:
        svc = self._svc
        if p.peer == "archive":
            try:
                children = svc.root.ask(GetChildren(), timeout=0.5)
            except (pykka.Timeout, pykka.ActorDeadError):
                return False
            ref = next((c.ref for c in children if c.id == "archive"), None)
        else:
            ref = getattr(svc.peers, p.peer or "", None)
        if ref is None or ref is p.old_ref:
            return False
        try:
            ref.ask(GetCounters(), timeout=0.5)
        except (pykka.Timeout, pykka.ActorDeadError):
            return False
        return True
