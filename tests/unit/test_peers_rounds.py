"""bench/peers_rounds.py: rows of several rounds combined into one per (peer, feed) (pure, no processes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import peers_report  # noqa: E402
import peers_rounds  # noqa: E402
import peers_targets  # noqa: E402


def row(peer: str, run: str, round_: int, **figures: Any) -> dict[str, Any]:
    base = {"peer": peer, "run": run, "round": round_, "symbols": 50, "version": "1", "events_per_s": 500.0,
            "applied_per_s": 10_000.0, "offered_per_s": 10_000.0, "lag_start": 0, "lag_end": 0, "cpu_percent": 2.0,
            "rss_bytes": 40e6, "end_check": {"exact": True}}
    return {**base, **figures}


def test_each_figure_is_the_median_of_its_rounds_and_every_sample_is_kept() -> None:
    rows = [row("depthkeeper", "10k", k, latency_p99_s=p99, cpu_us_per_diff=cpu)
            for k, (p99, cpu) in enumerate([(0.009, 2.0), (0.004, 3.0), (0.005, 1.0)], 1)]
    (combined,) = peers_rounds.combine(rows)
    assert combined["latency_p99_s"] == 0.005 and combined["cpu_us_per_diff"] == 2.0
    assert combined["samples"]["latency_p99_s"] == [0.009, 0.004, 0.005]
    assert combined["rounds"] == 3 and combined["failed_rounds"] == 0
    assert "median of 3 rounds (p99 ms 4.0-9.0, us/diff 1.00-3.00)" in peers_report.render({"runs": [combined]})


def test_a_single_round_is_left_as_it_was_and_order_is_kept() -> None:
    rows = [row("a", "10k", 1), row("b", "10k", 1), row("a", "max", 1), row("a", "10k", 2), row("b", "10k", 2)]
    out = peers_rounds.combine(rows)
    assert [(r["peer"], r["run"]) for r in out] == [("a", "10k"), ("b", "10k"), ("a", "max")]
    assert out[2] is rows[2] and "samples" not in out[2]


def test_a_failed_round_is_counted_and_an_inexact_end_is_never_hidden_by_the_others() -> None:
    rows = [row("p", "10k", 1, latency_p99_s=0.004), row("p", "10k", 2, error="Traceback\nRuntimeError: stuck"),
            row("p", "10k", 3, latency_p99_s=0.006, end_check={"exact": False, "mismatched": 3})]
    (combined,) = peers_rounds.combine(rows)
    assert combined["rounds"] == 2 and combined["failed_rounds"] == 1
    assert combined["round_errors"] == ["RuntimeError: stuck"]
    assert combined["latency_p99_s"] == pytest.approx(0.005)
    assert combined["end_check"] == {"exact": False, "mismatched": 3}
    (all_failed,) = peers_rounds.combine([row("p", "10k", 1, error="x"), row("p", "10k", 2, error="y")])
    assert all_failed["error"] == "y" and all_failed["failed_rounds"] == 2


def test_targets_judge_the_median_same_round_ratio_and_show_the_spread() -> None:
    # round by round depthkeeper is ahead twice and behind once; the ratio of medians would say 1.0x
    ours = [row("depthkeeper", "10k", k, latency_p99_s=v) for k, v in enumerate([0.004, 0.010, 0.005], 1)]
    bar = [row("naive+orjson", "10k", k, latency_p99_s=v) for k, v in enumerate([0.005, 0.005, 0.010], 1)]
    result = {"runs": peers_rounds.combine(ours + bar)}
    (p99,) = [t for t in peers_targets.compute(result) if t["target"] == "p99 at 10k <= naive+orjson's"]
    assert p99["round_ratios"] == pytest.approx([0.8, 2.0, 0.5])
    assert p99["ratio"] == pytest.approx(0.8) and p99["verdict"] == "PASS"
    line = next(x for x in peers_targets.render([p99]) if "p99 at 10k" in x)
    assert "rounds 0.50-2.00x (3)" in line


def test_rounds_that_do_not_pair_up_fall_back_to_the_ratio_of_medians() -> None:
    ours = peers_rounds.combine([row("depthkeeper", "10k", k, latency_p99_s=0.004) for k in (1, 2)])[0]
    theirs = peers_rounds.combine([row("x", "10k", 1, latency_p99_s=0.008), row("x", "10k", 2, error="e"),
                                   row("x", "10k", 3, latency_p99_s=0.008)])[0]
    assert peers_rounds.round_ratios(ours, theirs, "latency_p99_s") is None
    assert peers_rounds.round_ratios(ours, None, "latency_p99_s") is None
    (p99,) = [t for t in peers_targets.compute({"runs": [ours, theirs]}) if t["target"] == "p99 at 10k <= x's"]
    assert p99["ratio"] == pytest.approx(0.5) and p99["round_ratios"] is None
