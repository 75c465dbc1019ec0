"""The issue's full failover scenario (issue 17), as a script: 3 shards, 2 consumers, 200 symbols.

Against a private redis-server and the simulator (in this process, with full history so every
LIVE view either consumer delivers is checked against ``sim.book_at(code, seq)``), one after the
other: kill -9 a shard; SIGSTOP a shard past its lease TTL then SIGCONT; restart Redis empty;
pause a consumer (``depthkeeper watch``) past the streams' trimming. Prints a report; exits 1 if
any invariant failed. The suite runs the same scenarios on 24 symbols (tests/cluster/test_failover.py).

    python bench/cluster_failover.py [--symbols 200] [--ttl 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from depthkeeper.actors.core.orderbook import BookStatus  # noqa: E402
from depthkeeper.cluster.localredis import LocalRedis  # noqa: E402
from depthkeeper.cluster.redis_bus import RedisBus  # noqa: E402
from depthkeeper.cluster.remote import RemoteBooks  # noqa: E402
from depthkeeper.simulator import SimConfig, Simulator  # noqa: E402
from tests.cluster.support import ShardProc, TruthChecker, sim_truth, write_shard_config  # noqa: E402


def wait(predicate: Any, timeout_s: float) -> float | None:
    """Seconds until ``predicate()`` held, or None at the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - Redis restarting
            pass
        time.sleep(0.02)  # polling a condition against a deadline
    return None


