"""The chaos run: market + faults + kills on a seeded schedule, then the invariants.

Shape (Jepsen's lesson: record a history, check it against a model, replay by seed):

1. start our own simulator (``record_history=True``) and the service pointed at it;
   a listener and a poller (``svc.book`` from a reader thread) check every LIVE view against
   the truth at its seq (check.py) and the venue's seq ``L`` s before it was read (fresh.py);
2. run a schedule drawn from the seed: a *global* lane of disruptions that hit every
   book (connection kill, abrupt close, venue restart, stall, slow handshake, blackhole,
   reject then lift), spaced so each recovery can be measured, and a *local* lane of book
   kills, zombies, singleton kills, stream faults, far-future diffs, REST faults, bad
   snapshots, malformed frames, floods and subscription churn;
3. stop, let the server-side subscriptions settle, freeze the market, wait for every
   book to be exact, stop everything, and check: books exact, no ghost / missing
   subscription, no duplicate or empty command, no unsubscribe of a code we never
   subscribed, no bad or stale view, no LIVE view of a refused code, no leak, no
   escalation, every fault recovered (with p50/p99/max per kind).

The simulator is seeded with the chaos seed; the schedule is schedule.py; the end, report.py.
"""

from __future__ import annotations

import bisect
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import pykka

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import GetCounters
from depthkeeper.chaos.check import EraTimeline, ReplayOracle, ViewChecker
from depthkeeper.chaos.faults import CODE_FAULTS, SNAPSHOT_FAULTS, STREAM_FAULTS, FaultResult, VenueFault
from depthkeeper.chaos.fresh import Freshness, Poller, RejectWindows, SeqHistory, VenueSampler
from depthkeeper.chaos.monkey import ChaosMonkey, KillMode, KillResult
from depthkeeper.chaos.recovery import (
    Event,
    Pending,
    Recovered,
    RecoveryTracker,
    isolated,
)
from depthkeeper.chaos.report import ChaosReport, Ending
from depthkeeper.chaos.schedule import LIFT_REJECT, Action, ChaosSettings, build_schedule
from depthkeeper.simulator import Simulator
from depthkeeper.supervisor.service.config import AppConfig
from depthkeeper.supervisor.service.facade import BookService

#: dialects whose views carry the venue's own seq (article: per-symbol seq; binance: update id ``u``,
#: which the simulator's market counts one per level change, so ``sim.book_at(code, u)`` is the truth)
CHECKED_DIALECTS = ("article", "binance")
#: how often a lift waiting for its book to show REJECTED looks again
LIFT_RECHECK_S = 0.1
#: how long a ping burst's 1008 close may take (the pongs come back within milliseconds)
PING_BURST_CLOSE_S = 1.0
#: how many diffs past the fault point a code fault's book must get to (GAP: its size + 1)
_STREAM_REACH = {VenueFault.DUPLICATE: 1, VenueFault.REORDER: 2, VenueFault.FUTURE_DIFF: 1,
                 **dict.fromkeys(SNAPSHOT_FAULTS, 2)}


