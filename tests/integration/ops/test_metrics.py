"""``/metrics`` scraped over plain HTTP during a simulator run matches ``svc.stats()``."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from depthkeeper.supervisor.service.metrics import STATUS_VALUES, MetricsServer
from depthkeeper.supervisor.service.facade import BookService

from tests.support import wait_until

from .conftest import CODES, free_port

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, Any]:
    """{family name: family} from one GET (families are keyed without ``_total``)."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], family: str, sample: str | None = None, **labels: str) -> float:
    """The one sample named ``sample`` (default: the family's own name) with exactly ``labels``."""
    wanted = sample or family
    found = [s.value for s in families[family].samples if s.name == wanted and s.labels == labels]
    assert len(found) == 1, f"{wanted}{labels}: {len(found)} samples"
    return float(found[0])


def settled(svc: BookService) -> Any:
    """Two stats() a moment apart agree on every book (market frozen, inboxes drained)."""
    first = svc.stats()
    second = svc.stats()
    books_ok = all(b.status == "LIVE" and b.inbox == 0 for b in second.books.values()) and len(second.books) == 3
    same = {c: (b.applied, b.seq) for c, b in first.books.items()} == {c: (b.applied, b.seq)
                                                                          for c, b in second.books.items()}
    return second if books_ok and same else None


def test_scrape_matches_stats_after_faults(service: Callable[..., BookService]) -> None:
    svc = service(metrics={"port": free_port()})
    assert svc.metrics is not None and svc.metrics.url.startswith("http://127.0.0.1:")
    assert svc.wait_live(timeout=10)
    faults = svc.simulator.faults
    faults.drop(3, code="BTCUSDT")  # a gap -> a resync
    faults.malformed("bad_json", 3)
    wait_until(lambda: svc.stats().books["BTCUSDT"].gaps >= 1, 10, "a BTCUSDT gap")
    wait_until(lambda: svc.stats().connection.malformed >= 3, 10, "malformed frames counted")
    svc.chaos.kill("book:ETHUSDT")
    wait_until(lambda: svc.stats().supervisor.restarts_by_kind.get("book", 0) >= 1, 10, "a book restart")
    assert svc.subscribe(["not a code!"]).rejected
    faults.close()  # -> a reconnect and a resync of every book
    wait_until(lambda: svc.stats().connection.reconnects >= 1, 10, "a reconnect")
    assert svc.wait_live(timeout=10)

    svc.simulator.freeze()
    stats = wait_until(lambda: settled(svc), 10, "stable stats with the market frozen")
    families = scrape(svc.metrics.url)

    for code in CODES:
        book = stats.books[code]
        assert value(families, "depthkeeper_diffs_applied", "depthkeeper_diffs_applied_total", symbol=code) \
            == book.applied
        assert value(families, "depthkeeper_gaps", "depthkeeper_gaps_total", symbol=code) == book.gaps
        assert value(families, "depthkeeper_resyncs", "depthkeeper_resyncs_total", symbol=code) == book.resyncs
        assert value(families, "depthkeeper_drifted_levels", "depthkeeper_drifted_levels_total", symbol=code) \
            == book.drifted_levels
        assert value(families, "depthkeeper_book_status", symbol=code) == STATUS_VALUES["LIVE"]
        assert value(families, "depthkeeper_book_seq", symbol=code) == book.seq
        assert value(families, "depthkeeper_book_inbox_messages", symbol=code) == 0
        age = value(families, "depthkeeper_book_age_seconds", symbol=code)
        assert book.age_s <= age < book.age_s + 5.0  # the scrape came later; the book did not change
    assert stats.books["BTCUSDT"].gaps >= 1 and stats.books["BTCUSDT"].resyncs >= 2

    conn = stats.connection
    assert value(families, "depthkeeper_reconnects", "depthkeeper_reconnects_total") == conn.reconnects >= 1
    assert value(families, "depthkeeper_heartbeat_timeouts", "depthkeeper_heartbeat_timeouts_total") \
        == conn.heartbeat_timeouts
    assert value(families, "depthkeeper_malformed_frames", "depthkeeper_malformed_frames_total") == conn.malformed
    assert value(families, "depthkeeper_frames_received", "depthkeeper_frames_received_total") == conn.frames
    assert value(families, "depthkeeper_dropped_frames", "depthkeeper_dropped_frames_total",
                 reason="unsubscribed") == conn.unwanted
    assert value(families, "depthkeeper_dropped_frames", "depthkeeper_dropped_frames_total",
                 reason="inbox_full") == conn.overflow_skipped
    assert value(families, "depthkeeper_rejected_codes", "depthkeeper_rejected_codes_total", reason="venue") \
        == stats.subscription.counters.venue_rejected
    assert value(families, "depthkeeper_rejected_codes", "depthkeeper_rejected_codes_total", reason="malformed") \
        == stats.subscription.counters.invalid_codes + getattr(svc, "rejected_codes", 0)
    assert value(families, "depthkeeper_connection_up") == 1.0
    assert value(families, "depthkeeper_connection_epoch") == conn.epoch

    by_kind = stats.supervisor.restarts_by_kind
    assert value(families, "depthkeeper_restarts", "depthkeeper_restarts_total", kind="book") == by_kind["book"]
    for kind in ("connection", "subscription", "snapshot"):
        assert value(families, "depthkeeper_restarts", "depthkeeper_restarts_total", kind=kind) \
            == by_kind.get(kind, 0)
    assert value(families, "depthkeeper_escalations", "depthkeeper_escalations_total") \
        == stats.supervisor.escalations == 0

    count = value(families, "depthkeeper_apply_latency_seconds", "depthkeeper_apply_latency_seconds_count")
    inf_bucket = value(families, "depthkeeper_apply_latency_seconds", "depthkeeper_apply_latency_seconds_bucket",
                       le="+Inf")
    assert count == inf_bucket > 0
    assert 0 < value(families, "depthkeeper_apply_latency_seconds", "depthkeeper_apply_latency_seconds_sum") < count


