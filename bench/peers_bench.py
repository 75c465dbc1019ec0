"""The Binance peers, one run: every peer in its own venv and process against a fresh feed.

    python bench/peers_setup.py                 # once: the peers' virtualenvs (cached)
    python bench/peers_bench.py [--quick]       # the run; saves results/<date>-peers-<machine>[-quick].{json,md}
    python bench/peers_bench.py --render results/<file>.json

For each peer (peers_catalog.py) and each feed it starts a fresh source process, runs the peer's
harness (bench/peers/<peer>_peer.py) with that peer's interpreter, and reads its JSON:

- ``10k``: the simulator (binance dialect, stamped), 50 symbols, 10k level changes/s in all (unicorn:
  40 symbols, see its note). Framing (``--framing``): Binance's real ``@depth@100ms`` windows by
  default (an event per symbol per 100 ms carrying all its changes), or ``batch`` (an event per pump
  batch, ``binance_interval_scale 0``: many small events, a synthetic stress pattern);
- ``1000x20k``: the simulator, 1000 symbols, 20k/s in all (peers whose catalog entry allows it);
- ``max``: the replay feeder (feeder.py), 50 symbols, as fast as the peer reads: the simulator is
  not the bottleneck there (both ceilings are measured first and printed beside the table). A peer
  that reads a flood into an unbounded queue (catalog ``sweep_max``: nautilus_trader) collapses there;
  it is then probed with the feeder paced at descending rates (``max@16k`` ... events/s), and the first
  rate it keeps up with is its sustained maximum;
- ``faults``: the simulator with real 100 ms windows, 10 symbols at 50 changes/s each: exact at
  baseline, after one dropped event (a gap), after a venue restart (see binance_harness.py).

Latency is joined on (symbol, u): the harness writes (symbol, u, apply time) of every event applied
in the window, the source writes (symbol, u, send time) of every event it sent (send log), and the
difference is the latency. Where the peer lets the raw event through, the ``"x"`` stamp gives the same
figure in-process (``stamp p50``), a cross-check. Lenient mode (limits counted, not enforced) is used
for peers that send unpaced SUBSCRIBEs and for 1000 symbols (1000 snapshots at ``limit=1000`` cost
50,000 REST weight, 8x Binance's per-minute budget, for any client); the table says where.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import peers_report
import peers_rounds
import peers_targets
from common import SIM_LEVELS, SIM_SEED, stop_process
from peers_catalog import PEERS, PeerSpec
from peers_run import derive, keeps_up, marginal_rss, run_harness, source_process
from peers_setup import ready

#: (label, symbols, total level changes per second (0 = max), source)
RUNS = (("10k", 50, 10_000, "sim"), ("1000x20k", 1000, 20_000, "sim"), ("max", 50, 0, "feeder"))
FAULT_SYMBOLS, FAULT_RATE_PER_SYMBOL = 10, 50.0


def _progress(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure_ceilings(seconds: float, attempts: int = 2) -> dict[str, Any]:
    """Level changes/s and events/s each source pushes to a reader that only discards (50 symbols).

    The best of ``attempts``: on a shared machine the reader is starved now and then, and a ceiling
    is by definition the best the source can do.
    """
    out: dict[str, Any] = {}
    for kind in ("sim", "feeder"):
        for attempt in range(attempts):
            with tempfile.TemporaryDirectory(prefix="peers-ceiling-") as tmp:
                try:
                    with source_process(kind, 50, 0, lenient=True, send_log=str(Path(tmp) / "sent.bin"),
                                        max_now=True) as src:
                        measured = _ceiling(src, seconds)
                except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    measured = {"error": f"{type(exc).__name__}: {exc}"}
            best = out.get(kind)
            if best is None or "error" in best or measured.get("events_per_s", 0) > best.get("events_per_s", 0):
                out[kind] = {**measured, "attempts": attempt + 1}
    return out


def _ceiling(src: dict[str, Any], seconds: float) -> dict[str, Any]:
    import psutil
    from common import control_get

    sink = subprocess.Popen([sys.executable, str(BENCH_DIR / "feeder.py"), "--sink", src["url"], "--symbols", "50",
                             "--seconds", str(seconds + 1.0)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        proc = psutil.Process(src["pid"])
        seqs0, frames0 = control_get(src["control_url"], "state")["seqs"], _frames(src)
        cpu0, t0 = proc.cpu_times(), time.perf_counter()
        time.sleep(seconds)
        seqs1, frames1 = control_get(src["control_url"], "state")["seqs"], _frames(src)
        cpu1, elapsed = proc.cpu_times(), time.perf_counter() - t0
        sink_out = json.loads(sink.communicate(timeout=seconds + 30)[0].strip().splitlines()[-1])
    finally:
        stop_process(sink)
    busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100
    return {"diffs_per_s": (sum(seqs1.values()) - sum(seqs0.values())) / elapsed,
            "events_per_s": (frames1 - frames0) / elapsed, "source_cpu_percent": busy,
            "sink_mb_per_s": sink_out["bytes"] / sink_out["seconds"] / 1e6}


def _frames(src: dict[str, Any]) -> int:
    from common import control_get

    return int(control_get(src["control_url"], "counters").get("frames_sent_total", 0))


def meta(args: argparse.Namespace) -> dict[str, Any]:
    from run import _git_commit, machine_kind

    return {"date": dt.date.today().isoformat(), "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_kind(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "commit": _git_commit(), "quick": args.quick,
            "warmup_s": args.warmup, "seconds": args.seconds, "recover_s": args.recover, "seed": SIM_SEED,
            "sim_levels": SIM_LEVELS, "framing": args.framing, "repeat": args.repeat,
            "wait_idle_s": args.wait_idle, "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "faults": {"symbols": FAULT_SYMBOLS, "rate_per_symbol": FAULT_RATE_PER_SYMBOL, "windows": "100 ms"}}


def sweep_max(spec: PeerSpec, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The feeder paced at ``spec.sweep_max`` events/s, descending, until the peer keeps up."""
    rows = []
    for rate in spec.sweep_max:
        label = f"max@{rate // 1000}k"
        _progress(f"{spec.name}: {label} (50 symbols, feeder paced at {rate:,} events/s)")
        r = run_harness(spec, label, 50, rate, "feeder", args)
        derive(r)
        r["keeps_up"] = keeps_up(r)
        _progress(f"  {peers_report.one_line(r)}; keeps up: {r['keeps_up']}")
        rows.append(r)
        if r["keeps_up"]:
            break
    return rows


