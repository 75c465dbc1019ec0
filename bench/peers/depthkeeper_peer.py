"""depthkeeper as a Binance peer: the same harness, feeds and checks as every other peer.

Run with the repository's interpreter (peers_catalog.py: ``in_repo_env``); options in binance_harness.py.

Used exactly as a host would: ``BookService.start`` from a config mapping (``venue.dialect =
"binance"``, ``url`` / ``snapshot_url`` = the harness's, ``symbols.initial`` = the codes), the
venue's own limits kept (SUBSCRIBE pacing, REST weight budget). Bench settings, as in tree.py:
snapshots up to 1000/s (the REST weight budget still applies), calibration off, logs counted and
only errors printed (the bench owns the sinks, the library configures none).

``snapshot_limit = 100`` (weight 5): the simulator holds 50 levels a side (bench/common.py
``SIM_LEVELS``), so 100 fetches the whole book, and 1000 symbols cost 5,000 weight -- inside the
5,400/min depthkeeper allows itself -- where ``limit=1000`` (weight 50) would make a 1000-symbol
start wait ~9 minutes for weight. The other peers fetch ``limit=1000`` (the runner's lenient mode
lets them); at start only, outside the measured window.

Observed per update: ``svc.add_listener(callable, depth=10, inline=True)``, depthkeeper's public
per-update hook in its lowest-latency form (actors/listeners.py): the BookActor calls it at the end of
each turn that changed the book, with a depth-10 view -- as each peer's callback is called by its own
event loop, and as the naive loops record right after writing. A turn applies the events one socket
read brought for the symbol: at 100 ms windows (the 10k and 1000x20k feeds: one event per symbol per
100 ms) that is one event; at ``max`` a read often holds several, and the view carries the last ``u``
(``applied_per_s`` counts the advance of ``u``, which is exact; the events merged into it are not
sampled by the latency join). ``listener_lag_*`` in the facts is delivery minus ``view.updated_at``
(apply), and ``apply_latency_*`` is depthkeeper's own send -> applied figure over the same window
(``svc.latency_samples``, per batch from its oldest diff). ``--variant threaded``: the threaded
listener (conflated, its own thread: the hook for a host whose callback may be slow); ``--variant
poll`` (diagnostic): no listener, ``book_stats()`` every ``DEPTHKEEPER_BENCH_POLL_S`` s, to weigh what
the listener costs (its latency is the poll's: not comparable). Neither variant is in the catalog.

Snapshots: a ``BookStatusChanged`` into LIVE from SYNCING / RESYNCING (a sync = one REST snapshot)
calls ``recorder.snapshot``; views that are not LIVE are not recorded (their contents are not the
venue's). Books are dumped with ``svc.book(code, depth)`` from the harness's thread.
"""

from __future__ import annotations

import array
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import binance_harness as harness

BENCH_DIR = Path(__file__).resolve().parents[1]
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import weighted_percentile

#: see the module docstring: the whole simulated book, at weight 5
SNAPSHOT_LIMIT = 100
SNAPSHOT_PER_S = 1000.0
#: levels a side in each view the listener gets: a trading bot's top of book (``add_listener(depth=)``);
#: the whole book would add a copy and sort of every level to each delivery, which no peer's hook pays
#: (theirs hand over a reference to the live book)
LISTEN_DEPTH = 10
ASK_TIMEOUT_S = 10.0
#: listener lag samples kept (the first ones of the window; 8 bytes each)
LAG_SAMPLES = 200_000
POLL_S = float(os.environ.get("DEPTHKEEPER_BENCH_POLL_S", "0.02"))


def config(ws_url: str, rest_url: str, codes: list[str]) -> Any:
    from depthkeeper.supervisor.service.config import config_from_mapping

    return config_from_mapping({
        "venue": {"dialect": "binance", "url": ws_url, "snapshot_url": rest_url, "snapshot_limit": SNAPSHOT_LIMIT},
        "symbols": {"initial": list(codes)},
        "snapshot": {"max_per_second": SNAPSHOT_PER_S},
        "calibration": {"interval_s": 0.0},
        "simulator": {"enabled": False},
        "log": {"level": "WARNING"},
    }, environ={})


