"""``depthkeeper watch``: the live view of ``depthkeeper run``, over the cluster's books.

:class:`RemoteSource` is a ``BookSource`` (the live view's input, supervisor/cli/tui/source.py)
over :class:`~depthkeeper.cluster.remote.RemoteBooks`: the same screen, the same rows (status and
reason, age, seq, best bid/ask, levels, diffs/s, gaps, re-bootstraps), but the "link" is the
cluster's Redis rather than a venue socket: UP while Redis answers the consumer (DOWN with the
error otherwise), the live shards and the publishers' epochs after it, and the consumer's own
counters (re-bootstraps, takeovers seen, Redis restarts seen, bus errors) under it. Status changes
come from a RemoteBooks listener, so a book leaving LIVE is in the events pane with its reason.

It lives here, not in supervisor/cli/tui, so the single process never imports Redis; the CLI
imports the cluster lazily, for ``shard`` and ``watch`` only.

Without a terminal (a pipe, a file) ``watch`` prints a plain table per refresh; ``--json`` one JSON
object per refresh, for scripts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from depthkeeper.cluster.compat import (
    BookSample,
    BookStatusChanged,
    BookUnavailable,
    BookView,
    LinkSample,
    SourceSnapshot,
    StatusEvent,
    reason_of,
    to_status,
)
from depthkeeper.cluster.remote import RemoteBooks

#: levels per side read for each book (a few prices teach the view a symbol's decimals)
VIEW_DEPTH = 5
#: status events kept between two frames (a slow screen must not grow memory)
MAX_PENDING_EVENTS = 1000
#: how often the live shards are read (one Redis call, from the drawing thread)
SHARDS_EVERY_S = 1.0


def redact_url(url: str) -> str:
    """A Redis URL without its password (``redis://:secret@host`` -> ``redis://***@host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class RemoteSource:
    """The live view's :class:`BookSource` over a :class:`RemoteBooks` (owned by the caller).

    ``codes``: the rows, in any order (the view sorts them); ``None`` shows whatever ``books``
    follows. Latency figures need ``RemoteBooks(record_latency=True)``: they are the consumer's
    "shard's book changed -> applied here" samples since the previous frame (wall clocks of two
    hosts when the shard runs elsewhere: their skew is in the figure).
    """

    def __init__(self, books: RemoteBooks, codes: Sequence[str] | None = None, *, url: str = "",
                 name: str = "") -> None:
        self._books = books
        self._codes = tuple(dict.fromkeys(codes)) if codes else None
        self._venue = redact_url(url or getattr(books.bus, "url", ""))
        self._name = name or books.name
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._events: deque[StatusEvent] = deque(maxlen=MAX_PENDING_EVENTS)
        self._shards: int | None = None
        self._shards_read_at = float("-inf")
        self._listener_id: int | None = books.add_listener(self._on_event, self._codes)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, BookStatusChanged):
            why = reason_of(event)
            with self._lock:
                self._events.append(StatusEvent(time.time(), event.code, event.old, event.new, why, why))

    def _drain(self) -> tuple[StatusEvent, ...]:
        with self._lock:
            events = tuple(self._events)
            self._events.clear()
        return events

    def _live_shards(self) -> int | None:
        now = time.monotonic()
        if now - self._shards_read_at >= SHARDS_EVERY_S:
            self._shards_read_at = now
            try:
                self._shards = len(self._books.live_shards())
            except BookUnavailable:
                self._shards = None
        return self._shards

    def _sample(self, code: str, figures: dict[str, Any]) -> BookSample:
        counters = {"applied": int(figures.get("diffs", 0)), "gaps": int(figures.get("gaps", 0)),
                    "resyncs": int(figures.get("rebootstraps", 0))}
        try:
            view: BookView = self._books.book(code, depth=VIEW_DEPTH)
        except BookUnavailable as exc:
            return BookSample(code=code, status=to_status("SYNCING"), reason=str(exc), seq=0, age_s=float("inf"),
                              **counters)
        return BookSample(code=code, status=view.status, reason=reason_of(view), seq=view.seq, age_s=view.age_s,
                          best_bid=view.best_bid, best_ask=view.best_ask, levels=view.complete_levels,
                          prices=tuple(p for p, _ in view.bids) + tuple(p for p, _ in view.asks), **counters)

    def _link(self, stats: dict[str, Any]) -> LinkSample:
        counters = stats["counters"]
        books = stats["books"].values()
        epochs = sorted({int(b["ep"]) for b in books if b.get("ep")})
        detail = []
        shards = self._live_shards()
        if shards is not None:
            detail.append(f"{shards} shard{'' if shards == 1 else 's'}")
        if epochs:
            detail.append(f"epoch{'s' if len(epochs) > 1 else ''} {epochs[0]}"
                          + (f"-{epochs[-1]}" if len(epochs) > 1 else ""))
        connected = bool(stats["connected"])
        return LinkSample(
            connected=connected, down_reason="" if connected else (self._books.last_error or "connecting"),
            failed="", epoch=0, reconnects=0, connect_failures=0, heartbeat_timeouts=0, malformed=0, name="redis",
            detail="  ".join(detail),
            counters=(("rebootstraps", int(counters.get("rebootstraps", 0))),
                      ("takeovers", sum(int(b.get("takeovers", 0)) for b in books)),
                      ("redis resets", int(counters.get("redis_resets", 0))),
                      ("bus errors", int(counters.get("bus_errors", 0)))))

    def snapshot(self) -> SourceSnapshot:
        stats = self._books.stats()
        codes = self._codes if self._codes is not None else tuple(sorted(stats["books"]))
        books = tuple(self._sample(code, stats["books"].get(code, {})) for code in codes)
        latencies = sorted(hop for hop, _ in self._books.latency_samples())
        return SourceSnapshot(
            venue=self._venue, dialect=f"cluster {self._name}", started_at=self.started_at, taken_at=time.monotonic(),
            link=self._link(stats), books=books, apply_p50_s=percentile(latencies, 0.5),
            apply_p99_s=percentile(latencies, 0.99), events=self._drain(), latency_label="e2e")

    def close(self) -> None:
        """Stop listening (idempotent); the RemoteBooks stays open (its owner closes it)."""
        if self._listener_id is not None:
            self._books.remove_listener(self._listener_id)
            self._listener_id = None


