"""A BookActor's sync lifecycle: snapshots, resyncs, the socket and the venue's verdicts, and the
effects of every policy decision (requests, backoff, deadlines, status changes, announcements).

The data path (a batch in, applied, timed) is book.py; everything that starts, suspends or ends a
sync is here, as a mixin of BookActor (one actor, one state: the split is by concern, not by owner).

Snapshot timing (policies that bridge a stream, e.g. article): after a (re)start the snapshot
is requested as soon as the first diff of the epoch is buffered, so the snapshot is fetched
*after* the stream it must bridge has begun. A quiet or frozen market sends no diff, so a short deadline
(``FIRST_DIFF_WAIT_S``) fetches anyway; such a snapshot, held for a stream that sent nothing, is
taken LIVE only if the venue had confirmed the code's subscription on this socket before it was
fetched (the ``SubscriptionLedger``): a silence before that is a stream that has not begun (a
SUBSCRIBE still in flight, or held back while Binance's all-or-nothing refusal is split), not a
quiet market. For the same reason the deadline is prolonged, ``FIRST_DIFF_WAIT_S`` at a time and
for ``UNCONFIRMED_WAIT_MAX_S`` at most, while the subscription is not confirmed: a snapshot taken
before the venue streams the code predates the stream and must be fetched again (measured at 1000
Binance symbols subscribed in five paced SUBSCRIBEs: 1,592 snapshots for 1000 books, the REST
weight budget spent, a minute's wait before the last book went LIVE). Every fetch after a failed
attempt (a snapshot that was empty, short, crossed, stale, ahead of the stream, or a buffer
overflow) waits a per-book backoff (capped, full jitter), whatever the failure, so one book cannot
spend the REST budget the others share; the backoff resets when the book is LIVE again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.sync import SEQ_BREAKS, ResyncReason, SyncAction
from depthkeeper.actors.messages import (
    BookStatusChanged,
    BridgeDeadline,
    FetchDeadline,
    RequestSnapshot,
    Resync,
    RetrySnapshot,
    SnapshotReady,
)

if TYPE_CHECKING:
    import pykka
    from loguru import Logger

    from depthkeeper.actors.core.calibration import Calibration
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.core.promise import SocketState
    from depthkeeper.actors.core.sync import SyncPolicy
    from depthkeeper.actors.listeners import ListenerHub
    from depthkeeper.actors.routing import Peers, SubscriptionLedger
    from depthkeeper.actors.settings import BookConfig
    from depthkeeper.supervisor.otp.scheduler import ActorTimers
    from depthkeeper.supervisor.otp.spec import Backoff

#: how long a (re)started article book waits for its first diff before fetching anyway
FIRST_DIFF_WAIT_S = 0.2
#: how long that wait may be prolonged while the venue has not confirmed the code's subscription
UNCONFIRMED_WAIT_MAX_S = 10.0
#: statuses the sync policy drives (their reason is the policy's)
_SYNCING = (BookStatus.SYNCING, BookStatus.RESYNCING)
_SEQ_BREAK_VALUES = frozenset(r.value for r in SEQ_BREAKS)


class BookLifecycle:
    """The sync lifecycle half of BookActor (see the module docstring); BookActor sets the state."""

    code: str
    book: OrderBook
    policy: SyncPolicy
    log: Logger
    actor_ref: pykka.ActorRef[Any]
    _cfg: BookConfig
    _peers: Peers
    _hub: ListenerHub
    _inline_events: list[BookStatusChanged]
    _inline_update: bool
    _timers: ActorTimers
    _epoch: int
    _lost_epoch: int
    _socket: SocketState | None
    _ledger: SubscriptionLedger | None
    _fetched_subscribed: bool
    _rejected: str | None
    _rejected_now: Callable[[], str | None] | None
    _calibration: Calibration
    _fetch_deferred: bool
    _deferred_at: float
    _backoff: Backoff
    _ever_live: bool
    _updated_at: float

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
            self._deferred_at = time.monotonic()
            self._timers.once(FIRST_DIFF_WAIT_S, FetchDeadline(self.policy.request_token))
            return
        self._fetch_deferred = False
        self._timers.cancel(FetchDeadline)
        self._fetched_subscribed = self._subscribed()
        self._peers.tell_snapshot(RequestSnapshot(self.code, self.policy.request_token, self.actor_ref))

    def _on_fetch_deadline(self) -> None:
        """No diff within ``FIRST_DIFF_WAIT_S``: fetch now, unless the venue has not confirmed the
        subscription yet (then the stream may not have begun: wait again, up to a bound)."""
        if (self._fetch_deferred and not self._subscribed()
                and time.monotonic() - self._deferred_at < UNCONFIRMED_WAIT_MAX_S):
            self._timers.once(FIRST_DIFF_WAIT_S, FetchDeadline(self.policy.request_token))
            return
        self._request(due=True)

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
        hub = self._hub
        if hub.threaded or hub.inline:
            event = BookStatusChanged(self.code, before, now, self.book.last_seq, reason, detail)
            if hub.threaded:
                hub.publish(event, self.code)
            if hub.inline:
                self._inline_events.append(event)  # delivered at the end of the turn (book.py)

    def _publish_update(self) -> None:
        hub = self._hub
        if hub.threaded:
            hub.mark_updated(self.code)  # threaded listeners read the view lazily (no view built here)
        if hub.inline:
            self._inline_update = True  # inline ones get one view at the end of the turn (book.py)
