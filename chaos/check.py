"""Chaos invariants that run *during* a chaos run: published views against the truth.

Every LIVE view a listener receives, and every LIVE view the poller reads with ``svc.book``,
must be uncrossed and exactly the simulator's book at the view's seq, and fresh: not behind the
venue's seq of ``L`` seconds before it was read (the freshness invariant, chaos_fresh), nor of a
code whose subscription the venue refuses. Checking needs the truth at *that* seq in *that* era, and views keep
arriving for a moment after a venue restart (diffs of the old era still queued in a book's
inbox), when the simulator already serves the new era. So the oracle replays the market:
the simulator's per-symbol generator is deterministic in ``(seed, era, code)`` and draws
nothing else from its RNG (see simulator/market.py), so a private ``SymbolMarket`` replica
yields the exact book at any seq of any era, cheaply and without loading the venue's loop.
A replica is trusted only because it is cross-checked against ``sim.book_at`` (samples
during the run, every book at the end); a disagreement is itself a violation.

The listener callback only appends to a deque; a checker thread does the work, so the
BookActors' publishing is never slowed by the checks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.simulator.market import SymbolMarket, render_side
from depthkeeper.chaos.fresh import Freshness, Polled, RejectWindows

Levels = tuple[tuple[float, float], ...]
#: a view may arrive this long after its era ended (queued old-era diffs after a restart)
ERA_GRACE_S = 5.0
#: cross-check the replica against sim.book_at once per this many checked views
SAMPLE_EVERY = 97
#: keep at most this many violation texts (the count is always exact)
MAX_TEXTS = 50
#: pictures per code whose check result is remembered (listener and poller read the same ones)
PICTURES_KEPT = 8


def levels_from_text(rows: Iterable[Iterable[Any]]) -> Levels:
    """Wire text rows ``[["64123.50", "0.25"], ...]`` as the client parses them."""
    return tuple((float(price), float(size)) for price, size in rows)


@attrs.frozen
class EraSpan:
    """Era ``era`` is current from ``start_s`` (monotonic) until the next span starts."""

    era: int
    start_s: float


class EraTimeline:
    """When each simulator era began, so a view can be matched against the eras it may be from."""

    def __init__(self, era: int, start_s: float) -> None:
        self._lock = threading.Lock()
        self._spans: list[EraSpan] = [EraSpan(era, start_s)]

    def begin(self, era: int, start_s: float) -> None:
        """Call *before* the restart that starts ``era`` (its views can only come after)."""
        with self._lock:
            self._spans.append(EraSpan(era, start_s))

    @property
    def current(self) -> int:
        with self._lock:
            return self._spans[-1].era

    def candidates(self, at_s: float) -> list[int]:
        """Eras a view received at ``at_s`` may belong to, newest first."""
        with self._lock:
            spans = list(self._spans)
        out = []
        for i, span in enumerate(spans):
            end_s = spans[i + 1].start_s if i + 1 < len(spans) else None
            if span.start_s <= at_s and (end_s is None or end_s + ERA_GRACE_S >= at_s):
                out.append(span.era)
        return out[::-1]


class ReplayOracle:
    """The exact book of ``code`` at ``seq`` in ``era``, by replaying the simulator's generator."""

    def __init__(self, seed: int, levels: int) -> None:
        self.seed = seed
        self.levels = levels
        self._replicas: dict[tuple[int, str], SymbolMarket] = {}

    def book(self, era: int, code: str, seq: int) -> tuple[Levels, Levels]:
        replica = self._replicas.get((era, code))
        if replica is None or seq < replica.oldest_seq():
            replica = SymbolMarket(code, seed=self.seed, era=era, levels=self.levels, history_limit=None)
            self._replicas[(era, code)] = replica
        out: list[Any] = []
        while replica.seq < seq:
            replica.step(out)
            out.clear()
        _, bids, asks = replica.levels_at(seq)
        return (levels_from_text(render_side(bids, None, best_high=True)),
                levels_from_text(render_side(asks, None, best_high=False)))

def crossed(view: BookView) -> bool:
    return bool(view.bids and view.asks and view.bids[0][0] >= view.asks[0][0])