def test_names_follow_conventions_and_status_is_documented(service: Callable[..., BookService]) -> None:
    svc = service()
    assert svc.metrics is None  # port 0 = off
    assert svc.wait_live(timeout=10)
    server = MetricsServer(svc, svc.registry, 0)  # 0 here = an ephemeral port
    try:
        assert server.port > 0
        families = scrape(server.url)
    finally:
        server.stop()
    # ours are depthkeeper_*; the process collector's keep the standard process_* names dashboards know
    assert families and all(name.startswith(("depthkeeper_", "process_")) for name in families)
    assert "process_cpu_seconds" in families and "depthkeeper_build_info" in families
    for family in families.values():
        names = {s.name for s in family.samples}
        if family.type == "counter":
            assert names == {family.name + "_total"}, family.name
        assert not any(name.endswith(("_ms", "_millis", "_milliseconds")) for name in names)
        if family.name.startswith("depthkeeper_book_") or family.name in (
                "depthkeeper_diffs_applied", "depthkeeper_gaps", "depthkeeper_resyncs", "depthkeeper_drifted_levels"):
            assert {tuple(s.labels) for s in family.samples} == {("symbol",)}, family.name
            assert {s.labels["symbol"] for s in family.samples} == set(CODES)
    help_text = families["depthkeeper_book_status"].documentation
    for name, number in STATUS_VALUES.items():
        assert f"{number}={name}" in help_text
    # Nothing leaked into prometheus_client's process-wide registry.
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("depthkeeper")]


def test_server_stop_unregisters_so_a_new_one_can_serve(service: Callable[..., BookService]) -> None:
    svc = service()
    assert svc.wait_live(timeout=10)
    first = MetricsServer(svc, svc.registry, 0)
    first.stop()
    first.stop()  # idempotent
    second = MetricsServer(svc, svc.registry, 0)
    try:
        families = scrape(second.url)
        # one collector registered, not two: every symbol appears exactly once
        samples = [s for s in families["depthkeeper_book_seq"].samples]
        assert sorted(s.labels["symbol"] for s in samples) == sorted(CODES)
    finally:
        second.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(second.url, timeout=2)


def test_collector_tolerates_a_stopped_service() -> None:
    """A scrape after stop() answers (empty per-symbol families) instead of failing the HTTP request."""
    from .conftest import ops_config

    svc = BookService.start(ops_config())
    registry = CollectorRegistry(auto_describe=True)
    server = MetricsServer(svc, registry, 0)
    try:
        svc.stop()
        families = scrape(server.url)
        assert families["depthkeeper_book_status"].samples == []
        assert value(families, "depthkeeper_connection_up") == 0.0
        assert math.isfinite(value(families, "depthkeeper_escalations", "depthkeeper_escalations_total"))
    finally:
        server.stop()
