"""Prometheus metrics for operators: ``/metrics`` and ``/healthz`` on 127.0.0.1 when ``[metrics] port`` > 0.

Values are read from ``svc.stats()`` at scrape time by a custom collector, so what
Prometheus sees is exactly what ``stats()`` says (no second set of counters to drift).
The one thing stats cannot give -- a latency distribution -- is a real histogram that the
BookActors observe into. Everything lives in a registry of our own: the library never
touches prometheus_client's process-global default registry.

Names follow Prometheus conventions: ``depthkeeper_`` prefix, base units (seconds),
counters end in ``_total`` (``CounterMetricFamily`` appends it: the names below are given
without it), one ``symbol`` label per book. Counters held by an actor restart from zero
when that actor restarts; Prometheus' ``rate()``/``increase()`` treat that as a reset.
The process itself is described by prometheus_client's ``ProcessCollector`` (the standard
``process_*`` names: CPU, memory, file descriptors, start time) and the build by
``depthkeeper_build_info{version, python} 1``.

``/healthz`` answers ``svc.health()``: 200 when it is ok, 503 when not, with the JSON body
``{"ok": true|false, "problems": ["...", ...]}`` (a load balancer reads the status, a human
the problems). Every other path serves the metrics.
"""

from __future__ import annotations

import json
import platform
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pykka
from loguru import logger
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from depthkeeper.actors.messages import GetCounters

if TYPE_CHECKING:
    from depthkeeper.supervisor.service.facade import BookService
    from depthkeeper.supervisor.service.stats import ServiceStats

#: ``depthkeeper_book_status`` values. Explicit (not enum order) so that adding a status to
#: BookStatus can never silently change what an existing alert rule means.
STATUS_VALUES: dict[str, int] = {"SYNCING": 0, "LIVE": 1, "RESYNCING": 2, "STALE": 3, "DISCONNECTED": 4,
                                 "REJECTED": 5}
#: reported for a status this module does not know yet (never confused with a real one)
UNKNOWN_STATUS = -1
STATUS_HELP = "Book status: " + ", ".join(f"{v}={k}" for k, v in STATUS_VALUES.items()) + f", {UNKNOWN_STATUS}=other."

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: (metric name without _total, help, BookFigures attribute) -- the per-symbol counters
_BOOK_COUNTERS = (
    ("depthkeeper_diffs_applied", "Diffs (or full pushes) applied to the book.", "applied"),
    ("depthkeeper_gaps", "Sequence gaps detected.", "gaps"),
    ("depthkeeper_resyncs", "Resyncs started (gap, repeat, restart, reconnect, crossed, overflow).", "resyncs"),
    ("depthkeeper_drifted_levels", "Levels found wrong (and repaired) by periodic calibration.", "drifted_levels"),
)
#: (metric name, help, BookFigures attribute) -- the per-symbol gauges
_BOOK_GAUGES = (
    ("depthkeeper_book_age_seconds", "Seconds since the book last changed (+Inf: never).", "age_s"),
    ("depthkeeper_book_inbox_messages", "Messages waiting in the BookActor's inbox.", "inbox"),
    ("depthkeeper_book_seq", "The book's current sequence number.", "seq"),
)


def build_version() -> str:
    """The installed depthkeeper's version (``unknown`` in a source tree never installed)."""
    try:
        return metadata.version("depthkeeper")
    except metadata.PackageNotFoundError:
        return "unknown"


def make_latency_histogram(registry: CollectorRegistry) -> Histogram:
    """The frame-arrival -> applied histogram; BookActors observe it once per applied batch."""
    return Histogram("depthkeeper_apply_latency_seconds",
                     "Frame read by the reader thread to applied in the book, per batch.",
                     buckets=LATENCY_BUCKETS_S, registry=registry)


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels or ()))
    family.add_metric(list((labels or {}).values()), value)
    return family


