"""Pure supervision rules: restart window, backoff, restart table, victims, spec validation."""

from __future__ import annotations

import random
from typing import Any

import pytest

from depthkeeper.supervisor.otp.spec import (
    ChildSpec,
    ExitReason,
    Jitter,
    Restart,
    RestartWindow,
    Strategy,
    SupervisorFlags,
    backoff_delay,
    next_attempt,
    should_restart,
    victims,
)


def factory(ctx: Any) -> Any:
    raise AssertionError("never called in pure tests")


# -- RestartWindow ---------------------------------------------------------------------


def test_window_allows_max_restarts_then_gives_up() -> None:
    window = RestartWindow(max_restarts=3, period_s=5.0)
    assert [window.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.record(3.0) is False  # the 4th within 5 s is one too many
    assert window.count(3.0) == 4


def test_window_forgets_restarts_older_than_period() -> None:
    window = RestartWindow(max_restarts=2, period_s=5.0)
    assert window.record(0.0) and window.record(1.0)
    assert window.record(6.5) is True  # 0.0 and 1.0 have expired
    assert window.count(6.5) == 1
    assert window.record(7.0) is True
    assert window.record(7.5) is False


def test_window_boundary_is_inclusive_like_otp() -> None:
    window = RestartWindow(max_restarts=1, period_s=5.0)
    assert window.record(0.0)
    assert window.record(5.0) is False  # exactly period_s apart still counts (OTP: Now - Then =< Period)
    window2 = RestartWindow(max_restarts=1, period_s=5.0)
    assert window2.record(0.0)
    assert window2.record(5.001) is True


def test_window_zero_intensity_gives_up_on_first_restart() -> None:
    assert RestartWindow(max_restarts=0, period_s=1.0).record(0.0) is False


def test_window_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RestartWindow(-1, 1.0)
    with pytest.raises(ValueError):
        RestartWindow(1, 0.0)


# -- backoff ---------------------------------------------------------------------------


def test_backoff_zero_min_is_immediate() -> None:
    rng = random.Random(1)
    assert all(backoff_delay(attempt, 0.0, 5.0, rng) == 0.0 for attempt in range(10))


def test_backoff_without_jitter_doubles_and_caps() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 5.0, rng, jitter=Jitter.NONE) for a in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize("jitter", [Jitter.EQUAL, Jitter.FULL])
def test_backoff_jitter_stays_within_bounds(jitter: Jitter) -> None:
    rng = random.Random(7)
    for attempt in range(12):
        base = min(3.0, 0.1 * 2**attempt)
        low = base / 2 if jitter is Jitter.EQUAL else 0.0
        samples = [backoff_delay(attempt, 0.1, 3.0, rng, jitter=jitter) for _ in range(200)]
        assert all(low <= s <= base <= 3.0 for s in samples)
        assert len(set(samples)) > 1  # actually jittered, even at the cap


def test_backoff_equal_jitter_grows_with_attempts() -> None:
    rng = random.Random(3)
    mean = [sum(backoff_delay(a, 0.1, 100.0, rng) for _ in range(200)) / 200 for a in range(6)]
    assert mean == sorted(mean) and mean[-1] > 10 * mean[0]


def test_backoff_huge_attempt_does_not_overflow() -> None:
    assert backoff_delay(10_000, 0.5, 30.0, random.Random(0), jitter=Jitter.NONE) == 30.0


def test_backoff_rejects_bad_arguments() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError):
        backoff_delay(-1, 0.1, 1.0, rng)
    with pytest.raises(ValueError):
        backoff_delay(0, 2.0, 1.0, rng)


def test_attempt_resets_after_stable_uptime_only() -> None:
    assert next_attempt(5, uptime_s=0.2, reset_after_s=10.0) == 5
    assert next_attempt(5, uptime_s=10.0, reset_after_s=10.0) == 0
    assert next_attempt(5, uptime_s=60.0, reset_after_s=10.0) == 0


