"""The CLI as an operator meets it (issue 15): from any directory, one log format in every command,
no access-log noise, start-up failures in one line before anything starts, paths relative to the
config file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

#: every line of every command: time, level, who, message[, context]
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO|SUCCESS|WARNING|ERROR|CRITICAL) +\S+ +\S.*$")


def depthkeeper(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "depthkeeper.supervisor.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_run_from_another_directory_with_the_shipped_demo(tmp_path: Path) -> None:
    proc = depthkeeper("run", "--config", "conf/demo.toml", "--duration", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["books"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT"}
    lines = proc.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    # no access log: websockets' per-connection and per-request INFO lines stay out
    assert not [line for line in lines if "websockets" in line or "connection open" in line
                or "HTTP response" in line]
    assert any(" simulator " in line and "simulator listening" in line for line in lines)
    # context is not repeated: the simulator's line says host/port once
    listening = next(line for line in lines if "simulator listening" in line)
    assert listening.count("port=") == 1 and "component=" not in listening


def test_log_level_option_overrides_the_file(tmp_path: Path) -> None:
    proc = depthkeeper("--log-level", "WARNING", "run", "--config", "conf/demo.toml", "--duration", "1", "--no-table",
                       cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


def test_run_accepts_the_chaos_deployment(tmp_path: Path) -> None:
    proc = depthkeeper("run", "--config", "conf/chaos.toml", "--duration", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["books"]
    assert (tmp_path / "chaos-archive.sqlite").is_file()  # a shipped file's relative path: the cwd


def test_metrics_port_in_use_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "m.toml"
        cfg.write_text(f'[simulator]\nenabled = true\n[metrics]\nport = {port}\n[archive]\npath = "a.sqlite"\n')
        proc = depthkeeper("run", "--config", str(cfg), "--no-table", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"depthkeeper: cannot start: [metrics] port {port}: cannot serve on 127.0.0.1:{port}: Address already in use"]
    assert not (tmp_path / "a.sqlite").exists()  # nothing started: no archive, no simulator


def test_paths_in_a_config_file_are_relative_to_it(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "x.toml").write_text('[simulator]\nenabled = true\n[symbols]\ninitial = ["BTCUSDT"]\n'
                                   '[archive]\npath = "data/books.sqlite"\ninterval_s = 0.1\n'
                                   '[log]\nfile = "x.log"\n')
    (deploy / "data").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = depthkeeper("run", "--config", "../deploy/x.toml", "--duration", "1", "--no-table", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert (deploy / "data" / "books.sqlite").is_file() and "started: dialect" in (deploy / "x.log").read_text()
    assert list(elsewhere.iterdir()) == []


def test_a_missing_archive_directory_is_a_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('[simulator]\nenabled = true\n[archive]\npath = "nowhere/books.sqlite"\n')
    proc = depthkeeper("run", "--config", str(tmp_path / "x.toml"), "--no-table", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"depthkeeper: cannot start: [archive] path {tmp_path}/nowhere/books.sqlite: "
                                        f"directory {tmp_path}/nowhere does not exist"]


def test_sim_logs_in_the_same_format_as_run(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "sim", "--rate", "5"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        urls = json.loads(proc.stdout.readline())  # the first line: the simulator is up
        assert urls["url"].startswith("ws://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    lines = err.splitlines()
    assert len(lines) >= 2 and all(LINE.match(line) for line in lines), lines
    assert "simulator listening" in lines[0]


def test_sim_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = depthkeeper("sim", "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"depthkeeper sim: cannot start on 127.0.0.1:{port}: ")
    assert "address already in use" in proc.stderr
