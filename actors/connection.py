"""ConnectionActor: owns the one socket, its heartbeat watchdog and reconnection.

Each socket incarnation gets a new epoch (from the tree's EpochCounter) and its own
reader thread (see reader.py). The actor itself only does the rare things: connect,
send (paced), watch for silence, reconnect.

- Silence is judged on *business* messages (and the venue's answers to our requests), by the
  clock: once nothing of either has been read for ``silent_intervals`` x ``interval_s``
  (measured from the moment the socket opened, while anything is subscribed) the socket is
  presumed dead even if pings still succeed. (An answer proves the socket alive while no
  stream may stand on it, e.g. a refused SUBSCRIBE being split; a LIVE book's promise is
  still judged on business data alone, see promise.py.) Then: close, reconnect, and the new
  epoch makes every book resync and the SubscriptionActor replay the desired set. Heartbeat
  ticks that queued up while a slow handshake blocked this actor are coalesced and never count
  as silence.
- The socket's state is shared (promise.SocketState): the moment it closes, goes silent or
  this actor stops, every book reads as not LIVE, and the tree is told ``SocketLost``.
- Reconnects use capped exponential backoff with full jitter, never below the venue's
  floor; the attempt counter resets only once a socket has delivered business data, so a
  venue that accepts and drops us cannot make us spin.
- Every frame we send goes through one pacer (alltick counts every client frame,
  heartbeats included, against its 1 request/s rule).
- HTTP 401 at the handshake (or ret 401) is final: logged once, reported, no reconnects.
- Venue limits (``Venue.connect_limit``, ``Venue.max_socket_age_s``): connection attempts are
  spent from a rolling budget before each one (a storm waits instead of getting us banned), and
  a socket that reaches the venue's maximum age is replaced before the venue cuts it: a planned
  reconnect, at once, through the normal path (books read DISCONNECTED, then resync on the new
  socket; one socket at a time, never two).
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import websocket

from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.wire import redact
from depthkeeper.actors.io.reader import Reader, ReaderCounters
from depthkeeper.actors.limits import ConnectionLimits
from depthkeeper.actors.messages import (
    ConnectNow,
    FlushSends,
    GetCounters,
    HeartbeatTick,
    SendFrame,
    SocketAgeLimit,
    SocketClosed,
    SocketLost,
    SocketOpened,
    VenueFailure,
)
from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.spec import Backoff

if TYPE_CHECKING:
    from depthkeeper.actors.routing import EpochCounter, Peers, RoutingTable
    from depthkeeper.actors.settings import HeartbeatConfig, ReconnectConfig
    from depthkeeper.actors.venues import Venue
    from depthkeeper.supervisor.otp.scheduler import Scheduler
    from depthkeeper.supervisor.otp.spec import ChildContext


#: jitter allowance on top of the venue's pacing interval (the venue measures arrival times)
PACING_MARGIN_S = 0.05


@attrs.define
class ConnectionCounters:
    """What the ConnectionActor counts (cumulative)."""

    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    heartbeat_timeouts: int = 0
    frames_sent: int = 0
    sends_dropped: int = 0
    heartbeats_sent: int = 0
    #: reconnects made before the venue's socket age limit, and connects put off by its attempt budget
    planned_reconnects: int = 0
    connects_deferred: int = 0


@attrs.frozen
class ConnectionReport:
    """The answer to GetCounters: the actor's counters, its reader's, and its state."""

    counters: ConnectionCounters
    reader: ReaderCounters
    epoch: int
    connected: bool
    #: the venue refused us for good (why), or None
    failed: str | None
    reconnect_scheduled: bool


class ConnectionActor(SupervisedActor):
    log_name = "connection"

    def __init__(self, ctx: ChildContext, *, venue: Venue, url: str, heartbeat: HeartbeatConfig,
                 reconnect: ReconnectConfig, routes: RoutingTable, peers: Peers, epochs: EpochCounter,
                 scheduler: Scheduler, min_send_interval_s: float = 0.0,
                 inbox_limit: int = 1000, rng: random.Random | None = None,
                 socket: SocketState | None = None) -> None:
        super().__init__(ctx)
        self._venue = venue
        self._url = url
        self._heartbeat = heartbeat
        self._reconnect = reconnect
        self._routes = routes
        self._peers = peers
        self._epochs = epochs
        self._scheduler = scheduler
        self._min_send_interval_s = min_send_interval_s + PACING_MARGIN_S if min_send_interval_s > 0 else 0.0
        self._inbox_limit = inbox_limit
        #: reconnect attempts since a socket last delivered data (full jitter, never below the venue floor)
        self._backoff = Backoff(reconnect.backoff_min_s, reconnect.backoff_max_s, rng or random.Random(),
                                floor_s=reconnect.floor_s)
        self._ws: websocket.WebSocket | None = None
        self._reader: Reader | None = None
        self.epoch = 0
        self._connect_pending = False
        self._failed: str | None = None
        self._outbox: deque[tuple[str, str]] = deque()
        self._last_sent_at = -1e9
        self._flush_scheduled = False
        self._timers: list[Any] = []
        self._seen_business = 0
        self._seen_hb_acks = 0
        self._acked_at = 0.0
        self._last_tick_at = 0.0
        self._hb_seq = 0
        self.socket = socket if socket is not None else SocketState(heartbeat.interval_s * heartbeat.silent_intervals)
        self.reader_counters = ReaderCounters()
        self.counters = ConnectionCounters()
        self._limits = ConnectionLimits(venue)

    # -- lifecycle -----------------------------------------------------------------------

    def init(self) -> None:
        self._timers.append(self._scheduler.schedule_every(self._heartbeat.interval_s, self.actor_ref, HeartbeatTick()))
        self._schedule_connect(0.0)

    def cleanup(self) -> None:
        for timer in self._timers:
            self._scheduler.cancel(timer)
        self._limits.stop(self._scheduler)
        self._close_socket("connection actor stopped")

    def on_receive(self, message: Any) -> Any:
        match message:
            case ConnectNow():
                self._connect_pending = False
                self._connect()
            case SocketClosed(epoch=epoch, reason=reason):
                if epoch == self.epoch and self._ws is not None:
                    self.log.bind(epoch=epoch).info("socket closed: {}", reason)
                    self._drop_socket(f"closed: {reason}")
            case HeartbeatTick():
                self._on_tick()
            case SendFrame():
                self._on_send(message)
            case FlushSends():
                self._flush_scheduled = False
                self._flush()
            case VenueFailure(reason=reason):
                self._fail(reason)
                self._close_socket(f"venue refused us: {reason}")
            case SocketAgeLimit(epoch=epoch):
                self._on_age_limit(epoch)
            case GetCounters():
                return self.report()
            case _:
                return super().on_receive(message)
        return None

    # -- connecting ----------------------------------------------------------------------

    def _connect(self) -> None:
        if self._ws is not None or self._failed:  # a refused token is final: no reconnect storm
            return
        wait_s = self._limits.connect_wait_s(self.log)
        if wait_s > 0:
            self._schedule_connect(wait_s)
            return
        url = self._venue.socket_url(self._url)
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        try:
            ws.connect(url, timeout=self._venue.cfg.connect_timeout_s)
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403):
                self._fail(f"venue refused the token (HTTP {exc.status_code}) at {redact(url)}")
                return
            self._connect_failed(f"HTTP {exc.status_code}")
            return
        except (OSError, websocket.WebSocketException) as exc:
            self._connect_failed(f"{type(exc).__name__}: {exc}")
            return
        ws.settimeout(None)
        self._open(ws)

    def _open(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self.epoch = self._epochs.next()
        self.counters.connects += 1
        if self.counters.connects > 1:
            self.counters.reconnects += 1
        self._seen_business = self.reader_counters.business
        self._seen_hb_acks = self.reader_counters.heartbeat_acks
        self._outbox.clear()
        self.socket.opened(self.epoch)
        self._acked_at = self._last_tick_at = time.monotonic()
        actor_ref = self.actor_ref

        def closed(epoch: int, reason: str) -> None:
            try:
                actor_ref.tell(SocketClosed(epoch, reason))
            except Exception:  # noqa: BLE001, S110 - the actor is gone; nothing to tell
                pass

        self._reader = Reader(ws, self.epoch, decode=self._venue.decode, routes=self._routes, peers=self._peers,
                              counters=self.reader_counters, inbox_limit=self._inbox_limit, on_closed=closed,
                              socket=self.socket)
        self._reader.start()
        self._limits.opened(self.epoch, self._scheduler, self.actor_ref)
        self.log.bind(epoch=self.epoch).info("connected to {}", redact(self._url))
        self._peers.tell_tree(SocketOpened(self.epoch))

    def _on_age_limit(self, epoch: int) -> None:
        """The venue cuts sockets at a maximum age: replace this one first, at once (no backoff)."""
        if epoch != self.epoch or self._ws is None:
            return
        self._limits.planned_reconnects += 1
        age_s = self._venue.max_socket_age_s()
        self.log.bind(epoch=epoch).info("planned reconnect: the socket is {:.0f}s old, the venue's limit", age_s)
        self._close_socket(f"planned reconnect before the venue's {age_s:.0f}s socket lifetime")
        self._schedule_connect(0.0)

    def _connect_failed(self, why: str) -> None:
        self.counters.connect_failures += 1
        self.socket.down_reason = f"connect failed: {why}"
        delay = self._backoff.next_delay()
        self.log.warning("connect to {} failed ({}); retry {} in {:.2f}s", redact(self._url), why,
                         self._backoff.attempt, delay)
        self._schedule_connect(delay)

    def _fail(self, why: str) -> None:
        self._failed = why
        self.log.bind(event="venue_refused").error("{}; not reconnecting (check the token)", why)
        self._peers.tell_tree(VenueFailure(why))

    def _schedule_connect(self, delay_s: float) -> None:
        if self._connect_pending:
            return
        self._connect_pending = True
        if delay_s <= 0:
            self.actor_ref.tell(ConnectNow(self._backoff.attempt))
        else:
            self._scheduler.schedule(delay_s, self.actor_ref, ConnectNow(self._backoff.attempt))

    def _drop_socket(self, reason: str) -> None:
        """The socket is gone: close it and reconnect after a backoff."""
        self._close_socket(reason)
        delay = self._backoff.next_delay()
        self.log.info("reconnecting in {:.2f}s (attempt {})", delay, self._backoff.attempt)
        self._schedule_connect(delay)

    def _close_socket(self, reason: str) -> None:
        """Books leave LIVE first (the shared state, then the tree), then a polite close frame,
        shutdown (wakes the reader blocked in recv), close."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        if self.socket.closed(self.epoch, reason):
            self._peers.tell_tree(SocketLost(self.epoch, reason))
        for step in (ws.send_close, ws.abort, ws.shutdown):
            try:
                step()
            except Exception:  # noqa: BLE001, S110 - a broken socket may refuse each step; it ends closed
                pass

    # -- heartbeat watchdog --------------------------------------------------------------

    def _on_tick(self) -> None:
        now = time.monotonic()
        if self._ws is None or now - self._last_tick_at < self._heartbeat.interval_s / 2:
            return  # no socket, or a tick that queued up behind a slow connect: not an interval
        self._last_tick_at = now
        counters = self.reader_counters
        if counters.business != self._seen_business:
            self._seen_business = counters.business
            self._backoff.reset()  # this socket delivered data: it is healthy
        bound_s = self.socket.silence_bound_s
        silent_s = self.socket.idle_for(now) if len(self._routes) else 0.0
        frame = self._venue.heartbeat(self._hb_seq + 1, self.epoch)
        if frame is not None:
            silent_s = max(silent_s, self._send_heartbeat(frame, now))
        if silent_s >= bound_s:
            self.counters.heartbeat_timeouts += 1
            self.log.bind(event="heartbeat_timeout", epoch=self.epoch).warning(
                "heartbeat timeout: silent for {:.1f}s (bound {}s); reconnecting and resyncing all", silent_s, bound_s)
            self._drop_socket(f"heartbeat timeout: silent for {silent_s:.1f}s")

    def _send_heartbeat(self, frame: str, now: float) -> float:
        """Send one client heartbeat; return how long the venue has not answered any (0 if it
        never answers them)."""
        acks = self.reader_counters.heartbeat_acks
        if acks != self._seen_hb_acks:
            self._acked_at = now
        self._seen_hb_acks = acks
        silent_s = now - self._acked_at if self._hb_seq and self._venue.heartbeat_acks else 0.0
        self._hb_seq += 1
        self._enqueue(frame, "heartbeat")
        self.counters.heartbeats_sent += 1
        return silent_s

    # -- sending (paced) -----------------------------------------------------------------

    def _on_send(self, message: SendFrame) -> None:
        if message.epoch != self.epoch or self._ws is None:
            self.counters.sends_dropped += 1
            self.log.debug("dropping {} for epoch {} (current {})", message.what, message.epoch, self.epoch)
            return
        self._enqueue(message.text, message.what)

    def _enqueue(self, text: str, what: str) -> None:
        self._outbox.append((text, what))
        self._flush()

    def _flush(self) -> None:
        while self._outbox and self._ws is not None:
            wait_s = self._last_sent_at + self._min_send_interval_s - time.monotonic()
            if wait_s > 0:
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self._scheduler.schedule(wait_s, self.actor_ref, FlushSends())
                return
            text, what = self._outbox.popleft()
            try:
                self._ws.send(text)
            except (OSError, websocket.WebSocketException) as exc:
                self.log.warning("send of {} failed: {}", what, exc)
                self._drop_socket(f"send failed: {exc}")
                return
            self._last_sent_at = time.monotonic()
            self.counters.frames_sent += 1
            self.log.bind(epoch=self.epoch).debug("sent {}", what)

    def report(self) -> ConnectionReport:
        reader = attrs.evolve(self.reader_counters, malformed_by_kind=dict(self.reader_counters.malformed_by_kind))
        counters = attrs.evolve(self.counters, planned_reconnects=self._limits.planned_reconnects,
                                connects_deferred=self._limits.deferred)
        return ConnectionReport(counters, reader, self.epoch, self._ws is not None, self._failed,
                                self._connect_pending)
