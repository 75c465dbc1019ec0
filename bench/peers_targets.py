"""Issue 16's targets for depthkeeper, as same-run ratios over a peers_bench.py result (pure).

Every target compares depthkeeper's row with other rows *of the same run* (same machine, same
feeds, same hour), so the noise of a shared machine hits both sides alike:

- **throughput**: depthkeeper's applied diffs/s on ``max`` >= 2x the best Python peer's
  (cryptofeed, cryptofeed-2.4, ccxt, unicorn, python-binance; the naive rows are not peers, they
  are listed as the bar separately) and >= 1x nautilus_trader's *sustained* max (its ``max`` row
  if it kept up there, else the first paced ``max@N`` probe it kept up with);
- **latency**: p99 (apply - send) at ``10k`` and at ``1000x20k`` <= every peer's and <= naive+orjson's;
- **CPU**: CPU microseconds per applied diff at ``10k`` and ``1000x20k`` <= naive+orjson's;
- **memory**: RSS per symbol <= every peer's: the marginal figure between the 50- and 1000-symbol
  runs (``rss_marginal_per_symbol_bytes``, fixed costs cancel out) where both sides have it, else
  the 10k run's (RSS - RSS before start) / symbols; each line says which.

A target is PASS, MISS, or n/a (a row is missing or failed). ``ratio`` is ours / theirs; ``margin``
is how far the ratio is beyond what is needed, relative to it (positive = room to spare). With
``--repeat N`` (peers_rounds.py) ours and theirs are the rows' medians, the ratio is the median of
the N same-round ratios, and the line shows their spread.
"""

from __future__ import annotations

import statistics
from typing import Any

from peers_rounds import round_ratios

SUBJECT = "depthkeeper"
#: "the best Python peer" of the issue: the libraries a Python user would pick
PYTHON_PEERS = ("cryptofeed", "cryptofeed-2.4", "ccxt", "unicorn", "python-binance")
NAUTILUS = "nautilus_trader"
NAIVE_BAR = "naive+orjson"
NAIVE_ROWS = ("naive", "naive+orjson")
LATENCY_FEEDS = ("10k", "1000x20k")


def keeps_up(r: dict[str, Any]) -> bool:
    """Applied >= 95% of offered and the backlog did not grow by more than a second's worth of it."""
    if "error" in r or not r.get("offered_per_s"):
        return False
    return (r["applied_per_s"] >= 0.95 * r["offered_per_s"]
            and r["lag_end"] - r["lag_start"] <= r["offered_per_s"] * 1.0)


def _rows(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["peer"], r["run"]): r for r in result.get("runs", []) if "error" not in r}


def _target(name: str, ours: float | None, theirs: float | None, against: str, needed: float,
            higher_is_better: bool, detail: str = "", rounds: list[float] | None = None) -> dict[str, Any]:
    """``rounds``: the same-round ratios (peers_rounds.py) when both rows were measured in rounds; the
    verdict then takes their median (each round's noise hits both rows of that round alike)."""
    out: dict[str, Any] = {"target": name, "against": against, "ours": ours, "theirs": theirs, "needed": needed,
                           "higher_is_better": higher_is_better, "detail": detail, "round_ratios": rounds}
    if ours is None or theirs is None or theirs <= 0:
        return {**out, "verdict": "n/a", "ratio": None, "margin": None}
    ratio = statistics.median(rounds) if rounds else ours / theirs
    if higher_is_better:
        ok, margin = ratio >= needed, ratio / needed - 1.0
    else:
        ok, margin = ratio <= needed, 1.0 - ratio / needed
    return {**out, "verdict": "PASS" if ok else "MISS", "ratio": ratio, "margin": margin}


def _sustained_max(rows: dict[tuple[str, str], dict[str, Any]], peer: str) -> tuple[float | None, str]:
    """A peer's sustained max: its ``max`` row when it kept up, else the best paced probe it kept up with."""
    if not any(p == peer for (p, _run) in rows):
        return None, f"no {peer} row"
    plain = rows.get((peer, "max"))
    if plain is not None and keeps_up(plain) and (plain.get("end_check") or {}).get("exact", True):
        return plain["applied_per_s"], "max"
    probes = [r for (p, run), r in rows.items() if p == peer and run.startswith("max@") and keeps_up(r)]
    if not probes:
        return None, "no run kept up"
    best = max(probes, key=lambda r: r["applied_per_s"])
    return best["applied_per_s"], best["run"]


