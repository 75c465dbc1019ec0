"""The live view's model: snapshots in, a :class:`Frame` of display strings out (pure).

What an operator must be able to trust at a glance is decided here, not in the drawing:
rates are differences of applied counters over about a second; a symbol's price decimals
are learned from its own prices and only ever grow (13.40 never becomes 13.4 in the next
frame); books that are not LIVE sort first; warnings (status changes away from LIVE,
rejects, connection trouble, log records) go to an :class:`EventLog` that keeps the last
ones on screen instead of letting them scroll away under the table.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import attrs

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.supervisor.cli.tui.source import BookSample, LinkSample, SourceSnapshot, StatusEvent

#: rates are measured against the newest snapshot at least this old
RATE_WINDOW_S = 1.0
#: never more decimals than this (a float like 0.30000000000000004 must not widen a column)
MAX_DECIMALS = 8
#: events kept (the pane shows the newest that fit)
MAX_EVENTS = 200
#: codes named in one grouped event line (more: "40 books")
NAMED_CODES = 3
#: log records of these kinds are already in the pane from the listener or the counters
COVERED_LOG_EVENTS = frozenset({"seq_break", "heartbeat_timeout", "code_rejected"})


def _shape(text: str) -> str:
    """A line with its numbers and symbol codes blanked: what makes two lines 'alike'."""
    return _NUMBERS.sub("#", _WORDS.sub(lambda m: m[0] if m[0] in _KEPT_WORDS else "@", text))


_WORDS = re.compile(r"\b[A-Z][A-Z0-9]{1,29}\b")
_KEPT_WORDS = frozenset(s.name for s in BookStatus) | {"HTTP"}
_NUMBERS = re.compile(r"\d+(\.\d+)?")


@attrs.frozen
class EventLine:
    at: float
    #: "INFO", "WARNING", "ERROR", ...
    level: str
    text: str
    #: this many lines alike in a row (``text`` is the newest)
    count: int = 1


class EventLog:
    """The last warnings, oldest first; thread-safe (a loguru sink writes from any thread)."""

    def __init__(self, maxlen: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._lines: deque[EventLine] = deque(maxlen=maxlen)

    def add(self, level: str, text: str, at: float | None = None) -> None:
        """Append; a line like the last one (the same but for numbers and codes) replaces it, counted,
        so a burst (40 books failing one way) takes one line, not the whole pane."""
        at = time.time() if at is None else at
        with self._lock:
            last = self._lines[-1] if self._lines else None
            if last is not None and last.level == level and _shape(last.text) == _shape(text):
                self._lines[-1] = EventLine(at, level, text, last.count + 1)
            else:
                self._lines.append(EventLine(at, level, text))

    def lines(self) -> tuple[EventLine, ...]:
        with self._lock:
            return tuple(self._lines)

    def sink(self, message: Any) -> None:
        """A loguru sink (``logger.add(log.sink, level="WARNING")``) for the time the screen is up:
        records land in the pane instead of being printed under the table."""
        record = message.record
        extra = record["extra"]
        if extra.get("event") in COVERED_LOG_EVENTS or record["function"] == "_connect_failed":
            return  # the pane already has it, from the listener or the connection counters
        who = extra.get("symbol") or extra.get("actor") or ""
        text = f"{who}: {record['message']}" if who and who != "-" else str(record["message"])
        self.add(record["level"].name, " ".join(text.split()), record["time"].timestamp())


@attrs.frozen
class Row:
    """One book, every cell already a string."""

    code: str
    status: BookStatus
    reason: str
    age: str
    seq: str
    bid: str
    ask: str
    spread: str
    levels: str
    rate: str
    gaps: str
    resyncs: str
    #: the age itself, so the drawing can flag an old book
    age_s: float


@attrs.frozen
class Frame:
    """Everything one screen shows, as display strings (the drawing only lays it out)."""

    venue: str
    dialect: str
    uptime: str
    connected: bool
    #: "" while connected, else why not
    down_reason: str
    #: the last connection error seen (kept after the link is back), with its time
    last_error: str
    epoch: int
    reconnects: int
    connect_failures: int
    heartbeat_timeouts: int
    malformed: int
    rate_total: str
    latency: str
    #: "6 books: 5 LIVE, 1 RESYNCING"
    counts: str
    #: non-LIVE first, then by code
    rows: tuple[Row, ...]
    events: tuple[EventLine, ...]
    #: what the link is ("connection": the venue's socket; "redis": a cluster's bus)
    link_name: str = "connection"
    #: said after UP instead of "epoch N" when set
    link_detail: str = ""
    #: the counters line as (label, value) pairs instead of the venue socket's four, when set
    counters: tuple[tuple[str, int], ...] = ()
    #: what ``latency`` measures
    latency_label: str = "apply"


def price_decimals(prices: Iterable[float]) -> int:
    """The most decimals any of these prices needs (shortest round-trip repr), capped."""
    most = 0
    for price in prices:
        if not math.isfinite(price):
            continue
        exponent = Decimal(repr(price)).normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < 0:
            most = max(most, -exponent)
    return min(most, MAX_DECIMALS)


def format_age(age_s: float) -> str:
    """At most 5 characters: 0.3s, 42s, 12m05, 3h07, 2d; '-' for never."""
    if not math.isfinite(age_s):
        return "-"
    if age_s < 10:
        return f"{age_s:.1f}s"
    if age_s < 100:
        return f"{age_s:.0f}s"
    if age_s < 3600:
        return f"{int(age_s // 60)}m{int(age_s % 60):02d}"
    if age_s < 86400:
        return f"{int(age_s // 3600)}h{int(age_s % 3600 // 60):02d}"
    return f"{int(age_s // 86400)}d"


def format_uptime(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


def format_latency(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


class ViewModel:
    """Turns successive snapshots into frames; keeps what must persist between them."""

    def __init__(self, events: EventLog | None = None) -> None:
        self.events = events if events is not None else EventLog()
        self._decimals: dict[str, int] = {}
        self._history: deque[tuple[float, dict[str, int]]] = deque()
        self._link: LinkSample | None = None
        self._last_error = ""

    def decimals(self, code: str) -> int | None:
        return self._decimals.get(code)

    def update(self, snap: SourceSnapshot, now: float | None = None) -> Frame:
        """One frame from one snapshot; ``now`` is the wall time (uptime, event stamps)."""
        now = time.time() if now is None else now
        self._link_events(snap.link, now)
        self._status_events(snap.events)
        rates = self._rates(snap)
        rows = tuple(sorted((self._row(b, rates.get(b.code, 0.0)) for b in snap.books),
                            key=lambda r: (r.status is BookStatus.LIVE, r.code)))
        by_status: dict[str, int] = {}
        for book in snap.books:
            by_status[book.status.name] = by_status.get(book.status.name, 0) + 1
        order = sorted(by_status, key=lambda s: (s != "LIVE", s))
        counts = f"{len(snap.books)} book{'' if len(snap.books) == 1 else 's'}"
        if by_status:
            counts += ": " + ", ".join(f"{by_status[s]} {s}" for s in order)
        link = snap.link
        return Frame(
            venue=snap.venue, dialect=snap.dialect, uptime=format_uptime(now - snap.started_at),
            connected=link.connected, down_reason=link.failed or link.down_reason, last_error=self._last_error,
            epoch=link.epoch, reconnects=link.reconnects, connect_failures=link.connect_failures,
            heartbeat_timeouts=link.heartbeat_timeouts, malformed=link.malformed,
            rate_total=f"{sum(rates.values()):.0f}",
            latency=f"p50 {format_latency(snap.apply_p50_s)} p99 {format_latency(snap.apply_p99_s)}",
            counts=counts, rows=rows, events=self.events.lines(), link_name=link.name, link_detail=link.detail,
            counters=link.counters, latency_label=snap.latency_label)

    def _row(self, book: BookSample, rate: float) -> Row:
        learned = price_decimals(book.prices + tuple(p for p in (book.best_bid, book.best_ask) if p is not None))
        places = self._decimals[book.code] = max(self._decimals.get(book.code, 0), learned)
        bid = "-" if book.best_bid is None else f"{book.best_bid:.{places}f}"
        ask = "-" if book.best_ask is None else f"{book.best_ask:.{places}f}"
        spread = ("-" if book.best_bid is None or book.best_ask is None
                  else f"{book.best_ask - book.best_bid:.{places}f}")
        levels = f"{book.levels[0]}/{book.levels[1]}" if any(book.levels) else "-"
        reason = "" if book.status is BookStatus.LIVE else book.reason
        return Row(code=book.code, status=book.status, reason=" ".join(reason.split()), age=format_age(book.age_s),
                   seq=str(book.seq), bid=bid, ask=ask, spread=spread, levels=levels, rate=f"{rate:.0f}",
                   gaps=str(book.gaps), resyncs=str(book.resyncs), age_s=book.age_s)

    def _rates(self, snap: SourceSnapshot) -> dict[str, float]:
        """diffs/s per book, against the newest earlier snapshot at least RATE_WINDOW_S old."""
        applied = {b.code: b.applied for b in snap.books}
        self._history.append((snap.taken_at, applied))
        while len(self._history) > 2 and snap.taken_at - self._history[1][0] >= RATE_WINDOW_S:
            self._history.popleft()
        then, before = self._history[0]
        elapsed = snap.taken_at - then
        if elapsed <= 0:
            return dict.fromkeys(applied, 0.0)
        # a restarted book counts from zero again: no negative rates
        return {code: max(0, n - before.get(code, n)) / elapsed for code, n in applied.items()}

    def _status_events(self, events: tuple[StatusEvent, ...]) -> None:
        """Changes away from LIVE (and rejects), grouped: one line per (old, new, why) in a frame."""
        groups: dict[tuple[BookStatus, BookStatus, str], list[StatusEvent]] = {}
        for event in events:
            if event.new is BookStatus.LIVE:
                continue
            if event.old in (BookStatus.LIVE, BookStatus.STALE) or event.new is BookStatus.REJECTED:
                groups.setdefault((event.old, event.new, event.detail or event.reason), []).append(event)
        for (old, new, why), members in groups.items():
            codes = list(dict.fromkeys(e.code for e in members))
            named = ", ".join(codes) if len(codes) <= NAMED_CODES else f"{len(codes)} books"
            level = "ERROR" if new is BookStatus.REJECTED else "WARNING"
            self.events.add(level, f"{named} {old.name} -> {new.name}: {why}", members[-1].at)

    def _link_events(self, link: LinkSample, now: float) -> None:
        """Connection trouble from counter deltas (works for any source, logs or not)."""
        before, self._link = self._link, link
        if before is None:
            return

        def trouble(level: str, text: str) -> None:
            self.events.add(level, text, now)
            self._last_error = f"{clock(now)} {text}"

        if link.failed and not before.failed:
            trouble("ERROR", f"venue refused us: {link.failed}")
        lost = before.connected and not link.connected
        if lost:
            trouble("WARNING", f"{link.name} lost: {link.down_reason or 'socket closed'}")
        elif link.heartbeat_timeouts > before.heartbeat_timeouts:
            trouble("WARNING", f"{link.name} lost: heartbeat timeout")
        elif link.epoch > before.epoch and before.connected:
            trouble("WARNING", f"{link.name} lost and replaced")
        said = lost and link.down_reason.startswith("connect")  # "connection lost: connect failed: ..."
        if link.connect_failures > before.connect_failures and not said:
            trouble("WARNING", link.down_reason if link.down_reason.startswith("connect") else "connect failed")
        if link.connected and (not before.connected or link.epoch != before.epoch):
            up = f"connected, epoch {link.epoch}" if link.name == "connection" else f"{link.name} up"
            self.events.add("INFO", up + (f": {link.detail}" if link.detail else ""), now)
