"""``/healthz``, the process and build metrics, a port in use, and reads after the service gave up."""

from __future__ import annotations

import json
import platform
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

import pykka
import pytest
from prometheus_client.parser import text_string_to_metric_families

from depthkeeper.supervisor.otp.messages import Escalated
from depthkeeper.supervisor.service.errors import ServiceError
from depthkeeper.supervisor.service.facade import BookService, BookUnavailable
from depthkeeper.supervisor.service.metrics import build_version
from tests.support import wait_until

from .conftest import free_port, ops_config

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_healthz_is_200_when_healthy_and_503_with_the_problems_when_not(
        service: Callable[..., BookService]) -> None:
    svc = service(metrics={"port": free_port()})
    assert svc.wait_live(timeout=10)
    status, kind, body = get(svc.metrics.health_url)
    assert (status, kind, json.loads(body)) == (200, "application/json", {"ok": True, "problems": []})
    svc.simulator.stop()  # the venue is gone: not connected, books not LIVE
    wait_until(lambda: not svc.health().ok, 10, "the service to notice")
    status, kind, body = get(svc.metrics.health_url)
    answer = json.loads(body)
    assert status == 503 and kind == "application/json" and answer["ok"] is False
    assert any(p.startswith("not connected") for p in answer["problems"])
    assert list(svc.health().problems)[:1] == answer["problems"][:1]


def test_process_and_build_metrics(service: Callable[..., BookService]) -> None:
    svc = service(metrics={"port": free_port()})
    status, _, text = get(svc.metrics.url)
    assert status == 200
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    info = samples["depthkeeper_build_info"]
    assert info.value == 1 and info.labels == {"version": build_version(), "python": platform.python_version()}
    assert build_version() != "unknown"
    assert samples["process_resident_memory_bytes"].value > 1e6
    assert samples["process_cpu_seconds_total"].value > 0
    assert samples["process_open_fds"].value > 0


def test_a_metrics_port_in_use_fails_the_start_before_anything_starts() -> None:
    baseline_threads, baseline_actors = set(threading.enumerate()), set(pykka.ActorRegistry.get_all())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError) as error:
            BookService.start(ops_config(metrics={"port": port}))
    assert str(error.value) == f"[metrics] port {port}: cannot serve on 127.0.0.1:{port}: Address already in use"
    assert set(pykka.ActorRegistry.get_all()) == baseline_actors  # no tree
    assert not [t for t in set(threading.enumerate()) - baseline_threads if t.is_alive()]  # no simulator


def test_a_read_after_the_service_gave_up_says_so() -> None:
    escalated = threading.Event()
    cfg = ops_config(supervisor={"max_restarts": 1, "period_s": 30.0, "restart_backoff_min_s": 0.0,
                                 "restart_backoff_max_s": 0.0})
    svc = BookService.start(cfg, parent=lambda event: escalated.set())
    try:
        assert svc.wait_live(timeout=10)
        for _ in range(5):  # kill each new connection actor until the intensity (1 restart) is exceeded
            old = wait_until(lambda: escalated.is_set() or svc.chaos.ref("connection"), 5, "a connection actor")
            if escalated.is_set():
                break
            svc.chaos.kill("connection")
            wait_until(lambda old=old: escalated.is_set() or svc.chaos.ref("connection") not in (None, old), 5,
                       "the next connection actor")
        assert escalated.wait(5)
        assert isinstance(svc.escalation, Escalated)
        wait_until(lambda: not svc.chaos.root_alive(), 5, "the tree to stop")
        with pytest.raises(BookUnavailable, match=r"^BTCUSDT: the service gave up \(supervisor 'depthkeeper': child "
                                                  r"'connection' exited \(crashed\) more than 1 times"):
            svc.book("BTCUSDT")
        with pytest.raises(ServiceError, match="the service gave up"):
            svc.subscribe(["XRPUSDT"])
    finally:
        svc.stop()


