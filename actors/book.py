"""BookActor: one per symbol; a thin shell around a pure OrderBook and its sync policy.

Started when its code is subscribed (its book storage is created then), stopped and freed
when the code is unsubscribed. It never does I/O: snapshots come from the SnapshotActor
by message, and views leave by message or through the ListenerHub.

The LIVE promise (see promise.py): the policy decides (b) "the seq chain is unbroken since a
validated snapshot bridged onto this socket's stream"; this actor adds (a) and (c): it
leaves LIVE the moment the tree tells it the socket is gone (``SocketLost``) or the venue
rejected the code (``CodeRejected``), fetches nothing while either holds, and becomes LIVE
again only through a fresh sync on a live socket. Every read also passes through
``promise.shown_status``, so a reader never sees LIVE on a dead or silent socket even
before this actor has heard of it.

Snapshot timing (policies that bridge a stream, e.g. article): after a (re)start the snapshot
is requested as soon as the first diff of the epoch is buffered, so the snapshot is fetched
*after* the stream it must bridge has begun. A quiet or frozen market sends no diff, so a short deadline
(``FIRST_DIFF_WAIT_S``) fetches anyway; such a snapshot, held for a stream that sent nothing, is
taken LIVE only if the venue had confirmed the code's subscription on this socket before it was
fetched (the ``SubscriptionLedger``): a silence before that is a stream that has not begun (a
SUBSCRIBE still in flight, or held back while Binance's all-or-nothing refusal is split), not a
quiet market. Every fetch after a failed attempt (a snapshot that
was empty, short, crossed, stale, ahead of the stream, or a buffer overflow) waits a per-book
backoff (capped, full jitter), whatever the failure, so one book cannot spend the REST budget
the others share; the backoff resets when the book is LIVE again.

Epoch fencing: data from an older (or a lost) socket epoch is ignored; data from a newer epoch
starts a new sync before it is used (the tree's Resync for it may still be on its way).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from depthkeeper.actors.core.calibration import Calibration
from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.samples import Latencies
from depthkeeper.actors.core.sync import SEQ_BREAKS, ResyncReason, SyncAction
from depthkeeper.actors.messages import (
    BookStatusChanged,
    BridgeDeadline,
    Calibrate,
    CheckRejected,
    CheckStale,
    CodeRejected,
    DiffBatch,
    FetchDeadline,
    GetBookStats,
    GetLatencies,
    GetView,
    PushBatch,
    RequestSnapshot,
    Resync,
    RetrySnapshot,
    SnapshotLost,
    SnapshotReady,
    SocketLost,
)
from depthkeeper.actors.readport import BookReadPort
from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.scheduler import ActorTimers
from depthkeeper.supervisor.otp.spec import Backoff

if TYPE_CHECKING:
    from depthkeeper.actors.listeners import ListenerHub
    from depthkeeper.actors.readport import ReadPorts
    from depthkeeper.actors.routing import Peers, SubscriptionLedger
    from depthkeeper.actors.settings import BookConfig
    from depthkeeper.actors.venues import Venue
    from depthkeeper.supervisor.otp.dispatch import Dispatcher
    from depthkeeper.supervisor.otp.scheduler import Scheduler
    from depthkeeper.supervisor.otp.spec import ChildContext

#: how long a (re)started article book waits for its first diff before fetching anyway
FIRST_DIFF_WAIT_S = 0.2
#: statuses the sync policy drives (their reason is the policy's)
_SYNCING = (BookStatus.SYNCING, BookStatus.RESYNCING)
_SEQ_BREAK_VALUES = frozenset(r.value for r in SEQ_BREAKS)
_NONE = SyncAction.NONE
_LIVE = BookStatus.LIVE
#: latency samples kept per book (a power of two): at most ~20 KB per book for the three rings
LATENCY_SAMPLES = 1024


class BookActor(SupervisedActor):
    """Keeps one symbol's book in sync; see the module docstring."""

    log_name = "book"

    def __init__(self, ctx: ChildContext, code: str, *, venue: Venue, cfg: BookConfig,
                 peers: Peers, hub: ListenerHub, scheduler: Scheduler,
                 epoch: int, calibration_interval_s: float = 0.0, latency_histogram: Any = None,
                 ports: ReadPorts | None = None, dispatcher: Dispatcher | None = None,
                 socket: SocketState | None = None, rejected: str | None = None,
                 rng: random.Random | None = None, ledger: SubscriptionLedger | None = None,
                 rejected_now: Callable[[], str | None] | None = None) -> None:
        super().__init__(ctx, dispatcher=dispatcher)
        self.code = code
        self._cfg = cfg
        self._peers = peers
        self._hub = hub
        #: calibration/staleness ticks and the one-shot sync deadlines (freed on stop)
        self._timers = ActorTimers(scheduler, self.actor_ref)
        self._epoch = epoch
        #: the newest epoch whose socket we were told is gone (its late data is ignored)
        self._lost_epoch = 0
        self._socket = socket
        #: what the venue has confirmed of our subscriptions (None: take every code as confirmed)
        self._ledger = ledger
        #: the venue had confirmed our subscription when the snapshot in flight was requested
        self._fetched_subscribed = True
        #: the venue's refusal, while it stands
        self._rejected = rejected
        #: the tree's record of the refusal, read on CheckRejected (None: nothing to check against)
        self._rejected_now = rejected_now
        self._calibration_interval_s = calibration_interval_s
        #: optional prometheus Histogram (frame read -> applied), observed once per batch
        self._histogram = latency_histogram
        self.book = OrderBook(code, cfg.max_levels)
        self._ports = ports
        self.policy = venue.make_policy(self.book, cfg)
        self._calibration = Calibration(self.book)
        #: end-to-end and in-process latencies per applied batch (rings: see samples.py)
        self.latencies = Latencies(LATENCY_SAMPLES)
        #: the read side (views, stats, latencies), shared with readers outside the tree
        self._port = BookReadPort(code, self.book, sync=self.policy.counters, calibration=self._calibration,
                                  latencies=self.latencies, inbox=self.actor_inbox)
        self._port.socket = socket
        self._port.epoch = epoch
        self._port.levels_held = self.policy.levels_held
        #: a snapshot is wanted but deferred until the first diff (or the deadline, or a socket)
        self._fetch_deferred = False
        #: failed snapshot attempts since the book was last LIVE, and the wait before the next
        self._backoff = Backoff(cfg.resync_backoff_min_s, cfg.resync_backoff_max_s, rng or random.Random())
        self._ever_live = False
        self._updated_at = 0.0
        self.bind_log(symbol=code)

    # -- lifecycle ---------------------------------------------------------------------

    def init(self) -> None:
        if self._ports is not None:
            # A restart must not forget how deep the book was: a short snapshot is judged against it.
            self.policy.memory = self._ports.levels_held(self.code)
            self._ports.register(self._port)
        if self._rejected is not None:
            self._reject(self._rejected)
        else:
            self._after(self.policy.start(ResyncReason.START), BookStatus.SYNCING)
        if self._calibration_interval_s > 0:
            self._timers.every(self._calibration_interval_s, Calibrate())
        if self._cfg.stale_after_s > 0:
            period = max(self._cfg.stale_after_s / 4, 0.01)
            self._timers.every(period, CheckStale())

    def cleanup(self) -> None:
        if self._ports is not None:
            self._ports.unregister(self._port)
        self._timers.cancel_all()

    def on_receive(self, message: Any) -> Any:
        port = self._port
        port.gen += 1  # odd: readers outside the tree retry (see readport.py)
        try:
            return self._dispatch(message)
        finally:
            port.updated_at = self._updated_at
            port.epoch = self._epoch
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
            case SocketLost(epoch=epoch, reason=reason):
                self._on_socket_lost(epoch, reason)
            case CodeRejected(reason=reason):
                if self._rejected is None:
                    self._reject(reason)
            case CheckRejected():
                self._check_rejected()
            case SnapshotLost():
                due = self.policy.awaiting_snapshot and not self._fetch_deferred
                if due and not self._timers.pending(RetrySnapshot):
                    self.policy.refetch()
                    self._request(due=True)  # the lost request was already due
            case RetrySnapshot(token=token) | FetchDeadline(token=token):
                self._timers.fired(type(message))
                if token == self.policy.request_token and self.policy.awaiting_snapshot:
                    self._request(due=True)
            case BridgeDeadline(token=token):
                self._timers.fired(BridgeDeadline)
                before = self.book.status
                self._after(self.policy.bridge_deadline(token, subscribed_at_fetch=self._fetched_subscribed,
                                                        subscribed_now=self._subscribed()), before)
            case Calibrate():
                self._on_calibrate()
            case CheckStale():
                self._on_check_stale()
            case GetView():
                return self._port.owner_view(message.depth)
            case GetBookStats():
                return self._port.owner_stats()
            case GetLatencies(since=since):
                return self.latencies.window(since)
            case _:
                return super().on_receive(message)
        return None

    # -- data --------------------------------------------------------------------------

    def _fence(self, epoch: int) -> bool:
        """False for data of an older or lost epoch (or of a rejected code); a newer epoch starts a new sync."""
        if epoch < self._epoch or epoch <= self._lost_epoch:
            self._port.counters.old_epoch_batches += 1
            return False
        if epoch > self._epoch:
            self._resync(epoch, ResyncReason.RECONNECT)
        return self._rejected is None

    def _on_diffs(self, batch: DiffBatch) -> None:
        epoch = batch.epoch
        # the fence's question asked only when the answer can be other than "ours, use it"
        if (epoch != self._epoch or self._rejected is not None or epoch <= self._lost_epoch) and not self._fence(epoch):
            return
        book = self.book
        before, seq = book.status, book.last_seq
        action = self.policy.on_diffs(batch.diffs)
        calibration = self._calibration
        if calibration.active:
            calibration.record(batch.diffs)
        if book.last_seq != seq:
            lag_s = self._record_latency(batch)
            if action is _NONE and book.status is before and before is _LIVE and not calibration.active:
                # the common case, in short: nothing to do, nothing new to say but the update
                self._publish_update()
                max_lag = self._cfg.max_lag_s
                if max_lag and lag_s > max_lag:
                    self._check_lag(lag_s)
                return
            self._after(action, before)
            self._check_lag(lag_s)
        else:
            self._after(action, before)
        if self._fetch_deferred and self.policy.buffered:
            self._request()  # the stream has begun: now the snapshot can bridge it
        if calibration.pending_snapshot is not None:
            self._finish_calibration()

    def _record_latency(self, batch: DiffBatch) -> float:
        """Record the batch's latencies; returns how long ago its chunk was read (the lag)."""
        self._updated_at = now = time.time()
        sent_at = batch.diffs[0].sent_at  # the oldest diff of the batch waited longest
        hop_s = time.monotonic() - batch.received_at
        self.latencies.record(now - sent_at if sent_at else None, len(batch.diffs), hop_s)
        if self._histogram is not None:
            self._histogram.observe(hop_s)
        return hop_s

    def _check_lag(self, lag_s: float) -> None:
        """A flood we cannot keep up with makes reads stale: say so, and say when it is over."""
        max_lag = self._cfg.max_lag_s
        status = self.book.status
        if status is BookStatus.LIVE and max_lag and lag_s > max_lag:
            self._set_status(BookStatus.STALE, "stale", f"behind the stream by {lag_s:.3f}s")
        elif status is BookStatus.STALE and (not max_lag or lag_s <= max_lag / 2):
            self._set_status(BookStatus.LIVE, "caught_up", "in sync (caught up)")

    def _on_push(self, batch: PushBatch) -> None:
        if not self._fence(batch.epoch):
            return
        before, seq = self.book.status, self.book.last_seq
        action = self.policy.on_push(batch.push)
        if self.book.last_seq != seq:
            self._updated_at = time.time()
            if self._histogram is not None:
                self._histogram.observe(time.monotonic() - batch.received_at)
        self._after(action, before)

    def _on_snapshot(self, reply: SnapshotReady) -> None:
        if self._calibration.owns(reply.token):
            self._calibration.receive(reply.snapshot)
            self._finish_calibration()
            return
        before, seq = self.book.status, self.book.last_seq
        action = self.policy.on_snapshot(reply.snapshot, reply.token)
        if self.book.last_seq != seq or self.book.status is not before:
            self._updated_at = time.time()
        self._after(action, before)

    # -- the socket and the venue ----------------------------------------------------------

    def _on_resync(self, message: Resync) -> None:
        if message.epoch < self._epoch:
            return
        reason = message.reason
        if reason is ResyncReason.RESUBSCRIBED:
            self._rejected = None
        elif message.epoch == self._epoch and reason is ResyncReason.RECONNECT:
            return  # already started when the first batch of this epoch arrived
        self._resync(message.epoch, reason)

    def _resync(self, epoch: int, reason: ResyncReason) -> None:
        self._epoch = epoch
        self._calibration.cancel()
        if self._rejected is not None:
            return  # nothing is streamed for a rejected code; it waits for an explicit subscribe
        before = self.book.status
        if not self._ever_live and before is not BookStatus.RESYNCING:
            reason = ResyncReason.START  # the first sync is still the first sync on a new socket
        self._after(self.policy.start(reason), before)

    def _on_socket_lost(self, epoch: int, reason: str) -> None:
        if epoch < self._epoch:
            return  # an older socket than the one this book syncs on
        self._lost_epoch = max(self._lost_epoch, epoch)
        self._suspend()
        if self._rejected is None:
            self._set_status(BookStatus.DISCONNECTED, "disconnected", f"socket down: {reason}")

    def _check_rejected(self) -> None:
        """Catch up with a refusal (or its lift) that the tree told our predecessor while we started."""
        now = self._rejected_now() if self._rejected_now is not None else self._rejected
        if now is not None and self._rejected is None:
            self._reject(now)
        elif now is None and self._rejected is not None:
            self._rejected = None  # the code was subscribed again meanwhile: sync it
            self._resync(self._epoch, ResyncReason.RESUBSCRIBED)

    def _reject(self, reason: str) -> None:
        self._rejected = reason
        self._suspend()
        self.book.clear()
        self._set_status(BookStatus.REJECTED, "rejected", f"venue rejected the subscription: {reason}")

    def _suspend(self) -> None:
        """Stop syncing: nothing buffered, no snapshot in flight or due, no calibration."""
        self.policy.suspend()
        self._calibration.cancel()
        self._fetch_deferred = False
        self._timers.cancel(RetrySnapshot, FetchDeadline, BridgeDeadline)

    def _subscribed(self) -> bool:
        """Has the venue confirmed this code's subscription on the socket we sync on? Until then a
        stream that sent nothing may simply not have begun (a quiet market proves nothing)."""
        return self._ledger is None or self._ledger.holds(self._epoch, self.code)

    def _can_fetch(self) -> bool:
        socket = self._socket
        return self._rejected is None and (socket is None or (socket.epoch == self._epoch and self._epoch > 0))

    # -- calibration and staleness -------------------------------------------------------

    def _on_calibrate(self) -> None:
        if self.book.status is not BookStatus.LIVE or self._calibration.active or not self._can_fetch():
            return
        token = self._calibration.begin()
        self._peers.tell_snapshot(RequestSnapshot(self.code, token, self.actor_ref))

    def _finish_calibration(self) -> None:
        drift = self._calibration.finish()
        if drift is not None:
            self.log.log("WARNING" if drift else "DEBUG", "calibration at seq {}: {} levels drifted (repaired)",
                          self.book.last_seq, drift)
            self._publish_update()

    def _on_check_stale(self) -> None:
        if self.book.status is BookStatus.LIVE and time.time() - self._updated_at > self._cfg.stale_after_s:
            self._set_status(BookStatus.STALE, "stale", f"no update for {self._cfg.stale_after_s}s")

    # -- effects -------------------------------------------------------------------------

    def _after(self, action: SyncAction, before: BookStatus) -> None:
        """Carry out what the policy asked for, then announce a status change."""
        match action:
            case SyncAction.FETCH_SNAPSHOT:
                self._fetch_deferred = False
                self._request()
            case SyncAction.RETRY_SNAPSHOT:
                self._retry_later()
            case SyncAction.AWAIT_BRIDGE:
                self._timers.once(self._cfg.bridge_wait_s, BridgeDeadline(self.policy.request_token))
        policy = self.policy
        now = self.book.status
        if now is not before:
            self._announce(before, now, policy.last_reason.value, policy.detail)
        elif now in _SYNCING:
            self.book.reason = policy.detail  # a new reason for the same status (e.g. a retry)
        self._publish_update()

    def _retry_later(self) -> None:
        """The attempt failed: the next request waits the per-book backoff (capped, full jitter)."""
        self._fetch_deferred = False
        self._timers.cancel(FetchDeadline)
        self._timers.once(self._backoff.next_delay(), RetrySnapshot(self.policy.request_token))

    def _request(self, *, due: bool = False) -> None:
        """Ask for the snapshot (``due``: now, even with nothing buffered yet)."""
        if not self._can_fetch():
            self._fetch_deferred = False  # a new socket (Resync) or a resubscribe starts a new sync
            return
        if self.policy.fetch_after_first_diff and not self.policy.buffered and not due:
            self._fetch_deferred = True
            self._timers.once(FIRST_DIFF_WAIT_S, FetchDeadline(self.policy.request_token))
            return
        self._fetch_deferred = False
        self._timers.cancel(FetchDeadline)
        self._fetched_subscribed = self._subscribed()
        self._peers.tell_snapshot(RequestSnapshot(self.code, self.policy.request_token, self.actor_ref))

    def _set_status(self, status: BookStatus, reason: str, detail: str) -> None:
        before = self.book.status
        self.book.status = status
        if before is not status:
            self._announce(before, status, reason, detail)
        else:
            self.book.reason = detail
        self._publish_update()

    def _announce(self, before: BookStatus, now: BookStatus, reason: str, detail: str) -> None:
        self.book.reason = detail
        if now is BookStatus.LIVE:
            self._ever_live = True
            self._backoff.reset()
        log = self.log.bind(epoch=self._epoch)
        if now is BookStatus.RESYNCING and reason in _SEQ_BREAK_VALUES:
            log.bind(event="seq_break").warning("seq break ({}): resyncing from seq {}", reason, self.book.last_seq)
        elif now is BookStatus.RESYNCING:
            log.info("resyncing ({}) from seq {}", detail, self.book.last_seq)
        else:
            log.info("status {} -> {} ({}) at seq {}", before.name, now.name, detail, self.book.last_seq)
        if self._hub.active:
            self._hub.publish(BookStatusChanged(self.code, before, now, self.book.last_seq, reason, detail), self.code)

    def _publish_update(self) -> None:
        if self._hub.active:
            self._hub.mark_updated(self.code)  # listeners read the view lazily (no view built here)
