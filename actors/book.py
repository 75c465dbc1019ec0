"""BookActor: one per symbol; a thin shell around a pure OrderBook and its sync policy.

Started when its code is subscribed (its book storage is created then), stopped and freed
when the code is unsubscribed. It never does I/O: snapshots come from the SnapshotActor
by message, and views leave by message or through the ListenerHub.

Snapshot timing (article dialect): after a (re)start the snapshot is requested as soon as
the first diff of the epoch is buffered, so the snapshot is fetched *after* the stream it
must bridge has begun (fetching first would almost always need a second fetch). A quiet
or frozen market sends no diff, so a short deadline (``FIRST_DIFF_WAIT_S``) fetches anyway.

Epoch fencing: every batch carries the connection epoch. Data from an older epoch is
ignored; data from a newer epoch starts a new sync before it is used (the Resync the tree
sends for that epoch may still be on its way).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from depthkeeper.actors.calibration import Calibration
from depthkeeper.actors.messages import (
    BookStats,
    BookStatusChanged,
    BookView,
    Calibrate,
    CheckStale,
    DiffBatch,
    FetchDeadline,
    GetBookStats,
    GetLatencies,
    GetView,
    PushBatch,
    RequestSnapshot,
    Resync,
    SnapshotLost,
    SnapshotReady,
)
from depthkeeper.actors.orderbook import BookStatus, OrderBook
from depthkeeper.actors.readport import BookReadPort
from depthkeeper.actors.samples import Ring
from depthkeeper.actors.sync import ResyncReason, SyncAction, make_policy
from depthkeeper.supervisor.base import SupervisedActor

if TYPE_CHECKING:
    from depthkeeper.actors.listeners import ListenerHub
    from depthkeeper.actors.readport import ReadPorts
    from depthkeeper.actors.routing import Peers
    from depthkeeper.supervisor.config import BookConfig
    from depthkeeper.supervisor.dispatch import Dispatcher
    from depthkeeper.supervisor.scheduler import Scheduler
    from depthkeeper.supervisor.spec import ChildContext

_REASONS = {r.value: r for r in ResyncReason}
_SEQ_BREAKS = frozenset({"gap", "repeat", "backwards"})
#: how long a (re)started article book waits for its first diff before fetching anyway
FIRST_DIFF_WAIT_S = 0.2
#: latency samples kept per book (a power of two): at most ~20 KB per book for the three rings
LATENCY_SAMPLES = 1024


class BookActor(SupervisedActor):
    """Keeps one symbol's book in sync; see the module docstring."""

    def __init__(self, ctx: ChildContext, code: str, *, dialect: str, cfg: BookConfig,
                 peers: Peers, hub: ListenerHub, scheduler: Scheduler,
                 epoch: int, calibration_interval_s: float = 0.0, latency_histogram: Any = None,
                 ports: ReadPorts | None = None, dispatcher: Dispatcher | None = None) -> None:
        super().__init__(ctx, dispatcher=dispatcher)
        self.code = code
        self._cfg = cfg
        self._peers = peers
        self._hub = hub
        self._scheduler = scheduler
        self._epoch = epoch
        self._calibration_interval_s = calibration_interval_s
        #: optional prometheus Histogram (frame read -> applied), observed once per batch
        self._histogram = latency_histogram
        self._timers: list[Any] = []
        self.book = OrderBook(code, cfg.max_levels)
        self._ports = ports
        self._port = BookReadPort(code, self.book, self)
        self.policy = make_policy(dialect, self.book, cfg.snapshot_buffer)
        self._calibration = Calibration(self.book)
        #: a snapshot is wanted but deferred until the first diff (or the deadline)
        self._fetch_deferred = False
        self._updated_at = 0.0
        #: batches from an older socket epoch, ignored (exposed in stats)
        self._old_epoch_batches = 0
        #: end-to-end latencies (venue send -> applied), seconds, per batch (rings: see samples.py)
        self.latencies = Ring(LATENCY_SAMPLES)
        #: diffs in the batch of each latency sample (appended in step with ``latencies``)
        self.latency_sizes = Ring(LATENCY_SAMPLES, "I")
        #: reader thread -> applied latencies, seconds
        self.apply_latencies = Ring(LATENCY_SAMPLES)
        self._log = logger.bind(actor="book", symbol=code)

    # -- lifecycle ---------------------------------------------------------------------

    def init(self) -> None:
        if self._ports is not None:
            self._ports.register(self._port)
        self._after(self.policy.start(ResyncReason.START), BookStatus.SYNCING, "start")
        if self._calibration_interval_s > 0:
            self._timers.append(self._scheduler.schedule_every(self._calibration_interval_s, self.actor_ref, Calibrate()))
        if self._cfg.stale_after_s > 0:
            period = max(self._cfg.stale_after_s / 4, 0.01)
            self._timers.append(self._scheduler.schedule_every(period, self.actor_ref, CheckStale()))

    def cleanup(self) -> None:
        if self._ports is not None:
            self._ports.unregister(self._port)
        for timer in self._timers:
            self._scheduler.cancel(timer)
        self._timers.clear()

    def on_receive(self, message: Any) -> Any:
        port = self._port
        port.gen += 1  # odd: readers outside the tree retry (see readport.py)
        try:
            return self._dispatch(message)
        finally:
            port.updated_at = self._updated_at
            port.gen += 1

    def _dispatch(self, message: Any) -> Any:
        match message:
            case DiffBatch():
                self._on_diffs(message)
            case PushBatch():
                self._on_push(message)
            case SnapshotReady():
                self._on_snapshot(message)
            case Resync():
                self._on_resync(message)
            case SnapshotLost():
                if self.policy.awaiting_snapshot and not self._fetch_deferred:
                    self.policy.refetch()
                    self._send_request()  # the lost request was already due
            case Calibrate():
                self._on_calibrate()
            case CheckStale():
                self._on_check_stale()
            case FetchDeadline(token=token):
                if self._fetch_deferred and token == self.policy.request_token:
                    self._send_request()
            case GetView():
                return self.view(message.depth)
            case GetBookStats():
                return self.stats()
            case GetLatencies(since=since):
                return self.latency_window(since)
            case _:
                return super().on_receive(message)
        return None

    # -- handlers ----------------------------------------------------------------------

    def _fence(self, epoch: int) -> bool:
        """False for data of an older epoch; starts a new sync for a newer one."""
        if epoch < self._epoch:
            self._old_epoch_batches += 1
            return False
        if epoch > self._epoch:
            self._resync(epoch, ResyncReason.RECONNECT)
        return True

    def _on_diffs(self, batch: DiffBatch) -> None:
        if not self._fence(batch.epoch):
            return
        before, seq = self.book.status, self.book.last_seq
        action = self.policy.on_diffs(batch.diffs)
        if self._calibration.active:
            self._calibration.record(batch.diffs)
        applied = self.book.last_seq != seq
        if applied:
            self._record_latency(batch)
        self._after(action, before, self.policy.last_reason.value)
        if applied:
            self._check_lag(time.monotonic() - batch.received_at)
        if self._fetch_deferred and self.policy.buffered:
            self._send_request()  # the stream has begun: now the snapshot can bridge it
        if self._calibration.pending_snapshot is not None:
            self._finish_calibration()

    def _record_latency(self, batch: DiffBatch) -> None:
        self._updated_at = time.time()
        sent_at = batch.diffs[0].sent_at  # the oldest diff of the batch waited longest
        if sent_at:
            self.latencies.append(self._updated_at - sent_at)
            self.latency_sizes.append(len(batch.diffs))
        hop_s = time.monotonic() - batch.received_at
        self.apply_latencies.append(hop_s)
        if self._histogram is not None:
            self._histogram.observe(hop_s)

    def _check_lag(self, lag_s: float) -> None:
        """A flood we cannot keep up with makes reads stale: say so, and say when it is over."""
        max_lag = self._cfg.max_lag_s
        status = self.book.status
        if status is BookStatus.LIVE and max_lag and lag_s > max_lag:
            self._set_status(BookStatus.STALE, f"behind the stream by {lag_s:.3f}s")
        elif status is BookStatus.STALE and (not max_lag or lag_s <= max_lag / 2):
            self._set_status(BookStatus.LIVE, "caught up")

    def _on_push(self, batch: PushBatch) -> None:
        if not self._fence(batch.epoch):
            return
        before, seq = self.book.status, self.book.last_seq
        action = self.policy.on_push(batch.push)
        if self.book.last_seq != seq:
            self._updated_at = time.time()
            if self._histogram is not None:
                self._histogram.observe(time.monotonic() - batch.received_at)
        self._after(action, before, self.policy.last_reason.value)

    def _on_snapshot(self, reply: SnapshotReady) -> None:
        if self._calibration.owns(reply.token):
            self._calibration.receive(reply.snapshot)
            self._finish_calibration()
            return
        before, seq = self.book.status, self.book.last_seq
        action = self.policy.on_snapshot(reply.snapshot, reply.token)
        if self.book.last_seq != seq or self.book.status is not before:
            self._updated_at = time.time()
        self._after(action, before, "snapshot")

    def _on_resync(self, message: Resync) -> None:
        if message.epoch < self._epoch:
            return
        reason = _REASONS.get(message.reason, ResyncReason.REQUESTED)
        if message.epoch == self._epoch and reason is ResyncReason.RECONNECT:
            return  # already started when the first batch of this epoch arrived
        self._resync(message.epoch, reason)

    def _resync(self, epoch: int, reason: ResyncReason) -> None:
        first_socket = self._epoch == 0
        self._epoch = epoch
        if first_socket and reason is ResyncReason.RECONNECT:
            return  # no socket data held yet (at most a REST fill): nothing to throw away
        before = self.book.status
        self._calibration.cancel()
        policy = self.policy
        if reason is ResyncReason.RECONNECT and policy.awaiting_snapshot and not policy.buffered:
            return  # nothing of the old epoch is held; the pending request still serves
        self._after(policy.start(reason), before, reason.value)

    def _on_calibrate(self) -> None:
        if self.book.status is not BookStatus.LIVE or self._calibration.active:
            return
        token = self._calibration.begin()
        self._peers.tell_snapshot(RequestSnapshot(self.code, token, self.actor_ref))

    def _finish_calibration(self) -> None:
        drift = self._calibration.finish()
        if drift is None:
            return
        if drift:
            self._log.warning("calibration drift: {} levels differed at seq {}; book repaired", drift,
                              self.book.last_seq)
        else:
            self._log.debug("calibration ok at seq {}", self.book.last_seq)
        self._publish_update()

    def _on_check_stale(self) -> None:
        if self.book.status is BookStatus.LIVE and time.time() - self._updated_at > self._cfg.stale_after_s:
            self._set_status(BookStatus.STALE, "no update for stale_after_s")

    # -- effects -------------------------------------------------------------------------

    def _after(self, action: SyncAction, before: BookStatus, reason: str) -> None:
        if action is SyncAction.FETCH_SNAPSHOT:
            self._request(action)
        now = self.book.status
        if now is not before:
            self._announce(before, now, reason)
        self._publish_update()

    def _request(self, action: SyncAction) -> None:
        if action is not SyncAction.FETCH_SNAPSHOT:
            return
        if self.policy.fetch_after_first_diff and not self.policy.buffered:
            self._fetch_deferred = True
            self._scheduler.schedule(FIRST_DIFF_WAIT_S, self.actor_ref, FetchDeadline(self.policy.request_token))
        else:
            self._send_request()

    def _send_request(self) -> None:
        self._fetch_deferred = False
        self._peers.tell_snapshot(RequestSnapshot(self.code, self.policy.request_token, self.actor_ref))

    def _set_status(self, status: BookStatus, reason: str) -> None:
        before = self.book.status
        self.book.status = status
        if before is not status:
            self._announce(before, status, reason)

    def _announce(self, before: BookStatus, now: BookStatus, reason: str) -> None:
        if now is BookStatus.RESYNCING and reason in _SEQ_BREAKS:
            self._log.bind(event="seq_break", epoch=self._epoch).warning(
                "seq break ({}): resyncing from seq {}", reason, self.book.last_seq)
        elif now is BookStatus.RESYNCING:
            self._log.bind(epoch=self._epoch).info("resyncing ({}) from seq {}", reason, self.book.last_seq)
        else:
            self._log.bind(epoch=self._epoch).info("status {} -> {} ({}) at seq {}", before.name, now.name, reason,
                                                  self.book.last_seq)
        if self._hub.active:
            self._hub.publish(BookStatusChanged(self.code, before, now, self.book.last_seq, reason), self.code)

    def _publish_update(self) -> None:
        if self._hub.active:
            self._hub.mark_updated(self.code)  # listeners read the view lazily (no view built here)

    # -- reads ---------------------------------------------------------------------------

    def view(self, depth: int | None) -> BookView:
        bids, asks = self.book.top(depth)
        return BookView(self.code, self.book.status, self.book.last_seq, bids, asks, self._updated_at,
                        self.book.complete_levels())

    def latency_window(self, since: int = 0) -> tuple[int, list[tuple[float, int]]]:
        """(samples ever recorded, the kept ``(latency, diffs)`` samples recorded after ``since``)."""
        count = self.latencies.count
        kept = count - since
        if kept <= 0:
            return count, []
        return count, list(zip(self.latencies.last(kept), self.latency_sizes.last(kept), strict=True))

    def stats(self) -> BookStats:
        c = self.policy.counters
        inbox = self.actor_inbox.qsize()
        e2e = self.latencies.sorted()
        hop = self.apply_latencies.sorted()
        return BookStats(self.code, self.book.status, self.book.last_seq, c.applied, c.gaps, c.resyncs,
                         c.duplicates, c.overflows, c.crossed, c.stale_dropped, self._calibration.drifted_levels,
                         self._calibration.completed, self._updated_at, self._epoch, inbox,
                         _pct(e2e, 0.5), _pct(e2e, 0.99), e2e[-1] if e2e else 0.0, _pct(hop, 0.5), _pct(hop, 0.99),
                         self._old_epoch_batches)


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
