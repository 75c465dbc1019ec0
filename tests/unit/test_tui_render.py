"""The live view drawn into fixed-size virtual terminals (rich's recording Console): 80x24 and 120x50."""

from __future__ import annotations

import io
import threading
import time

import attrs
import pytest
from rich.console import Console

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.cli.tui.model import Frame, ViewModel
from depthkeeper.supervisor.cli.tui.render import Pager, ScreenView
from depthkeeper.supervisor.cli.tui.screen import Key, TerminalUI, parse_keys
from depthkeeper.supervisor.cli.tui.source import BookSample, LinkSample, SourceSnapshot, StatusEvent

SIZES = [(80, 24), (120, 50)]
UP = LinkSample(connected=True, down_reason="", failed="", epoch=2, reconnects=1, connect_failures=4,
                heartbeat_timeouts=1, malformed=0)
DISCONNECTED_REASON = "socket down: heartbeat timeout: silent for 30.0s"


def book(code: str, status: BookStatus = BookStatus.LIVE, price: float = 43251.37, **kw: object) -> BookSample:
    values: dict[str, object] = dict(reason="in sync", seq=1234567, age_s=0.05, applied=10_000, gaps=2, resyncs=3,
                                     best_bid=price, best_ask=price + 0.02, levels=(20, 19), prices=(price,))
    values.update(kw)
    return BookSample(code, status, **values)  # type: ignore[arg-type]


def snapshot(books: tuple[BookSample, ...], *, taken_at: float = 100.0, link: LinkSample = UP,
             events: tuple[StatusEvent, ...] = ()) -> SourceSnapshot:
    return SourceSnapshot(venue="ws://127.0.0.1:40065/quote-b-ws-api", dialect="article",
                          started_at=time.time() - 83, taken_at=taken_at, link=link, books=books,
                          apply_p50_s=64e-6, apply_p99_s=1.6e-3, events=events)


def market(n: int) -> tuple[BookSample, ...]:
    return tuple(book(f"S{i:02d}USDT", price=100.0 + i + 0.25) for i in range(n))


def troubled_market() -> tuple[BookSample, ...]:
    frozen = book("ETHUSDT", BookStatus.DISCONNECTED, price=3489.01, reason=DISCONNECTED_REASON, age_s=754.0)
    stale = book("SOLUSDT", BookStatus.STALE, price=179.13, reason="applying data 2.3s old", age_s=48.0)
    return (book("BTCUSDT"), frozen, stale, book("ADAUSDT", price=0.4512))


def draw(frame: Frame, width: int, height: int, pager: Pager | None = None) -> list[str]:
    console = Console(width=width, height=height, record=True, force_terminal=True, color_system=None,
                      file=io.StringIO())
    console.print(ScreenView(lambda: frame, pager or Pager()))
    return console.export_text().splitlines()


def frame_of(books: tuple[BookSample, ...], **kw: object) -> Frame:
    model = ViewModel()
    model.update(snapshot(books, taken_at=99.0))
    return model.update(snapshot(books, **kw))  # type: ignore[arg-type]


