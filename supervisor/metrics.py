"""Prometheus metrics for operators: ``/metrics`` on 127.0.0.1 when ``[metrics] port`` > 0.

Values are read from ``svc.stats()`` at scrape time by a custom collector, so what
Prometheus sees is exactly what ``stats()`` says (no second set of counters to drift).
The one thing stats cannot give — a latency distribution — is a real histogram that the
BookActors observe into. Everything lives in a registry of our own: the library never
touches prometheus_client's process-global default registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from depthkeeper.actors.orderbook import BookStatus

if TYPE_CHECKING:
    from depthkeeper.supervisor.service import BookService

_STATUS_VALUE = {s.name: i for i, s in enumerate(BookStatus)}
LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def make_latency_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("depthkeeper_apply_latency_seconds",
                     "Frame arrival (reader thread) to applied in the book, per batch.",
                     buckets=LATENCY_BUCKETS_S, registry=registry)


class ServiceCollector(Collector):
    """Turns one ``svc.stats()`` into metric families at each scrape."""

    def __init__(self, svc: BookService) -> None:
        self._svc = svc

    def collect(self) -> Iterator[Any]:
        stats = self._svc.stats()
        per_symbol = [
            ("diffs_applied_total", "Diffs (or full pushes) applied to the book.", "applied", CounterMetricFamily),
            ("gaps_total", "Sequence gaps detected.", "gaps", CounterMetricFamily),
            ("resyncs_total", "Resyncs started (gap, repeat, restart, reconnect, crossed, overflow).", "resyncs",
             CounterMetricFamily),
            ("drifted_levels_total", "Levels found wrong by periodic calibration.", "drifted_levels",
             CounterMetricFamily),
            ("book_age_seconds", "Seconds since the book last changed.", "age_s", GaugeMetricFamily),
            ("book_inbox_depth", "Messages waiting in the BookActor's inbox.", "inbox", GaugeMetricFamily),
            ("book_seq", "The book's current sequence number.", "seq", GaugeMetricFamily),
        ]
        for name, doc, attr, family in per_symbol:
            metric = family(f"depthkeeper_{name.removesuffix('_total') if family is CounterMetricFamily else name}",
                            doc, labels=["symbol"])
            for code, book in stats.books.items():
                value = getattr(book, attr)
                metric.add_metric([code], value if value != float("inf") else -1.0)
            yield metric
        status = GaugeMetricFamily("depthkeeper_book_status",
                                   "Book status: " + ", ".join(f"{v}={k}" for k, v in _STATUS_VALUE.items()),
                                   labels=["symbol"])
        for code, book in stats.books.items():
            status.add_metric([code], _STATUS_VALUE[book.status])
        yield status
        yield from self._connection(stats)
        yield from self._supervisor(stats)

    def _connection(self, stats: Any) -> Iterator[Any]:
        conn = stats.connection
        sub = stats.subscription
        counters = [
            ("reconnects", "Reconnects of the venue socket.", conn.reconnects),
            ("heartbeat_timeouts", "Reconnects forced by business-message silence.", conn.heartbeat_timeouts),
            ("malformed_frames", "Frames dropped because they could not be decoded.", conn.malformed),
            ("unwanted_frames", "Frames dropped for codes with no book (unsubscribed / ghosts).", conn.unwanted),
            ("overflow_skipped_frames", "Frames not delivered to a book whose inbox was full (it resyncs).",
             conn.overflow_skipped),
            ("rejected_codes", "Codes refused (malformed, or rejected by the venue).",
             sub.get("invalid_codes", 0) + sub.get("venue_rejected", 0)),
        ]
        for name, doc, value in counters:
            family = CounterMetricFamily(f"depthkeeper_{name}", doc)
            family.add_metric([], value)
            yield family
        epoch = GaugeMetricFamily("depthkeeper_connection_epoch", "Current socket incarnation.")
        epoch.add_metric([], conn.epoch)
        yield epoch
        up = GaugeMetricFamily("depthkeeper_connection_up", "1 when the venue socket is open.")
        up.add_metric([], 1.0 if conn.connected else 0.0)
        yield up

    def _supervisor(self, stats: Any) -> Iterator[Any]:
        restarts = CounterMetricFamily("depthkeeper_restarts", "Actor restarts by child kind.", labels=["kind"])
        for kind, value in sorted(stats.supervisor.restarts_by_kind.items()):
            restarts.add_metric([kind], value)
        yield restarts
        escalations = CounterMetricFamily("depthkeeper_escalations", "Times a supervisor gave up and escalated.")
        escalations.add_metric([], stats.supervisor.escalations)
        yield escalations


class MetricsServer:
    """Serves ``/metrics`` on 127.0.0.1:port for one service."""

    def __init__(self, svc: BookService, registry: CollectorRegistry, port: int) -> None:
        registry.register(ServiceCollector(svc))
        self.server, self.thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        self.port = self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)
