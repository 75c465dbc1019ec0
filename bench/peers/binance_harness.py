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
- **CPU / RSS**: /proc of this process (all threads), the simulator's pid, and the whole machine.
- **exactness**: freeze the venue (``POST /_control/freeze``), wait until every book's id equals
  the venue's seq (or stops moving), dump the top ``--depth`` levels and compare with
  ``GET /_control/truth``; then unfreeze.
- **scenario ``faults``**: exact at baseline, after ``POST /_control/faults/drop?n=1&code=<first>``
  (a gap), after ``POST /_control/faults/restart`` (every socket closed with 1012, ids from 1).

Network: only 127.0.0.1. The guard refuses any other address in Python's socket layer
(getaddrinfo/connect), proxies are switched off, and a watcher lists this process's TCP sockets
every 100 ms (which also sees sockets opened by native code, e.g. nautilus' Rust clients): any
non-loopback peer address is reported and fails the run.
"""

from __future__ import annotations

import argparse
import array
import faulthandler
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1"})
#: records kept per window (the first ones); 20 bytes each
MAX_RECORDS = 500_000
#: the socket watcher: poll period, scans given to a new socket to show a remote, full scan period (polls)
WATCH_POLL_S, WATCH_PENDING_POLLS, WATCH_FULL_EVERY = 0.1, 10, 20
#: how long a freeze waits for every book to reach the venue's seq (a peer may drain a backlog)
SETTLE_TIMEOUT_S = 30.0
#: how long reading a peer's books may take (on its own loop, possibly behind a backlog)
DUMP_TIMEOUT_S = 60.0
#: a book whose id has not moved for this long after a freeze is taken as settled
SETTLE_IDLE_S = 2.0
#: faults: first exactness check this long after the gap / the restart (then again at --recover)
GAP_EARLY_S = 1.0
RESTART_EARLY_S = 3.0

Level = tuple[Any, Any]
Book = tuple[int, list[Level], list[Level]]  # (u, bids best first, asks best first)


# -- network guard ------------------------------------------------------------------------------

class LoopbackGuard:
    """Refuse non-loopback addresses in Python's socket layer; watch the process's TCP sockets."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.foreign: set[str] = set()
        self.hosts_resolved: set[str] = set()
        self._stop = threading.Event()

    def install(self) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                     "WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy"):
            os.environ.pop(name, None)
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "*"
        real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, \
            socket.socket.connect_ex
        guard = self

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            text = host.decode() if isinstance(host, bytes) else str(host)
            guard.hosts_resolved.add(text)
            if host is not None and text not in LOOPBACK:
                guard.blocked.append(f"resolve {text}")
                raise socket.gaierror(socket.EAI_NONAME, f"bench guard: {text} is not loopback")
            return real_getaddrinfo(host, *args, **kwargs)

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and str(address[0]) not in LOOPBACK:
                guard.blocked.append(f"connect {address[0]}")
                raise ConnectionRefusedError(f"bench guard: {address[0]} is not loopback")

        def connect(sock: socket.socket, address: Any) -> Any:
            check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            check(sock, address)
            return real_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        threading.Thread(target=self._watch, name="bench-net-watch", daemon=True).start()

    def _watch(self) -> None:
        """Scan the TCP tables only when this process has a socket whose remote is not known yet.

        The tables list every TCP socket of the network namespace (on a busy machine thousands in
        TIME_WAIT, e.g. after a 1000-snapshot run): a scan costs ~10 ms, so scanning every 100 ms
        took ~10% of a core from every peer, inside its measured CPU. A socket is *settled* once
        seen listening or with a remote address (a TCP socket connects once); new inodes are
        scanned for until settled (or WATCH_PENDING_POLLS scans: not TCP, e.g. a socketpair), and
        a full scan runs every WATCH_FULL_EVERY polls anyway.
        """
        pending: dict[str, int] = {}
        known: set[str] = set()  # settled, or given up on (left to the full scans)
        polls = 0
        while not self._stop.wait(WATCH_POLL_S):
            polls += 1
            inodes = _socket_inodes()
            for inode in inodes - known - pending.keys():
                pending[inode] = WATCH_PENDING_POLLS
            known &= inodes
            if not pending and polls % WATCH_FULL_EVERY:
                continue
            foreign, seen = _scan_tcp(inodes)
            self.foreign.update(foreign)
            known |= seen | {i for i, left in pending.items() if left <= 1}
            pending = {i: left - 1 for i, left in pending.items() if i in inodes and i not in known}

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self.foreign.update(foreign_tcp_peers())
        return {"blocked": sorted(set(self.blocked)), "non_loopback_sockets": sorted(self.foreign),
                "hosts_resolved": sorted(self.hosts_resolved)}


