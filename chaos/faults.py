"""Venue faults for the chaos monkey: what the simulator can break, with seeded parameters.

Every fault's parameters are drawn from the monkey's seeded RNG, so a failing schedule can be
replayed from its seed; every fault is bounded (``FaultLimits``), except a REJECT, which stands
until :meth:`VenueFaults.lift_reject` (a rejected code legitimately stays REJECTED until a later
explicit subscribe).

How the issue-12 faults are aimed so each is exercised when it is injected:

- a **slow handshake** or a **reject** only bites on a new connection or subscription, so the
  monkey closes the socket right after arming it (the reconnect meets the fault);
- a **bad snapshot** shape (ahead of the stream, empty, short, crossed) is armed for one code and
  paired with a one-diff gap on that code, so that book's very next fetch is the one that gets it;
- a **blackhole** silences both ways without closing, for a bounded time, and half the time
  swallows the reconnect's handshake too.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any, TypeAlias

import attrs

from depthkeeper.simulator.faults import FUTURE_SEQ, FaultKind

#: the simulator's own fault kinds are the monkey's (one list of what can break; "drop" makes a gap)
VenueFault: TypeAlias = FaultKind


#: faults that hit one symbol's stream (the monkey picks the code)
STREAM_FAULTS = (VenueFault.DROP, VenueFault.DUPLICATE, VenueFault.REORDER)
#: REST snapshots that are well-formed but must not be made LIVE; each is aimed at one code and
#: paired with a one-diff gap on it, so that book's very next fetch is the one that gets it
SNAPSHOT_FAULTS = (VenueFault.FUTURE_SNAPSHOT, VenueFault.EMPTY_SNAPSHOT, VenueFault.SHORT_SNAPSHOT,
                   VenueFault.CROSSED_SNAPSHOT)
#: faults aimed at one code
CODE_FAULTS = (*STREAM_FAULTS, VenueFault.FUTURE_DIFF, *SNAPSHOT_FAULTS, VenueFault.REJECT)
#: faults that bite only on some dialects (elsewhere they are harmless, so a run would wait for a
#: recovery from nothing): a ping burst provokes binance's 1008 close (its pongs count toward 5/s)
DIALECT_FAULTS: dict[VenueFault, tuple[str, ...]] = {VenueFault.PING_BURST: ("binance",)}


def faults_for(dialect: str) -> tuple[VenueFault, ...]:
    """Every fault kind that bites on ``dialect``."""
    return tuple(f for f in VenueFault if dialect in DIALECT_FAULTS.get(f, (dialect,)))
_MALFORMED_KINDS = ("bad_json", "missing_field", "wrong_type", "unknown_code")


@attrs.frozen
class FaultLimits:
    """Bounds of the randomly drawn fault parameters (every fault is bounded in time)."""

    gap_max: int = 5
    stall_min_s: float = 0.8
    stall_max_s: float = 1.5
    malformed_max: int = 5
    rest_delay_max_s: float = 0.3
    rest_fault_max_count: int = 3
    stale_lag_max: int = 20
    #: a slow handshake is held this long (below [venue] connect_timeout_s: it must still succeed)
    slow_handshake_min_s: float = 0.5
    slow_handshake_max_s: float = 1.5
    #: a blackhole lasts this long (above the heartbeat silence bound: the watchdog must fire)
    blackhole_min_s: float = 0.3
    blackhole_max_s: float = 3.0
    #: how far ahead of the stream a future snapshot is (far enough that it cannot bridge in time)
    future_snapshot_min_lead: int = 500
    future_snapshot_max_lead: int = 5000
    #: a short snapshot keeps at most this many levels per side
    short_levels_max: int = 5
    #: frames of one unknown-type flood, codes of one distinct-code flood
    flood_frames_min: int = 2000
    flood_frames_max: int = 20000
    flood_codes_min: int = 500
    flood_codes_max: int = 5000
    #: how long a reject stands before it is lifted and the code subscribed again
    reject_hold_min_s: float = 1.5
    reject_hold_max_s: float = 3.0
    #: pings of one burst (binance: more than 5 pongs within a second -> the venue closes with 1008)
    ping_burst_min: int = 6
    ping_burst_max: int = 12


#: (min, max) pairs of FaultLimits that must be ordered
LIMIT_RANGES = (("stall_min_s", "stall_max_s"), ("slow_handshake_min_s", "slow_handshake_max_s"),
                ("blackhole_min_s", "blackhole_max_s"), ("future_snapshot_min_lead", "future_snapshot_max_lead"),
                ("flood_frames_min", "flood_frames_max"), ("flood_codes_min", "flood_codes_max"),
                ("reject_hold_min_s", "reject_hold_max_s"), ("ping_burst_min", "ping_burst_max"))



@attrs.frozen
class FaultResult:
    """One venue fault as injected (``code`` for stream faults, ``amount`` its size)."""

    fault: VenueFault
    at_s: float
    code: str | None = None
    amount: float = 0.0
    era: int | None = None  # the new era after a RESTART
    #: connections aborted along with it (reject and slow handshake close the socket to take effect)
    closed: int = 0
    #: it reached nobody (no connection, or nobody subscribed to the code): counted as "<kind>_noop"
    noop: bool = False


class VenueFaults:
    """The venue half of :class:`~depthkeeper.chaos.monkey.ChaosMonkey` (a mixin: the monkey
    provides the simulator, the service, the seeded RNG, the limits and the counters)."""

    rng: random.Random
    limits: FaultLimits
    faults: Counter[str]
    _svc: Any

    @property
    def simulator(self) -> Any:
        raise NotImplementedError

    def fault(self, fault: VenueFault | str, code: str | None = None) -> FaultResult:
        """Inject one venue fault with parameters drawn from the seeded RNG.

        ``amount`` is the fault's size: diffs dropped, seconds stalled / blackholed / held in a
        handshake, connections closed, frames sent, the snapshot seq lead, the levels a short
        snapshot keeps, the far-future diff's seq. A REJECT stands until :meth:`lift_reject`.
        """
        fault = VenueFault(fault)
        if fault in CODE_FAULTS and code is None:
            codes = sorted(self._svc.subscriptions())
            code = self.rng.choice(codes) if codes else None
        if code is None and fault in CODE_FAULTS and fault not in STREAM_FAULTS:
            self.faults[f"{fault.value}_noop"] += 1  # nothing subscribed: nothing to aim at
            return FaultResult(fault, time.monotonic(), None)
        result = self._classic(fault, code) if fault in _CLASSIC else self._issue12(fault, code)
        if fault in (VenueFault.CLOSE, VenueFault.MALFORMED, VenueFault.UNKNOWN_TYPE_FLOOD,
                     VenueFault.DISTINCT_CODE_FLOOD) and not result.amount:
            result = attrs.evolve(result, noop=True)  # nobody was connected (or subscribed)
        self.faults[f"{fault.value}_noop" if result.noop else fault.value] += 1
        return result

    def _classic(self, fault: VenueFault, code: str | None) -> FaultResult:
        sim, lim, rng = self.simulator, self.limits, self.rng
        faults = sim.faults
        amount: float = 0.0
        era = None
        match fault:
            case VenueFault.DROP:
                amount = rng.randint(1, lim.gap_max)
                faults.drop(int(amount), code=code)
            case VenueFault.DUPLICATE:
                faults.duplicate(code=code)
            case VenueFault.REORDER:
                faults.reorder(code=code)
            case VenueFault.STALL:
                amount = round(rng.uniform(lim.stall_min_s, lim.stall_max_s), 3)
                faults.stall(amount)
            case VenueFault.CLOSE:
                amount = faults.close()
            case VenueFault.RESTART:
                era = faults.restart()
            case VenueFault.MALFORMED:
                amount = faults.malformed(rng.choice(_MALFORMED_KINDS), rng.randint(1, lim.malformed_max))
            case VenueFault.REST_DELAY:
                amount = round(rng.uniform(0.01, lim.rest_delay_max_s), 3)
                faults.rest_delay(amount, count=rng.randint(1, lim.rest_fault_max_count))
            case VenueFault.REST_FAIL:
                amount = rng.choice((429, 500, 503))
                faults.rest_fail(int(amount), count=rng.randint(1, lim.rest_fault_max_count))
            case VenueFault.STALE_SNAPSHOT:
                amount = rng.randint(1, lim.stale_lag_max)
                faults.stale_snapshot(int(amount), count=rng.randint(1, lim.rest_fault_max_count))
        return FaultResult(fault, time.monotonic(), code, amount, era)

    def _issue12(self, fault: VenueFault, code: str | None) -> FaultResult:
        """The faults a LIVE view must survive (issue 12); see simulator/handle.py's ``Faults``."""
        sim, lim, rng = self.simulator, self.limits, self.rng
        faults = sim.faults
        amount: float = 0.0
        closed = 0
        noop = False
        match fault:
            case VenueFault.SLOW_HANDSHAKE:  # the next handshake is held; close so there is one
                amount = round(rng.uniform(lim.slow_handshake_min_s, lim.slow_handshake_max_s), 3)
                faults.slow_handshake(amount, count=1)
                closed = faults.close()
            case VenueFault.BLACKHOLE:  # half of them also swallow the reconnect's handshake
                amount = round(rng.uniform(lim.blackhole_min_s, lim.blackhole_max_s), 3)
                faults.blackhole(amount, new_connections=rng.random() < 0.5)
            case VenueFault.FUTURE_DIFF:  # the largest exact float seq, or a lead the run never reaches
                seq = sim.state()["seqs"].get(code, 0)
                amount = FUTURE_SEQ if rng.random() < 0.5 else seq + rng.randint(100_000, 10_000_000)
                noop = not faults.future_diff(code, int(amount))  # sent to nobody: not subscribed right now
            case VenueFault.REJECT:  # refused from now on; close so the re-subscribe meets the refusal
                faults.reject(code)
                closed = faults.close()
            case VenueFault.UNKNOWN_TYPE_FLOOD:
                amount = faults.unknown_type_flood(rng.randint(lim.flood_frames_min, lim.flood_frames_max))
            case VenueFault.DISTINCT_CODE_FLOOD:
                amount = faults.distinct_code_flood(rng.randint(lim.flood_codes_min, lim.flood_codes_max))
            case VenueFault.PING_BURST:  # binance: the pongs go over 5 messages/s, the venue closes (1008)
                amount = faults.ping_burst(rng.randint(lim.ping_burst_min, lim.ping_burst_max))
                noop = not amount  # no connection (a reconnect in progress): nothing to provoke
            case _:
                amount = self._snapshot_fault(fault, code)
        return FaultResult(fault, time.monotonic(), code, amount, closed=closed, noop=noop)

    def _snapshot_fault(self, fault: VenueFault, code: str | None) -> float:
        """Arm one bad snapshot shape for ``code``'s next fetch(es), then break its stream once so
        that fetch comes now (a one-diff gap). Returns the lead, the levels kept, or the count."""
        lim, rng, faults = self.limits, self.rng, self.simulator.faults
        count = rng.randint(1, lim.rest_fault_max_count)
        amount: float = count
        match fault:
            case VenueFault.FUTURE_SNAPSHOT:
                amount = rng.randint(lim.future_snapshot_min_lead, lim.future_snapshot_max_lead)
                faults.future_snapshot(int(amount), count=count, code=code)
            case VenueFault.EMPTY_SNAPSHOT:
                faults.empty_snapshot(count=count, code=code)
            case VenueFault.SHORT_SNAPSHOT:
                amount = rng.randint(1, lim.short_levels_max)
                faults.short_snapshot(int(amount), count=count, code=code)
            case VenueFault.CROSSED_SNAPSHOT:
                faults.crossed_snapshot(count=count, code=code)
        faults.drop(1, code=code)
        return amount

    def lift_reject(self, code: str) -> int:
        """End a REJECT: the venue accepts ``code`` again, and an explicit subscribe asks it again
        (a rejected code stays REJECTED until then). Returns the codes lifted (0 or 1)."""
        lifted = self.simulator.faults.lift_reject(code)
        self._svc.subscribe([code])
        self.faults["lift_reject"] += 1
        return lifted


#: the faults the first chaos runner knew (before issue 12)
_CLASSIC = frozenset({VenueFault.DROP, VenueFault.DUPLICATE, VenueFault.REORDER, VenueFault.STALL, VenueFault.CLOSE,
                      VenueFault.RESTART, VenueFault.MALFORMED, VenueFault.REST_DELAY, VenueFault.REST_FAIL,
                      VenueFault.STALE_SNAPSHOT})