def _throughput(rows: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    ours = (rows.get((SUBJECT, "max")) or {}).get("applied_per_s")
    python = [(r["applied_per_s"], p) for (p, run), r in rows.items() if run == "max" and p in PYTHON_PEERS]
    best, best_peer = max(python) if python else (None, "no Python peer row")
    out = [_target("max diffs/s >= 2x the best Python peer", ours, best, best_peer, 2.0, True,
                   rounds=round_ratios(rows.get((SUBJECT, "max")), rows.get((best_peer, "max")), "applied_per_s"))]
    sustained, how = _sustained_max(rows, NAUTILUS)
    out.append(_target("max diffs/s >= 1x nautilus_trader (sustained)", ours, sustained, NAUTILUS, 1.0, True,
                       detail=how if how.startswith("no ") else f"nautilus_trader's {how}"))
    for peer in NAIVE_ROWS:  # the bar, not a target: how far above (or below) the naive loop we are
        bar = (rows.get((peer, "max")) or {}).get("applied_per_s")
        if bar is not None:
            out.append({**_target(f"max diffs/s vs {peer} (the bar)", ours, bar, peer, 1.0, True), "verdict": "info"})
    return out


def _per_feed(rows: dict[tuple[str, str], dict[str, Any]], key: str, label: str,
              against: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """``key`` of depthkeeper's row <= the same of each row in ``against`` (None: every peer + the bar)."""
    out = []
    for feed in LATENCY_FEEDS:
        ours = (rows.get((SUBJECT, feed)) or {}).get(key)
        names = against if against is not None else tuple(
            p for (p, run) in rows if run == feed and p != SUBJECT and (p not in NAIVE_ROWS or p == NAIVE_BAR))
        for peer in sorted(set(names)):
            theirs = (rows.get((peer, feed)) or {}).get(key)
            if theirs is None and against is None:
                continue
            out.append(_target(f"{label} at {feed} <= {peer}'s", ours, theirs, peer, 1.0, False,
                               rounds=round_ratios(rows.get((SUBJECT, feed)), rows.get((peer, feed)), key)))
    return out


def _memory(rows: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    def figure(peer: str, marginal: bool) -> float | None:
        if marginal:
            return (rows.get((peer, "1000x20k")) or {}).get("rss_marginal_per_symbol_bytes")
        return (rows.get((peer, "10k")) or {}).get("rss_per_symbol_bytes")

    peers = sorted({p for (p, _run) in rows if p != SUBJECT and p not in NAIVE_ROWS})
    out = []
    for peer in peers:
        marginal = figure(SUBJECT, True) is not None and figure(peer, True) is not None
        how = "marginal 50->1000 symbols" if marginal else "10k run, (RSS - RSS before start) / symbols"
        out.append(_target(f"RSS/symbol <= {peer}'s", figure(SUBJECT, marginal), figure(peer, marginal), peer, 1.0,
                           False, detail=how))
    return out


def compute(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target over ``result`` (a peers_bench.py result dict); empty without a depthkeeper row."""
    rows = _rows(result)
    if not any(p == SUBJECT for (p, _run) in rows):
        return []
    return (_throughput(rows) + _per_feed(rows, "latency_p99_s", "p99", None)
            + _per_feed(rows, "cpu_us_per_diff", "CPU us/diff", (NAIVE_BAR,)) + _memory(rows))


def _fmt(value: float | None, target: str) -> str:
    if value is None:
        return "-"
    if target.startswith("p99"):
        return f"{value * 1e3:.2f} ms"
    if target.startswith("RSS"):
        return f"{value / 1e3:.1f} KB"
    if target.startswith("CPU"):
        return f"{value:.2f} us"
    return f"{value:,.0f}"


def render(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    lines = ["Targets (issue 16; same-run ratios, depthkeeper / the other row; margin = room beyond the need):"]
    for t in targets:
        name = t["target"]
        need = "the bar, not a target" if t["verdict"] == "info" else \
            f"needs {'>=' if t['higher_is_better'] else '<='} {t['needed']:.2f}x"
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        margin = "-" if t["margin"] is None else f"{t['margin'] * 100:+.0f}%"
        extra = f"  [{t['detail']}]" if t.get("detail") else ""
        if t.get("round_ratios"):
            spread = t["round_ratios"]
            extra += f"  rounds {min(spread):.2f}-{max(spread):.2f}x ({len(spread)})"
        lines.append(f"  {t['verdict']:<4} {name:<48} {_fmt(t['ours'], name):>12} vs {_fmt(t['theirs'], name):>12}"
                     f"  ratio {ratio:>7} ({need}), margin {margin:>5}{extra}")
    verdicts = [t["verdict"] for t in targets]
    lines.append(f"  {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS, {verdicts.count('n/a')} n/a")
    return lines