def _socket_inodes() -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _hex_addr(text: str) -> str:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def foreign_tcp_peers() -> set[str]:
    """Remote addresses of this process's TCP sockets that are not loopback (connected or connecting)."""
    return _scan_tcp(_socket_inodes())[0]


def _scan_tcp(inodes: set[str]) -> tuple[set[str], set[str]]:
    """(non-loopback remotes, inodes settled: listening or with a remote) of ``inodes`` in the TCP tables."""
    out, settled = set(), set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[9] not in inodes:
                continue
            if parts[3] == "0A":  # LISTEN
                settled.add(parts[9])
                continue
            remote = _hex_addr(parts[2])
            host = remote.rsplit(":", 1)[0].strip("[]")
            if host not in ("0.0.0.0", "::"):
                settled.add(parts[9])
            if not (host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1", "0.0.0.0", "::")):
                out.add(remote)
    return out, settled


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


# -- process meter (/proc) -----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_cpu_s(pid: int | str = "self") -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _system_busy_s() -> float:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


def rss_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * _PAGE


def thread_count() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class Meter:
    def __init__(self, sim_pid: int | None) -> None:
        self.sim_pid = sim_pid
        self._t0 = self._own0 = self._sim0 = self._sys0 = 0.0

    def start(self) -> None:
        self._own0, self._sys0 = _proc_cpu_s(), _system_busy_s()
        self._sim0 = _proc_cpu_s(self.sim_pid) if self.sim_pid else 0.0
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        own = _proc_cpu_s() - self._own0
        sim = _proc_cpu_s(self.sim_pid) - self._sim0 if self.sim_pid else 0.0
        system = _system_busy_s() - self._sys0
        scale = 100.0 / elapsed if elapsed > 0 else 0.0
        return {"cpu_percent": own * scale, "sim_cpu_percent": sim * scale,
                "other_cpu_percent": max(0.0, system - own - sim) * scale}


# -- control API --------------------------------------------------------------------------------

class Control:
    def __init__(self, control_url: str) -> None:
        if not control_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"refusing a non-loopback control URL: {control_url}")
        self.url = control_url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, what: str) -> Any:
        with self._opener.open(f"{self.url}/{what}", timeout=10) as reply:
            return json.loads(reply.read())

    def post(self, what: str) -> Any:
        request = urllib.request.Request(f"{self.url}/{what}", data=b"", method="POST")
        with self._opener.open(request, timeout=10) as reply:
            return json.loads(reply.read())

    def seqs(self) -> dict[str, int]:
        return self.get("state")["seqs"]


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


# -- correctness ---------------------------------------------------------------------------------

def _norm(levels: list[Level], depth: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(str(p)).normalize(), Decimal(str(q)).normalize()) for p, q in levels[:depth]]


def compare_books(books: dict[str, Book], control: Control, codes: list[str], depth: int) -> dict[str, Any]:
    """Each book vs the venue's truth now (the venue is frozen): exact symbols, caught-up symbols."""
    exact, caught_up = 0, 0
    mismatches: list[dict[str, Any]] = []
    seqs = control.seqs()
    for code in codes:
        truth = control.get(f"truth?code={code}")
        u, bids, asks = books.get(code, (0, [], []))
        ok = (_norm(bids, depth) == _norm(truth["bids"], depth) and _norm(asks, depth) == _norm(truth["asks"], depth))
        exact += ok
        caught_up += u == seqs[code]
        if not ok and len(mismatches) < 3:
            mismatches.append({"code": code, "u": u, "venue_seq": seqs[code],
                               "bids": [list(map(str, lv)) for lv in _norm(bids, 3)],
                               "truth_bids": truth["bids"][:3]})
    return {"exact": exact == len(codes), "exact_symbols": exact, "caught_up_symbols": caught_up,
            "symbols": len(codes), "mismatches": mismatches}


def settle(recorder: Recorder, control: Control, codes: list[str]) -> float:
    """After a freeze: wait until every book id equals the venue's seq, or no book moved for a while."""
    started = time.perf_counter()
    seqs = control.seqs()
    last, moved_at = dict(recorder.last_u), started
    while time.perf_counter() - started < SETTLE_TIMEOUT_S:
        now_u = dict(recorder.last_u)
        if all(now_u.get(code) == seqs[code] for code in codes):
            break
        if now_u != last:
            last, moved_at = now_u, time.perf_counter()
        elif time.perf_counter() - moved_at > SETTLE_IDLE_S:
            break
        time.sleep(0.02)
    return time.perf_counter() - started


def check_exact(adapter: PeerAdapter, recorder: Recorder, control: Control, codes: list[str],
                depth: int) -> dict[str, Any]:
    control.post("freeze")
    try:
        waited = settle(recorder, control, codes)
        result = compare_books(adapter.dump_books(depth), control, codes, depth)
        result["settle_s"] = round(waited, 2)
        return result
    finally:
        control.post("unfreeze")


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
