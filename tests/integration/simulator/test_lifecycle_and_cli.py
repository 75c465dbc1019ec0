"""Embedding (start/stop/threads) and the CLI process contract."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from depthkeeper.simulator import SimConfig, Simulator, SimulatorStopped, UnknownCode
from depthkeeper.simulator.cli import main


def sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "depthkeeper-simulator"]


def test_start_returns_listening_and_stop_is_idempotent_without_leaks(http: Callable) -> None:
    before = len(sim_threads())
    sim = Simulator.start(SimConfig(rate_per_symbol=100.0))
    assert sim.port > 0
    assert sim.url == f"ws://127.0.0.1:{sim.port}/quote-b-ws-api"
    assert sim.rest_url == f"http://127.0.0.1:{sim.port}/depth"
    assert sim.control_url == f"http://127.0.0.1:{sim.port}/_control"
    assert http("GET", f"{sim.rest_url}?code=BTCUSDT")[0] == 200
    assert len(sim_threads()) == before + 1
    sim.stop()
    sim.stop()
    assert len(sim_threads()) == before
    with pytest.raises(SimulatorStopped):
        sim.truth("BTCUSDT")


def test_context_manager_stops_and_closes_clients(connect: Callable) -> None:
    before = len(sim_threads())
    with Simulator.start(SimConfig(dialect="alltick")) as sim:
        assert sim.rest_url.endswith("/quote-b-api/depth-tick")
        client = connect(sim.url)
        with pytest.raises(UnknownCode):
            sim.truth("NOPE")
    client.wait_closed()
    assert len(sim_threads()) == before


def test_a_taken_port_fails_start_with_the_os_error(start_sim: Callable) -> None:
    first = start_sim()
    before = len(sim_threads())
    with pytest.raises(OSError):
        Simulator.start(SimConfig(port=first.port))
    assert len(sim_threads()) == before


def test_stop_does_not_wait_for_a_delayed_rest_answer(start_sim: Callable, wait_until: Callable) -> None:
    sim = start_sim()
    sim.faults.rest_delay(60.0)
    worker = threading.Thread(
        target=lambda: urllib.request.urlopen(f"{sim.rest_url}?code=BTCUSDT", timeout=10).read(), daemon=True
    )
    worker.start()
    wait_until(lambda: sim.counters()["rest_requests"] == 1)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 5.0
    worker.join(10)


def test_two_simulators_are_independent(start_sim: Callable) -> None:
    one, two = start_sim(seed=1), start_sim(seed=1, symbols=("XRPUSDT",))
    assert one.port != two.port
    one.faults.restart()
    assert (one.era, two.era) == (2, 1)


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "the CLI printed nothing"
    return proc.stdout.readline()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_one_json_line_and_exits_0_on_signal(
    tmp_path: Path, connect: Callable, stop_signal: signal.Signals
) -> None:
    with (tmp_path / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "depthkeeper.simulator", "--port", "0", "--symbols", "BTCUSDT,ETHUSDT",
             "--rate", "200", "--seed", "3", "--levels", "10"],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        try:
            line = json.loads(_read_line(proc, 20.0))
            assert set(line) == {"url", "rest_url", "control_url"}
            assert line["url"].startswith("ws://127.0.0.1:") and line["url"].endswith("/quote-b-ws-api")
            client = connect(line["url"])
            client.sub("ETHUSDT")
            client.wait_for(lambda c: len(c.diffs()) >= 3)
            proc.send_signal(stop_signal)
            assert proc.wait(15) == 0
            assert proc.stdout is not None and proc.stdout.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_cli_rejects_bad_arguments_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--levels", "0"])
    assert excinfo.value.code == 2
    assert "SimConfig.levels" in capsys.readouterr().err
