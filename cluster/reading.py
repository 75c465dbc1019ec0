"""The reading side of ``RemoteBooks`` (a mixin of it, remote.py): its thread follows the streams.

Per symbol: bootstrap from the latest snapshot (one atomic script: status + snapshot id + every
entry since), then follow its stream with blocking reads per bucket; a gap, an epoch change
without a snapshot, a regression or trimmed history re-bootstraps that symbol only. A poll of the
status hashes every ``poll_interval_s`` carries the publishers' heartbeats and finds what the
stream alone cannot show (Redis lost its data; entries trimmed while this consumer was paused).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from depthkeeper.cluster.bus import Bus, BusUnavailable, Read
from depthkeeper.cluster.compat import BookUnavailable
from depthkeeper.cluster.follower import Follower

#: entries a bootstrap may replay (a stream holds a few snapshot intervals)
BOOTSTRAP_MAX = 100_000


class StreamReading:
    """The reader thread and the bootstrap/re-bootstrap logic (state lives on RemoteBooks)."""

    # RemoteBooks' state this mixin reads and writes (set in RemoteBooks.__init__)
    bus: Bus
    block_ms: int
    read_count: int
    poll_interval_s: float
    hb_timeout_s: float
    lease_ttl_ms: int
    counters: Counter[str]
    rebootstrap_reasons: Counter[str]
    latencies: deque[Any]
    fanout: Any
    last_error: str
    _lock: threading.Lock
    _followers: dict[str, Follower]
    _reboot: dict[str, str]
    _pending_behind: dict[str, Any]
    _hb: dict[str, tuple[float, float]]
    _boot: Any
    _wanted: set[str]
    _closed: threading.Event
    _connected: bool
    _next_poll: float
    _log: Any
    _report: Any

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
