"""What every Binance peer harness shares: loopback guard, recorder, meter, control, the driver.

Each ``bench/peers/<peer>_peer.py`` runs with *that peer's* virtualenv interpreter (any Python
>= 3.11, nothing of depthkeeper installed), so this module uses the standard library only. A harness
supplies a `PeerAdapter` (start the peer on N symbols, dump its books, stop it) and calls
`main(adapter_factory)`; the driver here does the rest and prints one JSON document on stdout
(everything else goes to stderr), like ``bench/run.py --peer``.

What is measured, and from where:

- **applied**: the adapter calls `Recorder.applied(symbol, u, stamp)` from the peer's *own*
  per-update hook (a callback the peer offers, or a wrapper around the method that applies one event),
  with ``u`` the final update id of the event just applied and ``stamp`` the simulator's ``"x"`` send
  time when the peer lets the raw event through (None when it hides it). ``applied_per_s`` counts
  update ids (level changes, what the simulator's rate means): the advance of each book's id over
  the window; ``events_per_s`` counts events.
- **latency**: in the window, every applied event is recorded as ``(symbol index, u, time.time())``
  into ``--records`` (struct ``<IQd``); the runner joins it on ``(symbol, u)`` with the simulator's
  send log (simulator/send_log.py). Where the stamp is visible, ``apply - x`` is also computed here
  (``latency_stamp_*``), a cross-check of the join.
- **CPU / RSS**: /proc of this process (all threads; per Python thread in ``thread_cpu_ms_per_s``), the
  simulator's pid, and the whole machine.
- **exactness**: freeze the venue (``POST /_control/freeze``), wait until every book's id equals
  the venue's seq (or stops moving), dump the top ``--depth`` levels and compare with
  ``GET /_control/truth``; then unfreeze.
- **scenario ``faults``**: exact at baseline, after ``POST /_control/faults/drop?n=1&code=<first>``
  (a gap), after ``POST /_control/faults/restart`` (every socket closed with 1012, ids from 1).

Network: only 127.0.0.1 (loopback_guard.py); any non-loopback peer address fails the run. Helpers
beside this module: proc_meter.py (CPU, RSS), venue_checks.py (control API, exactness checks).
"""

from __future__ import annotations

import argparse
import array
import faulthandler
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the harness runs as a script from bench/peers (sys.path[0]); its helpers live beside it
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_guard import LoopbackGuard
from proc_meter import Meter, rss_bytes, thread_count
from venue_checks import Book, Control, check_exact

#: records kept per window (the first ones); 20 bytes each
MAX_RECORDS = 500_000
#: how long reading a peer's books may take (on its own loop, possibly behind a backlog)
DUMP_TIMEOUT_S = 60.0
#: faults: first exactness check this long after the gap / the restart (then again at --recover)
GAP_EARLY_S = 1.0
RESTART_EARLY_S = 3.0


# -- recorder -----------------------------------------------------------------------------------

class Recorder:
    """Per-symbol book ids and, inside the window, one record per applied event.

    Called from the peer's own thread(s); a dict store and two array appends per event.
    """

    def __init__(self, codes: list[str]) -> None:
        self.index = {code: i for i, code in enumerate(codes)}
        self.last_u: dict[str, int] = dict.fromkeys(codes, 0)
        self.first_applied: set[str] = set()
        self.events = 0
        self.snapshots = 0
        self.measuring = False
        self.rec_symbol = array.array("I")
        self.rec_u = array.array("Q")
        self.rec_t = array.array("d")
        self.stamp_latency = array.array("d")

    def applied(self, code: str, u: int, stamp: float | None = None) -> None:
        now = time.time()
        self.last_u[code] = u
        self.events += 1
        if code not in self.first_applied:
            self.first_applied.add(code)
        if self.measuring and len(self.rec_u) < MAX_RECORDS:
            self.rec_symbol.append(self.index.get(code, 0xFFFFFFFF))
            self.rec_u.append(u)
            self.rec_t.append(now)
            if stamp is not None:
                self.stamp_latency.append(now - stamp)

    def snapshot(self, code: str, u: int) -> None:
        self.last_u[code] = u
        self.snapshots += 1

    def footprint_bytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.rec_symbol, self.rec_u, self.rec_t, self.stamp_latency))

    def write_records(self, path: str) -> int:
        import struct

        pack = struct.Struct("<IQd").pack
        with open(path, "wb") as out:
            out.write(b"".join(pack(s, u, t) for s, u, t in zip(self.rec_symbol, self.rec_u, self.rec_t)))
        return len(self.rec_u)


# -- adapter protocol ---------------------------------------------------------------------------