class ServiceCollector(Collector):
    """Turns one ``svc.stats()`` (plus the archive's counters) into metric families per scrape."""

    def __init__(self, svc: BookService) -> None:
        self._svc = svc

    def describe(self) -> list[Metric]:
        # Without this, registering would run a whole collect() (asks to every actor) at once.
        return []

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("depthkeeper_build_info", "Always 1; the labels say what is running.",
                                 labels=["version", "python"])
        info.add_metric([build_version(), platform.python_version()], 1)
        yield info
        stats = self._svc.stats()
        yield from self._books(stats)
        yield from self._connection(stats)
        yield from self._supervisor(stats)
        yield from self._archive()

    def _books(self, stats: ServiceStats) -> Iterator[Metric]:
        for name, doc, attr in _BOOK_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=["symbol"])
            for code, book in stats.books.items():
                counter.add_metric([code], getattr(book, attr))
            yield counter
        for name, doc, attr in _BOOK_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["symbol"])
            for code, book in stats.books.items():
                gauge.add_metric([code], getattr(book, attr))
            yield gauge
        status = GaugeMetricFamily("depthkeeper_book_status", STATUS_HELP, labels=["symbol"])
        for code, book in stats.books.items():
            status.add_metric([code], STATUS_VALUES.get(book.status, UNKNOWN_STATUS))
        yield status

    def _connection(self, stats: ServiceStats) -> Iterator[Metric]:
        conn, sub = stats.connection, stats.subscription
        yield _counter("depthkeeper_reconnects", "Reconnects of the venue socket.", conn.reconnects)
        yield _counter("depthkeeper_heartbeat_timeouts", "Reconnects forced by business-message silence.",
                       conn.heartbeat_timeouts)
        yield _counter("depthkeeper_frames_received", "Frames read from the venue socket.", conn.frames)
        yield _counter("depthkeeper_malformed_frames", "Frames dropped because they could not be decoded.",
                       conn.malformed)
        dropped = CounterMetricFamily("depthkeeper_dropped_frames",
                                      "Well-formed frames not applied: unsubscribed = for a code with no book "
                                      "(unsubscribed, or a ghost); inbox_full = the book's inbox was full "
                                      "(it resyncs).", labels=["reason"])
        dropped.add_metric(["unsubscribed"], conn.unwanted)
        dropped.add_metric(["inbox_full"], conn.overflow_skipped)
        yield dropped
        rejected = CounterMetricFamily("depthkeeper_rejected_codes",
                                       "Codes refused: malformed = failed validation (never sent); "
                                       "venue = refused by the venue.", labels=["reason"])
        # ``rejected_codes`` on the facade counts codes refused by svc.subscribe() before they
        # reach the tree; the SubscriptionActor counts what it refuses itself.
        rejected.add_metric(["malformed"], sub.counters.invalid_codes + self._svc.rejected_codes)
        rejected.add_metric(["venue"], sub.counters.venue_rejected)
        yield rejected
        epoch = GaugeMetricFamily("depthkeeper_connection_epoch", "Current socket incarnation.")
        epoch.add_metric([], conn.epoch)
        yield epoch
        up = GaugeMetricFamily("depthkeeper_connection_up", "1 when the venue socket is open.")
        up.add_metric([], 1.0 if conn.connected else 0.0)
        yield up

    def _supervisor(self, stats: ServiceStats) -> Iterator[Metric]:
        restarts = CounterMetricFamily("depthkeeper_restarts", "Actor restarts by child kind.", labels=["kind"])
        # Every kind present from the first scrape (at 0), so increase() sees the first restart.
        kinds = dict.fromkeys(self._kinds(stats), 0)
        kinds.update(stats.supervisor.restarts_by_kind)
        for kind, value in sorted(kinds.items()):
            restarts.add_metric([kind], value)
        yield restarts
        yield _counter("depthkeeper_escalations", "Times a supervisor gave up and escalated.",
                       stats.supervisor.escalations)

    def _kinds(self, stats: ServiceStats) -> list[str]:
        kinds = [child.kind for child in self._svc.tree.children()]
        if stats.books:
            kinds.append("book")
        return kinds

    def _archive(self) -> Iterator[Metric]:
        ref = self._svc.tree.ref("archive")
        if ref is None:
            return
        try:
            report = ref.ask(GetCounters(), timeout=self._svc.ask_timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError):
            return  # restarting: the series pause for one scrape
        counters = report.counters
        rows = CounterMetricFamily("depthkeeper_archive_rows_written", "Rows committed to the archive, by table.",
                                   labels=["table"])
        rows.add_metric(["snapshots"], counters.rows_written)
        rows.add_metric(["events"], counters.events_written)
        yield rows
        yield _counter("depthkeeper_archive_batches", "Transactions committed by the archive.", counters.batches)
        yield _counter("depthkeeper_archive_skipped_views",
                       "Book views never archived because a newer view of the same symbol replaced them.",
                       report.skipped)
        yield _counter("depthkeeper_archive_missed_intervals",
                       "Archive intervals skipped because the previous write overran (writer behind).",
                       counters.missed_intervals)
        last = GaugeMetricFamily("depthkeeper_archive_last_batch_seconds", "Duration of the last archive batch.")
        last.add_metric([], counters.last_batch_s)
        yield last


class _Quiet(WSGIRequestHandler):
    """No access log on stderr: a library never writes there (and a scrape every 15 s is noise)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` on 127.0.0.1 for one service.

    ``port=0`` binds an ephemeral port (tests); the bound one is ``.port``. Note that in the
    config ``[metrics] port = 0`` means *off*: the service never builds a server then. A port
    in use raises ``OSError`` here, before anything is served.
    """

    def __init__(self, svc: BookService, registry: CollectorRegistry, port: int) -> None:
        self._svc = svc
        self._registry = registry
        self._collector = ServiceCollector(svc)
        registry.register(self._collector)
        self._process = ProcessCollector(registry=registry)
        try:
            self.server = make_server("127.0.0.1", port, self._app, ThreadingWSGIServer, handler_class=_Quiet)
        except BaseException:
            self._unregister()  # a retry on another port must not register twice
            raise
        self._metrics_app = make_wsgi_app(registry)
        self.thread = threading.Thread(target=self.server.serve_forever, name="depthkeeper-metrics", daemon=True)
        self.thread.start()
        self.port: int = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.health_url = f"http://127.0.0.1:{self.port}/healthz"
        logger.bind(actor="metrics").info("serving Prometheus metrics on {} (health: /healthz)", self.url)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            return self._health(start_response)
        return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]

    def _health(self, start_response: Callable[..., Any]) -> list[bytes]:
        try:
            health = self._svc.health()
            ok, problems = health.ok, list(health.problems)
        except Exception as exc:
            ok, problems = False, [f"health check failed: {exc!r}"]
        body = json.dumps({"ok": ok, "problems": problems}).encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _unregister(self) -> None:
        for collector in (self._collector, self._process):
            try:
                self._registry.unregister(collector)
            except KeyError:
                pass

    def stop(self) -> None:
        """Stop serving and unregister the collectors (the registry may outlive us). Idempotent."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)
        self._unregister()
