"""The freshness invariant of a chaos run: a LIVE view is never older than the LIVE promise allows.

A book is LIVE only while its socket has delivered business data within the heartbeat silence
bound (DESIGN.md §3, "LIVE is a promise"). Seen from outside, that means: every LIVE view read
at time ``t`` has ``seq >= the venue's seq at t - L``, with ``L`` = the silence bound plus a
margin (0.5 s) for the last diffs in flight. Today's other invariant ("equal to the venue's book
at its seq", chaos_check) cannot see a frozen book: a view can be exactly right at its seq and
still minutes old. This one can.

**The venue's history.** The simulator runs in the runner's process, so a sampler thread asks it
for its per-symbol seqs (and era) every ``interval_s``. Each sample is stamped with the monotonic
time taken *after* the answer came back: the seqs were read at or before that stamp, and seqs
only grow within an era, so a sample is a lower bound of the venue at its stamp. The check
compares a view with the newest sample at or before ``t - L`` -- a lower bound of the venue at
``t - L`` -- so every violation reported is real; what the sampling costs is sharpness (a book
stale by less than one sample period more than ``L`` can pass).

**Eras.** A venue restart resets seqs, so a view and the venue are compared within the same era:
the view's era is the one whose book its levels match (chaos_check's replay oracle). A LIVE view
of an older era than the venue's at ``t - L`` is stale whatever its seq (that era's stream is
dead); one of a newer era is newer than anything the venue had at ``t - L``.

**Who reads.** Both the views listeners receive (stamped when the listener is called, right
after the hub read them) and views a reader thread polls with ``svc.book(code)`` -- what a trading
bot sees (stamped *before* the call, so the stamp is never later than the read). Polled views go
through the same checker as the listeners' (content and freshness).

**Rejected codes.** While the venue refuses a code's subscription nothing of it is streamed, so
from ``L`` after the reject took effect until it is lifted no LIVE view of that code may be read
(:class:`RejectWindows`).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from depthkeeper.actors.messages import BookView
from depthkeeper.actors.core.orderbook import BookStatus

#: added to the heartbeat silence bound: the diffs in flight when the socket went quiet
FRESHNESS_MARGIN_S = 0.5


@attrs.frozen
class VenueSample:
    """The venue as the sampler saw it: ``seqs`` were read at or before ``at_s`` (monotonic)."""

    at_s: float
    era: int
    seqs: Mapping[str, int]


class SeqHistory:
    """Venue samples in time order; ``at(t)`` is a lower bound of the venue at ``t``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._samples: list[VenueSample] = []

    def record(self, sample: VenueSample) -> None:
        with self._lock:
            if self._times and sample.at_s < self._times[-1]:
                return  # never out of order (one sampler thread; defensive)
            self._times.append(sample.at_s)
            self._samples.append(sample)

    def at(self, at_s: float) -> VenueSample | None:
        """The newest sample taken at or before ``at_s`` (None before the first one)."""
        with self._lock:
            i = bisect.bisect_right(self._times, at_s)
            return self._samples[i - 1] if i else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)


class VenueSampler:
    """A thread sampling the simulator's per-symbol seqs into a :class:`SeqHistory`."""

    def __init__(self, sim: Any, history: SeqHistory, interval_s: float = 0.02) -> None:
        self._sim = sim
        self.history = history
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depthkeeper-chaos-sampler", daemon=True)
        self.failures = 0

    def start(self) -> None:
        self.sample()  # the history has a point from the start on
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def sample(self) -> None:
        try:
            state = self._sim.state()
        except Exception:  # noqa: BLE001 - stopping, or its loop was busy past the call timeout
            self.failures += 1
            return
        self.history.record(VenueSample(time.monotonic(), int(state["era"]), dict(state["seqs"])))

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.sample()


@attrs.frozen
class Polled:
    """A view read by the poller with ``svc.book`` (a reader thread, like a trading bot)."""

    view: BookView


class Poller:
    """A reader thread: ``svc.book(code)`` for every desired code, every ``interval_s``; each view
    goes to ``sink(read_at_s, Polled(view))`` with the time taken just before the read."""

    def __init__(self, svc: Any, sink: Callable[[float, Any], None], interval_s: float = 0.01) -> None:
        self._svc = svc
        self._sink = sink
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depthkeeper-chaos-poller", daemon=True)
        self.reads = 0
        self.unavailable = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            for code in sorted(self._svc.subscriptions()):
                before_s = time.monotonic()
                try:
                    view = self._svc.book(code, timeout_s=0.5)
                except Exception:  # noqa: BLE001 - restarting, unsubscribed meanwhile, stopping
                    self.unavailable += 1
                    continue
                self.reads += 1
                self._sink(before_s, Polled(view))


class RejectWindows:
    """Per code, the spans in which the venue refuses its subscription and no LIVE view may be read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[str, list[tuple[float, float | None]]] = {}

    def open(self, code: str, from_s: float) -> None:
        with self._lock:
            self._spans.setdefault(code, []).append((from_s, None))

    def close(self, code: str, at_s: float) -> None:
        """The reject is lifted at ``at_s`` (a resubscribe may make the book LIVE from then on)."""
        with self._lock:
            spans = self._spans.get(code, [])
            for i, (start_s, end_s) in enumerate(spans):
                if end_s is None:
                    spans[i] = (start_s, max(start_s, at_s))

    def covers(self, code: str, at_s: float) -> bool:
        with self._lock:
            return any(start_s <= at_s and (end_s is None or at_s < end_s)
                       for start_s, end_s in self._spans.get(code, ()))


class Freshness:
    """The check itself: ``problem(...)`` says why a LIVE view read at ``read_at_s`` is stale, or None."""

    def __init__(self, history: SeqHistory, bound_s: float) -> None:
        self.history = history
        #: L: the heartbeat silence bound plus the margin
        self.bound_s = bound_s
        self.checked = 0
        #: reads judged against a venue sample (the rest came before the history reached t - L)
        self.compared = 0

    def problem(self, view: BookView, era: int, read_at_s: float, source: str, age_s: float) -> str | None:
        if view.status is not BookStatus.LIVE:
            return None
        self.checked += 1
        ref = self.history.at(read_at_s - self.bound_s)
        if ref is None or view.code not in ref.seqs:
            return None
        self.compared += 1
        venue_seq = ref.seqs[view.code]
        if era > ref.era or (era == ref.era and view.seq >= venue_seq):
            return None
        behind = (f"{venue_seq - view.seq} diffs behind" if era == ref.era
                  else f"era {era} while the venue was already in era {ref.era}")
        return (f"stale LIVE view ({source}) {view.code} seq {view.seq} (era {era}) read at {read_at_s:.3f}: "
                f"the venue was at seq {ref.seqs[view.code]} (era {ref.era}) by t-L = {read_at_s - self.bound_s:.3f} "
                f"(L {self.bound_s:.2f}s), {behind}; status {view.status.value}, age {age_s:.2f}s, "
                f"reason {view.reason!r}")
