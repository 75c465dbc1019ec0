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

The sync lifecycle (snapshot timing, backoff, resyncs, the socket's and the venue's verdicts, the
effects of the policy's decisions) is booksync.py, a mixin of this class; here is the data path.

Epoch fencing: data from an older (or a lost) socket epoch is ignored; data from a newer epoch
starts a new sync before it is used (the tree's Resync for it may still be on its way).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from depthkeeper.actors.booksync import BookLifecycle
from depthkeeper.actors.core.calibration import Calibration
from depthkeeper.actors.core.orderbook import BookStatus, OrderBook
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.samples import Latencies
from depthkeeper.actors.core.sync import ResyncReason, SyncAction
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

_NONE = SyncAction.NONE
_LIVE = BookStatus.LIVE
#: latency samples kept per book (a power of two): at most ~20 KB per book for the three rings
LATENCY_SAMPLES = 1024


class BookActor(BookLifecycle, SupervisedActor):
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
        #: when the fetch was deferred (monotonic s): the wait for an unconfirmed stream is bounded
        self._deferred_at = 0.0
        #: failed snapshot attempts since the book was last LIVE, and the wait before the next
        self._backoff = Backoff(cfg.resync_backoff_min_s, cfg.resync_backoff_max_s, rng or random.Random())
        self._ever_live = False
        self._updated_at = 0.0
        #: what the inline listeners get at the end of this turn (listeners.py)
        self._inline_events: list[BookStatusChanged] = []
        self._inline_update = False
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
        if self._inline_update or self._inline_events:
            self._deliver_inline()

    def cleanup(self) -> None:
        if self._ports is not None:
            self._ports.unregister(self._port)
        self._timers.cancel_all()

    def on_receive(self, message: Any) -> Any:
        port = self._port
        port.gen += 1  # odd: readers outside the tree retry (see readport.py)
        try:
            if type(message) is DiffBatch:  # the data itself: straight to it, past the match
                return self._on_diffs(message)
            return self._dispatch(message)
        finally:
            port.updated_at = self._updated_at
            port.epoch = self._epoch
            port.gen += 1
            if self._inline_update or self._inline_events:
                self._deliver_inline()

    def _deliver_inline(self) -> None:
        """The turn's status changes and (if the book changed) its newest view to the inline listeners,
        now that the writes are done and readable (the port's ``gen`` is even again)."""
        events, self._inline_events = self._inline_events, []
        update, self._inline_update = self._inline_update, False
        self._hub.deliver_inline(self.code, events, self._port if update else None)

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
            case RetrySnapshot(token=token):
                self._timers.fired(RetrySnapshot)
                if token == self.policy.request_token and self.policy.awaiting_snapshot:
                    self._request(due=True)
            case FetchDeadline(token=token):
                self._timers.fired(FetchDeadline)
                if token == self.policy.request_token and self.policy.awaiting_snapshot:
                    self._on_fetch_deadline()
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
            socket = self._socket
            if socket is not None and self.policy.awaiting_snapshot and self.policy.in_order(batch.diffs):
                socket.chained(epoch, batch.received_at)  # a syncing book's stream flows in order
            self._after(action, before)
        if self._fetch_deferred and self.policy.buffered:
            self._request()  # the stream has begun: now the snapshot can bridge it
        if calibration.pending_snapshot is not None:
            self._finish_calibration()

    def _record_latency(self, batch: DiffBatch) -> float:
        """The batch fed the chain: tell the socket state (a LIVE view leans on it, promise.py) and
        record the batch's latencies; returns how long ago its chunk was read (the lag)."""
        socket = self._socket
        if socket is not None:
            socket.chained(batch.epoch, batch.received_at)
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
            if self._socket is not None:
                self._socket.chained(batch.epoch, batch.received_at)
            self._updated_at = time.time()
            if self._histogram is not None:
                self._histogram.observe(time.monotonic() - batch.received_at)
        self._after(action, before)
