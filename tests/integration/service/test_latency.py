"""svc.latency_samples(): venue send -> applied, per batch, windowed by reset (what the benchmark reads)."""

from __future__ import annotations

import time

import pytest

from depthkeeper.simulator import SimConfig, Simulator
from depthkeeper.supervisor.service import BookService
from tests.support import build_config, wait_until

pytestmark = pytest.mark.integration

CODES = ["BTCUSDT", "ETHUSDT"]


def test_latency_samples_cover_applied_diffs_and_reset_starts_a_new_window() -> None:
    sim = Simulator.start(SimConfig(dialect="article", symbols=tuple(CODES), rate_per_symbol=200.0, seed=3,
                                    levels=10, stamp=True))
    try:
        cfg = build_config(venue={"dialect": "article", "url": sim.url, "snapshot_url": sim.rest_url},
                           symbols={"initial": CODES}, simulator={"enabled": False})
        with BookService.start(cfg) as svc:
            assert svc.wait_live(timeout=10)
            wait_until(lambda: all(len(s) >= 20 for s in svc.latency_samples().values()), 10, "samples")
            before = svc.book_stats()
            samples = svc.latency_samples(reset=True)
            assert set(samples) == set(CODES)
            for code, pairs in samples.items():
                assert all(0 <= latency < 5 and n >= 1 for latency, n in pairs), code
                assert sum(n for _, n in pairs) <= before[code].applied
            after_reset = svc.latency_samples()
            assert all(len(after_reset[c]) < len(samples[c]) for c in CODES), "reset cleared the window"
            stamp = time.time()
            wait_until(lambda: all(len(s) >= 5 for s in svc.latency_samples().values()), 10, "new samples")
            # every new sample was applied after the reset, so it is younger than the whole wait
            assert all(latency <= time.time() - stamp + 1.0 for pairs in svc.latency_samples().values()
                       for latency, _ in pairs)
    finally:
        sim.stop()