class ViewChecker:
    """Listener + checker thread: every LIVE view received or polled is checked against the truth.

    ``freshness`` (optional) adds the freshness invariant, ``rejects`` the rule that no LIVE
    view of a code is read while the venue refuses it. The poller hands its views to
    :meth:`offer`; a listener calls the checker itself.
    """

    def __init__(self, sim: Any, oracle: ReplayOracle, timeline: EraTimeline, interval_s: float = 0.02, *,
                 freshness: Freshness | None = None, rejects: RejectWindows | None = None) -> None:
        self._sim = sim
        self._oracle = oracle
        self._timeline = timeline
        self._interval_s = interval_s
        self.freshness = freshness
        self.rejects = rejects
        self._inbox: deque[tuple[float, Any]] = deque()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depthkeeper-chaos-checker", daemon=True)
        #: code -> {(seq, bids, asks): the era it matched, or None if it matched none}, newest last
        self._pictures: dict[str, dict[tuple[int, Levels, Levels], int | None]] = {}
        #: code -> seq of the last stale view reported (one text per stale episode)
        self._stale_seq: dict[str, int] = {}
        self.received = 0
        self.polled = 0
        self.checked = 0
        self.samples = 0
        self.status_events = 0
        self.violations = 0
        self.stale = 0
        self.rejected_live = 0
        self.texts: list[str] = []

    # called on the hub's dispatcher thread: must stay trivial
    def __call__(self, event: Any) -> None:
        self._inbox.append((time.monotonic(), event))

    def offer(self, read_at_s: float, event: Any) -> None:
        """A view read at ``read_at_s`` by someone else (the poller)."""
        self._inbox.append((read_at_s, event))

    def start(self) -> None:
        self._thread.start()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything received so far has been checked."""
        deadline = time.monotonic() + timeout_s
        while self._inbox or not self._idle.is_set():
            if time.monotonic() >= deadline:
                return False
            self._idle.clear()
            self._idle.wait(max(0.0, min(0.05, deadline - time.monotonic())))
        return True

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def violate(self, text: str) -> None:
        self.violations += 1
        if len(self.texts) < MAX_TEXTS:
            self.texts.append(text)

    def _run(self) -> None:
        while True:
            while self._inbox:
                self._idle.clear()
                at_s, event = self._inbox.popleft()
                self._handle(at_s, event)
            self._idle.set()
            if self._stopping.wait(self._interval_s) and not self._inbox:
                return

    def _handle(self, at_s: float, event: Any) -> None:
        if isinstance(event, BookStatusChanged):
            self.status_events += 1
            return
        if isinstance(event, Polled):
            self.polled += 1
            self._view(at_s, event.view, "polled")
        elif isinstance(event, BookUpdated):
            self.received += 1
            self._view(at_s, event.view, "listener")

    def _view(self, at_s: float, view: BookView, source: str) -> None:
        if view.status is not BookStatus.LIVE:
            return
        if self.rejects is not None and self.rejects.covers(view.code, at_s):
            self.rejected_live += 1
            self.violate(f"LIVE view ({source}) {view.code} seq {view.seq} read at {at_s:.3f} while the venue "
                         f"refuses its subscription (reason {view.reason!r})")
        era = self._era(at_s, view)
        if self.freshness is None or era is None:
            return
        age_s = max(0.0, time.time() - (time.monotonic() - at_s) - view.updated_at) if view.updated_at else 0.0
        problem = self.freshness.problem(view, era, at_s, source, age_s)
        if problem is None:
            self._stale_seq.pop(view.code, None)
            return
        self.stale += 1
        if self._stale_seq.get(view.code) == view.seq:
            self.violations += 1  # the same stale episode: counted, not described again
            return
        self._stale_seq[view.code] = view.seq
        self.violate(problem)

    def _era(self, at_s: float, view: BookView) -> int | None:
        """Check the picture (once per distinct picture); return the era it belongs to."""
        key = (view.seq, view.bids, view.asks)
        seen = self._pictures.setdefault(view.code, {})
        if key in seen:
            return seen[key]
        era = self._check_picture(at_s, view)
        seen[key] = era
        if len(seen) > PICTURES_KEPT:
            del seen[next(iter(seen))]
        return era

    def _check_picture(self, at_s: float, view: BookView) -> int | None:
        self.checked += 1
        if crossed(view):
            self.violate(f"crossed LIVE view {view.code} seq {view.seq}: bid {view.bids[0]} >= ask {view.asks[0]}")
            return None
        eras = self._timeline.candidates(at_s)
        for era in eras:
            if self._oracle.book(era, view.code, view.seq) == (view.bids, view.asks):
                if self.checked % SAMPLE_EVERY == 0:
                    self._sample(era, view)
                return era
        self.violate(f"LIVE view {view.code} seq {view.seq} differs from the truth at that seq (eras {eras}): "
                     f"{describe_diff(self._oracle.book(eras[0], view.code, view.seq), (view.bids, view.asks))}")
        return None

    def _sample(self, era: int, view: BookView) -> None:
        """Cross-check the replica against the simulator itself (same era only)."""
        if era != self._timeline.current:
            return
        try:
            truth = self._sim.book_at(view.code, view.seq)
        except Exception:  # noqa: BLE001 - the era moved on meanwhile, or the sim is stopping
            return
        self.samples += 1
        if (levels_from_text(truth["bids"]), levels_from_text(truth["asks"])) != (view.bids, view.asks):
            self.violate(f"replay oracle disagrees with sim.book_at({view.code}, {view.seq})")


def describe_diff(truth: tuple[Levels, Levels], seen: tuple[Levels, Levels]) -> str:
    """A short human account of how two books differ (first differing level per side)."""
    parts = []
    for side, want, got in (("bids", truth[0], seen[0]), ("asks", truth[1], seen[1])):
        if want == got:
            continue
        i = next((k for k, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
        parts.append(f"{side}[{i}] truth {want[i] if i < len(want) else None} seen {got[i] if i < len(got) else None} "
                     f"({len(want)} vs {len(got)} levels)")
    return "; ".join(parts) or "equal"