def assert_fits(lines: list[str], width: int, height: int) -> None:
    assert len(lines) == height, f"{len(lines)} lines on a {height}-line screen"
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"lines wider than {width}: {too_wide}"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_header_is_pinned_on_the_first_lines_and_says_what_the_issue_asks(width: int, height: int) -> None:
    lines = draw(frame_of(troubled_market()), width, height)
    assert_fits(lines, width, height)
    first, state, counters, figures = lines[:4]
    assert first.startswith("depthkeeper  ws://127.0.0.1:40065/quote-b-ws-api (article)")
    assert first.rstrip().endswith("up 0:01:23")
    assert state.startswith("connection UP  epoch 2  last error: none")
    assert counters.startswith("reconnects 1  ") and " 4  " in counters and "timeouts 1" in counters
    assert figures.startswith("diffs/s 0  apply p50 64us p99 1.6ms  4 books: 2 LIVE, 1 DISCONNECTED, 1 STALE")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_frozen_book_shows_its_status_reason_and_age(width: int, height: int) -> None:
    lines = draw(frame_of(troubled_market()), width, height)
    row = next(line for line in lines if line.startswith("ETHUSDT"))
    assert ("DISC " if width < 100 else "DISCONNECTED ") in row
    assert "12m34" in row and "3489.01" in row
    # the reason is truncated to what is left, more of it on a wider screen (all of it in the events pane)
    assert ("socket down: heartbea…" if width < 100 else "socket down: heartbeat timeout:…") in row
    table = lines[4:9]
    assert table[0].split()[:3] == ["symbol", "status", "age"]
    assert [line.split()[0] for line in table[1:]] == ["ETHUSDT", "SOLUSDT", "ADAUSDT", "BTCUSDT"]


def test_wider_screens_show_more_columns_and_full_names() -> None:
    narrow = draw(frame_of(troubled_market()), 80, 24)[4]
    wide = draw(frame_of(troubled_market()), 120, 50)[4]
    assert "resyncs" not in narrow and "levels" not in narrow
    assert wide.split() == ["symbol", "status", "age", "seq", "best", "bid", "best", "ask", "spread", "levels",
                            "diffs/s", "gaps", "resyncs", "reason"]


def test_decimals_stay_fixed_per_symbol_between_frames() -> None:
    model = ViewModel()
    ada = book("ADAUSDT", price=0.4512, best_ask=0.4532, prices=(0.4512, 0.4513))
    first = draw(model.update(snapshot((ada,), taken_at=100.0)), 80, 24)
    moved = attrs.evolve(ada, best_bid=0.45, best_ask=0.4601, prices=(0.45, 0.4601))
    second = draw(model.update(snapshot((moved,), taken_at=101.0)), 80, 24)
    assert "0.4512" in first[5] and "0.4532" in first[5]
    assert "0.4500" in second[5] and "0.4601" in second[5] and "0.0101" in second[5]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_rows_that_do_not_fit_are_paged(width: int, height: int) -> None:
    frame = frame_of(market(90 if height > 40 else 40))
    pager = Pager()
    seen: list[str] = []
    first_lines = None
    while True:
        lines = draw(frame, width, height, pager)
        assert_fits(lines, width, height)
        assert lines[0].startswith("depthkeeper") and lines[4].startswith("symbol")
        assert f"page {pager.page + 1}/{pager.pages}" in lines[-1]
        seen.extend(line.split()[0] for line in lines[5:] if line.startswith("S") and "USDT" in line)
        first_lines = first_lines or lines
        if pager.page == pager.pages - 1:
            break
        pager.next()
    assert pager.pages == (4 if height == 24 else 3)
    assert seen == [f"S{i:02d}USDT" for i in range(len(frame.rows))], "every book once, in order, across pages"
    pager.next()
    assert pager.page == 0 and draw(frame, width, height, pager) == first_lines


def test_forty_books_on_24_rows_page_one_then_the_rest() -> None:
    frame = frame_of(market(40))
    pager = Pager()
    page_one = draw(frame, 80, 24, pager)
    pager.next()
    page_two = draw(frame, 80, 24, pager)
    assert "page 1/4" in page_one[-1] and "page 2/4" in page_two[-1]
    assert "S00USDT" in page_one[5] and "S13USDT" in page_two[5]
    assert not any("S00USDT" in line for line in page_two)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_events_pane_shows_the_reason_of_a_status_change(width: int, height: int) -> None:
    event = StatusEvent(time.time(), "ETHUSDT", BookStatus.LIVE, BookStatus.RESYNCING, "gap",
                        "gap: expected 11, got 14")
    lines = draw(frame_of(troubled_market(), events=(event,)), width, height)
    title = next(i for i, line in enumerate(lines) if line.startswith(" events"))
    assert any("WARN ETHUSDT LIVE -> RESYNCING: gap: expected 11, got 14" in line for line in lines[title + 1:-1])


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_quit_hint_is_on_screen(width: int, height: int) -> None:
    for books in (troubled_market(), market(60)):
        last = draw(frame_of(books), width, height)[-1]
        assert "q" in last.split("/")[0].split()[0] and "quit" in last and "Ctrl-C" in last


