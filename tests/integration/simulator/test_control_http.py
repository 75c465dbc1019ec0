"""The /_control HTTP endpoints on the venue's own port."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from depthkeeper.simulator import SimHandle


def test_index_lists_every_endpoint(article_sim: SimHandle, http: Callable) -> None:
    status, index = http("GET", article_sim.control_url)
    assert status == 200
    assert "/_control/truth" in index["GET"] and "/_control/faults/restart" in index["POST"]
    assert len(index["POST"]) == 26 and "/_control/faults/ping_burst" in index["POST"]


def test_reads_match_the_python_api(article_sim: SimHandle, connect: Callable, http: Callable) -> None:
    client = connect(article_sim.url)
    client.sub("BTCUSDT", "ETHUSDT")
    client.wait_for(lambda c: c.acks())
    article_sim.freeze()
    base = article_sim.control_url
    assert http("GET", f"{base}/truth?code=BTCUSDT") == (200, article_sim.truth("BTCUSDT"))
    (conn_id,) = article_sim.subscriptions()
    assert http("GET", f"{base}/subscriptions") == (200, {str(conn_id): ["BTCUSDT", "ETHUSDT"]})
    status, connections = http("GET", f"{base}/connections")
    assert status == 200 and [c["conn_id"] for c in connections] == [conn_id]
    assert connections[0]["subscriptions"] == ["BTCUSDT", "ETHUSDT"] and connections[0]["path"] == "/quote-b-ws-api"
    status, log = http("GET", f"{base}/command_log?conn_id={conn_id}")
    assert status == 200 and [(r["action"], r["codes"]) for r in log] == [("sub", ["BTCUSDT", "ETHUSDT"])]
    status, counters = http("GET", f"{base}/counters")
    assert status == 200 and counters["frames_sent"][str(conn_id)] == article_sim.counters()["frames_sent"][conn_id]
    status, state = http("GET", f"{base}/state")
    assert status == 200 and state["era"] == 1 and state["frozen"] is True
    seq = article_sim.truth("ETHUSDT")["seq"]
    assert http("GET", f"{base}/book_at?code=ETHUSDT&seq={seq}") == (200, article_sim.truth("ETHUSDT"))


def test_freeze_and_unfreeze_over_http(article_sim: SimHandle, http: Callable, wait_until: Callable) -> None:
    base = article_sim.control_url
    assert http("POST", f"{base}/freeze") == (200, {"ok": True})
    frozen_seq = article_sim.truth("BTCUSDT")["seq"]
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 0.1)
    assert article_sim.truth("BTCUSDT")["seq"] == frozen_seq
    assert http("POST", f"{base}/unfreeze") == (200, {"ok": True})
    wait_until(lambda: article_sim.truth("BTCUSDT")["seq"] > frozen_seq)


def test_faults_over_http(article_sim: SimHandle, connect: Callable, http: Callable) -> None:
    base = f"{article_sim.control_url}/faults"
    client = connect(article_sim.url)
    client.sub("BTCUSDT")
    client.wait_for(lambda c: len(c.diffs()) >= 10)
    assert http("POST", f"{base}/drop?n=2&code=BTCUSDT") == (200, {"ok": True})
    assert http("POST", f"{base}/duplicate?code=BTCUSDT")[0] == 200
    assert http("POST", f"{base}/reorder")[0] == 200
    assert http("POST", f"{base}/rest_fail?status=500&count=1")[0] == 200
    assert http("GET", f"{article_sim.rest_url}?code=BTCUSDT")[0] == 500
    assert http("POST", f"{base}/rest_delay?seconds=0.01")[0] == 200
    assert http("POST", f"{base}/stale_snapshot?lag=1")[0] == 200
    assert http("POST", f"{base}/malformed?kind=bad_json&count=1") == (200, {"ok": True, "sent": 1})
    assert http("POST", f"{base}/stall?seconds=0.05")[0] == 200
    client.wait_for(lambda c: article_sim.counters()["faults"]["reorder"] == 1)
    (conn_id,) = article_sim.subscriptions()
    assert http("POST", f"{base}/close?conn_id={conn_id}") == (200, {"ok": True, "closed": 1})
    client.wait_closed()
    assert http("POST", f"{base}/restart") == (200, {"ok": True, "era": 2})
    faults = article_sim.counters()["faults"]
    assert {k: faults[k] for k in ("drop", "duplicate", "reorder", "close", "restart", "malformed", "stall")} == {
        "drop": 2, "duplicate": 1, "reorder": 1, "close": 1, "restart": 1, "malformed": 1, "stall": 1,
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/faults/restart", 405),
        ("POST", "/truth?code=BTCUSDT", 405),
        ("GET", "/nothing", 404),
        ("GET", "/truth?code=NOPE", 404),
        ("GET", "/truth", 400),
        ("GET", "/book_at?code=BTCUSDT&seq=abc", 400),
        ("GET", "/book_at?code=BTCUSDT&seq=999999999", 409),
        ("POST", "/faults/drop?n=0", 400),
        ("POST", "/faults/malformed?kind=nope", 400),
        ("POST", "/faults/close?conn_id=424242", 404),
    ],
)
def test_errors_are_json_with_the_right_status(
    article_sim: SimHandle, http: Callable, method: str, path: str, status: int
) -> None:
    got_status, body = http(method, f"{article_sim.control_url}{path}")
    assert got_status == status and isinstance(body["error"], str)


def test_unknown_paths_on_the_port_are_json_404(article_sim: SimHandle, http: Callable) -> None:
    root = article_sim.control_url.rsplit("/", 1)[0]
    assert http("GET", f"{root}/whatever") == (404, {"error": "not found"})
    assert http("POST", f"{article_sim.rest_url}?code=BTCUSDT")[0] == 405
