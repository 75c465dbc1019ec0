"""The end of a chaos run: settle, the final checks, and the report.

``Ending`` is a mixin of ``ChaosRun`` (run.py): once the schedule has played, it lifts what is
still armed, lets the server-side subscriptions settle, freezes the market, waits for every book
to be exact, and checks the invariants that can only be judged at the end (no ghost or missing
subscription, no duplicate or empty command, no leak, no escalation); then builds the report.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.chaos.check import ReplayOracle, levels_from_text
from depthkeeper.supervisor.service.facade import BookUnavailable

if TYPE_CHECKING:
    from depthkeeper.chaos.recovery import RecoveryFigures

#: how many of the slowest recoveries the report names
SLOWEST = 8
#: the venue's command log names an unsubscribe so (article's "action", binance's "method")
UNSUBSCRIBE_ACTIONS = frozenset({"unsub", "UNSUBSCRIBE"})

@attrs.frozen
class ChaosReport:
    """Everything a run found; ``passed`` is False when any invariant failed."""

    seed: int
    duration_s: float
    kills: dict[str, int]
    missed_kills: dict[str, int]
    faults: dict[str, int]
    actor_kills: int
    venue_faults: int
    books_total: int
    books_exact: int
    ghosts: tuple[str, ...]
    missing: tuple[str, ...]
    server_connections: int
    duplicate_subscribes: int
    empty_lists: int
    views_checked: int
    view_violations: int
    oracle_samples: int
    leaked_threads: tuple[str, ...]
    leaked_actors: tuple[str, ...]
    restarts: dict[str, int]
    escalations: int
    recovery: tuple[RecoveryFigures, ...]
    violations: tuple[str, ...]
    #: the slowest recoveries, for diagnosis: "kind label 0.123s (isolated|overlapped)"
    slowest: tuple[str, ...] = ()
    #: archive accounting when [archive] path is set: rows written (in the file at the end),
    #: views skipped (conflated), views/events lost (held uncommitted when the archive was killed)
    archive: dict[str, int] = attrs.Factory(dict)
    #: the freshness invariant: L (bound_s), LIVE reads checked / compared with a venue sample,
    #: stale ones, views polled, LIVE views of a refused code, venue samples taken, blackholes
    #: longer than the silence bound (the watchdog had to fire)
    freshness: dict[str, float] = attrs.Factory(dict)
    #: binance: the venue's closes for going over 5 client messages/s (1008), all of them and those a
    #: ping burst provoked (any other one is a violation: the client broke the venue's rule itself)
    rate_closes: dict[str, int] = attrs.Factory(dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=True)
        out["passed"] = self.passed
        return out


class Ending:
    """The end of the run (a mixin of ChaosRun: it uses the run's state)."""

    # the run's state this mixin reads and writes (ChaosRun sets it in __init__ / run)
    settings: Any
    cfg: Any
    sim: Any
    svc: Any
    monkey: Any
    tracker: Any
    checker: Any
    poller: Any
    history: Any
    violations: list[str]
    zombies: Any
    bound_s: float
    long_blackholes: int
    provoked_rate_closes: int
    archive_final: Any
    archive_lost: int
    archive_skipped: int
    _rejected: Any
    _wait: Any
    _lift_reject: Any
    _isolated: Any

    def _settle(self) -> None:
        s, sim, svc = self.settings, self.sim, self.svc
        while self._rejected:  # the schedule lifts every reject; a run cut short may not have
            self._lift_reject()
        if not self.tracker.wait_idle(s.recovery_timeout_s + 1.0):
            self.violations.append("recoveries still pending after the run")
        sim.faults.stall(0)
        sim.faults.lift_blackhole()
        sim.faults.lift_snapshot_faults()
        deadline = time.monotonic() + s.quiesce_timeout_s
        # Ghosts are reaped on data, so settle the server's subscriptions while the market runs.
        while not self._server_settled() and time.monotonic() < deadline:
            self._wait.wait(0.02)
        sim.freeze()
        while not all(self._exact(c) for c in sorted(svc.subscriptions())) and time.monotonic() < deadline:
            self._wait.wait(0.02)
        self.poller.stop()
        if not self.checker.drain(10.0):
            self.violations.append("the view checker did not catch up")

    def _server_settled(self) -> bool:
        sets = list(self.sim.subscriptions().values())
        return sets == [self.svc.subscriptions()]

    def _exact(self, code: str) -> bool:
        truth = self.sim.truth(code)
        try:
            view = self.svc.book(code, timeout_s=1.0)
        except BookUnavailable:
            return False
        return (view.status is BookStatus.LIVE and view.seq == truth["seq"]
                and view.bids == levels_from_text(truth["bids"]) and view.asks == levels_from_text(truth["asks"]))

    def _final_checks(self) -> dict[str, Any]:
        svc, sim = self.svc, self.sim
        desired = svc.subscriptions()
        exact = [c for c in sorted(desired) if self._exact(c)]
        for code in sorted(desired - set(exact)):
            self.violations.append(f"book {code} is not LIVE and exactly equal to the truth")
        server = sim.subscriptions()
        on_server = frozenset().union(*server.values()) if server else frozenset()
        ghosts, missing = sorted(on_server - desired), sorted(desired - on_server)
        if ghosts or missing or len(server) != 1:
            self.violations.append(f"server subscriptions {[sorted(v) for v in server.values()]} != desired "
                                   f"{sorted(desired)} on one connection")
        counters = sim.counters()
        for name in ("duplicate_subscribes", "empty_lists"):
            if counters.get(name, 0):
                self.violations.append(f"the venue counted {counters[name]} {name}")
        unprovoked = counters.get("binance_message_rate_closes", 0) - self.provoked_rate_closes
        if unprovoked > 0:
            self.violations.append(f"the venue closed the socket {unprovoked} times (1008) because the client itself "
                                   f"went over its message rate")
        ours = {*self.cfg.symbols.initial, *self.settings.churn_codes}
        foreign = sorted({c for r in sim.command_log() if r.action in UNSUBSCRIBE_ACTIONS for c in r.codes} - ours)
        if foreign:
            self.violations.append(f"unsubscribed {len(foreign)} codes never subscribed (e.g. {foreign[:3]})")
        oracle = ReplayOracle(self.settings.seed, self.cfg.simulator.levels)
        for code in sorted(desired):
            truth = sim.truth(code)
            if oracle.book(sim.era, code, truth["seq"]) != (levels_from_text(truth["bids"]),
                                                            levels_from_text(truth["asks"])):
                self.violations.append(f"replay oracle disagrees with the simulator's truth for {code}")
        for zombie in self.zombies:
            if zombie.ref is not None and (zombie.ref.is_alive() or zombie.ref in pykka.ActorRegistry.get_all()):
                self.violations.append(f"zombie {zombie.target} was never fenced")
        stats = svc.stats()
        if svc.escalation is not None or stats.supervisor.escalations:
            self.violations.append(f"restart intensity exceeded: {svc.escalation}")
        return {"desired": len(desired), "exact": len(exact), "ghosts": ghosts, "missing": missing,
                "connections": len(server), "counters": counters,
                "rate_closes": ({"total": counters["binance_message_rate_closes"],
                                 "provoked": self.provoked_rate_closes}
                                if "binance_message_rate_closes" in counters else {}),
                "restarts": dict(stats.supervisor.restarts_by_kind), "escalations": stats.supervisor.escalations}

    def _leaks(self, threads: set[threading.Thread], actors: set[Any]) -> tuple[list[str], list[str]]:
        deadline = time.monotonic() + self.settings.leak_timeout_s
        while True:
            extra_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
            extra_actors = [r for r in pykka.ActorRegistry.get_all() if r not in actors]
            if (not extra_threads and not extra_actors) or time.monotonic() >= deadline:
                break
            self._wait.wait(0.05)
        names = sorted(t.name for t in extra_threads)
        actor_names = sorted(str(r) for r in extra_actors)
        if names:
            self.violations.append(f"leaked threads: {names}")
        if actor_names:
            self.violations.append(f"leaked actors: {actor_names}")
        return names, actor_names

    def _archive_summary(self) -> dict[str, int]:
        """Rows in the file at the end, plus skipped/lost summed over the archive's incarnations."""
        path = self.cfg.archive.path
        if not path:
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("snapshots", "events"))
        finally:
            db.close()
        shutil.rmtree(Path(path).parent, ignore_errors=True)  # the run's own temporary archive
        return {"rows_written": rows, "skipped": self.archive_skipped, "lost": self.archive_lost}

    def _report(self, elapsed_s: float, final: dict[str, Any], threads: list[str], actors: list[str]) -> ChaosReport:
        checker, tracker = self.checker, self.tracker
        self.violations.extend(checker.texts)
        if checker.violations > len(checker.texts):
            self.violations.append(f"... {checker.violations - len(checker.texts)} more bad views")
        self.violations.extend(tracker.texts)
        kills = dict(sorted(self.monkey.kills.items()))
        faults = dict(sorted(self.monkey.faults.items()))
        venue = sum(n for k, n in faults.items() if k not in ("subscribe", "unsubscribe", "lift_reject"))
        return ChaosReport(
            seed=self.settings.seed, duration_s=round(elapsed_s, 3), kills=kills,
            missed_kills=dict(sorted(self.monkey.missed.items())), faults=faults,
            actor_kills=sum(kills.values()), venue_faults=venue, books_total=final["desired"],
            books_exact=final["exact"], ghosts=tuple(final["ghosts"]), missing=tuple(final["missing"]),
            server_connections=final["connections"],
            duplicate_subscribes=final["counters"].get("duplicate_subscribes", 0),
            empty_lists=final["counters"].get("empty_lists", 0), views_checked=checker.checked,
            view_violations=checker.violations, oracle_samples=checker.samples, leaked_threads=tuple(threads),
            leaked_actors=tuple(actors), restarts=final["restarts"], escalations=final["escalations"],
            recovery=tuple(tracker.figures(self._isolated)), violations=tuple(self.violations),
            slowest=tuple(f"{r.kind} {r.label} {r.seconds:.3f}s ({'isolated' if self._isolated(r) else 'overlapped'})"
                          for r in sorted(tracker.records, key=lambda r: -r.seconds)[:SLOWEST]),
            archive=self.archive_final, freshness=self._freshness(), rate_closes=final["rate_closes"])

    def _freshness(self) -> dict[str, float]:
        checker = self.checker
        fresh = checker.freshness
        return {"bound_s": round(self.bound_s, 3), "checked": fresh.checked if fresh else 0,
                "compared": fresh.compared if fresh else 0, "stale": checker.stale, "polled": checker.polled,
                "rejected_live": checker.rejected_live, "venue_samples": len(self.history),
                "blackholes_past_bound": self.long_blackholes,
                "sample_interval_s": self.settings.sample_interval_s}


