"""Helpers of the cluster suites: a synthetic publisher, a truth checker, shard processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from depthkeeper.actors.messages import BookStatusChanged, BookUpdated, BookView
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.cluster.publisher import SlotPublisher
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.chaos.check import describe_diff, levels_from_text

ROOT = Path(__file__).resolve().parents[2]


class Feeder:
    """Publishes random books for ``codes`` through a real SlotPublisher (and heartbeats them),
    remembering every published LIVE view so a consumer's views can be checked exactly."""

    def __init__(self, bus: RedisBus, codes: list[str], *, epoch: int = 1, snapshot_every: int = 50,
                 seed: int = 1) -> None:
        self.bus = bus
        self.codes = codes
        self.epoch = epoch
        self.refusals: list[str] = []
        self.publisher = SlotPublisher(bus, 0, epoch, f"feeder-{epoch}", snapshot_every=snapshot_every,
                                       on_refused=lambda slot, code, verdict: self.refusals.append(verdict))
        self.publisher.claim(codes, "test feeder")
        self.rng = random.Random(seed)
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {c: ({}, {}) for c in codes}
        self.seqs = dict.fromkeys(codes, 0)
        self.published: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self, code: str) -> BookView:
        bids, asks = self.books[code]
        for _ in range(self.rng.randint(1, 3)):
            side, base = (bids, 1000) if self.rng.random() < 0.5 else (asks, 1100)
            price = float(base + self.rng.randint(0, 40) * (-1 if side is bids else 1)) / 10
            if price in side and self.rng.random() < 0.3:
                del side[price]
            else:
                side[price] = self.rng.randint(1, 99_999) / 1000
            self.seqs[code] += 1
        view = BookView(code, BookStatus.LIVE, self.seqs[code], tuple(sorted(bids.items(), reverse=True)),
                        tuple(sorted(asks.items())), time.time())
        self.published[(code, view.seq)] = (view.bids, view.asks)
        self.publisher.offer_view(view)
        return view

    def heartbeat(self) -> dict[str, int]:
        """Publish what is queued, then stamp the heartbeat of every code published."""
        self.publisher.flush()
        return self.bus.heartbeat(self.epoch, self.publisher.acked())

    def run(self, views_per_s: float) -> None:
        def loop() -> None:
            next_hb = 0.0
            while not self._stop.wait(1.0 / views_per_s):
                self.step(self.rng.choice(self.codes))
                if time.monotonic() >= next_hb:
                    self.heartbeat()
                    next_hb = time.monotonic() + 0.1

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.publisher.close()


class TruthChecker:
    """A RemoteBooks listener: every LIVE view must equal the venue's book at its seq.

    ``truth(code, seq)`` gives the expected (bids, asks); a checker thread does the work so the
    listener callback stays trivial. Status events are recorded with their time."""

    def __init__(self, truth: Any) -> None:
        self.truth = truth
        self.inbox: deque[Any] = deque()
        self.checked = 0
        self.violations: list[str] = []
        self.unchecked = 0
        self.errors: list[str] = []
        self.statuses: list[tuple[float, str, str, str]] = []
        self._last: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def __call__(self, event: Any) -> None:
        if isinstance(event, BookStatusChanged):
            self.statuses.append((time.monotonic(), event.code, event.old.name, event.new.name))
        elif isinstance(event, BookUpdated):
            self.inbox.append(event.view)

    def check(self, view: BookView) -> None:
        if view.status is not BookStatus.LIVE:
            return
        key = (view.seq, view.bids, view.asks)
        if self._last.get(view.code) == key:
            return
        self._last[view.code] = key
        self.checked += 1
        try:
            want = self.truth(view.code, view.seq)
        except Exception as exc:  # noqa: BLE001 - the venue is gone (shutting down): not a verdict
            self.unchecked += 1
            self.errors.append(repr(exc))
            return
        if want != (view.bids, view.asks):
            self.violations.append(f"LIVE {view.code} seq {view.seq}: {describe_diff(want, (view.bids, view.asks))}")

    def _run(self) -> None:
        while not self._stop.is_set() or self.inbox:
            while self.inbox:
                self.check(self.inbox.popleft())
            self._stop.wait(0.02)

    def drain(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.inbox and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the inbox against a deadline

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def saw(self, code: str, status: str, after: float = 0.0) -> float | None:
        """When ``code`` first moved to ``status`` after ``after`` (monotonic), or None."""
        return next((t for t, c, _, new in self.statuses if c == code and new == status and t >= after), None)


def sim_truth(sim: Any) -> Any:
    def truth(code: str, seq: int) -> tuple[Any, Any]:
        book = sim.book_at(code, seq)
        return levels_from_text(book["bids"]), levels_from_text(book["asks"])
    return truth


def write_shard_config(path: Path, *, sim: Any, redis_url: str, name: str, codes: list[str], slot_size: int,
                       lease_ttl_s: float = 1.0, snapshot_every: int = 200, extra: str = "") -> Path:
    path.write_text(f"""
[venue]
dialect = "article"
url = "{sim.url}"
snapshot_url = "{sim.rest_url}"
[symbols]
initial = {json.dumps(codes)}
[heartbeat]
interval_s = 0.5
silent_intervals = 3
[reconnect]
backoff_min_s = 0.05
backoff_max_s = 0.5
[snapshot]
max_per_second = 500.0
retry_min_s = 0.02
retry_max_s = 0.2
[calibration]
interval_s = 0.0
[log]
level = "INFO"
stats_interval_s = 0
[cluster]
redis_url = "{redis_url}"
name = "{name}"
lease_ttl_s = {lease_ttl_s}
slot_size = {slot_size}
snapshot_every = {snapshot_every}
connect_rate_per_s = 20.0
connect_burst = 10
{extra}
""")
    return path


class ShardProc:
    """One ``depthkeeper shard`` process; its id comes from its first stdout line."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "shard", "--config",
                                      str(config)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("w"),
                                     text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"shard did not start: {log.read_text()[-2000:]}")
        self.id = json.loads(line)["shard"]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
