"""The freshness invariant: a LIVE view behind the venue's seq of L seconds before its read is reported.

Unit tests feed the real ViewChecker views read at chosen times against a hand-made venue
history; one test runs a real service whose silence bound is far longer than the checker's L
through a real blackhole, so its books stay LIVE while frozen: the poller and the checker must
report them stale.
"""

from __future__ import annotations

import time

import attrs
import pytest

from depthkeeper.actors.messages import BookUpdated, BookView
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.chaos.check import EraTimeline, ReplayOracle, ViewChecker
from depthkeeper.chaos.fresh import (
    Freshness,
    Polled,
    Poller,
    RejectWindows,
    SeqHistory,
    VenueSample,
    VenueSampler,
)

from .conftest import chaos_config, wait_until

pytestmark = pytest.mark.chaos

L_S = 1.25
CODE = "BTCUSDT"


class NoSim:
    def book_at(self, code: str, seq: int) -> dict:
        raise RuntimeError("not running")


def view_at(oracle: ReplayOracle, era: int, seq: int, status: BookStatus = BookStatus.LIVE,
            updated_at: float = 0.0) -> BookView:
    bids, asks = oracle.book(era, CODE, seq)
    return BookView(CODE, status, seq, bids, asks, updated_at, (len(bids), len(asks)), reason="in sync")


def history(base_s: float, *points: tuple[float, int, int]) -> SeqHistory:
    """Samples (seconds after ``base_s``, era, BTCUSDT seq)."""
    out = SeqHistory()
    for at_s, era, seq in points:
        out.record(VenueSample(base_s + at_s, era, {CODE: seq, "ETHUSDT": 1}))
    return out


def run_checker(reads: list[tuple[float, object]], hist: SeqHistory, timeline: EraTimeline,
                rejects: RejectWindows | None = None) -> ViewChecker:
    checker = ViewChecker(NoSim(), ReplayOracle(3, 10), timeline, freshness=Freshness(hist, L_S), rejects=rejects)
    checker.start()
    for at_s, event in reads:
        checker.offer(at_s, event)
    assert checker.drain(5.0)
    checker.stop()
    return checker


@pytest.fixture
def base_s() -> float:
    return time.monotonic() - 100.0  # a past the checker can compute ages against


def test_a_live_view_behind_the_venue_at_t_minus_l_is_reported(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100), (5.0, 1, 300))
    read_s = base_s + 6.5  # t - L = 5.25: the venue was at 300 (or later) by then
    updated_at = time.time() - (time.monotonic() - (base_s + 4.0))  # last changed 2.5 s before the read
    stale = view_at(oracle, 1, 200, updated_at=updated_at)
    checker = run_checker([(read_s, BookUpdated(stale))], hist, timeline)
    assert checker.stale == 1 and checker.violations == 1, checker.texts
    text = checker.texts[0]
    for part in ("stale LIVE view (listener) BTCUSDT seq 200", "venue was at seq 300", "100 diffs behind",
                 "status LIVE", "age 2.5"):
        assert part in text, text


def test_views_at_or_past_the_venue_at_t_minus_l_pass(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100), (5.0, 1, 300))
    reads = [(base_s + 6.5, BookUpdated(view_at(oracle, 1, 300))),  # exactly caught up with t - L
             (base_s + 6.0, BookUpdated(view_at(oracle, 1, 200))),  # t - L = 4.75: only seq 100 is known by then
             (base_s + 0.5, BookUpdated(view_at(oracle, 1, 50)))]  # before the history reaches t - L: no verdict
    checker = run_checker(reads, hist, timeline)
    assert checker.violations == 0, checker.texts
    assert checker.freshness is not None and checker.freshness.checked == 3 and checker.freshness.compared == 2


def test_only_live_views_promise_freshness(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100), (5.0, 1, 300))
    reads = [(base_s + 9.0, BookUpdated(view_at(oracle, 1, 120, status=status)))
             for status in (BookStatus.DISCONNECTED, BookStatus.RESYNCING, BookStatus.STALE, BookStatus.REJECTED)]
    assert run_checker(reads, hist, timeline).violations == 0


def test_polled_views_are_checked_like_the_listeners(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100), (5.0, 1, 300))
    stale = view_at(oracle, 1, 200)
    wrong = attrs.evolve(view_at(oracle, 1, 310), bids=view_at(oracle, 1, 309).bids)
    checker = run_checker([(base_s + 7.0, Polled(stale)), (base_s + 7.0, Polled(wrong))], hist, timeline)
    assert checker.polled == 2 and checker.stale == 1 and checker.violations == 2
    assert "(polled)" in checker.texts[0] and "differs from the truth" in checker.texts[1]