def test_a_disconnected_link_is_said_in_the_header() -> None:
    down = attrs.evolve(UP, connected=False, down_reason="connect failed: ConnectionRefusedError: [Errno 111]")
    lines = draw(frame_of(troubled_market(), link=down), 80, 24)
    assert lines[1].startswith("connection DOWN: connect failed: ConnectionRefusedError")


@pytest.mark.parametrize(("width", "height"), [(40, 10), (60, 8), (200, 60)])
def test_odd_sizes_still_fit(width: int, height: int) -> None:
    assert_fits(draw(frame_of(troubled_market()), width, height), width, height)
    assert_fits(draw(frame_of(()), width, height), width, height)


def test_keys_are_parsed_from_raw_terminal_bytes() -> None:
    assert parse_keys(b"q") == [Key.QUIT]
    assert parse_keys(b" \x1b[6~n") == [Key.NEXT_PAGE] * 3
    assert parse_keys(b"\x1b[5~bx\x1b[15~Q") == [Key.PREVIOUS_PAGE, Key.PREVIOUS_PAGE, Key.QUIT]
    assert parse_keys(b"\x1bOP") == []


class ListSource:
    """A BookSource that plays back snapshots (the protocol's second implementation)."""

    def __init__(self, snapshots: list[SourceSnapshot]) -> None:
        self.snapshots = snapshots
        self.closed = False

    def snapshot(self) -> SourceSnapshot:
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]

    def close(self) -> None:
        self.closed = True


def test_the_terminal_ui_pages_on_keys_quits_on_q_and_closes_its_source() -> None:
    console = Console(width=80, height=24, record=True, force_terminal=True, color_system=None, file=io.StringIO())
    source = ListSource([snapshot(market(40), taken_at=100.0 + i) for i in range(3)])
    stop = threading.Event()
    with TerminalUI(source, stop, console=console, keys=None) as ui:
        ui.draw()
        assert "page 1/4" in console.export_text(clear=True).splitlines()[-1]
        ui.on_key(Key.NEXT_PAGE)
        assert not ui.wait(5.0)  # a key wakes the loop at once
        ui.draw()
        assert "page 2/4" in console.export_text(clear=True).splitlines()[-1]
        ui.on_key(Key.QUIT)
        assert ui.wait(5.0) and stop.is_set()
    assert source.closed


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_cluster_link_has_its_own_name_detail_and_counters(width: int, height: int) -> None:
    link = attrs.evolve(UP, name="redis", detail="3 shards  epochs 4-7",
                        counters=(("rebootstraps", 2), ("takeovers", 1), ("redis resets", 0), ("bus errors", 5)))
    model = ViewModel()
    model.update(snapshot(market(3), taken_at=99.0, link=link))
    frame = model.update(attrs.evolve(snapshot(market(3), link=link), latency_label="e2e"))
    first, state, counters, figures = draw(frame, width, height)[:4]
    assert state.startswith("redis UP  3 shards  epochs 4-7  last error: none")
    assert counters.startswith("rebootstraps 2  takeovers 1  redis resets 0  bus errors 5")
    assert figures.startswith("diffs/s 0  e2e p50 64us p99 1.6ms  3 books: 3 LIVE")
    down = attrs.evolve(link, connected=False, down_reason="Error 111 connecting to 127.0.0.1:6379")
    state = draw(model.update(snapshot(market(3), taken_at=101.0, link=down)), width, height)[1]
    assert state.startswith("redis DOWN: Error 111 connecting")
