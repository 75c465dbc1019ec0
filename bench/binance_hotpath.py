"""depthkeeper's whole tree on the Binance dialect: CPU per applied event and per level change.

    python bench/binance_hotpath.py [--symbols 50] [--rate 0] [--seconds 8] [--source feeder|sim [--windows]] [--listener [inline|threaded]]

Starts the replay feeder (``feeder.py``, ``--rate 0`` = as fast as we read) or the binance simulator
in a subprocess, runs ``BookService`` (``venue.dialect = "binance"``) against it in this process, waits
until every book applies, then measures one window: events applied (from ``book_stats``), level changes
(events x the feeder's levels per event), this process's CPU seconds (every thread) per event and per
level change, and the in-tree latency (``svc.latency_samples``: venue stamp -> applied, per event).
Profile the window with ``py-spy record --pid P -d S`` once ``window pid=P`` is printed on stderr. A development tool for the hot path, not the peers benchmark (``peers_bench.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import announced_process, symbol_codes, weighted_percentile
from peers.tree import _quiet_logs


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per live Python thread (by name; same names summed), from /proc (Linux only)."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        name = re.sub(r"-\d+$", "", thread.name)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _source(kind: str, symbols: int, rate: float, windows: bool) -> list[str]:
    """The command of the feed: the replay feeder, or the binance simulator (lenient)."""
    codes = symbol_codes(symbols)
    if kind == "feeder":
        cmd = [sys.executable, str(BENCH_DIR / "feeder.py"), "--symbols", str(symbols), "--seed", "1",
               "--levels", "50", *(["--rate", repr(rate)] if rate > 0 else [])]
    else:
        cmd = [sys.executable, "-m", "depthkeeper.simulator", "--dialect", "binance", "--stamp", "--seed", "1",
               "--levels", "50", "--rate", repr(rate / symbols if rate > 0 else 0.0), "--symbols", ",".join(codes),
               "--binance-interval-scale", "1" if windows else "0", "--binance-lenient"]
    return cmd


def _config(urls: dict[str, Any], codes: list[str]) -> Any:
    from depthkeeper.supervisor.service.config import config_from_mapping

    return config_from_mapping({
        "venue": {"dialect": "binance", "url": urls["url"], "snapshot_url": urls["rest_url"], "snapshot_limit": 100},
        "symbols": {"initial": list(codes)},
        "snapshot": {"max_per_second": 1000.0},
        "calibration": {"interval_s": 0.0},
        "heartbeat": {"interval_s": 10.0},
        "simulator": {"enabled": False},
        "log": {"level": "WARNING"},
    }, environ={})


def measure(args: argparse.Namespace) -> dict[str, Any]:
    codes = symbol_codes(args.symbols)
    with announced_process(_source(args.source, args.symbols, args.rate, args.windows), "the source", 30.0) \
            as (_proc, urls):
        warnings = _quiet_logs()
        from depthkeeper.supervisor.service.facade import BookService

        svc = BookService.start(_config(urls, codes))
        delivered = [0]
        if args.listener:
            def on_event(event: Any, delivered: list[int] = delivered) -> None:
                view = getattr(event, "view", None)
                if view is not None and view.seq:
                    delivered[0] += 1

            # as the peers harness observes updates
            svc.add_listener(on_event, depth=args.depth, inline=args.listener == "inline")
        try:
            if not svc.wait_live(timeout=90.0):
                from collections import Counter

                counts = Counter(str(s.status) for s in svc.book_stats().values())
                raise RuntimeError(f"not every book LIVE within 90 s: {dict(counts)}")
            deadline = time.monotonic() + 30.0
            while not all(s.applied > 0 for s in svc.book_stats().values()) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(args.warmup)
            print(f"window pid={os.getpid()}", file=sys.stderr, flush=True)  # a profiler may attach now
            stats0 = svc.book_stats()
            marks, _ = svc.latency_samples()
            threads0, cpu0, t0, d0 = _thread_cpu(), _cpu(), time.perf_counter(), delivered[0]
            time.sleep(args.seconds)
            cpu1, t1, threads1, d1 = _cpu(), time.perf_counter(), _thread_cpu(), delivered[0]
            stats1 = svc.book_stats()
            _, samples = svc.latency_samples(since=marks)
            sides = [len(side) for code in codes[:20] for side in (svc.book(code).bids, svc.book(code).asks)]
        finally:
            svc.stop()
    events = sum(s.applied for s in stats1.values()) - sum(s.applied for s in stats0.values())
    levels_per_event = 2048 // args.symbols if args.source == "feeder" else 0
    cpu = cpu1 - cpu0
    wall = t1 - t0
    pooled = sorted(pair for book in samples.values() for pair in book)
    return {
        "symbols": args.symbols, "rate": args.rate, "source": args.source, "window_s": round(wall, 2),
        "events_per_s": round(events / wall), "diffs_per_s": round(events * levels_per_event / wall),
        "cpu_share": round(cpu / wall, 3),
        "cpu_us_per_event": round(cpu / events * 1e6, 2) if events else None,
        "cpu_us_per_diff": round(cpu / (events * levels_per_event) * 1e6, 3) if events and levels_per_event else None,
        # the simulator's rate is level changes/s: per offered change (the tree keeps up at these rates)
        "cpu_us_per_offered_diff": round(cpu / (args.rate * wall) * 1e6, 2) if args.source == "sim" and args.rate else None,
        "p50_ms": round(weighted_percentile(pooled, 0.5) * 1e3, 3) if pooled else None,
        "p99_ms": round(weighted_percentile(pooled, 0.99) * 1e3, 3) if pooled else None,
        "gaps": sum(s.gaps for s in stats1.values()) - sum(s.gaps for s in stats0.values()),
        "resyncs": sum(s.resyncs for s in stats1.values()) - sum(s.resyncs for s in stats0.values()),
        "warnings": warnings.get("WARNING", 0),
        "levels_per_side": round(sum(sides) / len(sides), 1) if sides else None,
        "delivered_per_s": round((d1 - d0) / wall) if args.listener else None,
        # CPU ms per second of window, per thread (threads alive at both ends of the window)
        "threads_ms_per_s": {name: round((threads1[name] - threads0[name]) / wall * 1e3, 1)
                             for name in sorted(threads1) if name in threads0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="feeder: events/s in all; sim: level changes/s in all (0 = as fast as we read)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--source", choices=("feeder", "sim"), default="feeder")
    parser.add_argument("--windows", action="store_true", help="sim: Binance's 100 ms framing (one event per symbol per 100 ms)")
    parser.add_argument("--listener", nargs="?", const="inline", choices=("inline", "threaded"),
                        help="a per-update listener: inline (as the peers harness has) or threaded")
    parser.add_argument("--depth", type=int, default=10, help="levels a side in each listener view (the harness's: 10)")
    args = parser.parse_args()
    print(json.dumps(measure(args)))
    sys.stdout.flush()
    os._exit(0)  # daemon threads of a stopped tree never delay the exit


if __name__ == "__main__":
    main()
