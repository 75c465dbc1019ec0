"""LogThrottle: the first few of a flood get a line, then one summary per interval, counts per kind."""

from __future__ import annotations

import pytest

from depthkeeper.actors.core.logthrottle import OTHER_KIND, LogThrottle, ThrottledLog, ThrottleSummary


def test_first_burst_logged_then_counted_per_kind() -> None:
    throttle = LogThrottle(burst=3, interval_s=10.0)
    assert [throttle.admit("bad_json", 0.0) for _ in range(2)] == [1, 1]
    assert throttle.admit("unknown_message", 0.1, count=5) == 1  # the third line of the window
    assert throttle.admit("bad_json", 0.2, count=7) == 0
    assert throttle.suppressed == 4 + 7
    assert throttle.summary(9.9) is None  # the interval is not over
    summary = throttle.summary(10.0)
    assert summary == ThrottleSummary((("bad_json", 7), ("unknown_message", 4)), 10.0)
    assert summary.total == 11 and summary.describe() == "bad_json=7 unknown_message=4"
    assert throttle.suppressed == 0


def test_a_sustained_flood_gets_one_summary_per_interval_and_no_new_burst() -> None:
    throttle = LogThrottle(burst=2, interval_s=1.0)
    assert throttle.admit("x", 0.0, count=100) == 2
    lines, summaries = 2, 0
    for tick in range(1, 50):  # 49 more seconds of flood, 1000 events a second
        now = float(tick)
        lines += throttle.admit("x", now - 0.5, count=1000)
        if throttle.summary(now) is not None:
            summaries += 1
    assert lines == 2 and summaries == 49


def test_a_quiet_interval_ends_the_flood_and_the_next_event_gets_a_line() -> None:
    throttle = LogThrottle(burst=1, interval_s=1.0)
    assert throttle.admit("x", 0.0, count=3) == 1
    assert throttle.summary(1.0) is not None
    assert throttle.summary(2.0) is None  # nothing happened in [1, 2): the flood is over
    assert throttle.idle
    assert throttle.admit("x", 5.0) == 1


def test_kinds_beyond_the_limit_fold_into_other() -> None:
    throttle = LogThrottle(burst=0, interval_s=1.0, max_kinds=2)
    for kind in ("a", "b", "c", "d"):
        throttle.admit(kind, 0.0, count=2)
    summary = throttle.drain(0.5)
    assert summary is not None and dict(summary.counts) == {"a": 2, "b": 2, OTHER_KIND: 4}


def test_drain_reports_the_rest_at_once_and_resets() -> None:
    throttle = LogThrottle(burst=1, interval_s=60.0)
    throttle.admit("x", 0.0, count=4)
    summary = throttle.drain(2.0)
    assert summary is not None and summary.counts == (("x", 3),) and summary.window_s == 2.0
    assert throttle.drain(3.0) is None and throttle.idle
    assert throttle.admit("x", 3.0) == 1  # a fresh burst


@pytest.mark.parametrize("kwargs", [{"burst": -1}, {"interval_s": 0.0}, {"max_kinds": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LogThrottle(**kwargs)  # type: ignore[arg-type]


class _Lines:
    """A stand-in for a bound loguru logger: records (template, args)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, template: str, *args: object) -> None:
        self.lines.append(template.format(*args))


def test_throttled_log_writes_the_burst_then_one_summary_line() -> None:
    sink = _Lines()
    log = ThrottledLog(sink, "malformed frames", burst=2, interval_s=1.0)
    logged = [log.warning("bad_json", 0.0, "bad frame {}", i) for i in range(10)]
    assert logged == [True, True] + [False] * 8
    log.tick(0.5)
    assert len(sink.lines) == 2
    log.tick(1.0)
    assert sink.lines[2] == "8 more malformed frames in the last 1.0s (not logged one by one): bad_json=8"
    log.close(1.5)
    assert len(sink.lines) == 3  # nothing left to report
