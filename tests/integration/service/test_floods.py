"""Issue 12 #9, #10, #13 against the real simulator: floods of bad frames, of unknown codes, and
subscribe/unsubscribe churn never cost unbounded log lines, commands or memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from loguru import logger

from depthkeeper.simulator.faults import UNKNOWN_CODE
from depthkeeper.supervisor.service.facade import BookService

from tests.support import converge_exact, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def malformed_lines() -> Iterator[list[str]]:
    """Every line logged for a malformed frame while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING",
                      filter=lambda record: record["extra"].get("event") == "malformed_frame")
    yield lines
    logger.remove(sink)


def test_a_flood_of_bad_frames_is_counted_and_logged_with_a_rate_limit(service: Callable[..., BookService],
                                                                        malformed_lines: list[str]) -> None:
    """#9: 20,000 bad frames: every one counted by kind, a handful of log lines, the stream goes on."""
    svc = service()
    assert svc.wait_live(timeout=10)
    svc.simulator.faults.malformed("bad_json", count=15_000)
    svc.simulator.faults.malformed("wrong_type", count=5_000)
    wait_until(lambda: svc.stats().connection.malformed >= 20_000, 20, "20,000 malformed frames counted")
    conn = svc.stats().connection
    assert conn.malformed_by_kind == {"bad_json": 15_000, "wrong_type": 5_000}
    assert len(malformed_lines) <= 5 + 2, f"{len(malformed_lines)} log lines for one flood"  # burst + summaries
    assert conn.reconnects == 0 and conn.heartbeat_timeouts == 0
    converge_exact(svc)


def test_frames_for_a_code_we_never_subscribed_are_counted_never_unsubscribed(service: Callable[..., BookService]) -> None:
    """#10: data for a code this socket never subscribed is not a ghost of ours: no unsubscribe
    goes out for it (one per made-up code would be a flood of our own)."""
    svc = service()
    assert svc.wait_live(timeout=10)
    svc.simulator.faults.malformed("unknown_code", count=200)
    wait_until(lambda: svc.stats().subscription.counters.unwanted_frames >= 200, 10, "the frames reach the subscription")
    svc.subscribe(["SOLUSDT"])  # a later command: anything the flood provoked was sent before it
    assert svc.wait_live(["SOLUSDT"], timeout=10)
    assert not [r for r in svc.simulator.command_log() if UNKNOWN_CODE in r.codes]
    assert svc.stats().subscription.counters.ghost_unsubscribes == 0


def test_subscribe_unsubscribe_churn_leaves_no_cancelled_timers_behind(service: Callable[..., BookService]) -> None:
    """#13: each book's calibration timer (30 min) is cancelled on unsubscribe; the scheduler must
    free it then, not when it would have been due. Counted in heap entries, not RSS."""
    svc = service(calibration={"interval_s": 1800.0}, book={"stale_after_s": 600.0})
    assert svc.wait_live(timeout=10)
    scheduler = svc.chaos.scheduler
    before = len(scheduler._heap)  # entries held, live or cancelled (what the memory holds)
    for _ in range(40):
        svc.subscribe(["SOLUSDT"])
        wait_until(lambda: svc.chaos.ref("book:SOLUSDT") is not None, 5, "SOLUSDT's book")
        svc.unsubscribe(["SOLUSDT"])
        wait_until(lambda: svc.chaos.ref("book:SOLUSDT") is None, 5, "SOLUSDT's book gone")
    wait_until(lambda: scheduler.pending <= before + 2, 5, "the churned books' timers cancelled")
    # 40 cycles x (calibration + stale check + first-diff deadline) would be 80-120 entries
    assert len(scheduler._heap) <= max(2 * before, 64) + 2