# -- without a terminal ----------------------------------------------------------------------


def read_views(books: RemoteBooks, codes: Sequence[str]) -> dict[str, BookView | None]:
    views: dict[str, BookView | None] = {}
    for code in codes:
        try:
            views[code] = books.book(code, depth=1)
        except BookUnavailable:
            views[code] = None
    return views


def render_plain(views: dict[str, BookView | None], stats: dict[str, Any], elapsed_s: float) -> str:
    """One plain-text table (no escape codes: for a pipe or a file)."""
    books = stats.get("books", {})
    head = (f"depthkeeper watch  up {elapsed_s:6.1f}s  redis {'ok' if stats.get('connected') else 'DOWN'}  "
            f"rebootstraps {stats.get('counters', {}).get('rebootstraps', 0)}")
    cols = (f"{'symbol':<10} {'status':<9} {'seq':>9} {'best bid':>12} {'best ask':>12} {'levels':>7} "
            f"{'age s':>7} {'epoch':>5} {'reboot':>6}  reason")
    lines = [head, "", cols, "-" * len(cols)]
    for code, view in views.items():
        if view is None:
            lines.append(f"{code:<10} {'-':<9}")
            continue
        info = books.get(code, {})
        age = f"{view.age_s:7.1f}" if view.age_s != float("inf") else f"{'-':>7}"
        bid = view.best_bid if view.best_bid is not None else "-"
        ask = view.best_ask if view.best_ask is not None else "-"
        lines.append(f"{code:<10} {view.status.name:<9} {view.seq:>9} {bid:>12} {ask:>12} "
                     f"{view.complete_levels[0]}/{view.complete_levels[1]:<5} {age} {info.get('ep', 0):>5} "
                     f"{info.get('rebootstraps', 0):>6}  {reason_of(view)}")
    return "\n".join(lines)


def json_row(views: dict[str, BookView | None], stats: dict[str, Any], elapsed_s: float) -> str:
    row = {"t": round(elapsed_s, 3), "connected": bool(stats.get("connected")), "counters": stats["counters"],
           "books": {code: None if v is None else
                     {"status": v.status.name, "seq": v.seq, "bid": v.best_bid, "ask": v.best_ask,
                      "reason": reason_of(v), "rebootstraps": stats["books"].get(code, {}).get("rebootstraps", 0)}
                     for code, v in views.items()}}
    return json.dumps(row)


def print_loop(books: RemoteBooks, codes: Sequence[str], stop: threading.Event, out: TextIO, *, as_json: bool,
               interval_s: float, duration_s: float | None, clear: bool = False) -> None:
    """Print a table (``clear``: redrawn in place with ANSI codes) or a JSON line per refresh until stopped."""
    started = time.monotonic()
    while True:
        views = read_views(books, codes)
        stats = books.stats()
        elapsed = time.monotonic() - started
        if as_json:
            out.write(json_row(views, stats, elapsed) + "\n")
        else:
            out.write(("\x1b[H\x1b[2J" if clear else "") + render_plain(views, stats, elapsed) + "\n\n")
        out.flush()
        if duration_s is not None and elapsed >= duration_s:
            return
        if stop.wait(interval_s):
            return
