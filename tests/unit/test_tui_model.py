"""The live view's model: decimals, rates, order, the events pane (pure, hand-made snapshots)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from loguru import logger

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.cli.tui.model import EventLog, ViewModel, format_age, price_decimals
from depthkeeper.supervisor.cli.tui.source import BookSample, LinkSample, SourceSnapshot, StatusEvent

NOW = 1_800_000_000.0
UP = LinkSample(connected=True, down_reason="", failed="", epoch=1, reconnects=0, connect_failures=0,
                heartbeat_timeouts=0, malformed=0)


def book(code: str, status: BookStatus = BookStatus.LIVE, **kw: object) -> BookSample:
    values: dict[str, object] = dict(reason="in sync", seq=100, age_s=0.05, applied=1000, gaps=0, resyncs=0,
                                     best_bid=13.44, best_ask=13.46, levels=(20, 20), prices=(13.44, 13.46))
    values.update(kw)
    return BookSample(code, status, **values)  # type: ignore[arg-type]


def snap(*books: BookSample, taken_at: float = 100.0, link: LinkSample = UP,
         events: tuple[StatusEvent, ...] = ()) -> SourceSnapshot:
    return SourceSnapshot(venue="ws://127.0.0.1:1/ws", dialect="article", started_at=NOW - 3725, taken_at=taken_at,
                          link=link, books=books, apply_p50_s=42e-6, apply_p99_s=2.5e-3, events=events)


def change(code: str, old: BookStatus, new: BookStatus, detail: str) -> StatusEvent:
    return StatusEvent(NOW, code, old, new, detail.split(" ")[0], detail)


@pytest.mark.parametrize(("prices", "expected"), [
    ((13.4, 13.44), 2), ((100.0, 250.0), 0), ((0.1 + 0.2,), 8), ((1e-05,), 5), ((float("inf"), 2.5), 1), ((), 0)])
def test_price_decimals_counts_the_shortest_repr_capped(prices: tuple[float, ...], expected: int) -> None:
    assert price_decimals(prices) == expected


@pytest.mark.parametrize(("age_s", "text"), [
    (0.04, "0.0s"), (9.94, "9.9s"), (42.4, "42s"), (125.0, "2m05"), (7440.0, "2h04"), (3 * 86400.0, "3d"),
    (float("inf"), "-")])
def test_age_fits_five_characters(age_s: float, text: str) -> None:
    assert format_age(age_s) == text and len(text) <= 5


def test_a_symbols_decimals_are_fixed_across_frames_with_different_prices() -> None:
    model = ViewModel()
    first = model.update(snap(book("SOLUSDT", best_bid=13.44, best_ask=13.46, prices=(13.44, 13.46, 13.4))), NOW)
    second = model.update(snap(book("SOLUSDT", best_bid=13.4, best_ask=13.5, prices=(13.4, 13.5)), taken_at=101.0),
                          NOW + 1)
    assert (first.rows[0].bid, first.rows[0].ask, first.rows[0].spread) == ("13.44", "13.46", "0.02")
    assert (second.rows[0].bid, second.rows[0].ask, second.rows[0].spread) == ("13.40", "13.50", "0.10")


def test_decimals_only_grow_and_are_per_symbol() -> None:
    model = ViewModel()
    model.update(snap(book("BTCUSDT", best_bid=43000.5, best_ask=43001.0, prices=(43000.5,)),
                      book("DOGEUSDT", best_bid=0.12345, best_ask=0.1235, prices=(0.12345,))), NOW)
    frame = model.update(snap(book("BTCUSDT", best_bid=43000.25, best_ask=43001.0, prices=(43000.25,)),
                              book("DOGEUSDT", best_bid=0.12, best_ask=0.13, prices=(0.12, 0.13)), taken_at=101.0), NOW)
    rows = {r.code: r for r in frame.rows}
    assert rows["BTCUSDT"].bid == "43000.25" and rows["BTCUSDT"].ask == "43001.00"
    assert rows["DOGEUSDT"].bid == "0.12000" and model.decimals("DOGEUSDT") == 5


def test_rates_are_applied_diffs_per_second_and_never_negative() -> None:
    model = ViewModel()
    model.update(snap(book("A1", applied=1000), book("B1", applied=500), taken_at=100.0), NOW)
    model.update(snap(book("A1", applied=1020), book("B1", applied=510), taken_at=100.5), NOW)
    frame = model.update(snap(book("A1", applied=1100), book("B1", applied=3), taken_at=101.0), NOW)
    rows = {r.code: r for r in frame.rows}
    assert rows["A1"].rate == "100" and rows["B1"].rate == "0"  # B1 restarted: its counter began again
    assert frame.rate_total == "100"


def test_books_not_live_sort_first_then_by_code_and_show_their_reason() -> None:
    frame = ViewModel().update(snap(book("AAAUSDT"), book("ZZZUSDT", BookStatus.DISCONNECTED, reason="socket closed",
                                                          age_s=125.0),
                                    book("MMMUSDT", BookStatus.RESYNCING, reason="gap", best_bid=None, best_ask=None,
                                         prices=(), levels=(0, 0))), NOW)
    assert [r.code for r in frame.rows] == ["MMMUSDT", "ZZZUSDT", "AAAUSDT"]
    resyncing, disconnected, live = frame.rows
    assert (resyncing.bid, resyncing.spread, resyncing.levels, resyncing.reason) == ("-", "-", "-", "gap")
    assert (disconnected.age, disconnected.reason) == ("2m05", "socket closed")
    assert live.reason == ""  # "in sync" says nothing on a LIVE row
    assert frame.counts == "3 books: 1 LIVE, 1 DISCONNECTED, 1 RESYNCING"
    assert frame.uptime == "1:02:05" and frame.latency == "p50 42us p99 2.5ms"


def test_status_changes_away_from_live_and_rejects_reach_the_events_pane_grouped() -> None:
    model = ViewModel()
    many = tuple(change(f"S{i}USDT", BookStatus.LIVE, BookStatus.DISCONNECTED, "socket closed") for i in range(5))
    events = (change("BTCUSDT", BookStatus.SYNCING, BookStatus.LIVE, "in sync"),
              change("ETHUSDT", BookStatus.LIVE, BookStatus.RESYNCING, "gap: expected 11, got 14"),
              change("XRPUSDT", BookStatus.SYNCING, BookStatus.REJECTED, "venue rejected: unknown symbol"),
              *many)
    frame = model.update(snap(book("BTCUSDT"), events=events), NOW)
    texts = [(e.level, e.text) for e in frame.events]
    assert texts == [("WARNING", "ETHUSDT LIVE -> RESYNCING: gap: expected 11, got 14"),
                     ("ERROR", "XRPUSDT SYNCING -> REJECTED: venue rejected: unknown symbol"),
                     ("WARNING", "5 books LIVE -> DISCONNECTED: socket closed")]


def test_connection_trouble_comes_from_counter_deltas_and_the_last_error_stays() -> None:
    model = ViewModel()
    model.update(snap(book("BTCUSDT")), NOW)
    down = attrs.evolve(UP, connected=False, down_reason="closed by peer: EOF")
    frame = model.update(snap(book("BTCUSDT"), link=down, taken_at=101.0), NOW + 1)
    assert not frame.connected and frame.down_reason == "closed by peer: EOF"
    failing = attrs.evolve(down, down_reason="connect failed: refused", connect_failures=3)
    model.update(snap(book("BTCUSDT"), link=failing, taken_at=102.0), NOW + 2)
    back = attrs.evolve(UP, epoch=2, reconnects=1, connect_failures=3)
    frame = model.update(snap(book("BTCUSDT"), link=back, taken_at=103.0), NOW + 3)
    assert [(e.level, e.text) for e in frame.events] == [
        ("WARNING", "connection lost: closed by peer: EOF"), ("WARNING", "connect failed: refused"),
        ("INFO", "connected, epoch 2")]
    assert frame.connected and frame.last_error.endswith(" connect failed: refused")
    timeout = attrs.evolve(back, heartbeat_timeouts=1, epoch=3)
    frame = model.update(snap(book("BTCUSDT"), link=timeout, taken_at=104.0), NOW + 4)
    assert frame.events[-2].text == "connection lost: heartbeat timeout"


def test_lines_alike_collapse_into_one_counted_line() -> None:
    log = EventLog()
    for i in range(40):
        log.add("WARNING", f"S{i:02d}USDT: snapshot fetch failed (HTTP 404); retry {i % 3} in 0.{i}s", NOW + i)
    log.add("WARNING", "S01USDT LIVE -> RESYNCING: gap", NOW + 50)
    log.add("WARNING", "S02USDT LIVE -> DISCONNECTED: gap", NOW + 51)
    lines = log.lines()
    assert [line.count for line in lines] == [40, 1, 1]
    assert lines[0].text.startswith("S39USDT: snapshot fetch failed") and lines[0].at == NOW + 39


@pytest.fixture
def pane() -> Iterator[EventLog]:
    log = EventLog()
    sink = logger.add(log.sink, level="WARNING", format="{message}")
    yield log
    logger.remove(sink)


def test_the_log_sink_puts_warnings_in_the_pane_except_what_it_already_has(pane: EventLog) -> None:
    logger.bind(actor="snapshot", symbol="BTCUSDT").warning("snapshot fetch failed ({}); retry {}", "HTTP 503", 2)
    logger.bind(actor="book", symbol="ETHUSDT", event="seq_break").warning("seq break (gap): resyncing")
    logger.bind(actor="tree").info("not a warning")
    logger.bind(actor="tree").error("books   restarted\n twice")
    assert [(e.level, e.text) for e in pane.lines()] == [
        ("WARNING", "BTCUSDT: snapshot fetch failed (HTTP 503); retry 2"), ("ERROR", "tree: books restarted twice")]


def test_a_link_other_than_the_venue_socket_is_named_in_the_pane() -> None:
    """A cluster's watch: the link is Redis, its trouble and recovery are said with that name."""
    redis_up = attrs.evolve(UP, name="redis", detail="3 shards", counters=(("rebootstraps", 0),))
    model = ViewModel()
    model.update(snap(book("BTCUSDT"), link=redis_up), NOW)
    down = attrs.evolve(redis_up, connected=False, down_reason="Error 111 connecting to 127.0.0.1:6379")
    model.update(snap(book("BTCUSDT"), link=down, taken_at=101.0), NOW + 1)
    frame = model.update(snap(book("BTCUSDT"), link=redis_up, taken_at=102.0), NOW + 2)
    assert [(e.level, e.text) for e in frame.events] == [
        ("WARNING", "redis lost: Error 111 connecting to 127.0.0.1:6379"), ("INFO", "redis up: 3 shards")]
    assert (frame.link_name, frame.link_detail, frame.counters) == ("redis", "3 shards", (("rebootstraps", 0),))
