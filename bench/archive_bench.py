"""Does the archive slow the live books? Applied diffs/s with ``[archive]`` on vs off.

A benchmark figure, not a timed test. The ArchiveActor only listens through the
ListenerHub (conflated per symbol) and writes from its own thread, so the books should
apply the same diffs/s with it on; what it can cost is CPU (the BookActors build a view
per batch for the hub, the archive serialises and commits) and, on a saturated machine,
the GIL time that CPU takes. This measures exactly that:

- a stamped article simulator in its own process (``common.simulator_process``), at
  ``--rate`` total diffs/s (0 = as fast as the client reads), ``--symbols`` symbols;
- for each round and each mode (off, on -- alternated so drift hits both), a fresh child
  process runs BookService against a fresh simulator: wait until every book is LIVE and
  applying, warm up, then count applied diffs over the window; with the archive on it also
  reads the ArchiveActor's counters (rows, skipped views, missed intervals, batch time);
- the table shows the median over rounds per mode and the on/off ratio.

    python bench/archive_bench.py [--symbols 50] [--rates 0,20000] [--seconds 5] [--warmup 2]
                                  [--interval 1.0] [--depth 10] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ProcessMeter, simulator_process, symbol_codes, venue_seqs

HERE = Path(__file__).resolve().parent
LIVE_TIMEOUT_S = 60.0
CHILD_TIMEOUT_S = 180.0


def _quiet_logs() -> None:
    """The bench owns the sinks (it is a CLI): errors only, on stderr."""
    from loguru import logger

    import depthkeeper.supervisor  # noqa: F401 - the library disables its logs on import; enable after it

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    logger.enable("depthkeeper")


def _config(urls: Any, codes: list[str], archive: str, interval_s: float, depth: int) -> Any:
    from depthkeeper.supervisor.service.config import config_from_mapping

    return config_from_mapping({
        "venue": {"dialect": "article", "url": urls.url, "snapshot_url": urls.rest_url},
        "symbols": {"initial": codes},
        "snapshot": {"max_per_second": 1000.0},
        "calibration": {"interval_s": 0.0},
        "heartbeat": {"interval_s": 10.0},
        "simulator": {"enabled": False},
        "archive": {"path": archive, "interval_s": interval_s, "depth": depth},
    }, environ={})


def _archive_counters(svc: Any) -> dict[str, Any]:
    import attrs

    from depthkeeper.actors.messages import GetCounters

    ref = svc.tree.ref("archive")
    if ref is None:
        return {}
    report = ref.ask(GetCounters(), timeout=10)
    return {**attrs.asdict(report.counters), "skipped": report.skipped}


def _applied(svc: Any) -> int:
    return sum(s.applied for s in svc.book_stats().values())


def measure(mode: str, symbols: int, rate: float, seconds: float, warmup_s: float, interval_s: float,
            depth: int) -> dict[str, Any]:
    """One run in this process: returns the figures as a dict."""
    _quiet_logs()
    from depthkeeper.supervisor.service.facade import BookService

    codes = symbol_codes(symbols)
    with tempfile.TemporaryDirectory() as tmp, simulator_process(symbols, rate) as urls:
        archive = str(Path(tmp) / "books.sqlite") if mode == "on" else ""
        svc = BookService.start(_config(urls, codes, archive, interval_s, depth), ask_timeout_s=10.0)
        try:
            if not svc.wait_live(timeout=LIVE_TIMEOUT_S):
                raise RuntimeError("not every book LIVE in time")
            deadline = time.monotonic() + LIVE_TIMEOUT_S
            while not all(s.applied > 0 for s in svc.book_stats().values()) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(warmup_s)
            meter = ProcessMeter()
            arch0, venue0, applied0 = _archive_counters(svc), venue_seqs(urls.control_url), _applied(svc)
            t0 = time.perf_counter()
            meter.start()
            time.sleep(seconds)
            applied1, t1 = _applied(svc), time.perf_counter()
            cpu = meter.cpu_percent()
            venue1, arch1 = venue_seqs(urls.control_url), _archive_counters(svc)
            resyncs = sum(s.resyncs for s in svc.book_stats().values())
        finally:
            svc.stop()
        size = Path(archive).stat().st_size if archive else 0
    window = t1 - t0
    delta = {k: arch1.get(k, 0) - arch0.get(k, 0) for k in ("rows_written", "skipped", "missed_intervals",
                                                              "batches", "events_written")}
    return {"mode": mode, "symbols": symbols, "rate": rate, "window_s": window,
            "applied_per_s": (applied1 - applied0) / window,
            "offered_per_s": (sum(venue1.values()) - sum(venue0.values())) / window,
            "cpu_percent": cpu, "resyncs": resyncs, "archive_bytes": size,
            "last_batch_s": arch1.get("last_batch_s", 0.0), **delta}


def _child(mode: str, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", mode, "--symbols", str(args.symbols),
           "--rates", repr(rate), "--seconds", repr(args.seconds), "--warmup", repr(args.warmup),
           "--interval", repr(args.interval), "--depth", str(args.depth)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=HERE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: list[dict[str, Any]], rates: list[float]) -> str:
    lines = ["| feed (total diffs/s) | archive | offered/s | applied/s | (min-max) | on/off | CPU % | CPU us/diff "
             "| rows/s | skipped views/s | missed intervals | last batch ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in rates:
        med: dict[str, dict[str, float]] = {}
        for mode in ("off", "on"):
            runs = [r for r in results if r["rate"] == rate and r["mode"] == mode]
            med[mode] = {k: statistics.median(r[k] for r in runs) for k in
                         ("offered_per_s", "applied_per_s", "cpu_percent", "rows_written", "skipped",
                          "missed_intervals", "last_batch_s", "window_s")}
            med[mode]["lo"] = min(r["applied_per_s"] for r in runs)
            med[mode]["hi"] = max(r["applied_per_s"] for r in runs)
            med[mode]["us_per_diff"] = statistics.median(
                1e4 * r["cpu_percent"] / r["applied_per_s"] for r in runs if r["applied_per_s"])
        for mode in ("off", "on"):
            m = med[mode]
            ratio = m["applied_per_s"] / med["off"]["applied_per_s"] if med["off"]["applied_per_s"] else 0.0
            extra = (f"{m['rows_written'] / m['window_s']:,.0f} | {m['skipped'] / m['window_s']:,.0f} | "
                     f"{m['missed_intervals']:.0f} | {1000 * m['last_batch_s']:.1f}") if mode == "on" else "- | - | - | -"
            feed = "max" if rate <= 0 else f"{rate:,.0f}"
            lines.append(f"| {feed} | {mode} | {m['offered_per_s']:,.0f} | {m['applied_per_s']:,.0f} "
                         f"| {m['lo']:,.0f}-{m['hi']:,.0f} | {ratio:.3f} | {m['cpu_percent']:.0f} "
                         f"| {m['us_per_diff']:.2f} | {extra} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rates", default="0,20000", help="total diffs/s, comma-separated; 0 = max")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=1.0, help="[archive] interval_s")
    parser.add_argument("--depth", type=int, default=10, help="[archive] depth")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    if args.one:
        print(json.dumps(measure(args.one, args.symbols, rates[0], args.seconds, args.warmup, args.interval,
                                 args.depth)))
        return 0
    results = []
    for round_no in range(args.rounds):
        for rate in rates:
            for mode in (("off", "on") if round_no % 2 == 0 else ("on", "off")):
                result = _child(mode, args, rate)
                results.append(result)
                print(f"round {round_no + 1} rate {rate:g} archive {mode}: {result['applied_per_s']:,.0f} applied/s",
                      file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{args.symbols} symbols, window {args.seconds}s after {args.warmup}s warm-up, archive every "
              f"{args.interval}s depth {args.depth}, median of {args.rounds} rounds")
        print(_table(results, rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
