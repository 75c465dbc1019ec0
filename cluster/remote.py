"""``RemoteBooks``: the cluster's books in any process, with the same ``book()`` contract as BookService.

A consumer never addresses a shard. Per symbol it bootstraps from the latest snapshot (one atomic
script: status + snapshot id + every entry since), then follows the symbol's stream: one blocking
``XREAD`` per bucket in flight, all waited on at once (``Bus.read``; never two buckets in one command,
which Redis Cluster refuses). Each symbol is a :class:`Follower` (follower.py): a
gap, an epoch change without a snapshot, an id/seq/epoch regression or trimmed history re-bootstraps
that symbol only. A poll of the status hashes (every ``poll_interval_s``) carries the publishers'
heartbeats and detects what the stream alone cannot show (Redis lost its data; entries trimmed
while this consumer was paused). A book is LIVE only while its publisher says LIVE, its book came
from a snapshot on an unbroken chain, and the publisher's heartbeat (Redis clock) is fresh.

One thread reads and applies; ``book()`` copies under a short lock in the caller's thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from loguru import logger

from depthkeeper.cluster.bus import Bus, BusUnavailable
from depthkeeper.cluster.compat import (
    BookUnavailable,
    BookView,
    SubscribeResult,
    make_status_event,
    make_view,
    to_status,
)
from depthkeeper.cluster.follower import RESYNCING, Follower, effective_status
from depthkeeper.cluster.listeners import Fanout
from depthkeeper.cluster.reading import StreamReading

DEFAULT_PATTERN = r"^[A-Z0-9]{2,30}$"
#: the publisher's heartbeat may be this old before a LIVE book shows STALE (shards publish the
#: real value, their lease TTL, in the cluster's meta hash)
DEFAULT_HB_TIMEOUT_S = 3.0


class RemoteBooks(StreamReading):
    """Books of the cluster ``name`` on ``redis_url``. Use as a context manager or call :meth:`close`."""

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0", name: str = "depthkeeper", *,
                 poll_interval_s: float = 0.25, block_ms: int = 100, read_count: int = 1000,
                 pattern: str = DEFAULT_PATTERN, record_latency: bool = False, redis_cluster: bool = False,
                 read_per_bucket: bool = True, bus: Bus | None = None) -> None:
        if bus is None:
            from depthkeeper.cluster.redis_bus import RedisBus

            bus = RedisBus(redis_url, name, socket_timeout_s=max(5.0, 2 * block_ms / 1000),
                           redis_cluster=redis_cluster, read_per_bucket=read_per_bucket)
        self.bus: Any = bus
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.block_ms = block_ms
        self.read_count = read_count
        self._pattern = re.compile(pattern)
        self._lock = threading.Lock()
        self._followers: dict[str, Follower] = {}
        #: per code: (heartbeat age in s at the poll, monotonic time of the poll)
        self._hb: dict[str, tuple[float, float]] = {}
        #: per code, a status hash read at a poll and when that poll started: the first read of the code's
        #: stream asked after it must reach it (else the entries in between are gone)
        self._pending_behind: dict[str, tuple[dict[str, str], float]] = {}
        self._reboot: dict[str, str] = {}
        self._reported: dict[str, tuple[str, str]] = {}
        #: codes this consumer asked the cluster for (asked again if Redis loses its data)
        self._wanted: set[str] = set()
        self._boot: str | None = None
        self.hb_timeout_s = DEFAULT_HB_TIMEOUT_S
        self.counters: Counter[str] = Counter()
        self.rebootstrap_reasons: Counter[str] = Counter()
        self.latencies: deque[tuple[float, float]] | None = deque(maxlen=200_000) if record_latency else None
        self.fanout = Fanout(self._view)
        self._log = logger.bind(actor="remote-books")
        self._closed = threading.Event()
        self._next_poll = 0.0
        self._connected = False
        #: the last "Redis unavailable" reason (kept after it is back: the live view shows it)
        self.last_error = ""
        #: the shards' lease TTL (their meta hash): how long a shard counts as live after its last beat
        self.lease_ttl_ms = int(DEFAULT_HB_TIMEOUT_S * 1000)
        try:  # the baseline that tells a later "Redis lost its data" apart
            self._boot = self.bus.boot_token()
            self._connected = True
        except BusUnavailable:
            self._log.warning("Redis unavailable at start; books stay SYNCING until it answers")
        self._thread = threading.Thread(target=self._run, name="depthkeeper-remote-books", daemon=True)
        self._thread.start()

    # -- public API (BookService's contract) ------------------------------------------------

    def subscribe(self, codes: Iterable[str]) -> SubscribeResult:
        """Add codes to the *cluster's* desired set and follow them here."""
        accepted: list[str] = []
        rejected: list[tuple[str, str]] = []
        for code in dict.fromkeys(codes):
            if self._pattern.fullmatch(code):
                accepted.append(code)
            else:
                rejected.append((code, f"does not match {self._pattern.pattern}"))
        added: tuple[str, ...] = ()
        if accepted:
            added, _ = self._call(self.bus.desire, add=accepted)
            self._wanted.update(accepted)
            self._follow(accepted)
        return SubscribeResult(tuple(accepted), tuple(rejected), tuple(added))

    def unsubscribe(self, codes: Iterable[str]) -> tuple[str, ...]:
        """Remove codes from the cluster's desired set (for every consumer); returns those that were in it."""
        codes = tuple(dict.fromkeys(codes))
        if not codes:
            return ()
        _, removed = self._call(self.bus.desire, remove=codes)
        self._wanted.difference_update(codes)
        with self._lock:
            for code in codes:
                self._followers.pop(code, None)
                self._reported.pop(code, None)
                self._hb.pop(code, None)
        return tuple(removed)

    def subscriptions(self) -> frozenset[str]:
        """The cluster's desired set."""
        return frozenset(self._call(self.bus.desired))

    def live_shards(self) -> list[str]:
        """Ids of the shards that beat within their lease TTL (the cluster's publishers right now)."""
        return list(self._call(self.bus.live_shards, self.lease_ttl_ms))

    def followed(self) -> frozenset[str]:
        """Codes this consumer follows."""
        with self._lock:
            return frozenset(self._followers)

    def book(self, code: str, depth: int | None = None) -> BookView:
        """A frozen view, best first: the same BookView class as BookService.book. A code in the
        cluster's desired set that this consumer does not follow yet is bootstrapped now."""
        view = self._view(code, depth)
        if view is not None:
            return view
        if code not in self.subscriptions():
            raise BookUnavailable(f"{code} is not subscribed in cluster {self.name!r}")
        self._follow([code])
        view = self._view(code, depth)
        if view is None:
            raise BookUnavailable(f"{code} was just unsubscribed")
        return view

    def add_listener(self, target: Any, codes: Iterable[str] | None = None, *, depth: int | None = None) -> int:
        """Deliver BookUpdated / BookStatusChanged (conflated views, ordered statuses); ``depth``
        cuts each view to that many levels a side, as in BookService.add_listener."""
        return self.fanout.add(target, codes, depth)

    def remove_listener(self, listener_id: int) -> bool:
        return self.fanout.remove(listener_id)

    def wait_live(self, codes: Iterable[str] | None = None, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        wanted = tuple(codes) if codes is not None else None
        while True:
            check = wanted if wanted is not None else tuple(self.followed())
            if all(self._status_name(c) == "LIVE" for c in check):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # polling a condition against a deadline

    def stats(self) -> dict[str, Any]:
        with self._lock:
            followers = {code: {"ep": f.ep, "sq": f.sq, "vs": f.vs, "state": f.state, "owner_state": f.why,
                                "rebootstraps": f.rebootstraps, "gaps": f.gaps, "takeovers": f.takeovers,
                                "diffs": f.diffs} for code, f in self._followers.items()}
        return {"connected": self._connected, "counters": dict(self.counters),
                "rebootstrap_reasons": dict(self.rebootstrap_reasons), "books": followers,
                "listeners": self.fanout.stats()}

    def latency_samples(self) -> list[tuple[float, float]]:
        """(shard book change -> applied here, publish -> applied here) in seconds, per applied
        entry since the last call (only with ``record_latency=True``)."""
        if self.latencies is None:
            return []
        out = []
        while self.latencies:
            out.append(self.latencies.popleft())
        return out

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=5.0)
        self.fanout.close()
        self.bus.close()

    def __enter__(self) -> RemoteBooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- views -----------------------------------------------------------------------------

    def _hb_age(self, code: str) -> float:
        seen = self._hb.get(code)
        return float("inf") if seen is None else seen[0] + (time.monotonic() - seen[1])

    def _effective(self, code: str, f: Follower) -> tuple[str, str]:
        if code in self._reboot:
            return RESYNCING, f"re-bootstrap: {self._reboot[code]}"
        return effective_status(f, self._hb_age(code), self.hb_timeout_s)

    def _status_name(self, code: str) -> str | None:
        with self._lock:
            f = self._followers.get(code)
            return None if f is None else self._effective(code, f)[0]

    def _view(self, code: str, depth: int | None) -> BookView | None:
        with self._lock:
            f = self._followers.get(code)
            if f is None:
                return None
            name, reason = self._effective(code, f)
            bids, asks = (dict(f.bids), dict(f.asks)) if f.bids is not None else ({}, {})
            seq, updated_at = f.vs, f.tu
        sorted_bids = tuple(sorted(bids.items(), reverse=True))
        sorted_asks = tuple(sorted(asks.items()))
        complete = (len(sorted_bids), len(sorted_asks))
        if depth is not None:
            sorted_bids, sorted_asks = sorted_bids[:depth], sorted_asks[:depth]
        return make_view(code, name, seq, sorted_bids, sorted_asks, updated_at, complete, reason)

    def _report(self, codes: Iterable[str]) -> None:
        """Tell listeners about effective status changes (call with the lock held)."""
        for code in codes:
            f = self._followers.get(code)
            if f is None:
                continue
            now = self._effective(code, f)
            before = self._reported.get(code, ("SYNCING", ""))
            if now[0] != before[0]:
                self._reported[code] = now
                if to_status(now[0]) is not to_status(before[0]):
                    self.fanout.status(make_status_event(code, before[0], now[0], f.vs, now[1]))
            else:
                self._reported[code] = now
