"""Lay a :class:`~depthkeeper.supervisor.cli.tui.model.Frame` out on a terminal of any size (rich).

The screen, top to bottom: a pinned header (venue, connection, counters, rates), the book
table (one page of it), the events pane, and a footer that says how to quit and page.
Everything is sized from the terminal at draw time, so a resize just works: at 80 columns
statuses and headers are abbreviated and the least important columns dropped until the
reason column has room; wider terminals get every column and the full status names. No line
is ever wider than the terminal (rich crops what is left with an ellipsis), so nothing wraps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Column, Table
from rich.text import Text

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.cli.tui.model import EventLine, Frame, Row, clock

HEADER_LINES = 4
FOOTER_LINES = 1
#: below this width headers and statuses are abbreviated
NARROW_BELOW = 100
#: the reason column gets at least this much before other columns are dropped
REASON_MIN = 12
#: ... and up to this much when some book has a reason that long, by dropping ...
REASON_WANT = 28
#: ... only the columns this unimportant (levels, gaps, resyncs)
DROP_FOR_REASON = 4
#: a book this old is drawn as suspicious
OLD_AGE_S = 10.0

SHORT_STATUS = {BookStatus.SYNCING: "SYNC", BookStatus.LIVE: "LIVE", BookStatus.RESYNCING: "RSYNC",
                BookStatus.STALE: "STALE", BookStatus.DISCONNECTED: "DISC", BookStatus.REJECTED: "REJECT"}
STATUS_STYLE = {BookStatus.SYNCING: "yellow", BookStatus.LIVE: "green", BookStatus.RESYNCING: "bold yellow",
                BookStatus.STALE: "bold yellow", BookStatus.DISCONNECTED: "bold red", BookStatus.REJECTED: "bold red"}
LEVEL_TAG = {"WARNING": "WARN", "ERROR": "ERR ", "CRITICAL": "CRIT", "SUCCESS": "OK  "}


@attrs.frozen
class Col:
    key: str
    header: str
    short: str
    right: bool
    #: dropped at narrow widths in decreasing order of this (0: never dropped)
    drop: int


COLUMNS = (
    Col("code", "symbol", "symbol", False, 0),
    Col("status", "status", "status", False, 0),
    Col("age", "age", "age", True, 0),
    Col("seq", "seq", "seq", True, 2),
    Col("bid", "best bid", "bid", True, 0),
    Col("ask", "best ask", "ask", True, 0),
    Col("spread", "spread", "spread", True, 1),
    Col("levels", "levels", "lvls", True, 5),
    Col("rate", "diffs/s", "d/s", True, 3),
    Col("gaps", "gaps", "gap", True, 4),
    Col("resyncs", "resyncs", "rsy", True, 4),
    Col("reason", "reason", "reason", False, 0),
)


@attrs.define
class Pager:
    """Which page of the book table is shown; keys move it, each draw clamps it."""

    page: int = 0
    pages: int = 1

    def next(self) -> None:
        self.page = (self.page + 1) % max(1, self.pages)

    def previous(self) -> None:
        self.page = (self.page - 1) % max(1, self.pages)


def cell(row: Row, key: str, narrow: bool) -> str:
    if key == "status":
        return SHORT_STATUS[row.status] if narrow else row.status.name
    return str(getattr(row, key))


def choose_columns(rows: tuple[Row, ...], width: int) -> tuple[list[Col], dict[str, int], bool]:
    """The columns that fit ``width``, their widths, and whether they are abbreviated.

    The reason column gets what is left, at least REASON_MIN (dropping columns from the least
    important on), and up to REASON_WANT if a reason needs it and only unimportant columns go."""
    narrow = width < NARROW_BELOW
    widths = {}
    for col in COLUMNS:
        if col.key == "reason":
            continue
        header = col.short if narrow else col.header
        widths[col.key] = max([len(header), *(len(cell(r, col.key, narrow)) for r in rows)])
    # the status column never jumps when a book changes status
    widths["status"] = max(len(SHORT_STATUS[s] if narrow else s.name) for s in BookStatus)
    # a reason to show (a book not LIVE) may push out the columns that matter least
    want = max(REASON_MIN, min(REASON_WANT, max((len(r.reason) for r in rows), default=0)))
    shown = list(COLUMNS)
    while True:
        fixed = sum(widths[c.key] for c in shown if c.key != "reason") + len(shown) - 1
        room, worst = width - fixed, max((c.drop for c in shown), default=0)
        if worst == 0 or room >= want or (room >= REASON_MIN and worst < DROP_FOR_REASON):
            break
        shown = [c for c in shown if c.drop != worst]
    widths["reason"] = max(1, width - fixed)
    return shown, widths, narrow


def book_table(rows: tuple[Row, ...], page_rows: tuple[Row, ...], width: int) -> Table:
    shown, widths, narrow = choose_columns(rows, width)
    table = Table(*(Column(c.short if narrow else c.header, width=widths[c.key], no_wrap=True, overflow="ellipsis",
                           justify="right" if c.right else "left") for c in shown),
                  box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, header_style="bold reverse",
                  expand=False)
    for row in page_rows:
        cells = []
        for col in shown:
            text = Text(cell(row, col.key, narrow))
            if col.key == "status":
                text.stylize(STATUS_STYLE[row.status])
            elif col.key == "age" and row.age_s >= OLD_AGE_S:
                text.stylize("bold red" if row.status is BookStatus.LIVE else "yellow")
            elif col.key == "reason":
                text.stylize("red")
            cells.append(text)
        table.add_row(*cells)
    return table


def line(text: str, width: int, style: str = "") -> Text:
    out = Text(text, style=style, no_wrap=True, overflow="ellipsis")
    out.truncate(width, overflow="ellipsis")
    return out


def two_sided(left: str, right: str, width: int, style: str = "") -> Text:
    room = max(0, width - len(right) - 1)
    left_text = line(left, room)
    return Text.assemble(left_text, " " * max(1, width - len(left_text) - len(right)), right, style=style,
                         no_wrap=True)


def header(frame: Frame, width: int) -> list[Text]:
    narrow = width < NARROW_BELOW
    first = two_sided(f"depthkeeper  {frame.venue} ({frame.dialect})", f"up {frame.uptime}", width, "bold")
    name = frame.link_name
    if frame.connected:
        detail = frame.link_detail or f"epoch {frame.epoch}"
        state = line(f"{name} UP  {detail}  last error: {frame.last_error or 'none'}", width)
        state.stylize("green", len(name) + 1, len(name) + 3)
    else:
        state = line(f"{name} DOWN: {frame.down_reason or 'not connected'}", width, "bold red")
    if frame.counters:
        counters = line("  ".join(f"{label} {value}" for label, value in frame.counters), width)
    else:
        failed = "connect fails" if narrow else "failed connects"
        timeouts = "hb timeouts" if narrow else "heartbeat timeouts"
        counters = line(f"reconnects {frame.reconnects}  {failed} {frame.connect_failures}  "
                        f"{timeouts} {frame.heartbeat_timeouts}  malformed {frame.malformed}", width)
    figures = line(f"diffs/s {frame.rate_total}  {frame.latency_label} {frame.latency}  {frame.counts}", width)
    return [first, state, counters, figures]


def event_line(event: EventLine, width: int) -> Text:
    times = f" (x{event.count} alike)" if event.count > 1 else ""
    tag = LEVEL_TAG.get(event.level, event.level[:4].ljust(4))
    style = "red" if event.level in ("ERROR", "CRITICAL") else "yellow" if event.level == "WARNING" else ""
    return line(f"{clock(event.at)} {tag} {event.text}{times}", width, style)


def footer(pager: Pager, books: int, width: int) -> Text:
    if pager.pages > 1:
        keys = f"q/Ctrl-C quit  space/PgDn next  PgUp prev  page {pager.page + 1}/{pager.pages}"
        right = "not LIVE first"
    else:
        keys = "q or Ctrl-C to quit"
        right = f"all {books} books shown, not LIVE first"
    if len(keys) + len(right) + 2 > width:
        right = ""
    return two_sided(keys, right, width, "reverse")


def layout(frame: Frame, pager: Pager, width: int, height: int) -> list[RenderableType]:
    """The screen as a list of renderables that add up to exactly ``height`` lines."""
    top = header(frame, width)
    body = max(2, height - HEADER_LINES - FOOTER_LINES - 1)  # 1: the events title
    min_events = max(1, height // 6)
    fit = max(1, body - 1 - min_events)  # 1: the table's header line
    rows = frame.rows
    if len(rows) <= fit:
        pager.pages, pager.page = 1, 0
        page_rows = rows
    else:
        pager.pages = math.ceil(len(rows) / fit)
        pager.page = min(pager.page, pager.pages - 1)
        page_rows = rows[pager.page * fit:(pager.page + 1) * fit]
    table_lines = 1 + len(page_rows) if rows else 1
    events_room = max(0, body - table_lines)
    parts: list[RenderableType] = [*top]
    parts.append(book_table(rows, page_rows, width) if rows else line("no books subscribed", width, "bold"))
    title = " events (newest last) "
    parts.append(line(title + "-" * max(0, width - len(title)), width, "bold"))
    shown = frame.events[-events_room:] if events_room else ()
    parts.extend(event_line(e, width) for e in shown)
    parts.extend(Text("") for _ in range(events_room - len(shown)))
    parts.append(footer(pager, len(rows), width))
    return parts


class ScreenView:
    """A rich renderable: the current frame laid out at whatever size the console has now."""

    def __init__(self, frame: Callable[[], Frame], pager: Pager) -> None:
        self._frame = frame
        self.pager = pager

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or console.height
        parts = layout(self._frame(), self.pager, options.max_width, height)
        yield Group(*parts)