def peer_symbols(spec: PeerSpec, symbols: int) -> int | None:
    """The symbol count a peer runs at: its cap for small feeds, None when the feed is beyond it."""
    if symbols <= 50:
        return min(symbols, spec.max_symbols)
    return symbols if symbols <= spec.max_symbols else None


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    names = args.peers.split(",") if args.peers else list(PEERS)
    result: dict[str, Any] = {"meta": meta(args), "ceilings": {}, "runs": [], "faults": []}
    started = time.perf_counter()
    if not args.skip_ceiling:
        _progress("feed ceilings (simulator and replay feeder to a discarding reader)")
        result["ceilings"] = measure_ceilings(2.0 if args.quick else 4.0)
    feeds = [run for run in RUNS if not args.feeds or run[0] in args.feeds.split(",")]
    for round_ in range(1, args.repeat + 1):
        # rounds (peers_rounds.py): every peer and feed once, then again; probes and faults in the first
        first = round_ == 1
        tag = f"[round {round_}/{args.repeat}] " if args.repeat > 1 else ""
        for name in names:
            spec = PEERS[name]
            if not ready(spec):
                if first:
                    result["runs"].append({"peer": name, "run": "setup",
                                           "error": "venv missing: python bench/peers_setup.py"})
                continue
            for label, symbols, rate, kind in ([] if args.skip_perf else feeds):
                count = peer_symbols(spec, symbols)
                if count is None:
                    continue
                _progress(f"{tag}{name}: {label} ({count} symbols, {kind})")
                r = run_harness(spec, label, count, rate, kind, args)
                derive(r)
                r["round"] = round_
                _progress(f"  {peers_report.one_line(r)}")
                result["runs"].append(r)
            if first and spec.sweep_max and not args.skip_perf and any(run[0] == "max" for run in feeds):
                result["runs"] += sweep_max(spec, args)
            if first and not args.skip_faults:
                _progress(f"{name}: faults (gap, restart)")
                r = run_harness(spec, "faults", FAULT_SYMBOLS, FAULT_SYMBOLS * FAULT_RATE_PER_SYMBOL, "sim", args,
                                scenario="faults")
                _progress(f"  {peers_report.fault_line(r)}")
                result["faults"].append(r)
    result["runs"] = peers_rounds.combine(result["runs"])
    marginal_rss(result["runs"])
    result["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def merge(saved: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the rows of ``fresh`` replacing the same (peer, run): re-measure a few rows of a
    full run (after a disturbed window or a harness fix) without running everything again."""
    stamp = fresh["meta"]["started_at"]
    for key in ("runs", "faults"):
        fresh_keys = {(r["peer"], r["run"]) for r in fresh[key]}
        kept = [r for r in saved.get(key, []) if (r["peer"], r["run"]) not in fresh_keys]
        saved[key] = kept + [{**r, "remeasured_at": stamp} for r in fresh[key]]
        order = list(PEERS)
        saved[key].sort(key=lambda r: (order.index(r["peer"]) if r["peer"] in order else 99,
                                       [label for label, *_ in RUNS].index(r["run"]) if r["run"] in
                                       [label for label, *_ in RUNS] else 9))
    if fresh.get("ceilings"):
        saved["ceilings"] = fresh["ceilings"]
    saved["meta"].setdefault("updates", []).append({"at": stamp, "commit": fresh["meta"]["commit"]})
    marginal_rss(saved["runs"])
    return saved


def save(result: dict[str, Any], text: str, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_ = result["meta"]
    stem = f"{meta_['date']}-peers-{meta_['machine']}{'-quick' if meta_['quick'] else ''}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    flags = (" --quick" if meta_["quick"] else "") + (f" --repeat {meta_['repeat']}" if meta_.get("repeat", 1) > 1 else "")
    md_path.write_text(f"# Binance peers, {meta_['date']}, {meta_['machine']}\n\nProduced by "
                       f"`depthkeeper bench{flags}` (commit {meta_['commit']}, {meta_['platform']}).\n\n```\n{text}\n```\n")
    return json_path, md_path


def main(argv: list[str] | None = None, prog: str = "peers_bench", epilog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], epilog=epilog)
    parser.add_argument("--quick", action="store_true", help="shorter windows and recovery times")
    parser.add_argument("--peers", default=None, help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--feeds", default=None, help=f"comma-separated subset of {','.join(r[0] for r in RUNS)}")
    parser.add_argument("--skip-perf", action="store_true")
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--recover", type=float, default=None, help="faults: seconds to recover from each fault")
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each run wait up to S s for the machine to be mostly idle (shared machines)")
    parser.add_argument("--framing", choices=("100ms", "batch"), default="100ms",
                        help="simulator feeds: Binance's real 100 ms windows (an event per symbol per 100 ms), or "
                             "an event per pump batch (binance_interval_scale 0: many small events)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure every perf run N times, in rounds; rows show each figure's median and the "
                             "targets the spread of same-round ratios (peers_rounds.py)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument("--json", action="store_true", help="print the result JSON instead of the table")
    parser.add_argument("--render", metavar="RESULT_JSON", help="only re-render a saved result")
    parser.add_argument("--update", metavar="RESULT_JSON",
                        help="re-measure the selected peers/feeds and merge them into this saved result")
    args = parser.parse_args(argv)
    if args.render:
        print(peers_report.render(json.loads(Path(args.render).read_text())))
        return 0
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.peers and not set(args.peers.split(",")) <= set(PEERS):
        parser.error(f"--peers: choose from {','.join(PEERS)}")
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 5.0)
    args.recover = args.recover if args.recover is not None else (6.0 if args.quick else 10.0)
    result = orchestrate(args)
    if args.update:
        result = merge(json.loads(Path(args.update).read_text()), result)
    result["targets"] = peers_targets.compute(result)
    text = peers_report.render(result)
    if not args.no_save:
        paths = save(result, text, Path(args.out))
        _progress(f"saved {paths[0]} and {paths[1]}")
    print(json.dumps(result, indent=2) if args.json else text)
    return 1 if any("error" in r for r in result["runs"] + result["faults"]) else 0


if __name__ == "__main__":
    sys.exit(main())
