"""The venue's limits, kept on our side: connection attempts, socket age, REST weight, Retry-After.

A venue that limits its clients bans the ones that only back off after it refuses them (Binance:
HTTP 418 for minutes to days, then the IP again). The ConnectionActor and the SnapshotActor each
hold one of these records and ask it before they act; the figures come from the ``Venue``
(``connect_limit``, ``max_socket_age_s``, ``rest_weight_per_min``, ``snapshot_weight``,
``used_weight``), so a venue without limits costs nothing here.

- ``ConnectionLimits``: attempts are spent from a rolling budget before each connect (a storm
  waits); a socket gets a timer for the venue's maximum age (a planned reconnect before the cut).
- ``RestLimits``: snapshot requests spend a rolling weight budget (adopting the venue's own count
  when larger); a 429/418 with ``Retry-After`` pauses EVERY request until then, and the pause is
  read by the fetch workers too, so a request already queued in the pool is not sent into it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from depthkeeper.actors.core.budget import RollingBudget
from depthkeeper.actors.messages import FetchDone, SocketAgeLimit

if TYPE_CHECKING:
    from email.message import Message

    from depthkeeper.actors.venues import Venue
    from depthkeeper.supervisor.otp.scheduler import Scheduler


class ConnectionLimits:
    """The venue's connection limits for one ConnectionActor: attempts per window, socket age."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        limit = venue.connect_limit
        self._attempts = RollingBudget(*limit) if limit is not None else None
        self.planned_reconnects = 0
        #: connects put off because the attempt budget was spent
        self.deferred = 0
        self._age_timer: Any = None

    def connect_wait_s(self, log: Any) -> float:
        """0.0 and the attempt counted, or how long to wait before attempting at all."""
        budget = self._attempts
        if budget is None:
            return 0.0
        now = time.monotonic()
        wait_s = budget.wait_s(1, now)
        if wait_s > 0:
            self.deferred += 1
            log.warning("connection attempts: {} in {:.0f}s is the venue's limit; next attempt in {:.1f}s",
                        budget.limit, budget.window_s, wait_s)
            return wait_s
        budget.spend(1, now)
        return 0.0

    def opened(self, epoch: int, scheduler: Scheduler, ref: Any) -> None:
        self.stop(scheduler)
        age_s = self._venue.max_socket_age_s()
        if age_s > 0:
            self._age_timer = scheduler.schedule(age_s, ref, SocketAgeLimit(epoch))

    def stop(self, scheduler: Scheduler) -> None:
        """Cancel the age timer (a day-long timer must not outlive its socket's actor)."""
        scheduler.cancel(self._age_timer)
        self._age_timer = None

    def counters(self) -> dict[str, int]:
        return {"planned_reconnects": self.planned_reconnects, "connects_deferred": self.deferred}


#: HTTP statuses that mean "you are over the rate limit" (418: banned for a while)
_RATE_LIMITED = (429, 418)


def retry_after_s(status: int, headers: Message | None) -> float | None:
    """Seconds a 429/418 tells us to stop (``Retry-After`` in seconds); None for other answers."""
    if status not in _RATE_LIMITED:
        return None
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0  # an HTTP date or garbage: at least a second, then the venue will say again
    return max(0.0, min(seconds, 7 * 86_400.0))


@attrs.define
class RestLimitCounters:
    #: times the venue paused us (429/418 with Retry-After), and the seconds it asked for in all
    rate_limited: int = 0
    rate_limited_s: float = 0.0
    #: times a request waited for the weight budget
    weight_waits: int = 0
    #: weight spent in the last minute (as of the last request)
    weight_used: int = 0


class RestLimits:
    """The venue's REST limits for the SnapshotActor: the weight budget and the Retry-After pause."""

    def __init__(self, venue: Venue, log: Any) -> None:
        self._venue = venue
        self._log = log
        per_min = venue.rest_weight_per_min
        self._weights = RollingBudget(per_min, 60.0) if per_min else None
        self._paused_until = 0.0
        self._waiting = False
        self.counters = RestLimitCounters()

    def paused_for(self) -> float:
        """Seconds the venue's pause still lasts (0.0: none). Read by the worker threads too (one float)."""
        return max(0.0, self._paused_until - time.monotonic())

    def wait_s(self, batch: list[str]) -> float:
        """0.0 (and the weight spent), or how long the batch must wait."""
        now = time.monotonic()
        if now < self._paused_until:
            return self._paused_until - now
        budget = self._weights
        if budget is None:
            return 0.0
        weight = self._venue.snapshot_weight(batch)
        wait_s = budget.wait_s(weight, now)
        if wait_s > 0:
            if not self._waiting:
                self._waiting = True
                self.counters.weight_waits += 1
                self._log.info("REST weight budget spent ({} of {} per minute); next snapshot in {:.1f}s",
                               budget.used(now), budget.limit, wait_s)
            return wait_s
        self._waiting = False
        budget.spend(weight, now)
        self.counters.weight_used = budget.used(now)
        return 0.0

    def heard(self, done: FetchDone) -> None:
        """What a reply says of the limits: the venue's weight figure, a pause."""
        now = time.monotonic()
        if done.used_weight is not None and self._weights is not None:
            self._weights.observe(done.used_weight, now)
        pause_s = done.retry_after_s
        if pause_s is None:
            return
        until = now + pause_s
        if until <= self._paused_until:
            return
        # a new pause, or one made much longer (a 418 ban answering a request sent before the 429):
        # replies racing in during a pause with about the same end are not news
        if now >= self._paused_until or until > self._paused_until + 1.0:
            self.counters.rate_limited += 1
            self.counters.rate_limited_s += pause_s
            self._log.warning("venue rate limit ({}): pausing every snapshot request for {:.1f}s", done.error, pause_s)
        self._paused_until = until
