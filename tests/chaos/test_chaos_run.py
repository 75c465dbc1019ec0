"""The chaos runner: its checkers can fail, its schedule replays by seed, and a bounded run passes."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookUpdated, BookView
from depthkeeper.chaos.check import EraTimeline, ReplayOracle, ViewChecker
from depthkeeper.chaos.faults import faults_for
from depthkeeper.chaos.recovery import percentile
from depthkeeper.chaos.schedule import GLOBAL_KINDS, LIFT_REJECT, build_schedule, load_chaos_config
from depthkeeper.supervisor.service.errors import ConfigError

from .conftest import chaos_config, wait_until

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
CHAOS_TOML = ROOT / "conf" / "chaos.toml"


class NoSim:
    """The checker only asks the simulator for samples; these tests check against the replay."""

    def book_at(self, code: str, seq: int) -> dict:
        raise RuntimeError("not running")


def view_at(oracle: ReplayOracle, era: int, code: str, seq: int, status: BookStatus = BookStatus.LIVE) -> BookView:
    bids, asks = oracle.book(era, code, seq)
    return BookView(code, status, seq, bids, asks, 0.0, (len(bids), len(asks)))


def checked(views: list[BookView], timeline: EraTimeline, at_s: float = 10.0) -> ViewChecker:
    checker = ViewChecker(NoSim(), ReplayOracle(3, 10), timeline)
    checker.start()
    for view in views:
        checker._inbox.append((at_s, BookUpdated(view)))
    assert checker.drain(5.0)
    checker.stop()
    return checker


def test_the_view_checker_passes_true_views_and_catches_wrong_ones() -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, 0.0)
    good = [view_at(oracle, 1, "BTCUSDT", seq) for seq in (5, 6, 40)]
    assert checked(good, timeline).violations == 0
    wrong_size = attrs.evolve(good[1], bids=((good[1].bids[0][0], good[1].bids[0][1] + 1.0), *good[1].bids[1:]))
    behind = attrs.evolve(good[2], seq=41)  # the picture of seq 40 labelled 41: behind the truth
    crossed = attrs.evolve(good[0], bids=((good[0].asks[0][0] + 1.0, 1.0), *good[0].bids))
    resyncing = attrs.evolve(wrong_size, status=BookStatus.RESYNCING)  # not LIVE: not a claim of truth
    checker = checked([wrong_size, behind, crossed, resyncing], timeline)
    assert checker.violations == 3 and checker.checked == 3
    assert "crossed" in checker.texts[2] and "differs" in checker.texts[0]


def test_views_of_the_previous_era_are_accepted_only_for_a_grace_period() -> None:
    oracle, timeline = ReplayOracle(3, 10), EraTimeline(1, 0.0)
    timeline.begin(2, 100.0)
    old_era = view_at(oracle, 1, "ETHUSDT", 300)
    assert checked([old_era], timeline, at_s=101.0).violations == 0  # still queued in a book's inbox
    assert checked([old_era], timeline, at_s=200.0).violations == 1  # minutes later: wrong
    assert checked([view_at(oracle, 2, "ETHUSDT", 3)], timeline, at_s=101.0).violations == 0


def test_the_replay_oracle_matches_the_simulators_own_history(service) -> None:
    svc = service(chaos_config(simulator={"seed": 21}))
    assert svc.wait_live(timeout=10)
    wait_until(lambda: svc.simulator.truth("BTCUSDT")["seq"] > 50, 5, "some market history")
    oracle = ReplayOracle(21, 10)
    for seq in (1, 17, 50):
        truth = svc.simulator.book_at("BTCUSDT", seq)
        bids, asks = oracle.book(svc.simulator.era, "BTCUSDT", seq)
        assert bids == tuple((float(p), float(s)) for p, s in truth["bids"])
        assert asks == tuple((float(p), float(s)) for p, s in truth["asks"])


def test_the_schedule_is_a_function_of_the_seed_and_meets_the_rates() -> None:
    _, settings = load_chaos_config(CHAOS_TOML, seed=5, duration_s=60.0)
    first = build_schedule(settings, random.Random(5))
    assert first == build_schedule(settings, random.Random(5)) != build_schedule(settings, random.Random(6))
    kinds = [a.what for a in first]
    kills = sum(k.startswith(("kill:", "zombie:")) for k in kinds)
    faults = sum(k.startswith("fault:") for k in kinds)
    assert kills >= 200 and faults >= 50
    globals_ = [a for a in first if a.what in GLOBAL_KINDS]
    assert all(b.at_s - a.at_s >= settings.global_spacing_s for a, b in zip(globals_, globals_[1:], strict=False))
    assert "kill:archive" not in kinds  # no archive configured: never aimed at
    # every fault kind is dealt at least once, and every reject is lifted before the next global event
    assert {f"fault:{f.value}" for f in faults_for("article")} <= set(kinds)
    assert "fault:ping_burst" not in kinds  # binance's 1008 only: harmless on the article venue
    lane = [a.what for a in first if a.what in GLOBAL_KINDS or a.what == LIFT_REJECT]
    for i, what in enumerate(lane):
        if what == "fault:reject":
            assert lane[i + 1] == LIFT_REJECT
    assert lane.count("fault:reject") == lane.count(LIFT_REJECT) >= 1


def test_chaos_settings_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(CHAOS_TOML.read_text() + "\n[chaos.extra]\nx = 1\n")
    with pytest.raises(ConfigError, match="extra"):
        load_chaos_config(bad)
    with pytest.raises(ConfigError, match="duration"):
        load_chaos_config(CHAOS_TOML, duration_s=0)
    for key, value, match in (("blackhole_min_s", "9.0", "blackhole_min_s must not exceed"),
                              ("blackhole", "-1", "must be a number >= 0"),
                              ("flood_codes_max", "1.5", "must be int")):
        (tmp_path / "x.toml").write_text(override(CHAOS_TOML.read_text(), {key: value}))
        with pytest.raises(ConfigError, match=match):
            load_chaos_config(tmp_path / "x.toml")
    cfg, settings = load_chaos_config(CHAOS_TOML, seed=3, duration_s=5)
    assert settings.seed == 3 and settings.duration_s == 5.0 and cfg.supervisor.max_restarts >= 100
    # the conf exercises a blackhole longer than the silence bound, a slow handshake below the connect timeout
    bound_s = cfg.heartbeat.interval_s * cfg.heartbeat.silent_intervals
    assert settings.limits.blackhole_max_s > bound_s + 1.0
    assert bound_s < settings.limits.slow_handshake_max_s < cfg.venue.connect_timeout_s


def test_percentiles_are_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert (percentile(ordered, 0.5), percentile(ordered, 0.99), percentile([], 0.99)) == (50.0, 99.0, 0.0)
    assert percentile([0.3], 0.99) == 0.3


def override(text: str, values: dict[str, str]) -> str:
    """``text`` (a TOML file) with each ``key = ...`` line of ``values`` replaced (keys are unique in chaos.toml)."""
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        assert n == 1, key
    return text


#: a bounded run that still deals every fault kind: tighter global spacing, shorter holds
BOUNDED = {"global_spacing_s": "0.8", "global_jitter_s": "0.3", "stall_max_s": "1.0", "blackhole_max_s": "1.5",
           "slow_handshake_max_s": "1.0", "reject_hold_min_s": "1.3", "reject_hold_max_s": "1.5",
           "local_faults_per_s": "1.5"}
BOUNDED_SEED, BOUNDED_S = 11, 16


def test_the_bounded_run_deals_every_fault_kind(tmp_path: Path) -> None:
    """The bounded run below exercises every fault kind: its schedule (a function of the seed) deals each."""
    conf = tmp_path / "bounded.toml"
    conf.write_text(override(CHAOS_TOML.read_text(), BOUNDED))
    _, settings = load_chaos_config(conf, seed=BOUNDED_SEED, duration_s=BOUNDED_S)
    kinds = {a.what for a in build_schedule(settings, random.Random(BOUNDED_SEED))}
    assert {f"fault:{f.value}" for f in faults_for("article")} | {LIFT_REJECT, "kill:connection"} <= kinds


def test_a_bounded_chaos_run_passes_every_invariant(tmp_path: Path) -> None:
    """``depthkeeper chaos`` end to end, in its own process (a clean thread/actor baseline):
    kills, zombies, every venue fault kind and churn for 16 s, then every invariant, the
    freshness invariant included (listener and polled views)."""
    conf = tmp_path / "bounded.toml"
    conf.write_text(override(CHAOS_TOML.read_text(), BOUNDED))
    proc = subprocess.run([sys.executable, "-m", "depthkeeper.supervisor.cli", "chaos", "--config", str(conf),
                           "--duration", str(BOUNDED_S), "--seed", str(BOUNDED_SEED), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    report = json.loads(proc.stdout)
    assert report["violations"] == [] and report["passed"] and proc.returncode == 0, proc.stderr[-3000:]
    assert report["books_exact"] == report["books_total"] >= 5
    assert report["ghosts"] == [] and report["missing"] == [] and report["server_connections"] == 1
    assert report["duplicate_subscribes"] == 0 and report["empty_lists"] == 0
    assert report["leaked_threads"] == [] and report["leaked_actors"] == [] and report["escalations"] == 0
    assert report["actor_kills"] >= 30 and report["venue_faults"] >= 20 and report["views_checked"] > 500
    injected = {k.removesuffix("_noop") for k in report["faults"]}
    assert {f.value for f in faults_for("article")} | {"lift_reject"} <= injected
    fresh = report["freshness"]
    assert fresh["stale"] == 0 and fresh["rejected_live"] == 0 and fresh["bound_s"] == 1.25
    assert fresh["polled"] > 1000 and fresh["compared"] > 1000
    recovery = {fig["kind"]: fig for fig in report["recovery"]}
    assert recovery["book"]["count"] >= 20 and recovery["book"]["unrecovered"] == 0
    assert recovery["reject"]["count"] >= 1 and recovery["resubscribe"]["count"] >= 1
    assert sum(n for kind, n in report["kills"].items() if kind.startswith("zombie:")) >= 1


CHAOS_BINANCE_TOML = ROOT / "conf" / "chaos-binance.toml"
#: the binance bounded run: as above, with the reject held long enough for binance to find the refused
#: code (a refused SUBSCRIBE is split in halves, one request per 0.3 s)
BOUNDED_BINANCE = {**BOUNDED, "reject_hold_min_s": "2.8", "reject_hold_max_s": "3.0"}
BOUNDED_BINANCE_SEED, BOUNDED_BINANCE_S = 11, 15


def test_the_binance_chaos_conf_is_a_binance_deployment_and_validated(tmp_path: Path) -> None:
    cfg, settings = load_chaos_config(CHAOS_BINANCE_TOML)
    assert cfg.venue.dialect == cfg.simulator.dialect == "binance" and cfg.simulator.binance_interval_scale < 1
    assert settings.global_weights["ping_burst"] > 0 and settings.limits.ping_burst_min > 5  # over 5 messages/s
    bound_s = cfg.heartbeat.interval_s * cfg.heartbeat.silent_intervals
    assert settings.limits.blackhole_max_s > bound_s + 1.0
    assert bound_s < settings.limits.slow_handshake_max_s < cfg.venue.connect_timeout_s
    # a fault that cannot bite on the article venue is refused there, naming it
    (tmp_path / "x.toml").write_text(CHAOS_TOML.read_text().replace("reject = 1 ", "reject = 1\nping_burst = 1 "))
    with pytest.raises(ConfigError, match="ping_burst: does not bite on dialect 'article'"):
        load_chaos_config(tmp_path / "x.toml")


def test_the_bounded_binance_run_deals_every_fault_kind(tmp_path: Path) -> None:
    conf = tmp_path / "bounded-binance.toml"
    conf.write_text(override(CHAOS_BINANCE_TOML.read_text(), BOUNDED_BINANCE))
    _, settings = load_chaos_config(conf, seed=BOUNDED_BINANCE_SEED, duration_s=BOUNDED_BINANCE_S)
    kinds = {a.what for a in build_schedule(settings, random.Random(BOUNDED_BINANCE_SEED))}
    assert {f"fault:{f.value}" for f in faults_for("binance")} | {LIFT_REJECT, "kill:connection"} <= kinds


def test_a_bounded_binance_chaos_run_passes_every_invariant(tmp_path: Path) -> None:
    """The same end to end on Binance spot's dialect (issue 14): views checked by update id against the
    venue's book at that id, every fault kind, a ping burst that makes the venue close with 1008
    (and no 1008 the client caused itself), the venue's real limits."""
    conf = tmp_path / "bounded-binance.toml"
    conf.write_text(override(CHAOS_BINANCE_TOML.read_text(), BOUNDED_BINANCE))
    proc = subprocess.run([sys.executable, "-m", "depthkeeper.supervisor.cli", "chaos", "--config", str(conf),
                           "--duration", str(BOUNDED_BINANCE_S), "--seed", str(BOUNDED_BINANCE_SEED), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    report = json.loads(proc.stdout)
    assert report["violations"] == [], proc.stderr[-3000:]
    assert report["passed"] and proc.returncode == 0
    assert report["books_exact"] == report["books_total"] >= 5 and report["server_connections"] == 1
    assert report["duplicate_subscribes"] == 0 and report["empty_lists"] == 0 and report["escalations"] == 0
    assert report["actor_kills"] >= 30 and report["venue_faults"] >= 20 and report["views_checked"] > 500
    injected = {k.removesuffix("_noop") for k in report["faults"]}
    assert {f.value for f in faults_for("binance")} | {"lift_reject"} <= injected
    assert report["rate_closes"]["total"] == report["rate_closes"]["provoked"] >= 1  # the 1008 closes
    fresh = report["freshness"]
    assert fresh["stale"] == 0 and fresh["rejected_live"] == 0 and fresh["polled"] > 1000
    recovery = {fig["kind"]: fig for fig in report["recovery"]}
    assert recovery["ping_burst"]["count"] >= 1 and recovery["ping_burst"]["unrecovered"] == 0
    assert recovery["reject"]["count"] >= 1 and recovery["resubscribe"]["count"] >= 1
