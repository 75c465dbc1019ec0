"""Tables for peers_bench.py results: feed ceilings, one row per peer and feed, the correctness table.

Pure functions over the result JSON, so a saved run re-renders (``peers_bench.py --render FILE``).
"""

from __future__ import annotations

from typing import Any

import peers_targets
from peers_catalog import PEERS

#: a row is marked ``*`` when other processes used more than this share of a core in its window
BUSY_OTHER_PERCENT = 20.0


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def one_line(r: dict[str, Any]) -> str:
    """The progress line of one perf run."""
    if "error" in r:
        return f"{r['peer']} {r.get('run')}: ERROR {r['error'].splitlines()[-1][:200]}"
    return (f"{r['events_per_s']:,.0f} events/s = {r['applied_per_s']:,.0f} diffs/s of {r['offered_per_s']:,.0f}, "
            f"p50 {_ms(r.get('latency_p50_s'))} p99 {_ms(r.get('latency_p99_s'))} ms, CPU {r['cpu_percent']:.0f}%, "
            f"exact {_exact(r.get('end_check'))}")


def _exact(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    if "error" in check:
        return "n/a"
    return "yes" if check.get("exact") else f"no ({check.get('exact_symbols')}/{check.get('symbols')})"


def _fault_cell(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    early = "yes" if check.get("exact_early") else f"no ({check.get('exact_symbols_early')}/{check.get('symbols')})"
    return f"{early} / {_exact(check)}"


def fault_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['peer']} faults: ERROR {r['error'].splitlines()[-1][:200]}"
    return (f"baseline {_exact(r.get('baseline'))}, after gap {_fault_cell(r.get('after_gap'))}, "
            f"after restart {_fault_cell(r.get('after_restart'))}")


def _ceilings(result: dict[str, Any]) -> list[str]:
    lines = ["Feed ceilings (50 symbols, a reader that only discards; one core for the source):"]
    for kind, label in (("sim", "simulator (binance, max)"), ("feeder", "replay feeder")):
        c = result.get("ceilings", {}).get(kind)
        if not c:
            continue
        if "error" in c:
            lines.append(f"  {label:<26} ERROR {c['error']}")
            continue
        lines.append(f"  {label:<26} {c['events_per_s']:>11,.0f} events/s {c['diffs_per_s']:>13,.0f} diffs/s "
                     f"{c['sink_mb_per_s']:>7,.0f} MB/s   source CPU {c['source_cpu_percent']:.0f}%")
    return lines


def _in_catalog_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """depthkeeper first, then the catalog's order; a peer's rows keep their order."""
    order = list(PEERS)
    return sorted(rows, key=lambda r: order.index(r["peer"]) if r["peer"] in order else len(order))


def _perf_rows(result: dict[str, Any]) -> list[str]:
    header = (f"{'peer':<16} {'version':<22} {'py':<5} {'feed':<9} {'sym':>4} {'events/s':>9} {'diffs/s':>10} "
              f"{'offered':>10} {'p50 ms':>7} {'p99 ms':>8} {'stamp p99':>9} {'CPU%':>5} {'us/diff':>7} "
              f"{'us/event':>8} {'RSS MB':>7} {'KB/sym':>7} {'exact':>6} {'other%':>6}  notes")
    rows = [header, "-" * len(header)]
    for r in _in_catalog_order(result.get("runs", [])):
        spec = PEERS.get(r["peer"])
        py = ".".join(str(r.get("python", spec.python if spec else "")).split(".")[:2])
        if "error" in r:
            rows.append(f"{r['peer']:<16} {'':<22} {py:<5} {r.get('run', ''):<9} ERROR "
                        f"{r['error'].splitlines()[-1][:150]}")
            continue
        per_sym = r.get("rss_marginal_per_symbol_bytes", r.get("rss_per_symbol_bytes"))
        busy = "*" if r.get("other_cpu_percent", 0) > BUSY_OTHER_PERCENT else ""
        notes = []
        if r.get("lenient"):
            notes.append("lenient: " + ", ".join(r["lenient"]))
        if "rss_marginal_per_symbol_bytes" in r:
            notes.append("KB/sym marginal 50->1000")
        if r.get("peak_rss_bytes", 0) > 1.5 * r.get("rss_bytes", 0) and r.get("peak_rss_bytes", 0) > 200e6:
            notes.append(f"peak RSS {r['peak_rss_bytes'] / 1e6:,.0f} MB")
        if (r.get("end_check") or {}).get("error"):
            notes.append(f"exact check failed: {r['end_check']['error'][:60]}")
        if "keeps_up" in r:
            notes.append("paced probe: " + ("keeps up" if r["keeps_up"] else "falls behind"))
        if r.get("rounds"):
            notes.append(_rounds_note(r))
        if r.get("remeasured_at"):
            notes.append(f"re-measured {r['remeasured_at']}")
        if (r.get("facts") or {}).get("events_are"):
            notes.append(f"events = {r['facts']['events_are']}")
        if r.get("latency_unmatched"):
            notes.append(f"{r['latency_unmatched']} unjoined")
        rows.append(
            f"{r['peer']:<16} {str(r.get('version', ''))[:22]:<22} {py:<5} {r['run']:<9} {r['symbols']:>4} "
            f"{r['events_per_s']:>9,.0f} {r['applied_per_s']:>10,.0f} {r['offered_per_s']:>10,.0f} "
            f"{_ms(r.get('latency_p50_s')):>7} {_ms(r.get('latency_p99_s')):>8} "
            f"{_ms(r.get('latency_stamp_p99_s')):>9} {r['cpu_percent']:>5.0f} "
            f"{_num(r.get('cpu_us_per_diff'), '{:.2f}'):>7} {_num(r.get('cpu_us_per_event'), '{:.1f}'):>8} "
            f"{r['rss_bytes'] / 1e6:>7.0f} {_num(per_sym / 1e3 if per_sym is not None else None, '{:.1f}'):>7} "
            f"{_exact(r.get('end_check')):>6} {r.get('other_cpu_percent', 0):>5.0f}{busy}  {'; '.join(notes)}")
    return rows


def _rounds_note(r: dict[str, Any]) -> str:
    """``median of N rounds`` and the spread of the figures the targets judge (peers_rounds.py)."""
    samples = r.get("samples") or {}
    shown = ((("applied_per_s", "diffs/s", 1e-3, "{:,.0f}k"),) if r.get("run") == "max" else
             (("latency_p99_s", "p99 ms", 1e3, "{:.1f}"), ("cpu_us_per_diff", "us/diff", 1.0, "{:.2f}")))
    parts = []
    for key, label, scale, fmt in shown:
        values = [v * scale for v in samples.get(key) or [] if v is not None]
        if values:
            parts.append(f"{label} {fmt.format(min(values))}-{fmt.format(max(values))}")
    failed = f", {r['failed_rounds']} failed" if r.get("failed_rounds") else ""
    return f"median of {r['rounds']} rounds{failed}" + (f" ({', '.join(parts)})" if parts else "")


def _behaviour(r: dict[str, Any]) -> str:
    gap, restart = r.get("after_gap") or {}, r.get("after_restart") or {}
    venue = r.get("venue_counters") or {}
    facts = r.get("facts") or {}
    bits = [f"gap: {gap.get('peer_snapshots', 0)} snapshot(s)", f"restart: {restart.get('peer_snapshots', 0)} snapshot(s)",
            f"REST {venue.get('rest_requests', 0)}, connections {venue.get('connections_opened', 0)}, "
            f"requests {venue.get('commands_received_total', 0)}"]
    for key in ("checksum_errors", "resync_requests", "gap_resets_logged", "errors", "other_errors"):
        if facts.get(key):
            bits.append(f"{key} {facts[key]}")
    return "; ".join(bits)


def _fault_rows(result: dict[str, Any]) -> list[str]:
    faults = result.get("faults", [])
    if not faults:
        return []
    meta = result.get("meta", {})
    header = f"{'peer':<16} {'baseline':<9} {'after gap (1 s / end)':<24} {'after restart (3 s / end)':<26} behaviour"
    rows = ["", f"Correctness: {meta.get('faults', {}).get('symbols', '?')} symbols, 100 ms windows; one dropped event of "
                f"the first symbol, then a venue restart; each book compared with the venue's truth after a freeze, "
                f"early and after {meta.get('recover_s', '?')} s.", header, "-" * len(header)]
    for r in _in_catalog_order(faults):
        if "error" in r:
            rows.append(f"{r['peer']:<16} ERROR {r['error'].splitlines()[-1][:150]}")
            continue
        rows.append(f"{r['peer']:<16} {_exact(r.get('baseline')):<9} {_fault_cell(r.get('after_gap')):<24} "
                    f"{_fault_cell(r.get('after_restart')):<26} {_behaviour(r)}")
    return rows


def render(result: dict[str, Any]) -> str:
    meta = result.get("meta", {})
    lines = [f"Binance peers on {meta.get('machine', '?')} ({meta.get('cpu_count', '?')} cores, shared: expect noise), "
             f"{meta.get('date', '?')}, commit {meta.get('commit', '?')}, window {meta.get('seconds', '?')} s "
             f"after {meta.get('warmup_s', '?')} s warm-up{', QUICK' if meta.get('quick') else ''}; "
             f"simulator feeds framed {meta.get('framing', 'batch')}.",
             "diffs = level changes (update ids); an event carries several. Latency: apply - send, joined on "
             "(symbol, u); 'stamp p99' from the event's x field where the peer exposes it.", ""]
    lines += _ceilings(result)
    lines += ["", *_perf_rows(result), *_fault_rows(result), ""]
    targets = result.get("targets")
    targets = peers_targets.compute(result) if targets is None else targets
    lines += [*peers_targets.render(targets), ""] if targets else []
    lines.append("Peers: " + "; ".join(f"{n} {s.version} py{s.python_minor}: {s.note}" for n, s in PEERS.items()))
    return "\n".join(lines)