class Scenario:
    def __init__(self, symbols: int, ttl_s: float, tmp: Path) -> None:
        self.codes = [f"F{i:04d}USDT" for i in range(symbols)]
        self.ttl_s = ttl_s
        self.tmp = tmp
        self.sim = Simulator.start(SimConfig(symbols=tuple(self.codes), rate_per_symbol=10.0, record_history=True,
                                             levels=10, seed=17))
        self.redis = LocalRedis().start()
        self.config = write_shard_config(tmp / "shard.toml", sim=self.sim, redis_url=self.redis.url, name="fo",
                                         codes=self.codes, slot_size=25, lease_ttl_s=ttl_s, snapshot_every=20)
        self.bus = RedisBus(self.redis.url, "fo")
        self.shards = [ShardProc(self.config, tmp / f"shard{i}.log") for i in range(3)]
        self.consumers = [RemoteBooks(self.redis.url, name="fo") for _ in range(2)]
        self.checkers = [TruthChecker(sim_truth(self.sim)) for _ in range(2)]
        for books, checker in zip(self.consumers, self.checkers, strict=True):
            books.add_listener(checker)
        self.report: dict[str, Any] = {"symbols": symbols, "ttl_s": ttl_s}

    def owners(self) -> dict[str, str]:
        _, statuses = self.bus.statuses(self.codes)
        return {code: s.get("owner", "") for code, s in statuses.items()}

    def live(self, codes: list[str], not_owner: str | None = None) -> bool:
        owners = self.owners() if not_owner else {}
        return all(b.book(c).status is BookStatus.LIVE and owners.get(c) != not_owner or (not not_owner and
                   b.book(c).status is BookStatus.LIVE) for b in self.consumers for c in codes)

    def single(self) -> bool:
        seen = [code for codes in self.sim.subscriptions().values() for code in codes]
        return sorted(seen) == sorted(self.codes)

    def start(self) -> None:
        t = wait(lambda: all(b.book(c) for b in self.consumers for c in self.codes) and self.live(self.codes), 120)
        self.report["start_all_live_s"] = t
        self.report["start_spread"] = wait(lambda: len(set(self.owners().values())) == 3, 60)

    def recovery(self, lost: list[str], since: float, victim: str) -> dict[str, Any]:
        owners = self.owners()
        times = []
        for checker in self.checkers:
            for code in lost:
                t = checker.saw(code, "LIVE", since)
                times.append(None if t is None else t - since)
        done = [t for t in times if t is not None]
        return {"symbols": len(lost), "resyncing_seen": sum(1 for ch in self.checkers for c in lost
                                                            if ch.saw(c, "RESYNCING", since)) / 2,
                "recovered_p50_s": round(sorted(done)[len(done) // 2], 2) if done else None,
                "recovered_max_s": round(max(done), 2) if done else None, "not_recovered": len(times) - len(done),
                "new_owner_not_victim": all(owners[c] != victim for c in lost)}

    def kill9(self) -> None:
        victim = self.shards[0]
        lost = sorted(c for c, o in self.owners().items() if o == victim.id)
        since = time.monotonic()
        victim.signal(signal.SIGKILL)
        wait(lambda: self.live(lost, not_owner=victim.id), self.ttl_s + 60)
        self.report["kill9"] = {**self.recovery(lost, since, victim.id), "single_subscriptions_s": wait(self.single, 30)}

    def zombie(self) -> None:
        zombie = self.shards[1]
        lost = sorted(c for c, o in self.owners().items() if o == zombie.id)
        since = time.monotonic()
        zombie.signal(signal.SIGSTOP)
        wait(lambda: self.live(lost, not_owner=zombie.id), self.ttl_s + 60)
        result = self.recovery(lost, since, zombie.id)
        zombie.signal(signal.SIGCONT)
        result["fenced_after_wake_s"] = wait(lambda: int(self.bus.shard_info(zombie.id).get("fenced", 0)) >= 1, 30)
        result["fenced"] = int(self.bus.shard_info(zombie.id).get("fenced", 0))
        result["single_subscriptions_s"] = wait(self.single, 30)
        result["all_live_after_s"] = wait(lambda: self.live(self.codes), 60)
        self.report["sigstop"] = result

    def redis_restart(self) -> None:
        before = [b.stats()["counters"].get("rebootstraps", 0) for b in self.consumers]
        epochs = [{c: i["ep"] for c, i in b.stats()["books"].items()} for b in self.consumers]
        since = time.monotonic()
        self.redis.restart()
        noticed = wait(lambda: not self.consumers[0].wait_live(self.codes, timeout=0), 30)
        wait(lambda: self.live(self.codes), 120)
        t = time.monotonic() - since
        after = [b.stats()["counters"].get("rebootstraps", 0) for b in self.consumers]
        moved = [sum(1 for c, i in b.stats()["books"].items() if i["ep"] > e.get(c, 0))
                 for b, e in zip(self.consumers, epochs, strict=True)]
        self.report["redis_restart"] = {"noticed_s": noticed, "all_live_s": round(t, 2), "rebootstraps": [a - b for a, b in zip(after, before,
                                                                                                 strict=True)],
                                        "books_on_a_new_epoch": moved, "desired_restored": self.bus.desired() ==
                                        frozenset(self.codes), "single_subscriptions_s": wait(self.single, 30)}

    def paused_consumer(self, pause_s: float) -> None:
        code = self.codes[0]
        watch = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "watch", "--redis",
                                  self.redis.url, "--name", "fo", "--json", "--interval", "0.1", "--duration", "120",
                                  code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert watch.stdout is not None
        others = [b.stats()["counters"].get("rebootstraps", 0) for b in self.consumers]
        rows = (json.loads(line) for line in watch.stdout)
        next(r for r in rows if r["books"][code] and r["books"][code]["status"] == "LIVE")
        watch.send_signal(signal.SIGSTOP)
        time.sleep(pause_s)  # the pause itself is the scenario: the stream trims meanwhile
        watch.send_signal(signal.SIGCONT)
        row = next((r for r in rows if r["books"][code]["rebootstraps"] >= 1 and r["books"][code]["status"] == "LIVE"),
                   None)
        watch.terminate()
        watch.wait(10)
        self.report["paused_consumer"] = {
            "pause_s": pause_s, "paused_rebootstrapped": row is not None,
            "others_rebootstraps": [b.stats()["counters"].get("rebootstraps", 0) - o
                                    for b, o in zip(self.consumers, others, strict=True)]}

    def finish(self) -> bool:
        for books in self.consumers:
            books.close()
        for checker in self.checkers:
            checker.drain(120)
        self.report["checked_live_views"] = [c.checked for c in self.checkers]
        self.report["violations"] = [len(c.violations) for c in self.checkers]
        self.report["violation_samples"] = [v for c in self.checkers for v in c.violations[:3]]
        for checker in self.checkers:
            checker.stop()
        for shard in self.shards:
            shard.stop()
        self.bus.close()
        self.redis.stop()
        self.sim.stop()
        r = self.report
        return (sum(r["violations"]) == 0 and r["kill9"]["not_recovered"] == 0 and r["sigstop"]["fenced"] >= 1
                and r["sigstop"]["single_subscriptions_s"] is not None and r["redis_restart"]["all_live_s"] is not None
                and r["paused_consumer"]["paused_rebootstrapped"] and r["paused_consumer"]["others_rebootstraps"] ==
                [0, 0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--ttl", type=float, default=3.0)
    parser.add_argument("--pause", type=float, default=15.0, help="seconds the watch consumer stays stopped")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(args.symbols, args.ttl, Path(tmp))
        ok = False
        try:
            scenario.start()
            scenario.kill9()
            scenario.zombie()
            scenario.redis_restart()
            scenario.paused_consumer(args.pause)
        finally:
            ok = scenario.finish()
    print(json.dumps(scenario.report, indent=None if args.json else 2))
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