class PeerAdapter:
    """What a harness implements. ``start`` returns at once (the peer runs in its own thread or loop)."""

    name = "peer"
    version = ""

    def start(self, codes: list[str]) -> None:
        raise NotImplementedError

    def dump_books(self, depth: int) -> dict[str, Book]:
        """Every book's (u, top bids, top asks), read safely with respect to the peer's thread."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """Peer-specific counters and notes for the JSON (resubscribes, errors, configuration)."""
        return {}


# -- the driver ----------------------------------------------------------------------------------

def build_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{name}_peer", description=f"{name} on the simulator's binance dialect")
    parser.add_argument("--ws-url", required=True, help="ws://127.0.0.1:P (a base: the peer appends its paths)")
    parser.add_argument("--rest-url", required=True, help="http://127.0.0.1:P")
    parser.add_argument("--control-url", required=True)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--scenario", choices=("perf", "faults"), default="perf")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--recover", type=float, default=10.0, help="faults: seconds given to recover from each")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--depth", type=int, default=20, help="levels per side compared with the truth")
    parser.add_argument("--records", default="", help="write (symbol index, u, apply time) of the window here")
    parser.add_argument("--sim-pid", type=int, default=None)
    parser.add_argument("--variant", default="", help="a harness-specific configuration name")
    parser.add_argument("--skip-exact", action="store_true", help="perf: no freeze/compare after the window")
    return parser


def dist_version(*names: str) -> str:
    """The installed version of the first distribution found (peers' modules rarely agree on __version__)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def symbol_codes(count: int) -> list[str]:
    """The bench's names (bench/common.py): the same list in the simulator and every harness."""
    return [f"SYM{i:04d}USDT" for i in range(count)]


def wait_ready(recorder: Recorder, codes: list[str], timeout_s: float) -> float:
    started = time.perf_counter()
    while len(recorder.first_applied) < len(codes):
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"only {len(recorder.first_applied)} of {len(codes)} books applied an event "
                               f"within {timeout_s:.0f}s")
        time.sleep(0.02)
    return time.perf_counter() - started


def measure(recorder: Recorder, control: Control, meter: Meter, codes: list[str], seconds: float,
            rss_base: int) -> dict[str, Any]:
    venue0, local0, events0 = control.seqs(), dict(recorder.last_u), recorder.events
    meter.start()
    recorder.measuring = True
    t0 = time.perf_counter()
    time.sleep(seconds)
    local1, events1, t1 = dict(recorder.last_u), recorder.events, time.perf_counter()
    recorder.measuring = False
    cpu = meter.stop()
    venue1 = control.seqs()
    rss = rss_bytes() - recorder.footprint_bytes()
    elapsed = t1 - t0
    applied = sum(max(0, local1[c] - local0[c]) for c in codes)
    stamps = sorted(recorder.stamp_latency)
    pick = (lambda q: stamps[min(len(stamps) - 1, int(q * len(stamps)))] if stamps else None)
    return {
        "window_s": elapsed,
        "offered_per_s": (sum(venue1.values()) - sum(venue0.values())) / elapsed,
        "applied": applied,
        "applied_per_s": applied / elapsed,
        "events": events1 - events0,
        "events_per_s": (events1 - events0) / elapsed,
        "lag_start": sum(max(0, venue0[c] - local0[c]) for c in codes),
        "lag_end": sum(max(0, venue1[c] - local1[c]) for c in codes),
        "latency_stamp_samples": len(stamps),
        "latency_stamp_p50_s": pick(0.5),
        "latency_stamp_p99_s": pick(0.99),
        **cpu,
        "rss_bytes": rss,
        "rss_base_bytes": rss_base,
        "rss_per_symbol_bytes": (rss - rss_base) / len(codes),
        "threads": thread_count(),
    }


def _after_fault(adapter: PeerAdapter, recorder: Recorder, control: Control, codes: list[str],
                 args: argparse.Namespace, early_s: float) -> dict[str, Any]:
    """Exactness ``early_s`` after a fault (a correct client has resynced by then) and at ``--recover``."""
    snaps0, started = recorder.snapshots, time.perf_counter()
    time.sleep(early_s)
    early = check_exact(adapter, recorder, control, codes, args.depth)
    time.sleep(max(0.0, args.recover - (time.perf_counter() - started)))
    late = check_exact(adapter, recorder, control, codes, args.depth)
    late.update(early_s=early_s, exact_early=early["exact"], exact_symbols_early=early["exact_symbols"],
                recover_s=args.recover, peer_snapshots=recorder.snapshots - snaps0)
    return late


