"""One peer harness run for peers_bench.py: a fresh source process, the harness under watch, its JSON.

- ``source_process``: the simulator (binance, stamped) or the replay feeder in its own process;
- ``run_harness``: the peer's harness (bench/peers/<peer>_peer.py) with that peer's interpreter,
  against the source, killed past its time or memory budget (``run_watched``), and the latency join
  (``join_latency``: apply time from the harness, send time from the source, on (symbol, u));
- ``derive`` / ``marginal_rss`` / ``keeps_up``: figures computed from the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import SIM_LEVELS, SIM_SEED, announced_process, stop_process, symbol_codes, wait_for_idle
from peers_catalog import PeerSpec
from peers_targets import keeps_up  # noqa: F401 - re-exported for peers_bench.py

SOURCE_START_TIMEOUT_S = 30.0
#: a harness may take this long beyond warm-up + window (start, 1000 snapshots, exact check, stop)
HARNESS_SLACK_S = 150.0
#: a harness above this RSS is stopped (nautilus reads a flood into an unbounded queue)
MAX_PEER_RSS_BYTES = 4_000_000_000


@contextlib.contextmanager
def source_process(kind: str, symbols: int, total_rate: float, *, lenient: bool, send_log: str,
                   windows: bool = False, stderr_path: str | None = None,
                   max_now: bool = False) -> Iterator[dict[str, Any]]:
    """The simulator (binance, stamped) or the replay feeder in its own process; yields its URLs + pid."""
    codes = symbol_codes(symbols)
    if kind == "feeder":
        cmd = [sys.executable, str(BENCH_DIR / "feeder.py"), "--symbols", str(symbols), "--seed", str(SIM_SEED),
               "--levels", str(SIM_LEVELS), "--send-log", send_log, *(["--max-now"] if max_now else []),
               *(["--rate", repr(total_rate)] if total_rate > 0 else [])]
    else:
        per_symbol = total_rate / symbols if total_rate > 0 else 0.0
        cmd = [sys.executable, "-m", "depthkeeper.simulator", "--dialect", "binance", "--stamp", "--seed",
               str(SIM_SEED), "--levels", str(SIM_LEVELS), "--rate", repr(per_symbol), "--symbols", ",".join(codes),
               "--binance-interval-scale", "1" if windows else "0", "--binance-send-log", send_log]
        cmd += ["--binance-lenient"] if lenient else []
    with announced_process(cmd, kind, SOURCE_START_TIMEOUT_S, stderr_path) as (proc, info):
        yield {**info, "pid": proc.pid, "kind": kind}


def join_latency(records_path: Path, send_log_path: Path) -> dict[str, Any]:
    """Latency per applied event: apply time (harness) - send time (source), joined on (symbol, u)."""
    import struct

    from depthkeeper.simulator.send_log import read_send_log

    if not records_path.exists() or not send_log_path.exists():
        return {"latency_samples": 0}
    applied = list(struct.Struct("<IQd").iter_unpack(records_path.read_bytes()))
    wanted = {(symbol, u) for symbol, u, _t in applied}
    sent: dict[tuple[int, int], tuple[int, float]] = {}
    for symbol, era, u, sent_s in read_send_log(send_log_path):
        key = (symbol, u)
        if key in wanted and (key not in sent or era > sent[key][0]):
            sent[key] = (era, sent_s)
    latencies = sorted(t - sent[(s, u)][1] for s, u, t in applied if (s, u) in sent)
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None)
    return {"latency_samples": len(latencies), "latency_unmatched": len(applied) - len(latencies),
            "latency_p50_s": pick(0.5), "latency_p99_s": pick(0.99), "latency_max_s": latencies[-1] if latencies else None}


def lenient_reasons(spec: PeerSpec, symbols: int) -> list[str]:
    reasons = []
    if spec.needs_lenient:
        reasons.append("unpaced SUBSCRIBEs")
    if symbols >= 1000:
        reasons.append("REST weight of 1000 snapshots")
    return reasons


def run_harness(spec: PeerSpec, label: str, symbols: int, total_rate: float, kind: str,
                args: argparse.Namespace, scenario: str = "perf") -> dict[str, Any]:
    """A fresh source, the peer's harness against it, its JSON (+ the latency join) back."""
    busy_before = wait_for_idle(args.wait_idle) if args.wait_idle > 0 else None
    reasons = lenient_reasons(spec, symbols) if kind == "sim" else ["replay feeder enforces no limits"]
    # 1000 snapshots leave a backlog to drain; the feeder floods only ~1 s after the last snapshot
    warmup = args.warmup + (3.0 if symbols >= 1000 else 0.0) + (1.0 if kind == "feeder" else 0.0)
    out: dict[str, Any] = {"peer": spec.name, "run": label, "symbols": symbols, "offered_target_per_s": total_rate,
                           "source": kind, "lenient": reasons}
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        send_log, records = Path(tmp) / "sent.bin", Path(tmp) / "records.bin"
        try:
            with source_process(kind, symbols, total_rate, lenient=bool(reasons) and kind == "sim",
                                send_log=str(send_log), windows=scenario == "faults" or args.framing == "100ms",
                                stderr_path=str(Path(tmp) / "source.err"),
                                max_now=kind == "feeder" and not spec.snapshots) as src:
                cmd = [str(spec.venv_python), str(BENCH_DIR / "peers" / f"{spec.harness}.py"),
                       "--ws-url", src["url"], "--rest-url", src["rest_url"], "--control-url", src["control_url"],
                       "--symbols", str(symbols), "--scenario", scenario, "--warmup", str(warmup),
                       "--seconds", str(args.seconds), "--records", str(records), "--sim-pid", str(src["pid"]),
                       "--recover", str(args.recover), "--ready-timeout", str(args.ready_timeout),
                       *spec.harness_args]
                budget = warmup + args.seconds + args.ready_timeout + 3 * args.recover + HARNESS_SLACK_S
                stdout, stderr, peak, killed = run_watched(cmd, budget, Path(tmp) / "harness.err")
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            return {**out, "error": f"{type(exc).__name__}: {exc}"}
        out["peak_rss_bytes"] = peak
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if killed or not lines:
            tail = "\n".join(stderr.strip().splitlines()[-12:])
            return {**out, "error": killed or f"no JSON: {tail}"}
        harness_result = json.loads(lines[-1])
        out.update({**harness_result, "peer": spec.name, "harness_peer": harness_result.get("peer")})
        out["stderr_tail"] = stderr.strip().splitlines()[-5:]
        if scenario == "perf":
            out.update(join_latency(records, send_log))
    out["loadavg_1m"] = os.getloadavg()[0]
    out["machine_busy_before_percent"] = busy_before
    return out