class ChaosRun(Ending):
    """One run. ``run()`` returns a :class:`ChaosReport`; it never raises for a failed invariant."""

    def __init__(self, cfg: AppConfig, settings: ChaosSettings) -> None:
        if cfg.venue.dialect not in CHECKED_DIALECTS:
            raise ValueError(f"chaos runs check views by seq against the venue's book at that seq: dialect "
                             f"{cfg.venue.dialect!r} is not one of {', '.join(CHECKED_DIALECTS)}")
        if cfg.book.max_levels < 2 * cfg.simulator.levels + 2:
            raise ValueError("[book] max_levels must exceed the simulator's book so views show every level")
        self.cfg = cfg
        self.settings = settings
        self.violations: list[str] = []
        self._wait = threading.Event()  # never set: a sleep that reads as a deadline wait
        self.archive_lost = 0
        self.archive_skipped = 0
        self.archive_final: dict[str, int] = {}

    def run(self) -> ChaosReport:
        s = self.settings
        baseline_threads = set(threading.enumerate())
        baseline_actors = set(pykka.ActorRegistry.get_all())
        sim_cfg = self.cfg.simulator
        symbols = tuple(dict.fromkeys((*sim_cfg.symbols, *self.cfg.symbols.initial, *s.churn_codes)))
        # the venue's dialect, whatever [simulator] says (a run cannot check a venue the service does not speak)
        sim_cfg = attrs.evolve(sim_cfg, dialect=self.cfg.venue.dialect)
        self.sim = Simulator.start(sim_cfg.sim_config(symbols=symbols, port=0, seed=s.seed, record_history=True))
        cfg = attrs.evolve(self.cfg, venue=attrs.evolve(self.cfg.venue, url=self.sim.url,
                                                         snapshot_url=self.sim.rest_url),
                           simulator=attrs.evolve(sim_cfg, enabled=False))
        if cfg.archive.path:  # every run archives into a fresh file, so its row count is its own
            cfg = attrs.evolve(cfg, archive=attrs.evolve(cfg.archive, path=str(
                Path(tempfile.mkdtemp(prefix="depthkeeper-chaos-")) / "archive.sqlite")))
        self.cfg = cfg
        self.timeline = EraTimeline(self.sim.era, time.monotonic())
        self.bound_s = cfg.heartbeat.interval_s * cfg.heartbeat.silent_intervals + s.freshness_margin_s
        self.history = SeqHistory()
        self.sampler = VenueSampler(self.sim, self.history, s.sample_interval_s)
        self.sampler.start()
        self.rejects = RejectWindows()
        self.checker = ViewChecker(self.sim, ReplayOracle(s.seed, sim_cfg.levels), self.timeline,
                                   freshness=Freshness(self.history, self.bound_s), rejects=self.rejects)
        self.checker.start()
        try:
            svc = self.svc = BookService.start(cfg)
        except BaseException:
            self.checker.stop()
            self.sampler.stop()
            self.sim.stop()
            raise
        self.monkey = ChaosMonkey(svc, random.Random(s.seed + 1), simulator=self.sim, limits=s.limits)
        self.tracker = RecoveryTracker(svc, self.sim, timeout_s=s.recovery_timeout_s)
        self.zombies: list[KillResult] = []
        self.events: list[Event] = []
        #: code -> the event id of the reject standing against it (oldest first)
        self._rejected: dict[str, int] = {}
        #: blackholes longer than the heartbeat silence bound
        self.long_blackholes = 0
        #: message-rate closes (1008) the venue made right after a ping burst (any other is a violation)
        self.provoked_rate_closes = 0
        self.poller = Poller(svc, self.checker.offer, s.poll_interval_s)
        try:
            svc.add_listener(self.checker)
            self.poller.start()
            if not svc.wait_live(timeout=s.warmup_timeout_s):
                self.violations.append(f"books not LIVE within {s.warmup_timeout_s}s of start")
            self.tracker.start()
            started = time.monotonic()
            self._play(build_schedule(s, random.Random(s.seed), archive=bool(self.cfg.archive.path)), started)
            elapsed = time.monotonic() - started
            self._settle()
            final = self._final_checks()
            self.archive_skipped += int(self._archive_counters().get("skipped", 0))
        finally:
            self.poller.stop()
            self.tracker.stop()
            svc.stop()
            self.checker.stop()
            self.sampler.stop()
            self.sim.stop()
        self.archive_final = self._archive_summary()  # after stop: the last batch is committed
        leaked_threads, leaked_actors = self._leaks(baseline_threads, baseline_actors)
        return self._report(elapsed, final, leaked_threads, leaked_actors)

    # -- the schedule ------------------------------------------------------------------

    def _play(self, schedule: list[Action], started: float) -> None:
        queue = list(schedule)
        i = 0
        while i < len(queue):
            action = queue[i]
            i += 1
            delay = started + action.at_s - time.monotonic()
            if delay > 0:
                self._wait.wait(delay)
            if self.svc.escalation is not None:
                self.violations.append(f"the tree escalated during the run: {self.svc.escalation.reason}")
                return
            if action.what == LIFT_REJECT and self._lift_later():
                later = Action(time.monotonic() - started + LIFT_RECHECK_S, LIFT_REJECT)
                bisect.insort(queue, later, lo=i, key=lambda a: a.at_s)
                continue
            self._do(action)
        left = started + self.settings.duration_s - time.monotonic()
        if left > 0:
            self._wait.wait(left)

    def _do(self, action: Action) -> None:
        group, _, what = action.what.partition(":")
        if group == "kill":
            self._kill(what)
        elif group == "zombie":
            self._zombie(what)
        elif group == "fault":
            self._fault(VenueFault(what))
        elif action.what == LIFT_REJECT:
            self._lift_reject()
        elif group == "churn":
            self._churn()

    def _seqs(self) -> dict[str, int]:
        return dict(self.sim.state()["seqs"])

    def _steady(self) -> tuple[str, ...]:
        """The desired codes expected to recover LIVE (not those the venue refuses right now)."""
        return tuple(c for c in sorted(self.svc.subscriptions()) if c not in self._rejected)

    def _note(self, what: str, start_s: float, end_s: float | None = None, code: str | None = None) -> int:
        self.events.append(Event(len(self.events) + 1, what, start_s, start_s if end_s is None else end_s, code))
        return len(self.events)

    def _isolated(self, rec: Recovered) -> bool:
        return isolated(rec, self.tracker.records, self.events)

    def _archive_counters(self) -> dict[str, Any]:
        ref = self.svc.tree.ref("archive")
        try:
            report = ref.ask(GetCounters(), timeout=2.0) if ref is not None else None
        except (pykka.Timeout, pykka.ActorDeadError):
            report = None
        return {"pending": report.pending, "skipped": report.skipped} if report is not None else {}

    def _kill(self, kind: str) -> None:
        epoch, desired = self.svc.tree.epoch, self._steady()
        if kind == "archive":
            # what this incarnation holds uncommitted is what the crash loses (read just before)
            held = self._archive_counters()
            self.archive_lost += int(held.get("pending", 0))
            self.archive_skipped += int(held.get("skipped", 0))
        result = self.monkey.crash(kind)
        if result.delivered:
            self._track_crash(result, epoch, desired)

    def _track_crash(self, result: KillResult, epoch: int, desired: tuple[str, ...]) -> None:
        seqs = self._seqs()
        code = result.target[5:] if result.kind == "book" else None
        source = self._note(f"kill:{result.kind}", result.at_s, code=code)
        if code is not None:
            self.tracker.add(Pending("book", result.at_s, (code,), {code: seqs.get(code, 0)}, old_ref=result.ref,
                                     label=result.target, source=source, status=self._expected(code)))
        elif result.kind == "connection":
            self.tracker.add(Pending("connection", result.at_s, desired, {c: seqs[c] for c in desired},
                                     min_epoch=epoch + 1, label="connection", source=source))
        else:
            self.tracker.add(Pending(result.kind, result.at_s, old_ref=result.ref, peer=result.kind,
                                     label=result.kind, source=source))

    def _zombie(self, kind: str) -> None:
        epoch, desired = self.svc.tree.epoch, self._steady()
        result = self.monkey.zombie(kind)
        if not result.delivered:
            return
        if result.mode is KillMode.CRASH:  # the bullet hit a handler: it became an ordinary crash
            self._track_crash(result, epoch, desired)
            return
        self.zombies.append(result)
        self.tracker.avoid(result.ref)
        code = result.target[5:] if result.kind == "book" else None
        source = self._note(f"zombie:{result.kind}", result.at_s, code=code)
        if code is not None:
            self.tracker.add(Pending("zombie:book", result.at_s, (code,), {code: self._seqs().get(code, 0)},
                                     old_ref=result.ref, label=result.target, source=source,
                                     status=self._expected(code)))
        elif result.kind == "connection":
            seqs = self._seqs()
            self.tracker.add(Pending("zombie:connection", result.at_s, desired, {c: seqs[c] for c in desired},
                                     min_epoch=epoch + 1, label="connection", source=source))
        else:
            self.tracker.add(Pending(f"zombie:{result.kind}", result.at_s, old_ref=result.ref, peer=result.kind,
                                     label=result.kind, source=source))

    def _expected(self, code: str) -> BookStatus:
        """What a restarted book of ``code`` must come back as: REJECTED while the venue refuses it."""
        return BookStatus.REJECTED if code in self._rejected else BookStatus.LIVE

    def _aim(self, fault: VenueFault, steady: tuple[str, ...]) -> str | None:
        """The code a code fault hits: one that is expected LIVE. A reject or a bad snapshot shape
        stands until used or lifted: never a churn code, which churn could unsubscribe meanwhile
        (a first subscribe cannot know a short snapshot: nothing says how deep the book is)."""
        lasting = fault is VenueFault.REJECT or fault in SNAPSHOT_FAULTS  # armed until used or lifted
        codes = [c for c in steady if not lasting or c not in self.settings.churn_codes]
        return self.monkey.rng.choice(codes) if codes else None

    def _fault(self, fault: VenueFault) -> None:
        steady = self._steady()
        epoch, before = self.svc.tree.epoch, self._seqs()
        code = self._aim(fault, steady) if fault in CODE_FAULTS else None
        if fault in CODE_FAULTS and code is None:
            self.monkey.faults[f"{fault.value}_noop"] += 1
            return
        if fault is VenueFault.RESTART:
            self.timeline.begin(self.timeline.current + 1, time.monotonic())
        closes_before = self._rate_closes() if fault is VenueFault.PING_BURST else 0
        result = self.monkey.fault(fault, code)
        if fault is VenueFault.PING_BURST and not result.noop and not self._provoked(closes_before):
            result = attrs.evolve(result, noop=True)  # answered without going over: nothing closed
            self.monkey.faults["ping_burst"] -= 1
            self.monkey.faults["ping_burst_noop"] += 1
        if result.noop:
            return  # it reached nobody: nothing to recover from
        if fault is VenueFault.BLACKHOLE and result.amount > self.bound_s - self.settings.freshness_margin_s:
            self.long_blackholes += 1  # the heartbeat watchdog must fire during this one
        label = f"{fault.value}{' ' + result.code if result.code else ''}"
        timed = (VenueFault.STALL, VenueFault.BLACKHOLE, VenueFault.SLOW_HANDSHAKE)
        end_s = result.at_s + result.amount if fault in timed else None
        source = self._note(f"fault:{fault.value}", result.at_s, end_s, result.code)
        track = self.tracker.add
        if fault is VenueFault.RESTART:
            if result.era != self.timeline.current:
                self.violations.append(f"venue era {result.era} != expected {self.timeline.current}")
            seqs = self._seqs()
            self.tracker.on_new_era(epoch, seqs)
            track(Pending("restart", result.at_s, steady, {c: seqs[c] for c in steady}, min_epoch=epoch + 1,
                          label=label, source=source))
        elif fault in (VenueFault.CLOSE, VenueFault.SLOW_HANDSHAKE, VenueFault.REJECT, VenueFault.PING_BURST):
            self._closed(fault, result, epoch, steady, before, label, source)
        elif fault in (VenueFault.STALL, VenueFault.BLACKHOLE):  # measured from its end
            track(Pending(fault.value, result.at_s, steady, seqs_at_s=end_s, label=label, source=source))
        elif result.code is not None and (fault in STREAM_FAULTS or fault in _STREAM_REACH):
            reach = int(result.amount) + 1 if fault is VenueFault.DROP else _STREAM_REACH[fault]
            track(Pending(fault.value, result.at_s, (result.code,), {result.code: before.get(result.code, 0) + reach},
                          label=label, source=source))

    def _rate_closes(self) -> int:
        """How often the venue has closed a socket for going over its message rate (binance: 1008)."""
        return int(self.sim.counters().get("binance_message_rate_closes", 0))

    def _provoked(self, before: int) -> bool:
        """Wait (briefly) for the close a ping burst provokes; count it as provoked."""
        deadline = time.monotonic() + PING_BURST_CLOSE_S
        while (closes := self._rate_closes()) <= before and time.monotonic() < deadline:
            self._wait.wait(0.005)
        self.provoked_rate_closes += closes - before
        return closes > before

    def _closed(self, fault: VenueFault, result: FaultResult, epoch: int, steady: tuple[str, ...],
                before: dict[str, int], label: str, source: int) -> None:
        """A socket closed on purpose: every book recovers on a new one; a rejected code shows REJECTED."""
        kind = "close" if fault is VenueFault.REJECT else fault.value
        code = result.code
        books = tuple(c for c in steady if c != code)
        self.tracker.add(Pending(kind, result.at_s, books, {c: before[c] for c in books}, min_epoch=epoch + 1,
                                 label=label, source=source))
        if fault is VenueFault.REJECT and code is not None:
            self._rejected[code] = source
            self.rejects.open(code, result.at_s + self.bound_s)
            self.tracker.add(Pending("reject", result.at_s, (code,), label=f"reject {code}", source=source,
                                     status=BookStatus.REJECTED))

    def _lift_later(self) -> bool:
        """True while the oldest reject's book has not shown REJECTED yet, within the recovery
        timeout: its lift waits. A venue that refuses whole requests (binance) finds the refused code
        by splitting them, which kills and reconnects during the hold can start over; the invariant
        is REJECTED within the recovery timeout (then the tracker counts it unrecovered), not
        within an arbitrary hold."""
        if not self._rejected:
            return False
        code, source = next(iter(self._rejected.items()))
        if self._shown(code).startswith(BookStatus.REJECTED.value):
            self.tracker.complete_status(code, BookStatus.REJECTED, time.monotonic())
        return self.tracker.waiting(source, BookStatus.REJECTED)

    def _lift_reject(self) -> None:
        """The venue accepts the oldest rejected code again; subscribe it again: LIVE and exact from then on."""
        if not self._rejected:
            return
        code, source = next(iter(self._rejected.items()))
        at_s = time.monotonic()
        self.rejects.close(code, at_s)
        if self._shown(code).startswith(BookStatus.REJECTED.value):
            self.tracker.complete_status(code, BookStatus.REJECTED, time.monotonic())  # since the last poll
        if self.tracker.cancel_source(source):
            self.tracker.unrecovered["reject"] += 1
            self.violations.append(f"{code} never showed REJECTED while the venue refused it "
                                   f"({at_s - self.events[source - 1].start_s:.2f}s; it shows {self._shown(code)})")
        self.tracker.cancel_status(code, BookStatus.REJECTED)
        del self._rejected[code]
        seqs = self._seqs()
        self.monkey.lift_reject(code)
        lifted = self._note("lift:reject", at_s, code=code)
        self.tracker.add(Pending("resubscribe", at_s, (code,), {code: seqs.get(code, 0)}, label=f"resubscribe {code}",
                                 source=lifted))

    def _shown(self, code: str) -> str:
        """What a reader sees of ``code`` now (for a violation's text)."""
        try:
            view = self.svc.book(code, timeout_s=0.5)
        except Exception as exc:  # noqa: BLE001 - restarting, unsubscribed: that is what it shows
            return f"no view ({type(exc).__name__})"
        return f"{view.status.value} seq {view.seq}: {view.reason}"

    def _churn(self) -> None:
        """Unsubscribe one churn code, or subscribe one back (the core set stays)."""
        codes = self.settings.churn_codes
        if not codes:
            return
        rng, desired = self.monkey.rng, self.svc.subscriptions()
        code = rng.choice(codes)
        at_s = time.monotonic()
        if code in desired:
            self.tracker.cancel_code(code)
            self.svc.unsubscribe([code])
            self.monkey.faults["unsubscribe"] += 1
            self._note("churn:unsubscribe", at_s, code=code)
        else:
            seqs = self._seqs()
            self.svc.subscribe([code])
            self.monkey.faults["subscribe"] += 1
            source = self._note("churn:subscribe", at_s, code=code)
            self.tracker.add(Pending("subscribe", at_s, (code,), {code: seqs.get(code, 0)}, label=code,
                                     source=source))


def run_chaos(cfg: AppConfig, settings: ChaosSettings) -> ChaosReport:
    """Run one chaos schedule and return its report (see the module docstring)."""
    return ChaosRun(cfg, settings).run()