def faults_scenario(adapter: PeerAdapter, recorder: Recorder, control: Control, codes: list[str],
                    args: argparse.Namespace) -> dict[str, Any]:
    """Baseline, then one dropped event of the first symbol (a gap), then a venue restart."""
    counters0 = control.get("counters")
    out: dict[str, Any] = {"baseline": check_exact(adapter, recorder, control, codes, args.depth)}
    control.post(f"faults/drop?n=1&code={codes[0]}")
    out["after_gap"] = _after_fault(adapter, recorder, control, codes, args, GAP_EARLY_S)
    control.post("faults/restart")
    out["after_restart"] = _after_fault(adapter, recorder, control, codes, args, RESTART_EARLY_S)
    counters1 = control.get("counters")
    out["venue_counters"] = {k: counters1.get(k, 0) - counters0.get(k, 0) for k in (
        "rest_requests", "connections_opened", "connections_closed", "commands_received_total",
        "binance_message_rate_exceeded")}
    return out


def run(adapter: PeerAdapter, recorder: Recorder, args: argparse.Namespace, codes: list[str],
        result: dict[str, Any]) -> None:
    """Fill ``result`` as the run goes: what was measured survives a later failure."""
    control, meter = Control(args.control_url), Meter(args.sim_pid)
    counters0 = control.get("counters")
    rss_base = rss_bytes()
    started = time.perf_counter()
    result.update(symbols=len(codes), scenario=args.scenario)
    adapter.start(codes)
    result["ready_s"] = wait_ready(recorder, codes, args.ready_timeout)
    time.sleep(args.warmup)
    if args.scenario == "perf":
        result.update(measure(recorder, control, meter, codes, args.seconds, rss_base))
        if args.records:
            result["records_written"] = recorder.write_records(args.records)
        if not args.skip_exact:
            try:
                result["end_check"] = check_exact(adapter, recorder, control, codes, args.depth)
            except Exception as exc:
                result["end_check"] = {"exact": False, "error": f"{type(exc).__name__}: {exc}"}
    else:
        result.update(faults_scenario(adapter, recorder, control, codes, args))
    counters1 = control.get("counters")
    result["venue"] = {k: counters1.get(k, 0) - counters0.get(k, 0) for k in (
        "rest_requests", "connections_opened", "commands_received_total", "binance_message_rate_exceeded",
        "binance_message_rate_closes", "duplicate_subscribes")}
    result["peer_snapshots"] = recorder.snapshots
    result["elapsed_s"] = time.perf_counter() - started


def _stop_bounded(adapter: PeerAdapter, timeout_s: float) -> str:
    done = threading.Event()
    error: list[str] = []

    def stop() -> None:
        try:
            adapter.stop()
        except BaseException as exc:
            error.append(f"{type(exc).__name__}: {exc}")
        finally:
            done.set()

    threading.Thread(target=stop, name="bench-stop", daemon=True).start()
    if not done.wait(timeout_s):
        return f"stop did not return within {timeout_s:.0f}s"
    return error[0] if error else "ok"


def main(make_adapter: Callable[[argparse.Namespace, Recorder], PeerAdapter], name: str,
         argv: list[str] | None = None) -> int:
    """Parse, guard, run, print one JSON document; exit code 0 even when the peer failed (see "error")."""
    args = build_parser(name).parse_args(argv)
    for url in (args.ws_url, args.rest_url, args.control_url):
        if not (url.startswith("ws://127.0.0.1:") or url.startswith("http://127.0.0.1:")):
            print(f"refusing a non-loopback URL: {url}", file=sys.stderr)
            return 2
    # peers print banners and native loggers write to fd 1 (nautilus' Rust logger): keep fd 1 for the JSON only
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack on stderr
    guard = LoopbackGuard()
    guard.install()
    codes = symbol_codes(args.symbols)
    recorder = Recorder(codes)
    result: dict[str, Any] = {"peer": name, "variant": args.variant,
                              "python": ".".join(map(str, sys.version_info[:3]))}
    adapter = None
    try:
        adapter = make_adapter(args, recorder)
        result["version"] = adapter.version
        run(adapter, recorder, args, codes, result)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    if adapter is not None:
        try:
            result["facts"] = adapter.facts()
        except Exception as exc:
            result["facts"] = {"error": repr(exc)}
        stop_started = time.perf_counter()
        result["stop"] = _stop_bounded(adapter, 20.0)
        result["stop_s"] = time.perf_counter() - stop_started
    result["network"] = guard.stop()
    if result["network"]["non_loopback_sockets"]:
        result["error"] = f"non-loopback sockets: {result['network']['non_loopback_sockets']}"
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()
    os._exit(0)  # peers leave non-daemon threads and loops behind; the JSON is out
