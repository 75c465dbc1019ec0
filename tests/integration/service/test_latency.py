"""svc.latency_samples(): venue send -> applied, per batch, windowed by a mark (what the benchmark reads)."""

from __future__ import annotations


import pytest

from depthkeeper.simulator import SimConfig, Simulator
from depthkeeper.supervisor.service.facade import BookService
from tests.support import build_config, wait_until

pytestmark = pytest.mark.integration

CODES = ["BTCUSDT", "ETHUSDT"]


def test_latency_samples_cover_applied_diffs_and_a_mark_starts_a_window() -> None:
    sim = Simulator.start(SimConfig(dialect="article", symbols=tuple(CODES), rate_per_symbol=200.0, seed=3,
                                    levels=10, stamp=True))
    try:
        cfg = build_config(venue={"dialect": "article", "url": sim.url, "snapshot_url": sim.rest_url},
                           symbols={"initial": CODES}, simulator={"enabled": False})
        with BookService.start(cfg) as svc:
            assert svc.wait_live(timeout=10)
            wait_until(lambda: all(len(s) >= 20 for s in svc.latency_samples()[1].values()), 10, "samples")
            stats = svc.book_stats()
            marks, samples = svc.latency_samples()
            assert set(samples) == set(marks) == set(CODES)
            for code, pairs in samples.items():
                assert all(0 <= latency < 5 and n >= 1 for latency, n in pairs), code
                assert len(pairs) == min(marks[code], 4096) and sum(n for _, n in pairs) <= stats[code].applied + 50
            _, fresh = svc.latency_samples(since=marks)
            assert all(len(fresh[c]) < len(samples[c]) for c in CODES), "only what came after the mark"
            wait_until(lambda: all(len(s) >= 5 for s in svc.latency_samples(since=marks)[1].values()), 10,
                       "samples after the mark")
            marks2, window = svc.latency_samples(since=marks)
            assert all(len(window[c]) == marks2[c] - marks[c] for c in CODES)
    finally:
        sim.stop()