class DepthkeeperAdapter(harness.PeerAdapter):
    name = "depthkeeper"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        from tree import _quiet_logs

        from depthkeeper.actors.core.orderbook import BookStatus
        from depthkeeper.actors.messages import BookStatusChanged, BookUpdated
        from depthkeeper.supervisor.service.facade import BookService

        # imported here, before the harness's RSS base is taken, like every peer's library
        self.service_class = BookService

        self.log_counts = _quiet_logs()
        self.version = harness.dist_version("depthkeeper")
        self.args = args
        self.recorder = recorder
        self.svc: Any = None
        self.codes: list[str] = []
        self.lag = array.array("d")
        self.listener_id = 0
        self.stopping = threading.Event()
        #: set when the hook first sees the harness's window open, and again when it sees it closed
        self.window_flip = threading.Event()
        self.window_samples: list[tuple[float, int]] = []
        live, syncing = BookStatus.LIVE, (BookStatus.SYNCING, BookStatus.RESYNCING)
        applied, snapshot, lag, flip = recorder.applied, recorder.snapshot, self.lag, self.window_flip
        seen = [False]  # the window state the hook last saw

        def on_event(event: Any) -> None:
            if type(event) is BookUpdated:
                view = event.view
                if view.status is live:
                    applied(view.code, view.seq, None)
                    measuring = recorder.measuring
                    if measuring is not seen[0]:
                        seen[0] = measuring
                        flip.set()
                    if measuring and len(lag) < LAG_SAMPLES and view.updated_at:
                        lag.append(time.time() - view.updated_at)
            elif type(event) is BookStatusChanged and event.new is live and event.old in syncing:
                snapshot(event.code, event.seq)

        self.on_event = on_event

    def start(self, codes: list[str]) -> None:
        self.codes = list(codes)
        self.svc = self.service_class.start(config(self.args.ws_url, self.args.rest_url, codes), ask_timeout_s=ASK_TIMEOUT_S)
        threading.Thread(target=self._window_latency, name="bench-window", daemon=True).start()
        if self.args.variant == "poll":
            threading.Thread(target=self._poll, name="bench-poll", daemon=True).start()
        else:
            self.listener_id = self.svc.add_listener(self.on_event, depth=LISTEN_DEPTH,
                                                     inline=self.args.variant != "threaded")

    def _window_latency(self) -> None:
        """depthkeeper's own send -> applied latency (``svc.latency_samples``, in the BookActor,
        before any listener) over the harness's window: beside the hook's figure it shows what
        the listener's thread hop adds."""
        # Woken by the hook (``window_flip``), not by polling: a thread waking every 5 ms cost
        # ~13 ms of CPU a second (measured), a quarter of the whole tree's at 10k, charged to
        # depthkeeper's row alone. The hook sees the window open and close within one delivery.
        recorder, flip = self.recorder, self.window_flip
        for measuring in (True, False):
            while recorder.measuring is not measuring:
                flip.wait()
                flip.clear()
                if self.stopping.is_set():
                    return
            if measuring:  # counts only (``since`` beyond every count): no copy of the kept samples
                marks, _ = self.svc.latency_samples(since=dict.fromkeys(self.codes, 1 << 62))
        _, samples = self.svc.latency_samples(since=marks)
        self.window_samples = sorted(pair for book in samples.values() for pair in book)

    def _poll(self) -> None:
        """Diagnostic variant (``--variant poll``): no listener, ``book_stats()`` every POLL_S -- what
        the listener costs the tree at max. Latency is then the poll's, not the hook's: not comparable."""
        applied, snapshot = self.recorder.applied, self.recorder.snapshot
        while not self.stopping.wait(POLL_S):
            self.window_flip.set()  # no hook here to see the window flip: this loop wakes _window_latency
            for code, stats in self.svc.book_stats().items():
                if stats.status == "LIVE" and stats.seq != self.recorder.last_u.get(code):
                    (applied if stats.applied else snapshot)(code, stats.seq)

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        out: dict[str, harness.Book] = {}
        for code in self.codes:
            view = self.svc.book(code, depth)
            out[code] = (view.seq, list(view.bids), list(view.asks))
        return out

    def stop(self) -> None:
        self.stopping.set()
        self.window_flip.set()
        if self.svc is not None:
            self.svc.stop()

    def facts(self) -> dict[str, Any]:
        if self.svc is None:
            return {}
        stats = self.svc.stats()
        books = stats.books.values()
        lag = sorted(self.lag)
        pick = (lambda q: lag[min(len(lag) - 1, int(q * len(lag)))] if lag else None)
        return {
            "gaps": sum(b.gaps for b in books), "resyncs": sum(b.resyncs for b in books),
            "overflows": sum(b.overflows for b in books), "applied": sum(b.applied for b in books),
            "reconnects": stats.connection.reconnects, "frames": stats.connection.frames,
            "listener": dict(stats.listeners.get(self.listener_id, {})),
            "listener_lag_p50_s": pick(0.5), "listener_lag_p99_s": pick(0.99),
            "apply_latency_p50_s": weighted_percentile(self.window_samples, 0.5),
            "apply_latency_p99_s": weighted_percentile(self.window_samples, 0.99),
            "apply_latency_diffs": sum(n for _, n in self.window_samples),
            "log_counts": dict(self.log_counts), "snapshot_limit": SNAPSHOT_LIMIT,
            "snapshot_max_per_second": SNAPSHOT_PER_S, "hook": self.args.variant or "inline listener",
            "events_are": {"poll": "polls", "threaded": "listener deliveries (conflated)"}.get(
                self.args.variant, "inline listener calls (one per turn)"),
        }


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: DepthkeeperAdapter(args, rec), "depthkeeper"))
