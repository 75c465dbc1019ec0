"""Rounds of the perf runs (``peers_bench.py --repeat N``): one row per (peer, feed) from N samples.

On this 2-core shared machine one 10-second window of one peer moves by 20-40 % between runs of the
same code (bench/results/2026-11-30-peers-python-2core-night-{1,2}: naive+orjson's CPU per diff at
1000 symbols read 9.8 and 10.6 us, depthkeeper's max 686k and 1.14M diffs/s), enough to turn a target's
verdict either way. With ``--repeat N`` every perf run is measured N times, in rounds -- round 1 runs
every peer on every feed, then round 2 does it again -- so each peer's samples are spread over the
whole run like every other peer's, and a disturbed minute hits one sample of several rows rather than
every sample of one row.

The row kept for a (peer, feed) is its samples' **median** of each figure in ``MEDIAN_KEYS`` (the
other fields are the first good sample's; its end check is the first one that was not exact, if
any was not: a correctness failure in any round is never hidden by the others). ``samples`` keeps
each figure of every round (``sample_rounds``: which round each is), ``rounds`` how many succeeded
and ``failed_rounds`` how many did not. peers_targets.py judges the same-round ratios' median and
prints their spread.

Pure functions over result rows (no processes): tests/unit/test_peers_rounds.py.
"""

from __future__ import annotations

import statistics
from typing import Any

#: the figures a row shows and the targets judge, each the median of the rounds
MEDIAN_KEYS = (
    "applied_per_s", "events_per_s", "offered_per_s", "latency_p50_s", "latency_p99_s", "latency_max_s",
    "latency_stamp_p50_s", "latency_stamp_p99_s", "cpu_percent", "sim_cpu_percent", "other_cpu_percent",
    "cpu_us_per_diff", "cpu_us_per_event", "diffs_per_event", "rss_bytes", "rss_per_symbol_bytes",
)


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def combine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of several rounds -> one row per (peer, run), in the order each first appeared."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["peer"], r["run"]), []).append(r)
    return [same[0] if len(same) == 1 else _combined(same) for same in groups.values()]


def _combined(same: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in same if "error" not in r]
    if not good:  # every round failed: the last failure stands, with how many there were
        return {**same[-1], "failed_rounds": len(same)}
    out = dict(good[0])
    for key in MEDIAN_KEYS:
        median = _median([r.get(key) for r in good])
        if median is not None:
            out[key] = median
    out["samples"] = {key: [r.get(key) for r in good] for key in MEDIAN_KEYS if any(key in r for r in good)}
    out["sample_rounds"] = [r.get("round") for r in good]
    out["rounds"] = len(good)
    out["failed_rounds"] = len(same) - len(good)
    if out["failed_rounds"]:
        out["round_errors"] = [r["error"].splitlines()[-1][:200] for r in same if "error" in r]
    inexact = [r["end_check"] for r in good if (r.get("end_check") or {}).get("exact") is False]
    if inexact:
        out["end_check"] = inexact[0]
    return out


def round_ratios(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, key: str) -> list[float] | None:
    """``key`` ours / theirs round by round (round k of one row against round k of the other), over the
    rounds both rows have; None when either has no samples of it or fewer than two rounds pair up."""
    if not ours or not theirs:
        return None
    mine, other = _by_round(ours, key), _by_round(theirs, key)
    common = [k for k in mine if other.get(k)]
    return [mine[k] / other[k] for k in common] if len(common) >= 2 else None


def _by_round(row: dict[str, Any], key: str) -> dict[int, float]:
    values = (row.get("samples") or {}).get(key) or []
    rounds = row.get("sample_rounds") or []
    return {k: v for k, v in zip(rounds, values, strict=False) if v is not None}
