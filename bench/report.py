"""Turn a benchmark result (the JSON ``run.py`` produces) into a table and a target check.

Pure functions of the result dict, so a saved ``results/*.json`` can be re-rendered later.
"""

from __future__ import annotations

from typing import Any

#: "no backlog growth": the lag may grow by at most this share of the offered diffs
BACKLOG_TOLERANCE = 0.02
#: ... and at least this share of the offered diffs must have been applied
APPLIED_FLOOR = 0.98
#: ... and at the end of the window the peer is at most this far behind (seconds of feed)
LAG_END_LIMIT_S = 0.1
#: the 1000-symbol run's RSS budget
RSS_BUDGET_BYTES = 150 * 1024 * 1024
P99_TARGET_S = 0.001
READ_P50_TARGET_S = 100e-6

PEER_ORDER = ("depthkeeper", "depthkeeper/own-threads", "naive", "naive+skiputf8", "naive+orjson")
NAIVES = PEER_ORDER[2:]


def backlog_growth_per_s(r: dict[str, Any]) -> float:
    return (r["lag_end"] - r["lag_start"]) / r["window_s"] if r.get("window_s") else 0.0


def lag_end_s(r: dict[str, Any]) -> float:
    """How far behind the venue the peer was at the end of the window, in seconds of feed."""
    return r["lag_end"] / r["offered_per_s"] if r.get("offered_per_s") else 0.0


def steady(r: dict[str, Any]) -> str:
    """"yes": applied what was offered, the lag did not grow and is small; "draining": still
    behind but the lag shrank (a start-up backlog); "behind": still behind and not shrinking;
    "NO": the lag grew by more than the noise allowance."""
    offered = r["offered_per_s"]
    if offered <= 0:
        return "NO"
    growth = backlog_growth_per_s(r)
    if growth > BACKLOG_TOLERANCE * offered:
        return "NO"
    if lag_end_s(r) > LAG_END_LIMIT_S:
        return "draining" if growth < 0 else "behind"
    return "yes" if r["applied_per_s"] >= APPLIED_FLOOR * offered else "NO"


def keeps_up(r: dict[str, Any]) -> bool:
    return steady(r) == "yes"


def ratio(run: dict[str, Any], other: str, ours_name: str = "depthkeeper") -> float | None:
    peers = run["peers"]
    ours, theirs = peers.get(ours_name), peers.get(other)
    if not ours or not theirs or "error" in ours or "error" in theirs or not theirs["applied_per_s"]:
        return None
    return ours["applied_per_s"] / theirs["applied_per_s"]


def cpu_us_per_diff(r: dict[str, Any]) -> float:
    """CPU time the peer spent per applied diff (all its threads)."""
    return r["cpu_percent"] * 1e4 / r["applied_per_s"] if r.get("applied_per_s") else 0.0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _cells(label: str, run: dict[str, Any], name: str) -> tuple[str, ...]:
    r = run["peers"].get(name)
    if r is None:
        return ()
    if "error" in r:
        return (label, str(run["symbols"]), name, "error: " + r["error"].splitlines()[-1][:80])
    found = [ratio(run, other, name) for other in NAIVES] if name.startswith("depthkeeper") else []
    ratios = " / ".join("-" if x is None else f"{x:.2f}" for x in found)
    saturated = not run["offered_target_per_s"]
    return (
        label, str(run["symbols"]), name + (" *" if contaminated(r) else ""),
        f"{r['offered_per_s']:,.0f}", f"{r['applied_per_s']:,.0f}",
        "-" if saturated else f"{backlog_growth_per_s(r):+,.0f}",
        "-" if saturated else f"{lag_end_s(r):.3f}",
        "(max)" if saturated else steady(r),
        _ms(r["latency_p50_s"]), _ms(r["latency_p99_s"]), _ms(r["latency_max_s"]),
        f"{r['cpu_percent']:.0f}", f"{r.get('sim_cpu_percent', 0.0):.0f}", f"{r.get('other_cpu_percent', 0.0):.0f}",
        f"{cpu_us_per_diff(r):.1f}",
        f"{r['rss_bytes'] / 2**20:.1f}", f"{r['rss_per_symbol_bytes'] / 1024:.1f}",
        f"{r['read_p50_s'] * 1e6:.0f}", f"{r['read_p99_s'] * 1e6:.0f}", ratios,
    )


HEADER = ("offered", "syms", "peer", "offered/s", "applied/s", "lag Δ/s", "lag s", "keeps up",
          "p50 ms", "p99 ms", "max ms", "CPU %", "sim %", "other %", "CPU µs/diff", "RSS MB", "KB/sym", "read p50 µs", "read p99 µs",
          "dk ÷ naive / +skiputf8 / +orjson")


