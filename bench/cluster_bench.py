"""Cluster benchmark (issue 17): publish throughput per shard and consumer end-to-end latency.

Not a timed test: numbers depend on the machine. Everything runs on 127.0.0.1 with a private
redis-server on a free port (never the machine's own Redis), the simulator in its own process.

    python bench/cluster_bench.py            # every section, ~1.5 min
    python bench/cluster_bench.py --quick    # shorter windows
    python bench/cluster_bench.py --json     # the result as JSON on stdout

Sections:
1. ``bus``: RedisBus.publish alone, pipelined (one fenced script call per bucket, every symbol's
   pending entries in one round trip), 200 symbols, entries of one level change (= one diff) each,
   at several batch sizes (how many entries a symbol accumulates while the previous round is in flight).
2. ``publisher``: SlotPublisher fed BookViews as fast as one thread can build them (one level
   change per view, 20 levels a side): view -> delta -> flusher -> Redis.
3. ``shard``: a real ``depthkeeper shard`` process on a simulator offering ``--shard-rate`` diffs/s:
   venue diffs covered per second by what the shard published (conflated views: one entry can carry
   many diffs) and entries per second.
4. ``e2e``: the simulator at 10k diffs/s, one shard process, a RemoteBooks consumer here: per applied
   entry, consumer applied - shard book changed (the whole hop: the shard's listener, the publish, Redis,
   the consumer's per-bucket XREADs (cluster/lanes.py), apply) and consumer applied - published.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, simulator_process, symbol_codes

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookView
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.publisher import SlotPublisher
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks

ROOT = Path(__file__).resolve().parents[1]


def bench_bus(url: str, symbols: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    codes = [f"B{i:04d}USDT" for i in range(symbols)]
    for batch in (1, 5, 20):
        bus = RedisBus(url, f"bus{batch}", snapshot_every=1000)
        sqs = dict.fromkeys(codes, 0)
        entries = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            batches = {}
            for code in codes:
                rows = []
                for _ in range(batch):
                    sqs[code] += 1
                    sq = sqs[code]
                    rows.append(("S" if sq == 1 else "D", sq, sq, time.time(), f"{100 + sq % 50}.5:{sq % 7 + 1}.25",
                                 "", "", ""))
                batches[code] = rows
            verdicts = bus.publish(1, "bench", 0, batches)
            assert all(v[0].isdigit() for v in verdicts.values()), verdicts
            entries += symbols * batch
        elapsed = time.perf_counter() - started
        out[f"batch_{batch}"] = {"entries_per_s": round(entries / elapsed), "diffs_per_entry": 1}
        bus.r.flushdb()
        bus.close()
    return out


def bench_publisher(url: str, symbols: int, seconds: float) -> dict[str, Any]:
    bus = RedisBus(url, "pub", snapshot_every=1000)
    codes = [f"P{i:04d}USDT" for i in range(symbols)]
    pub = SlotPublisher(bus, 0, 1, "bench", snapshot_every=1000, on_refused=lambda *a: None)
    pub.claim(codes, "bench")
    rng = random.Random(1)
    books = {c: ({100.0 - k / 10: 1.0 for k in range(20)}, {100.1 + k / 10: 1.0 for k in range(20)}) for c in codes}
    seqs = dict.fromkeys(codes, 0)
    views = 0
    started = time.perf_counter()
    base = pub.counters["entries"]
    while time.perf_counter() - started < seconds:
        code = codes[views % symbols]
        bids, asks = books[code]
        side = bids if rng.random() < 0.5 else asks
        price = rng.choice(list(side))
        side[price] = rng.randint(1, 9999) / 100
        seqs[code] += 1
        pub.offer_view(BookView(code, BookStatus.LIVE, seqs[code], tuple(sorted(bids.items(), reverse=True)),
                                tuple(sorted(asks.items())), time.time()))
        views += 1
    pub.flush(30)
    elapsed = time.perf_counter() - started
    published = pub.counters["entries"] - base
    result = {"views_per_s": round(views / elapsed), "entries_per_s": round(published / elapsed),
              "calls": pub.counters["calls"], "entries_per_call": round(published / max(1, pub.counters["calls"]), 1)}
    pub.close()
    bus.close()
    return result


def shard_config(path: Path, sim: Any, redis_url: str, codes: list[str], slot_size: int) -> Path:
    path.write_text(f"""
[venue]
dialect = "article"
url = "{sim.url}"
snapshot_url = "{sim.rest_url}"
[symbols]
initial = {json.dumps(codes)}
[snapshot]
max_per_second = 1000.0
[calibration]
interval_s = 0.0
[log]
level = "WARNING"
stats_interval_s = 0
[cluster]
redis_url = "{redis_url}"
name = "bench"
lease_ttl_s = 3.0
slot_size = {slot_size}
snapshot_every = 1000
""")
    return path


def start_shard(config: Path, log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "shard", "--config", str(config)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def covered(bus: RedisBus, codes: list[str]) -> tuple[int, int]:
    """(sum of published venue seqs, sum of published bus seqs) over codes."""
    _, statuses = bus.statuses(codes)
    return (sum(int(s.get("vs", 0) or 0) for s in statuses.values()),
            sum(int(s.get("sq", 0) or 0) for s in statuses.values()))


class CpuMeter:
    """CPU % of our processes over a window, and what everything else on the machine used meanwhile."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.start = {name: sum(p.cpu_times()[:2]) for name, p in self.procs.items()}
        self.system = psutil.cpu_times()
        self.t0 = time.monotonic()

    def read(self) -> dict[str, float]:
        import psutil

        elapsed = time.monotonic() - self.t0
        ours = {name: round(100 * (sum(p.cpu_times()[:2]) - self.start[name]) / elapsed, 1)
                for name, p in self.procs.items()}
        now = psutil.cpu_times()
        busy = (now.user + now.system + now.nice) - (self.system.user + self.system.system + self.system.nice)
        ours["others"] = round(max(0.0, 100 * busy / elapsed - sum(ours.values())), 1)
        return ours


