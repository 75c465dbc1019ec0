"""What the reader -> book hop costs, everything else equal (a prototype to size a design change).

The same bulk reader (``actors/frames.py``), the same codec and the same pure core
(``OrderBook`` + ``ContiguousSync``, bridged from REST snapshots) are driven in three topologies:

- ``per-symbol``: one pykka actor per symbol; one tell per (chunk, code) — today's shape;
- ``one-shard``: one pykka actor owning every symbol's book; one tell per chunk;
- ``inline``: the reader thread applies itself; no hop at all.

Latency is measured per applied diff (send ``ts`` -> applied), like the naive peer's, not per
batch. Each topology runs in its own process against a fresh simulator process.

    python bench/fanout.py [--rate 10000] [--symbols 50] [--seconds 5]

No supervision, no resync after a gap, no listeners: this isolates the hop, nothing else.
This prototype sized the change that landed as the book dispatcher (``supervisor/dispatch.py``,
``[book] threads``): per-symbol actors kept, threads shared -- ``depthkeeper bench`` compares both.
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pykka
import websocket
from common import ProcessMeter, percentile, simulator_process, symbol_codes

TOPOLOGIES = ("per-symbol", "one-shard", "inline")


class Applier:
    """Pure books for some codes; the only code that touches them runs in one thread."""

    def __init__(self, codes: list[str]) -> None:
        from depthkeeper.actors.core.contiguous import ContiguousSync
        from depthkeeper.actors.core.orderbook import OrderBook
        from depthkeeper.actors.core.sync import ResyncReason

        self.policies = {}
        for code in codes:
            policy = ContiguousSync(OrderBook(code, 50), 100_000)
            policy.start(ResyncReason.START)
            self.policies[code] = policy
        self.applied = 0
        self.measuring = False
        self.latencies: deque[float] = deque(maxlen=200_000)

    def snapshot(self, code: str, snap: Any) -> None:
        policy = self.policies[code]
        policy.on_snapshot(snap, policy.request_token)

    def chunk(self, groups: dict[str, list[Any]]) -> None:
        for code, events in groups.items():
            policy = self.policies[code]
            before = policy.counters.applied
            policy.on_diffs(events)
            done = policy.counters.applied - before
            self.applied += done
            if self.measuring and done:
                now = time.time()
                append = self.latencies.append
                for event in events:
                    append(now - event.sent_at)


class ApplierActor(pykka.ThreadingActor):
    def __init__(self, codes: list[str]) -> None:
        super().__init__()
        self.applier = Applier(codes)

    def on_receive(self, message: Any) -> Any:
        kind, payload = message
        if kind == "chunk":
            self.applier.chunk(payload)
        elif kind == "snapshot":
            self.applier.snapshot(*payload)
        elif kind == "measure":
            self.applier.measuring = payload
        elif kind == "read":
            lat = self.applier.latencies
            return self.applier.applied, list(lat) if payload else []
        return None


def _fetch_snapshot(rest_url: str, code: str) -> Any:
    from depthkeeper.actors.venues.article import decode_snapshot

    with urllib.request.urlopen(f"{rest_url}?code={code}", timeout=5) as reply:
        return decode_snapshot(reply.read(), code)


def measure(topology: str, url: str, rest_url: str, sim_pid: int, codes: list[str], warmup_s: float,
            seconds: float) -> dict[str, Any]:
    from depthkeeper.actors.core.wire import DiffEvent
    from depthkeeper.actors.io.frames import FrameReader
    from depthkeeper.actors.venues import article as codec_article

    inline_snapshots: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    inline = Applier(codes) if topology == "inline" else None
    if topology == "per-symbol":
        refs = {code: ApplierActor.start([code]) for code in codes}
        targets = list(refs.values())
    elif topology == "one-shard":
        shard = ApplierActor.start(codes)
        refs = dict.fromkeys(codes, shard)
        targets = [shard]
    else:
        refs, targets = {}, []
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
    ws.send(json.dumps({"cmd_id": 22004, "action": "sub", "code": codes}))
    ws.settimeout(None)
    stop = threading.Event()

    def read_loop() -> None:
        frames = FrameReader(ws.sock.recv, ws.pong)
        decode = codec_article.decode
        while not stop.is_set():
            groups: dict[str, list[Any]] = {}
            for data in frames.read_messages():
                event = decode(data)
                if type(event) is DiffEvent:
                    batch = groups.get(event.code)
                    if batch is None:
                        groups[event.code] = [event]
                    else:
                        batch.append(event)
            if inline is not None:
                while not inline_snapshots.empty():
                    inline.snapshot(*inline_snapshots.get())
                inline.chunk(groups)
            elif topology == "one-shard":
                if groups:
                    refs[codes[0]].tell(("chunk", groups))
            else:
                for code, events in groups.items():
                    refs[code].tell(("chunk", {code: events}))

    reader = threading.Thread(target=read_loop, daemon=True)
    reader.start()
    time.sleep(0.3)  # let diffs flow so the snapshots have something to bridge
    for code in codes:
        snap = _fetch_snapshot(rest_url, code)
        if inline is not None:
            inline_snapshots.put((code, snap))
        else:
            refs[code].tell(("snapshot", (code, snap)))
    time.sleep(warmup_s)

    def applied_now(with_latencies: bool = False) -> tuple[int, list[float]]:
        if inline is not None:
            return inline.applied, list(inline.latencies) if with_latencies else []
        total, lat = 0, []
        for ref in targets:
            n, samples = ref.ask(("read", with_latencies), timeout=30)
            total += n
            lat += samples
        return total, lat

    meter = ProcessMeter(sim_pid)
    if inline is not None:
        inline.measuring = True
    for ref in targets:
        ref.tell(("measure", True))
    applied0, _ = applied_now()
    meter.start()
    t0 = time.perf_counter()
    time.sleep(seconds)
    applied1, _ = applied_now()
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    if inline is not None:
        inline.measuring = False
    for ref in targets:
        ref.tell(("measure", False))
    _, lat = applied_now(True)
    stop.set()
    ws.close()
    for ref in targets:
        ref.stop(timeout=10)
    lat.sort()
    return {"topology": topology, "symbols": len(codes), "applied_per_s": (applied1 - applied0) / elapsed,
            "cpu_percent": cpu["cpu_percent"], "other_cpu_percent": cpu["other_cpu_percent"],
            "latency_p50_s": percentile(lat, 0.5), "latency_p99_s": percentile(lat, 0.99),
            "latency_max_s": lat[-1] if lat else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10_000, help="total diffs/s; 0 = as fast as read")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--topology", choices=TOPOLOGIES, help="internal: measure one topology here")
    parser.add_argument("--url")
    parser.add_argument("--rest-url")
    parser.add_argument("--sim-pid", type=int)
    args = parser.parse_args(argv)
    codes = symbol_codes(args.symbols)
    if args.topology:
        print(json.dumps(measure(args.topology, args.url, args.rest_url, args.sim_pid, codes, args.warmup,
                                 args.seconds)))
        return 0
    print(f"{args.symbols} symbols at {'max' if args.rate <= 0 else f'{args.rate:,.0f}'} diffs/s, "
          f"window {args.seconds} s; latency per applied diff")
    for topology in TOPOLOGIES:
        with simulator_process(args.symbols, args.rate) as sim:
            cmd = [sys.executable, __file__, "--topology", topology, "--url", sim.url, "--rest-url", sim.rest_url,
                   "--sim-pid", str(sim.pid), "--symbols", str(args.symbols), "--seconds", str(args.seconds),
                   "--warmup", str(args.warmup)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + args.warmup + 120,
                                  check=False)
        if proc.returncode != 0:
            print(f"{topology:11s} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{topology:11s} applied {r['applied_per_s']:>9,.0f}/s  CPU {r['cpu_percent']:5.1f}%  "
              f"({r['cpu_percent'] * 1e4 / max(r['applied_per_s'], 1):5.1f} µs/diff)  "
              f"p50 {r['latency_p50_s'] * 1e3:7.2f} ms  p99 {r['latency_p99_s'] * 1e3:7.2f} ms  "
              f"max {r['latency_max_s'] * 1e3:7.2f} ms  other {r['other_cpu_percent']:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
