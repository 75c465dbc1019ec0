"""depthkeeper's full tree (supervisor, connection, subscription, snapshot, books) as a peer.

Everything goes through the public facade, ``BookService``, exactly as a host would use it:
start, ``wait_live``, let it run, read ``book_stats()`` / ``stats()`` at the window edges and
call ``svc.book(code, depth=10)`` from outside the tree for the read latency.

Latency is the service's own figure, ``svc.latency_samples()``: venue send ``ts`` -> applied per
applied batch, timed from the batch's oldest diff (an upper bound for every diff in it), taken
after a mark at the start of the window so it covers the window only, and pooled over all books weighted by the
diffs in each batch -- per applied diff, as the naive peer measures. The worst single book's
p99 is reported too (``latency_p99_worst_book_s``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from common import ProcessMeter, lag_diffs, resource_figures, venue_seqs, weighted_percentile

#: how long the tree may take to get every book LIVE (1000 symbols need 1000 snapshots)
LIVE_TIMEOUT_S = 60.0
#: snapshot budget for the bench: the default 20/s would make a 1000-symbol start take 50 s
SNAPSHOT_PER_S = 1000.0
#: the timed book reads stop after this long (a backlogged tree answers slowly)
READ_BUDGET_S = 3.0
#: an ask from outside waits at most this long (a backlogged book answers late, not never)
ASK_TIMEOUT_S = 10.0


def _quiet_logs() -> dict[str, int]:
    """The bench is a CLI: it owns the sinks. Count warnings, print errors to stderr only."""
    from loguru import logger

    counts: dict[str, int] = {"WARNING": 0, "ERROR": 0, "CRITICAL": 0}

    def count(message: Any) -> None:
        level = message.record["level"].name
        counts[level] = counts.get(level, 0) + 1

    import depthkeeper.supervisor  # noqa: F401 - the library disables its logs on import; enable after it

    logger.remove()
    logger.add(count, level="WARNING", format="{message}")
    logger.add(sys.stderr, level="ERROR")
    logger.enable("depthkeeper")
    return counts


def _config(url: str, rest_url: str, codes: list[str], book_threads: int | None = None) -> Any:
    from depthkeeper.supervisor.service.config import config_from_mapping

    return config_from_mapping({
        "book": {} if book_threads is None else {"threads": book_threads},
        "venue": {"dialect": "article", "url": url, "snapshot_url": rest_url},
        "symbols": {"initial": list(codes)},
        "snapshot": {"max_per_second": SNAPSHOT_PER_S},
        "calibration": {"interval_s": 0.0},
        "heartbeat": {"interval_s": 10.0},
        "simulator": {"enabled": False},
        "log": {"level": "WARNING"},
    }, environ={})


def _book_figures(svc: Any) -> dict[str, Any]:
    stats = svc.book_stats()
    return {
        "applied": sum(s.applied for s in stats.values()),
        "seqs": {code: s.seq for code, s in stats.items()},
        "inbox": sum(s.inbox for s in stats.values()),
        "gaps": sum(s.gaps for s in stats.values()),
        "resyncs": sum(s.resyncs for s in stats.values()),
        "overflows": sum(s.overflows for s in stats.values()),
        "answered": len(stats),
        "stats": stats,
    }


def _edge(svc: Any, control_url: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Venue seqs and book figures at one window edge. The books answer over a few ms (each
    from its own thread), so the venue is read before and after and the midpoint is used:
    the lag is then neither flattered nor inflated by the time the asks take."""
    before = venue_seqs(control_url)
    books = _book_figures(svc)
    after = venue_seqs(control_url)
    return {code: (seq + after.get(code, seq)) / 2 for code, seq in before.items()}, books


def _connection(svc: Any) -> dict[str, Any]:
    conn = svc.stats().connection
    return {"frames": conn.frames, "overflow_skipped": conn.overflow_skipped, "reconnects": conn.reconnects}