def bench_shard(redis: LocalRedis, symbols: int, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    codes = symbol_codes(symbols)
    with simulator_process(symbols, rate) as sim:
        bus = RedisBus(redis.url, "bench")
        proc = start_shard(shard_config(tmp / "shard.toml", sim, redis.url, codes, symbols), tmp / "shard.log")
        try:
            with RemoteBooks(redis.url, name="bench") as books:
                books.subscribe(codes)
                if not books.wait_live(codes, timeout=60):
                    raise RuntimeError(f"books did not go LIVE; see {tmp / 'shard.log'}")
            time.sleep(2.0)  # warm-up
            vs0, sq0 = covered(bus, codes)
            meter = CpuMeter({"redis": redis.proc.pid, "shard": proc.pid, "sim": sim.pid})
            started = time.perf_counter()
            time.sleep(seconds)
            vs1, sq1 = covered(bus, codes)
            elapsed = time.perf_counter() - started
            cpu = meter.read()
        finally:
            stop(proc)
            bus.r.flushdb()
            bus.close()
    return {"offered_diffs_per_s": rate, "symbols": symbols, "diffs_covered_per_s": round((vs1 - vs0) / elapsed),
            "entries_per_s": round((sq1 - sq0) / elapsed),
            "diffs_per_entry": round((vs1 - vs0) / max(1, sq1 - sq0), 2), "cpu_percent": cpu}


def bench_e2e(redis: LocalRedis, symbols: int, rate: float, seconds: float, tmp: Path,
              read_per_bucket: bool = True) -> dict[str, Any]:
    codes = symbol_codes(symbols)
    with simulator_process(symbols, rate) as sim:
        proc = start_shard(shard_config(tmp / "e2e.toml", sim, redis.url, codes, symbols), tmp / "e2e.log")
        try:
            with RemoteBooks(redis.url, name="bench", record_latency=True, read_per_bucket=read_per_bucket) as books:
                books.subscribe(codes)
                if not books.wait_live(codes, timeout=60):
                    raise RuntimeError(f"books did not go LIVE; see {tmp / 'e2e.log'}")
                gc.freeze()
                time.sleep(2.0)
                books.latency_samples()  # drop the warm-up
                meter = CpuMeter({"redis": redis.proc.pid, "shard": proc.pid, "sim": sim.pid, "consumer": os.getpid()})
                time.sleep(seconds)
                samples = books.latency_samples()
                cpu = meter.read()
                stats = books.stats()["counters"]
        finally:
            stop(proc)
    hop = sorted(s[0] for s in samples)
    bus_hop = sorted(s[1] for s in samples)
    inside = sorted(s[0] - s[1] for s in samples)
    ms = lambda v: round(v * 1000, 3)
    return {"offered_diffs_per_s": rate, "symbols": symbols, "read_per_bucket": read_per_bucket, "entries": len(samples),
            "entries_per_s": round(len(samples) / seconds),
            "book_change_to_consumer_ms": {"p50": ms(percentile(hop, 0.5)), "p99": ms(percentile(hop, 0.99)),
                                           "max": ms(hop[-1] if hop else 0.0)},
            "publish_to_consumer_ms": {"p50": ms(percentile(bus_hop, 0.5)), "p99": ms(percentile(bus_hop, 0.99)),
                                       "max": ms(bus_hop[-1] if bus_hop else 0.0)},
            "book_change_to_publish_ms": {"p50": ms(percentile(inside, 0.5)), "p99": ms(percentile(inside, 0.99))},
            "cpu_percent": cpu,
            "rebootstraps": stats.get("rebootstraps", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sections", default="bus,publisher,shard,e2e")
    parser.add_argument("--shard-rate", type=float, default=100_000.0)
    parser.add_argument("--shard-symbols", type=int, default=50)
    parser.add_argument("--e2e-rate", type=float, default=10_000.0)
    parser.add_argument("--e2e-symbols", type=int, default=50)
    parser.add_argument("--one-xread", action="store_true",
                        help="e2e: the consumer reads every stream in one XREAD (read_per_bucket=False; one Redis only)")
    parser.add_argument("--save", default="", help="also write the JSON result to this file")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="wait up to S s for an idle machine first")
    args = parser.parse_args()
    if args.wait_idle:
        from common import wait_for_idle

        wait_for_idle(args.wait_idle, 20.0)
    seconds = 3.0 if args.quick else 10.0
    sections = args.sections.split(",")
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "when": time.strftime("%Y-%m-%d %H:%M")}
    with LocalRedis() as redis, tempfile.TemporaryDirectory() as tmp:
        if "bus" in sections:
            result["bus"] = bench_bus(redis.url, 200, seconds / 2)
        if "publisher" in sections:
            result["publisher"] = bench_publisher(redis.url, 200, seconds / 2)
        if "shard" in sections:
            result["shard"] = bench_shard(redis, args.shard_symbols, args.shard_rate, seconds, Path(tmp))
        if "e2e" in sections:
            result["e2e"] = bench_e2e(redis, args.e2e_symbols, args.e2e_rate, seconds, Path(tmp),
                                      read_per_bucket=not args.one_xread)
    if args.save:
        Path(args.save).write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