def test_one_stale_episode_is_described_once_and_counted_every_time(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100), (5.0, 1, 300))
    frozen = view_at(oracle, 1, 200)
    reads = [(base_s + 6.5 + i * 0.01, Polled(frozen)) for i in range(20)]
    checker = run_checker(reads, hist, timeline)
    assert checker.stale == 20 and checker.violations == 20 and len(checker.texts) == 1


def test_eras_are_compared_within_the_same_era(base_s: float) -> None:
    """A restart resets seqs: a new era's low seq is fresh; the old era's views are stale once the
    venue was in the new era L before the read, whatever their seq."""
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    timeline.begin(2, base_s + 5.0)
    hist = history(base_s, (0.0, 1, 400), (5.0, 2, 1), (6.0, 2, 40))
    reads = [(base_s + 6.0, BookUpdated(view_at(oracle, 1, 420))),  # t - L = 4.75: still era 1 there
             (base_s + 6.0, BookUpdated(view_at(oracle, 2, 3))),  # a newer era than the venue's at t - L
             (base_s + 7.5, BookUpdated(view_at(oracle, 2, 41)))]  # era 2, past seq 40
    assert run_checker(reads, hist, timeline).violations == 0
    late = run_checker([(base_s + 7.5, BookUpdated(view_at(oracle, 1, 999)))], hist, timeline)
    assert late.violations == 1 and "era 1 while the venue was already in era 2" in late.texts[0]


def test_no_live_view_of_a_code_the_venue_refuses(base_s: float) -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, base_s)
    hist = history(base_s, (0.0, 1, 100))
    rejects = RejectWindows()
    rejects.open(CODE, base_s + 2.0)
    rejects.close(CODE, base_s + 4.0)
    reads = [(base_s + at, BookUpdated(view_at(oracle, 1, 100 + i))) for i, at in enumerate((1.0, 3.0, 4.5))]
    checker = run_checker(reads, hist, timeline, rejects)
    assert checker.rejected_live == 1 and checker.violations == 1 and "refuses its subscription" in checker.texts[0]
    assert rejects.covers(CODE, base_s + 2.0) and not rejects.covers(CODE, base_s + 4.0)


def test_the_history_answers_with_a_lower_bound() -> None:
    hist = history(0.0, (1.0, 1, 10), (2.0, 1, 20), (3.0, 2, 5))
    assert hist.at(0.5) is None
    sample = hist.at(2.5)
    assert sample is not None and sample.seqs[CODE] == 20 and sample.at_s == 2.0
    later = hist.at(99.0)
    assert later is not None and later.era == 2 and len(hist) == 3


def test_the_sampler_never_claims_a_seq_the_venue_had_not_reached() -> None:
    """Each sample is stamped after the venue answered, so at(t) <= the venue's seq at t."""

    class CountingSim:  # its seq is the number of state() calls so far
        def __init__(self) -> None:
            self.read_at: list[float] = []

        def state(self) -> dict:
            self.read_at.append(time.monotonic())
            return {"era": 1, "seqs": {CODE: len(self.read_at)}}

    sim, hist = CountingSim(), SeqHistory()
    sampler = VenueSampler(sim, hist, interval_s=0.002)
    sampler.start()
    wait_until(lambda: len(hist) >= 20, 5, "twenty samples")
    sampler.stop()
    reads = list(sim.read_at)
    for t in [r - 1e-6 for r in reads] + [r + 1e-6 for r in reads]:
        sample = hist.at(t)
        venue_seq = sum(1 for r in reads if r <= t)
        assert sample is None or sample.seqs[CODE] <= venue_seq


def test_a_frozen_live_book_is_caught_end_to_end(service) -> None:
    """A service whose silence bound (30 s) is far above the checker's L keeps its books LIVE
    through a 2.5 s blackhole: exactly the lie the invariant exists for. The poller reads them
    with svc.book and the checker reports them stale."""
    svc = service(chaos_config(heartbeat={"interval_s": 10.0, "silent_intervals": 3}))
    assert svc.wait_live(timeout=10)
    sim = svc.simulator
    hist = SeqHistory()
    sampler = VenueSampler(sim, hist, interval_s=0.02)
    timeline = EraTimeline(sim.era, time.monotonic())
    checker = ViewChecker(sim, ReplayOracle(9, 10), timeline, freshness=Freshness(hist, L_S))
    poller = Poller(svc, checker.offer, interval_s=0.02)
    sampler.start()
    checker.start()
    poller.start()
    try:
        sim.faults.blackhole(2.5)
        wait_until(lambda: checker.stale > 0, 10, "a stale LIVE view to be reported")
    finally:
        poller.stop()
        checker.drain(5.0)
        checker.stop()
        sampler.stop()
    assert any("stale LIVE view (polled)" in t for t in checker.texts), checker.texts
