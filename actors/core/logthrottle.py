"""Rate-limited logging: the first few of a flood line by line, then one summary per interval.

A venue that floods us with bad frames (or a snapshot endpoint that fails for every book) must
not turn every event into a log line: on the reader thread a line per frame costs more than the
frame itself (issue 12: 5.7k frames/s instead of ~210k/s), and a thousand identical lines bury
the one that says what is wrong. Nothing is lost either: every event is counted, and the counts
of the events that did not get a line of their own are reported once per interval, per kind.

``LogThrottle`` is the pure decision (no clock, no logger: the caller passes ``now_s``), so it is
tested directly; ``ThrottledLog`` puts a loguru logger behind it for the common case.

Policy, per throttle: in a *window* (which starts with the first event after a quiet spell) the
first ``burst`` events get their own line, whatever their kind; the rest are counted per kind.
Once ``interval_s`` has passed, ``summary`` hands the counts out and a new window starts
*without* a new burst: a sustained flood costs ``burst`` lines once, then one line per interval.
A window that ends with nothing suppressed ends the flood: the next event gets a line again.
"""

from __future__ import annotations

from typing import Any

import attrs

#: the kind that absorbs kinds beyond ``max_kinds`` (a caller with unbounded kinds stays bounded)
OTHER_KIND = "other"


@attrs.frozen
class ThrottleSummary:
    """Events that were counted but not logged one by one, over ``window_s`` seconds."""

    #: (kind, count), largest count first
    counts: tuple[tuple[str, int], ...]
    window_s: float

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counts)

    def describe(self) -> str:
        """``unknown_message=20480 bad_json=3`` (for a log line)."""
        return " ".join(f"{kind}={count}" for kind, count in self.counts)


class LogThrottle:
    """Which events of a flood get a log line of their own; counts for the rest."""

    __slots__ = ("_flooding", "_logged", "_suppressed", "_window_start_s", "burst", "interval_s", "max_kinds")

    def __init__(self, *, burst: int = 5, interval_s: float = 10.0, max_kinds: int = 32) -> None:
        if burst < 0:
            raise ValueError(f"burst must be >= 0, got {burst}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if max_kinds < 1:
            raise ValueError(f"max_kinds must be >= 1, got {max_kinds}")
        self.burst = burst
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self._window_start_s: float | None = None
        self._logged = 0
        self._suppressed: dict[str, int] = {}
        #: a previous window ended with suppressed events: no new burst until a quiet window
        self._flooding = False

    def admit(self, kind: str, now_s: float, count: int = 1) -> int:
        """``count`` events of ``kind`` happened at ``now_s``: how many of them may be logged
        one by one (the first ones); the others are counted for the next summary."""
        if count <= 0:
            return 0
        if self._window_start_s is None:
            self._window_start_s = now_s
        room = 0 if self._flooding else max(0, min(count, self.burst - self._logged))
        self._logged += room
        rest = count - room
        if rest:
            suppressed = self._suppressed
            if kind not in suppressed and len(suppressed) >= self.max_kinds:
                kind = OTHER_KIND
            suppressed[kind] = suppressed.get(kind, 0) + rest
        return room

    @property
    def idle(self) -> bool:
        """No window open (nothing happened since the last quiet window or drain)."""
        return self._window_start_s is None

    @property
    def suppressed(self) -> int:
        """Events counted but not yet reported in a summary."""
        return sum(self._suppressed.values())

    def summary(self, now_s: float) -> ThrottleSummary | None:
        """Once the window is ``interval_s`` old: the suppressed counts (None if nothing was
        suppressed); the next window starts at ``now_s``. Before that: None."""
        start = self._window_start_s
        if start is None or now_s - start < self.interval_s:
            return None
        if not self._suppressed:  # a quiet window: the flood (if any) is over
            self._window_start_s = None
            self._logged = 0
            self._flooding = False
            return None
        out = self._take(now_s - start)
        self._window_start_s = now_s
        self._flooding = True
        return out

    def drain(self, now_s: float) -> ThrottleSummary | None:
        """Whatever is suppressed, now, interval or not (at the end of the stream); resets."""
        start = self._window_start_s
        out = self._take(now_s - start) if self._suppressed and start is not None else None
        self._window_start_s = None
        self._logged = 0
        self._flooding = False
        return out

    def _take(self, window_s: float) -> ThrottleSummary:
        counts = tuple(sorted(self._suppressed.items(), key=lambda item: (-item[1], item[0])))
        self._suppressed = {}
        return ThrottleSummary(counts, max(0.0, window_s))


class ThrottledLog:
    """A (bound) loguru logger behind a LogThrottle: ``warning`` per event, ``tick`` per pass.

    ``what`` names the events in the summary line, e.g. "malformed frames".
    """

    __slots__ = ("log", "throttle", "what")

    def __init__(self, log: Any, what: str, *, burst: int = 5, interval_s: float = 10.0) -> None:
        self.log = log
        self.what = what
        self.throttle = LogThrottle(burst=burst, interval_s=interval_s)

    def warning(self, kind: str, now_s: float, template: str, *args: Any) -> bool:
        """Log this event unless the throttle says to count it only; True if it was logged."""
        if self.throttle.admit(kind, now_s):
            self.log.warning(template, *args)
            return True
        return False

    def admit(self, kind: str, now_s: float, count: int = 1) -> int:
        """For callers that count in bulk: how many of ``count`` events to log themselves."""
        return self.throttle.admit(kind, now_s, count)

    def tick(self, now_s: float) -> None:
        """Emit the summary line if one is due (cheap when nothing is suppressed)."""
        if self.throttle.idle:
            return
        self._emit(self.throttle.summary(now_s))

    def close(self, now_s: float) -> None:
        """Emit what is still counted (the stream ended)."""
        self._emit(self.throttle.drain(now_s))

    def _emit(self, summary: ThrottleSummary | None) -> None:
        if summary is not None:
            self.log.warning("{} more {} in the last {:.1f}s (not logged one by one): {}", summary.total, self.what,
                              summary.window_s, summary.describe())