# -- restart table ---------------------------------------------------------------------


@pytest.mark.parametrize(("restart", "reason", "expected"), [
    (Restart.PERMANENT, ExitReason.CRASHED, True),
    (Restart.PERMANENT, ExitReason.ZOMBIE, True),
    (Restart.PERMANENT, ExitReason.START_FAILED, True),
    (Restart.PERMANENT, ExitReason.GAVE_UP, True),
    (Restart.PERMANENT, ExitReason.NORMAL, False),  # unrequested normal stop: host shutting down
    (Restart.PERMANENT, ExitReason.SHUTDOWN, False),
    (Restart.TRANSIENT, ExitReason.CRASHED, True),
    (Restart.TRANSIENT, ExitReason.ZOMBIE, True),
    (Restart.TRANSIENT, ExitReason.NORMAL, False),
    (Restart.TRANSIENT, ExitReason.SHUTDOWN, False),
    (Restart.TEMPORARY, ExitReason.CRASHED, False),
    (Restart.TEMPORARY, ExitReason.NORMAL, False),
])
def test_restart_table(restart: Restart, reason: ExitReason, expected: bool) -> None:
    assert should_restart(restart, reason) is expected


def test_abnormal_reasons() -> None:
    assert {r for r in ExitReason if not r.is_abnormal} == {ExitReason.NORMAL, ExitReason.SHUTDOWN}


# -- victims ---------------------------------------------------------------------------

ORDER = ("a", "b", "c", "d")


@pytest.mark.parametrize(("strategy", "failed", "expected"), [
    (Strategy.ONE_FOR_ONE, "b", ("b",)),
    (Strategy.ONE_FOR_ALL, "b", ("a", "b", "c", "d")),
    (Strategy.REST_FOR_ONE, "b", ("b", "c", "d")),
    (Strategy.REST_FOR_ONE, "a", ("a", "b", "c", "d")),
    (Strategy.REST_FOR_ONE, "d", ("d",)),
])
def test_victims(strategy: Strategy, failed: str, expected: tuple[str, ...]) -> None:
    assert victims(strategy, ORDER, failed) == expected


def test_victims_of_unknown_child_is_an_error() -> None:
    with pytest.raises(ValueError):
        victims(Strategy.ONE_FOR_ONE, ORDER, "zz")


def test_strategy_values_match_config_strings() -> None:
    assert Strategy("rest_for_one") is Strategy.REST_FOR_ONE
    assert Restart("transient") is Restart.TRANSIENT


# -- validation ------------------------------------------------------------------------


def test_child_spec_defaults_and_group() -> None:
    spec = ChildSpec("conn", factory)
    assert spec.restart is Restart.PERMANENT and spec.shutdown_timeout_s == 5.0
    assert spec.group == "conn"
    assert ChildSpec("book:X", factory, kind="book").group == "book"


@pytest.mark.parametrize("kwargs", [
    {"id": "", "factory": factory},
    {"id": "x", "factory": factory, "shutdown_timeout_s": 0.0},
    {"id": "x", "factory": factory, "shutdown_timeout_s": -1.0},
    {"id": "x", "factory": "not callable"},
    {"id": "x", "factory": factory, "restart": "permanent"},
])
def test_child_spec_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ChildSpec(**kwargs)


def test_flags_defaults_are_valid() -> None:
    flags = SupervisorFlags()
    assert flags.strategy is Strategy.ONE_FOR_ONE and flags.max_restarts == 3 and flags.period_s == 5.0


@pytest.mark.parametrize("kwargs", [
    {"max_restarts": -1},
    {"max_restarts": 1.5},
    {"period_s": 0.0},
    {"backoff_min_s": -0.1},
    {"backoff_min_s": 2.0, "backoff_max_s": 1.0},
    {"backoff_reset_s": -1.0},
    {"liveness_interval_s": -1.0},
    {"strategy": "one_for_one"},
])
def test_flags_reject_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        SupervisorFlags(**kwargs)
