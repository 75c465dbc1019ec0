"""bench/peers_targets.py: issue 16's targets from a synthetic peers_bench result (pure, no processes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import peers_targets  # noqa: E402


def row(peer: str, run: str, **figures: Any) -> dict[str, Any]:
    base = {"peer": peer, "run": run, "symbols": 1000 if run == "1000x20k" else 50, "applied_per_s": 0.0,
            "offered_per_s": 0.0, "lag_start": 0, "lag_end": 0}
    return {**base, **figures}


def result() -> dict[str, Any]:
    return {"runs": [
        row("depthkeeper", "max", applied_per_s=1_600_000.0, offered_per_s=1_600_000.0),
        row("depthkeeper", "10k", latency_p99_s=0.005, cpu_us_per_diff=8.0, rss_per_symbol_bytes=100e3),
        row("depthkeeper", "1000x20k", latency_p99_s=0.050, cpu_us_per_diff=30.0, rss_marginal_per_symbol_bytes=30e3),
        row("ccxt", "max", applied_per_s=700_000.0),
        row("cryptofeed", "max", applied_per_s=500_000.0),
        row("ccxt", "10k", latency_p99_s=0.009, rss_per_symbol_bytes=95e3),
        row("ccxt", "1000x20k", latency_p99_s=0.200, rss_marginal_per_symbol_bytes=50e3),
        row("unicorn", "10k", latency_p99_s=0.004, rss_per_symbol_bytes=800e3),
        # nautilus: flooded at max, kept up only when paced at 4k events/s
        row("nautilus_trader", "max", error="killed: RSS"),
        row("nautilus_trader", "max@8k", applied_per_s=70_000.0, offered_per_s=300_000.0),
        row("nautilus_trader", "max@4k", applied_per_s=170_000.0, offered_per_s=170_000.0),
        row("naive+orjson", "max", applied_per_s=1_100_000.0),
        row("naive", "10k", latency_p99_s=0.001, cpu_us_per_diff=1.0),  # not a bar for latency or CPU
        row("naive+orjson", "10k", latency_p99_s=0.006, cpu_us_per_diff=10.0),
        row("naive+orjson", "1000x20k", latency_p99_s=0.040, cpu_us_per_diff=12.0),
    ]}


def by_name(targets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in targets}


def test_throughput_is_measured_against_the_best_python_peer_and_nautilus_sustained() -> None:
    targets = by_name(peers_targets.compute(result()))
    python = targets["max diffs/s >= 2x the best Python peer"]
    assert python["against"] == "ccxt" and python["verdict"] == "PASS"
    assert python["ratio"] == pytest.approx(1_600_000 / 700_000)
    assert python["margin"] == pytest.approx(1_600_000 / 700_000 / 2 - 1)
    nautilus = targets["max diffs/s >= 1x nautilus_trader (sustained)"]
    assert nautilus["theirs"] == 170_000.0 and nautilus["detail"] == "nautilus_trader's max@4k"
    bar = targets["max diffs/s vs naive+orjson (the bar)"]
    assert bar["verdict"] == "info" and bar["ratio"] == pytest.approx(1_600_000 / 1_100_000)


def test_latency_cpu_and_memory_targets_pass_and_miss_per_row() -> None:
    targets = by_name(peers_targets.compute(result()))
    assert targets["p99 at 10k <= ccxt's"]["verdict"] == "PASS"
    assert targets["p99 at 10k <= unicorn's"]["verdict"] == "MISS"
    assert targets["p99 at 10k <= naive+orjson's"]["verdict"] == "PASS"
    assert "p99 at 10k <= naive's" not in targets  # the stdlib naive row is no latency bar
    assert targets["p99 at 1000x20k <= naive+orjson's"]["verdict"] == "MISS"
    assert targets["p99 at 1000x20k <= naive+orjson's"]["margin"] == pytest.approx(1 - 0.050 / 0.040)
    assert targets["CPU us/diff at 10k <= naive+orjson's"]["verdict"] == "PASS"
    assert targets["CPU us/diff at 1000x20k <= naive+orjson's"]["verdict"] == "MISS"
    ccxt_rss = targets["RSS/symbol <= ccxt's"]
    assert ccxt_rss["verdict"] == "PASS" and ccxt_rss["detail"].startswith("marginal")
    unicorn_rss = targets["RSS/symbol <= unicorn's"]  # no 1000-symbol run: the 10k figure on both sides
    assert unicorn_rss["theirs"] == 800e3 and unicorn_rss["ours"] == 100e3 and unicorn_rss["detail"].startswith("10k")


def test_missing_rows_are_not_applicable_and_no_depthkeeper_means_no_targets() -> None:
    data = result()
    data["runs"] = [r for r in data["runs"] if r["peer"] != "naive+orjson"]
    targets = by_name(peers_targets.compute(data))
    assert targets["CPU us/diff at 10k <= naive+orjson's"]["verdict"] == "n/a"
    data["runs"] = [r for r in data["runs"] if r["peer"] != "nautilus_trader" or r["run"] == "max"]
    assert by_name(peers_targets.compute(data))["max diffs/s >= 1x nautilus_trader (sustained)"]["verdict"] == "n/a"
    assert peers_targets.compute({"runs": [r for r in data["runs"] if r["peer"] != "depthkeeper"]}) == []
    text = "\n".join(peers_targets.render(peers_targets.compute(result())))
    assert "PASS" in text and "MISS" in text and "n/a" in text.splitlines()[-1]
