"""One shard in-process (real BookService per slot, the simulator as the venue, a real Redis)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks
from depthkeeper.cluster.shard import Shard
from depthkeeper.simulator import SimConfig, Simulator
from depthkeeper.supervisor.service.config import load_config
from tests.cluster.support import ROOT, TruthChecker, sim_truth, write_shard_config
from tests.support import wait_until

pytestmark = pytest.mark.integration

CODES = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]


@pytest.fixture
def sim() -> Iterator[Any]:
    with Simulator.start(SimConfig(symbols=tuple(CODES), rate_per_symbol=30.0, record_history=True, levels=8,
                                   seed=4)) as handle:
        yield handle


def start_shard(path: Path, sim: Any, redis: LocalRedis, initial: list[str], extra: str = "") -> tuple[Shard, Any]:
    cfg = load_config(write_shard_config(path, sim=sim, redis_url=redis.url, name="one", codes=initial, slot_size=2,
                                         lease_ttl_s=1.0, extra=extra))
    shard = Shard(cfg)
    stop = threading.Event()
    thread = threading.Thread(target=shard.run, args=(stop,), daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(30)

    return shard, finish


def venue_codes(sim: Any) -> list[str]:
    return sorted(code for codes in sim.subscriptions().values() for code in codes)


def test_codes_come_and_go_at_runtime(sim: Any, redis_server: LocalRedis, tmp_path: Path) -> None:
    shard, finish = start_shard(tmp_path / "s.toml", sim, redis_server, CODES[:3])
    bus = RedisBus(redis_server.url, "one")
    checker = TruthChecker(sim_truth(sim))
    try:
        with RemoteBooks(redis_server.url, name="one") as books:
            books.add_listener(checker)
            wait_until(lambda: books.subscriptions() == frozenset(CODES[:3]), 10, "the shard seeded the desired set")
            for code in CODES[:3]:
                books.book(code)
            wait_until(lambda: books.wait_live(CODES[:3], timeout=0), 20, "the seeded codes LIVE")
            assert books.subscribe(["DDDUSDT"]).added == ("DDDUSDT",)
            wait_until(lambda: books.book("DDDUSDT").status is BookStatus.LIVE, 15, "a code added at runtime LIVE")
            assert venue_codes(sim) == CODES[:4]
            assert books.unsubscribe(["BBBUSDT"]) == ("BBBUSDT",)
            wait_until(lambda: venue_codes(sim) == ["AAAUSDT", "CCCUSDT", "DDDUSDT"], 10, "the venue unsubscribed")
            wait_until(lambda: bus.statuses(["BBBUSDT"])[1]["BBBUSDT"].get("st") == "REMOVED", 5, "REMOVED")
            assert [e[1]["st"] for e in bus.r.xrange(bus.keys.log("BBBUSDT"))] == ["REMOVED"]
            # back again (possibly in another slot, under another epoch): the fencing state was reset
            books.subscribe(["BBBUSDT"])
            wait_until(lambda: books.book("BBBUSDT").status is BookStatus.LIVE, 15, "a code re-added LIVE")
            checker.drain()
            assert checker.violations == [] and checker.checked > 10
            assert shard.counters["fenced"] == 0 and shard.counters["lost"] == 0
    finally:
        finish()
        checker.stop()
        bus.close()
    # a graceful stop hands every slot back: RESYNCING for consumers, leases free at once
    final = RedisBus(redis_server.url, "one")
    try:
        _, statuses = final.statuses(CODES[:4])
        assert {s.get("st") for s in statuses.values()} == {"RESYNCING"}
        assert final.lease_owners([0, 1]) == {0: None, 1: None}
    finally:
        final.close()


def test_max_slots_caps_the_clusters_connections(sim: Any, redis_server: LocalRedis, tmp_path: Path) -> None:
    extra = "max_slots = 1\n"
    shard, finish = start_shard(tmp_path / "s.toml", sim, redis_server, CODES[:3], extra)
    try:
        wait_until(lambda: shard.counters["unplaced"] == 1, 10, "one code without a slot")
        wait_until(lambda: len(venue_codes(sim)) == 2, 10, "two codes at the venue")
        assert len(sim.subscriptions()) == 1  # one connection for the whole cluster
    finally:
        finish()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "depthkeeper.supervisor.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_shard_cli_refuses_bad_configs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[venue]\nurl = "ws://127.0.0.1:1/x"\nsnapshot_url = "http://127.0.0.1:1/d"\n'
                   '[cluster]\nlease_tll_s = 3\n')
    out = run_cli("shard", "--config", str(bad))
    assert out.returncode == 2 and "[cluster] lease_tll_s: unknown key" in out.stderr
    sim_cfg = tmp_path / "sim.toml"
    sim_cfg.write_text("[simulator]\nenabled = true\n")
    out = run_cli("shard", "--config", str(sim_cfg))
    assert out.returncode == 2 and "[simulator] enabled" in out.stderr


def test_the_global_log_level_overrides_the_files(sim: Any, redis_server: LocalRedis, tmp_path: Path) -> None:
    """[log] level = "INFO" in the file; ``--log-level WARNING`` (before or after the command) wins."""
    runs = {}
    for name, args in {"file": [], "before": ["--log-level", "WARNING"], "after": []}.items():
        config = write_shard_config(tmp_path / f"{name}.toml", sim=sim, redis_url=redis_server.url, name=f"log{name}",
                                    codes=CODES[:1], slot_size=1)
        tail = ["--log-level", "warning"] if name == "after" else []
        runs[name] = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", *args, "shard", "--config",
                                       str(config), "--duration", "2", *tail], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    logs = {name: proc.communicate(timeout=60)[1] for name, proc in runs.items()}
    assert all(proc.returncode == 0 for proc in runs.values()), logs
    assert " INFO " in logs["file"], logs["file"][-2000:]
    assert " INFO " not in logs["before"] and " INFO " not in logs["after"], (logs["before"], logs["after"])