def run_watched(cmd: list[str], budget_s: float, stderr_path: Path) -> tuple[str, str, int, str]:
    """Run a harness; kill it (by its pid) past ``budget_s`` or ``MAX_PEER_RSS_BYTES``.

    Returns (stdout, stderr, peak RSS, why it was killed or ""). A client that reads a flood into an
    unbounded queue grows without limit; on a shared 24 GB machine the run must stay bounded.
    """
    import psutil

    with open(stderr_path, "w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout else ""),
                                  daemon=True)
        reader.start()
        deadline, peak, killed = time.monotonic() + budget_s, 0, ""
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            if peak > MAX_PEER_RSS_BYTES:
                killed = f"killed: RSS {peak / 1e9:.1f} GB > {MAX_PEER_RSS_BYTES / 1e9:.0f} GB (unbounded buffering)"
            elif time.monotonic() > deadline:
                killed = f"killed: no result within {budget_s:.0f}s"
            if killed:
                stop_process(proc)
                break
            time.sleep(0.25)
        reader.join(10)
        err.seek(0)
        return "".join(chunks), err.read(), peak, killed


def derive(result: dict[str, Any]) -> None:
    """CPU per applied level change / per event, and RSS per symbol, where the run produced them."""
    if "error" in result or result.get("scenario") != "perf":
        return
    cpu = result.get("cpu_percent", 0.0) / 100.0
    if result.get("applied_per_s"):
        result["cpu_us_per_diff"] = cpu * 1e6 / result["applied_per_s"]
    if result.get("events_per_s"):
        result["cpu_us_per_event"] = cpu * 1e6 / result["events_per_s"]
        result["diffs_per_event"] = result["applied_per_s"] / result["events_per_s"]


def marginal_rss(results: list[dict[str, Any]]) -> None:
    """RSS per symbol between a peer's 50-symbol and 1000-symbol runs: the fixed cost cancels out."""
    by_peer: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_peer.setdefault(r["peer"], {})[r["run"]] = r
    for runs in by_peer.values():
        small, big = runs.get("10k"), runs.get("1000x20k")
        if small and big and "rss_bytes" in small and "rss_bytes" in big and big["symbols"] > small["symbols"]:
            big["rss_marginal_per_symbol_bytes"] = (big["rss_bytes"] - small["rss_bytes"]) / (
                big["symbols"] - small["symbols"])
