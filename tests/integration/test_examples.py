"""Every script in examples/ runs briefly, exits 0 and does what it says (issue 15)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from depthkeeper.supervisor import BookService

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.integration


def run_example(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_embed_prints_live_views_and_nothing_on_stderr(tmp_path: Path) -> None:
    proc = run_example("embed.py", "--duration", "1", cwd=tmp_path)  # the shipped conf/demo.toml, from anywhere
    rows = [line for line in proc.stdout.splitlines() if re.match(r"[A-Z]+USDT +LIVE +seq +\d+", line)]
    assert {row.split()[0] for row in rows} == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT"}
    assert "health: ok" in proc.stdout
    assert proc.stderr == ""  # the library is silent until its host enables it


def test_pykka_host_is_parent_and_listener() -> None:
    proc = run_example("pykka_host.py", "--duration", "1")
    assert re.search(r"status +BTCUSDT +SYNCING -> LIVE", proc.stdout)
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"updates (\w+) +(\d+)", proc.stdout)}
    assert set(counts) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "ETCUSDT"} and all(n > 0 for n in counts.values())


def test_pykka_host_receives_the_escalation() -> None:
    proc = run_example("pykka_host.py", "--provoke-escalation")
    assert "escalated by depthkeeper after 1 restarts" in proc.stdout
    assert proc.stderr == ""  # injected kills: no tracebacks, no log lines


def test_asyncio_consumer_awaits_updates() -> None:
    proc = run_example("asyncio_consumer.py", "--duration", "10", "--updates", "12")
    updates = re.findall(r"^update +(\w+) +(\w+) +seq +(\d+)", proc.stdout, re.M)
    assert len(updates) >= 12 and any(status == "LIVE" and int(seq) > 0 for _, status, seq in updates)
    assert "updates per symbol:" in proc.stdout


def test_metrics_example_scrapes_metrics_and_health() -> None:
    from tests.integration.ops.conftest import free_port

    proc = run_example("metrics.py", "--port", str(free_port()), "--duration", "1")
    assert re.search(r'depthkeeper_build_info\{python="[\d.]+",version="[^"]+"\} 1\.0', proc.stdout)
    assert "process_resident_memory_bytes" in proc.stdout
    assert "/healthz 200: {'ok': True, 'problems': []}" in proc.stdout


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name one scrape of a service with an archive shows (counters with _total, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.integration.ops.conftest import free_port
    from tests.support import build_config, wait_until

    cfg = build_config(metrics={"port": free_port()}, archive={"path": str(tmp_path / "a.sqlite"), "interval_s": 0.1})
    with BookService.start(cfg) as svc:
        assert svc.wait_live(timeout=10)
        wait_until(lambda: svc.stats().books["BTCUSDT"].applied > 0, 10, "applied diffs")
        with urllib.request.urlopen(svc.metrics.url, timeout=5) as reply:
            text = reply.read().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_grafana_dashboard_uses_only_exported_metrics_and_covers_them(tmp_path: Path) -> None:
    dashboard = json.loads((EXAMPLES / "grafana" / "depthkeeper.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    used = {name for expr in exprs for name in re.findall(r"\b((?:depthkeeper|process)_[a-z_]+)", expr)}
    known = exported_names(tmp_path)
    assert used <= known, sorted(used - known)
    families = {re.sub(r"_(bucket|sum|count|created)$", "", n) for n in known if n.startswith("depthkeeper_")}
    missing = {f for f in families if not any(u == f or u.startswith(f + "_") for u in used)}
    assert not missing, sorted(missing)  # every exported family is on the dashboard
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= used
