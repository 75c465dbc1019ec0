"""``depthkeeper run``: the main job starts the embedded simulator and the service, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]


def test_bounded_run_prints_final_stats_as_json() -> None:
    proc = run("run", "--config", "conf/demo.toml", "--duration", "2", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert set(stats["books"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT"}
    assert all(b["status"] == "LIVE" and b["applied"] > 0 for b in stats["books"].values())
    assert stats["connection"]["connected"] is True and stats["supervisor"]["escalations"] == 0


def test_sigterm_stops_cleanly_with_exit_zero() -> None:
    proc = run("run", "--config", "conf/demo.toml", "--no-table")
    assert proc.stderr is not None
    for line in proc.stderr:  # wait (bounded by the test timeout) until books are live
        if "-> LIVE" in line:
            break
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)  # a thread left behind would keep the process alive
    finally:
        proc.kill()
    assert proc.returncode == 0


def test_bad_config_fails_at_load_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulator]\nenabled = true\n[book]\nmax_levels = -1\n")
    proc = run("run", "--config", str(bad))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "[book] max_levels" in err and "out of range" in err


def test_run_exits_promptly_and_nonzero_when_the_tree_gives_up(tmp_path: Path) -> None:
    """Defect 15: an archive that can never open its file crashes on every start; once the restart
    intensity is exceeded the tree gives up, and ``run`` says so in one line and exits 3. (The path is
    a directory: its parent exists, so the start-up preflight lets it through to the actor.)"""
    cfg = tmp_path / "gives-up.toml"
    (tmp_path / "a-directory").mkdir()
    cfg.write_text(
        "[simulator]\nenabled = true\n[symbols]\ninitial = [\"BTCUSDT\"]\n"
        "[supervisor]\nmax_restarts = 2\nperiod_s = 30.0\nrestart_backoff_min_s = 0.01\nrestart_backoff_max_s = 0.02\n"
        f"[archive]\npath = \"{tmp_path / 'a-directory'}\"\n")
    proc = run("run", "--config", str(cfg), "--no-table", "--duration", "60")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("depthkeeper: the supervisor gave up"), last
