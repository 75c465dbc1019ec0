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

from depthkeeper.cluster.bus import Bus, BusUnavailable, Read
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

DEFAULT_PATTERN = r"^[A-Z0-9]{2,30}$"
#: the publisher's heartbeat may be this old before a LIVE book shows STALE (shards publish the
#: real value, their lease TTL, in the cluster's meta hash)
DEFAULT_HB_TIMEOUT_S = 3.0
#: entries a bootstrap may replay (a stream holds a few snapshot intervals)
BOOTSTRAP_MAX = 100_000


class RemoteBooks:
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
        self.fanout = Fanout(self._view_or_none)
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

    def add_listener(self, target: Any, codes: Iterable[str] | None = None) -> int:
        """Deliver BookUpdated / BookStatusChanged (conflated views, ordered statuses)."""
        return self.fanout.add(target, codes)

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

    def _view_or_none(self, code: str) -> BookView | None:
        return self._view(code, None)

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

    # -- the reader thread -----------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BusUnavailable as exc:
            raise BookUnavailable(f"the cluster's Redis is unavailable: {exc}") from None

    def _follow(self, codes: Iterable[str]) -> None:
        """Start following codes: bootstrap each now, in the caller's thread."""
        for code in codes:
            with self._lock:
                if code in self._followers:
                    continue
                self._followers[code] = Follower(code)
            try:
                self._bootstrap(code)
            except BusUnavailable:
                with self._lock:
                    self._reboot[code] = "Redis unavailable"

    def _bootstrap(self, code: str) -> None:
        boot = self.bus.bootstrap(code, BOOTSTRAP_MAX)
        with self._lock:
            f = self._followers.get(code)
            if f is None:
                return
            f.reset()
            last = "0-0"
            for entry_id, fields in boot.entries:
                last = entry_id
                if f.apply(entry_id, fields) is not None:
                    f.reset()  # not contiguous after all: position on the status instead
                    break
            if not f.anchored:
                f.anchor(boot.status, last)
            hb = boot.status.get("hb")
            if hb is not None:
                self._hb[code] = ((boot.now_ms - int(hb)) / 1000.0, time.monotonic())
            self._reboot.pop(code, None)
            self._pending_behind.pop(code, None)
            self.counters["bootstraps"] += 1
            self._report([code])
        self.fanout.mark(code)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._step()
                self._connected = True
            except BusUnavailable as exc:
                if self._connected:
                    self._log.warning("Redis unavailable: {}", exc)
                self.last_error = " ".join(str(exc).split()) or "Redis unavailable"
                self._connected = False
                self.counters["bus_errors"] += 1
                self._closed.wait(0.1)
            except Exception as exc:  # noqa: BLE001 - the reader must outlive a bug in one step
                self.counters["errors"] += 1
                self._log.opt(exception=exc).error("reader step failed")
                self._closed.wait(0.1)

    def _step(self) -> None:
        for code, _reason in list(self._reboot.items()):
            self._bootstrap(code)
        if time.monotonic() >= self._next_poll:
            self._poll()
            self._next_poll = time.monotonic() + self.poll_interval_s
        with self._lock:
            cursors = {code: f.cursor for code, f in self._followers.items() if code not in self._reboot}
        if not cursors:
            self._closed.wait(self.block_ms / 1000)
            return
        block = max(1, min(self.block_ms, int((self._next_poll - time.monotonic()) * 1000)))
        answer = self.bus.read(cursors, block, self.read_count)
        self.counters["reads"] += 1
        self._apply(cursors, answer)

    def _apply(self, cursors: dict[str, str], answer: Read) -> None:
        now_s = time.time()
        changed = []
        with self._lock:
            for code, entries in answer.entries.items():
                f = self._followers.get(code)
                if f is None or f.cursor != cursors[code] or code in self._reboot:
                    continue  # unfollowed or re-bootstrapped meanwhile: read again from its cursor
                for entry_id, fields in entries:
                    reason = f.apply(entry_id, fields)
                    if reason is not None:
                        self._rebootstrap(code, f, reason)
                        break
                    if f.healed is not None:  # a gap crossed on a snapshot: a re-bootstrap in place
                        self._count_rebootstrap(code, f, f.healed)
                    if fields["t"] == "X":
                        self._report([code])  # every status entry is seen, even inside one batch
                    if self.latencies is not None and fields["t"] != "X":
                        self.latencies.append((now_s - f.tu, now_s - f.tp / 1e6))
                self.counters["entries"] += len(entries)
                changed.append(code)
            for code, (status, polled_at) in list(self._pending_behind.items()):
                if answer.asked_at.get(code, -1.0) < polled_at or len(answer.entries.get(code, ())) >= self.read_count:
                    continue  # not read since that poll, or more to read: not conclusive yet
                del self._pending_behind[code]
                f = self._followers.get(code)
                if f is not None and code not in self._reboot:
                    reason = f.behind(status)
                    if reason is not None:
                        self._rebootstrap(code, f, reason)
            self._report(changed)
        for code in changed:
            self.fanout.mark(code)

    def _rebootstrap(self, code: str, f: Follower, reason: str) -> None:
        """Queue a re-bootstrap of ``code`` (lock held); the reader runs it before its next read."""
        self._count_rebootstrap(code, f, reason)
        self._reboot[code] = reason

    def _count_rebootstrap(self, code: str, f: Follower, reason: str) -> None:
        f.rebootstraps += 1
        if reason.startswith("gap"):
            f.gaps += 1
        self.counters["rebootstraps"] += 1
        self.rebootstrap_reasons[reason.split(":")[0].split(" (")[0]] += 1
        self._log.bind(symbol=code).info("re-bootstrap {}: {}", code, reason)

    def _poll(self) -> None:
        boot = self.bus.boot_token()
        if boot != self._boot:
            if self._boot is not None:
                self.counters["redis_resets"] += 1
                self._log.warning("Redis lost its data (boot token {} -> {}); asking for {} codes again", self._boot,
                                  boot, len(self._wanted))
            if self._wanted:  # idempotent: codes still desired are not added twice
                self.bus.desire(add=sorted(self._wanted))
        self._boot = boot
        meta = self.bus.meta()
        if "hb_timeout_ms" in meta:
            self.hb_timeout_s = int(meta["hb_timeout_ms"]) / 1000.0
        if "lease_ttl_ms" in meta:
            self.lease_ttl_ms = int(meta["lease_ttl_ms"])
        with self._lock:
            codes = list(self._followers)
        if not codes:
            return
        polled_at = time.monotonic()
        now_ms, statuses = self.bus.statuses(codes)
        mono = time.monotonic()
        self.counters["polls"] += 1
        with self._lock:
            for code in codes:
                f = self._followers.get(code)
                if f is None:
                    continue
                status = statuses.get(code, {})
                hb = status.get("hb")
                self._hb[code] = ((now_ms - int(hb)) / 1000.0 if hb else float("inf"), mono)
                if code in self._reboot:
                    continue
                reason = f.regressed(status)
                if reason is not None:
                    self._rebootstrap(code, f, reason)
                else:  # the oldest pending check stays until a read resolves it (a quiet stream is read rarely)
                    self._pending_behind.setdefault(code, (status, polled_at))
            self._report(codes)