def _wait_flowing(svc: Any, codes: list[str], timeout_s: float) -> None:
    """LIVE is not enough (a snapshot alone makes a book LIVE): wait until every book applied a diff."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = svc.book_stats()
        if len(stats) == len(codes) and all(s.applied > 0 for s in stats.values()):
            return
        time.sleep(0.05)
    flowing = sum(1 for s in svc.book_stats().values() if s.applied > 0)
    raise RuntimeError(f"depthkeeper: only {flowing}/{len(codes)} books applied a diff within {timeout_s}s "
                       f"(frames read: {_connection(svc)['frames']})")


def _book_call_latencies(svc: Any, codes: list[str], calls: int, budget_s: float) -> list[float]:
    """``svc.book(code, depth=10)`` from this (non-actor) thread, cycling through the codes."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for i in range(calls):
        t0 = time.perf_counter()
        svc.book(codes[i % len(codes)], depth=10)
        t1 = time.perf_counter()
        out.append(t1 - t0)
        if t1 > deadline:
            break
    return sorted(out)


def run(url: str, rest_url: str, control_url: str, codes: list[str], *, warmup_s: float, seconds: float,
        read_calls: int = 2000, sim_pid: int | None = None, book_threads: int | None = None) -> dict[str, Any]:
    """Start the service, wait until every book is LIVE, measure one window, return the figures."""
    warnings = _quiet_logs()
    meter = ProcessMeter(sim_pid)
    from depthkeeper.supervisor.service.facade import BookService

    cfg = _config(url, rest_url, codes, book_threads)
    rss_base = meter.rss_bytes()
    started = time.perf_counter()
    svc = BookService.start(cfg, ask_timeout_s=ASK_TIMEOUT_S)
    try:
        if not svc.wait_live(timeout=LIVE_TIMEOUT_S):
            raise RuntimeError(f"depthkeeper: not every book LIVE within {LIVE_TIMEOUT_S}s")
        _wait_flowing(svc, codes, LIVE_TIMEOUT_S / 2)
        ready_s = time.perf_counter() - started
        time.sleep(warmup_s)

        conn0 = _connection(svc)
        t0 = time.perf_counter()
        venue0, books0 = _edge(svc, control_url)
        marks, _ = svc.latency_samples()  # latency over this window only (not the start-up catch-up)
        meter.start()
        time.sleep(seconds)
        venue1, books1 = _edge(svc, control_url)
        _, samples = svc.latency_samples(since=marks)
        t1 = time.perf_counter()
        cpu_window = meter.stop()
        conn1 = _connection(svc)
        rss = meter.rss_bytes()
        threads = meter.threads()
        t_reads = time.perf_counter()
        reads = _book_call_latencies(svc, codes, read_calls, budget_s=READ_BUDGET_S)
        reads_s = time.perf_counter() - t_reads
    finally:
        t_stop = time.perf_counter()
        svc.stop()
        stop_s = time.perf_counter() - t_stop
    elapsed = t1 - t0
    stats = books1["stats"].values()
    pooled = sorted(pair for book in samples.values() for pair in book)
    offered = sum(venue1.values()) - sum(venue0.values())
    return {
        "peer": "depthkeeper",
        "symbols": len(codes),
        "ready_s": ready_s,
        "window_s": elapsed,
        "offered_per_s": offered / elapsed,
        "applied": books1["applied"] - books0["applied"],
        "applied_per_s": (books1["applied"] - books0["applied"]) / elapsed,
        "frames_per_s": (conn1["frames"] - conn0["frames"]) / elapsed,
        "lag_start": lag_diffs(venue0, books0["seqs"]),
        "lag_end": lag_diffs(venue1, books1["seqs"]),
        "inbox_start": books0["inbox"],
        "inbox_end": books1["inbox"],
        "latency_samples": sum(n for _, n in pooled),
        "latency_p50_s": weighted_percentile(pooled, 0.5),
        "latency_p99_s": weighted_percentile(pooled, 0.99),
        "latency_max_s": pooled[-1][0] if pooled else 0.0,
        "latency_p99_worst_book_s": max((s.latency_p99_s for s in stats), default=0.0),
        **resource_figures(cpu_window, rss, rss_base, len(codes), reads),
        "threads": threads,
        "reads_s": reads_s,
        "stop_s": stop_s,
        "gaps": books1["gaps"] - books0["gaps"],
        "resyncs": books1["resyncs"] - books0["resyncs"],
        "overflows": books1["overflows"] - books0["overflows"],
        "overflow_skipped": conn1["overflow_skipped"] - conn0["overflow_skipped"],
        "reconnects": conn1["reconnects"] - conn0["reconnects"],
        "books_answered": books1["answered"],
        "warnings_logged": warnings.get("WARNING", 0),
    }