def _table(rows: list[tuple[str, ...]]) -> str:
    full = [r for r in rows if len(r) == len(HEADER)]
    widths = [max(len(r[i]) for r in [HEADER, *full]) for i in range(len(HEADER))]
    lines = ["  ".join(h.rjust(w) if i > 2 else h.ljust(w) for i, (h, w) in enumerate(zip(HEADER, widths))),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        if len(row) != len(HEADER):
            lines.append("  ".join(row))
            continue
        lines.append("  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def feed_table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = []
    for run in [*result.get("runs", []), *result.get("scale", [])]:
        for name in PEER_ORDER:
            cells = _cells(run["label"], run, name)
            if cells:
                rows.append(cells)
    return _table(rows)


def targets(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every figure the issue sets."""
    out: list[tuple[str, str, str]] = []
    runs = {run["label"]: run for run in result.get("runs", [])}
    scale = result.get("scale", [])

    def dk(run: dict[str, Any] | None) -> dict[str, Any] | None:
        r = run["peers"].get("depthkeeper") if run else None
        return r if r and "error" not in r else None

    top = runs.get("max")
    if top:
        for other in NAIVES:
            x = ratio(top, other)
            if x is not None:
                verdict = "PASS (stretch)" if x >= 1.5 else "PASS" if x >= 1.0 else "FAIL"
                out.append((f"max applied/s ≥ 1.0× {other} (stretch 1.5×)", f"{x:.2f}×", verdict))
    r = dk(runs.get("10k"))
    if r:
        out.append(("10k/s offered: p99 ≤ 1 ms", f"{_ms(r['latency_p99_s'])} ms",
                    "PASS" if r["latency_p99_s"] <= P99_TARGET_S else "FAIL"))
        out.append(("svc.book(code, depth=10) p50 ≤ 100 µs (at 10k/s)", f"{r['read_p50_s'] * 1e6:.0f} µs",
                    "PASS" if r["read_p50_s"] <= READ_P50_TARGET_S else "FAIL"))
    r = dk(runs.get("50k"))
    if r:
        out.append(("50k/s offered: no backlog growth", _backlog_figures(r), _verdict(r)))
    for run in scale:
        r = dk(run)
        if r:
            out.append((f"{run['symbols']} symbols: RSS ≤ 150 MB", f"{r['rss_bytes'] / 2**20:.1f} MB",
                        "PASS" if r["rss_bytes"] <= RSS_BUDGET_BYTES else "FAIL"))
            out.append((f"{run['symbols']} symbols at {run['label']}: no backlog growth", _backlog_figures(r),
                        _verdict(r)))
    return out


def _backlog_figures(r: dict[str, Any]) -> str:
    return (f"applied {r['applied_per_s']:,.0f}/s of {r['offered_per_s']:,.0f}/s, "
            f"lag Δ {backlog_growth_per_s(r):+,.0f}/s, {lag_end_s(r):.3f} s behind at the end")


def _verdict(r: dict[str, Any]) -> str:
    state = steady(r)
    if state == "yes":
        return "PASS"
    if state == "draining":
        return "UNSETTLED (still draining a start-up backlog)"
    return "FAIL (still behind, not catching up)" if state == "behind" else "FAIL"


#: CPU used by other processes during a window (% of one core) above which a row is marked
OTHER_CPU_LIMIT = 20.0


def contaminated(r: dict[str, Any]) -> bool:
    """Something besides the peer and its simulator used a noticeable share of the machine."""
    return r.get("other_cpu_percent", 0.0) > OTHER_CPU_LIMIT


def _busy_runs(result: dict[str, Any]) -> list[float]:
    """"Other" CPU % of the windows where other work competed with the peer."""
    return [r["other_cpu_percent"] for run in [*result.get("runs", []), *result.get("scale", [])]
            for r in run["peers"].values() if "error" not in r and contaminated(r)]


def books_table(books: dict[str, Any]) -> str:
    from books import render

    return render(books)


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    title = (f"depthkeeper benchmark — {meta['date']} — {meta['machine']} — python {meta['python']}"
             f"{' — QUICK' if meta.get('quick') else ''}")
    setup = (f"window {meta['seconds']} s after {meta['warmup_s']} s warm-up "
             f"({meta.get('scale_warmup_s', meta['warmup_s'])} s for the {meta.get('scale_symbols', 1000)}-symbol run); "
             f"simulator in its own process (seed {meta['seed']}, {meta['sim_levels']} levels/side, stamped); "
             "each peer in its own process, one at a time, each against a fresh simulator.")
    parts = [title, setup]
    busy = _busy_runs(result)
    if busy:
        parts.append(f"WARNING: other processes used up to {max(busy):.0f}% of a core during {len(busy)} window(s) "
                     f"(rows marked *, on {meta.get('cpu_count')} cores): those figures are pessimistic and noisy.")
    if meta.get("source_digest_end") and meta["source_digest_end"] != meta.get("source_digest"):
        parts.append(f"WARNING: the code under test changed during the run (source digest {meta['source_digest']} "
                     f"-> {meta['source_digest_end']}): rows may come from different versions.")
    parts.append("")
    if result.get("runs") or result.get("scale"):
        parts += ["Feed: applied diffs/s, latency venue send ts -> applied, CPU/RSS of the peer process", "",
                  feed_table(result), ""]
    if result.get("books"):
        parts += [books_table(result["books"]), ""]
    checks = targets(result)
    if checks:
        width = max(len(t) for t, _, _ in checks)
        parts.append("Targets")
        parts += [f"  {t.ljust(width)}  {m}  -> {v}" for t, m, v in checks]
        parts.append("")
    parts.append("Columns: lag Δ/s = growth of (venue seq - applied seq) summed over symbols, per second; "
                 "lag s = that lag at the end of the window in seconds of feed; keeps up = applied ≥ 98% of "
                 "offered, lag growth ≤ 2% of offered and lag s ≤ 0.1 ('draining' = still behind but the lag "
                 "shrank, 'behind' = still behind and not shrinking); CPU % = the peer process (all threads; 100 = one core), sim % = the simulator process, other % = everything else on the machine in the same window; CPU µs/diff = CPU time of the peer process per applied diff; read = svc.book(code, "
                 "depth=10) from outside the tree (naive: sorting its dicts from another thread); "
                 "dk ÷ naive = depthkeeper applied/s ÷ that naive variant's applied/s in the same run. "
                 "At 'max' the simulator sends as fast as the peer reads, so its queues are full by "
                 "design: latency there is queueing (≈ queued diffs ÷ rate), not processing.")
    return "\n".join(parts)
