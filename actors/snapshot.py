"""SnapshotActor: REST snapshots for every book, without blocking any of them.

Books tell ``RequestSnapshot`` and carry on buffering; replies come back as
``SnapshotReady``. Requests for a code already queued or in flight are coalesced (many
books resyncing at once after a reconnect cost one request each, not one per resync);
a venue that serves many codes per request (AllTick's ``depth-tick``) gets them batched. A token
bucket keeps us within ``max_per_second``; failures (timeouts, 429, 500, bad bodies) are
retried with capped exponential backoff and full jitter, forever, because a book that
gives up stays wrong. Blocking HTTP runs on a small worker pool owned by this actor.

Venue limits. A venue that counts REST weight (Binance: 6000 per minute per IP, a snapshot
costs 5..250 by its depth) gets a rolling weight budget (``Venue.rest_weight_per_min``, spent
before each request, the venue's own figure adopted when it reports a larger one); a request
that does not fit waits. A 429 or 418 with ``Retry-After`` pauses EVERY request until then
(counted, logged once per pause), and the refused codes simply wait in the queue.

No snapshot is fetched while the socket is down: a snapshot can only bridge a live stream,
and a venue that refuses our socket mostly refuses REST too — its failures would bury the
one line that matters (the connect failure). ``SocketLost`` drops every queued request (the
books ask again on the next socket); requests that race in while it is down are dropped too.
"""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from depthkeeper.actors.messages import (
    DrainQueue,
    FetchDone,
    GetCounters,
    RequestSnapshot,
    RetryFetch,
    SnapshotReady,
    SocketLost,
)
from depthkeeper.actors.core.wire import DepthPush, Snapshot, redact
from depthkeeper.actors.limits import RestLimitCounters, RestLimits, retry_after_s
from depthkeeper.supervisor.otp.base import SupervisedActor
from depthkeeper.supervisor.otp.spec import Jitter, backoff_delay
from depthkeeper.supervisor.otp.tell import tell

if TYPE_CHECKING:
    from depthkeeper.actors.core.promise import SocketState
    from depthkeeper.actors.settings import SnapshotConfig
    from depthkeeper.actors.venues import Venue
    from depthkeeper.supervisor.otp.scheduler import Scheduler
    from depthkeeper.supervisor.otp.spec import ChildContext



@attrs.define
class SnapshotCounters:
    """What the SnapshotActor counts (cumulative)."""

    requests: int = 0
    coalesced: int = 0
    errors: int = 0
    retries: int = 0
    delivered: int = 0
    #: requests dropped because the socket was down (the books ask again on the next socket)
    dropped_socket_down: int = 0


@attrs.frozen
class SnapshotReport:
    """The answer to GetCounters."""

    counters: SnapshotCounters
    queued: int
    in_flight: int
    #: the venue's REST limits as met so far (429/418 pauses, weight budget)
    limits: RestLimitCounters = attrs.Factory(RestLimitCounters)


class SnapshotActor(SupervisedActor):
    log_name = "snapshot"

    def __init__(self, ctx: ChildContext, *, venue: Venue, url: str, cfg: SnapshotConfig,
                 timeout_s: float, scheduler: Scheduler, workers: int = 4, rng: random.Random | None = None,
                 socket: SocketState | None = None) -> None:
        super().__init__(ctx)
        self._socket = socket
        self._venue = venue
        self._url = url
        self._cfg = cfg
        self._timeout_s = timeout_s
        self._scheduler = scheduler
        self._workers = workers
        self._rng = rng or random.Random()
        self._pool: ThreadPoolExecutor | None = None
        #: code -> {reply_to urn: (ref, newest token)}
        self._waiters: dict[str, dict[str, tuple[pykka.ActorRef[Any], int]]] = {}
        self._queue: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._retrying: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._tokens = max(1.0, cfg.max_per_second)
        self._refilled_at = time.monotonic()
        self._drain_scheduled = False
        self._trace = 0
        self.counters = SnapshotCounters()
        self._limits = RestLimits(venue, self.log)

    def init(self) -> None:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="depthkeeper-snapshot")

    def cleanup(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        match message:
            case RequestSnapshot():
                self._on_request(message)
            case FetchDone():
                self._on_done(message)
            case SocketLost():
                self._drop_all()
            case RetryFetch(code=code):
                self._retrying.discard(code)
                self._enqueue(code)
            case DrainQueue():
                self._drain_scheduled = False
                self._drain()
            case GetCounters():
                return SnapshotReport(attrs.evolve(self.counters), len(self._queue), len(self._in_flight),
                                      attrs.evolve(self._limits.counters))
            case _:
                return super().on_receive(message)
        return None

    def _socket_down(self) -> bool:
        return self._socket is not None and not self._socket.connected

    def _drop_all(self) -> None:
        dropped = len(self._waiters)
        self.counters.dropped_socket_down += dropped
        self._waiters.clear()
        self._queue.clear()
        self._attempts.clear()
        if dropped:
            self.log.debug("socket lost: dropped {} pending snapshot requests", dropped)

    def _on_request(self, req: RequestSnapshot) -> None:
        if self._socket_down():
            self.counters.dropped_socket_down += 1
            return
        waiters = self._waiters.setdefault(req.code, {})
        if waiters:
            self.counters.coalesced += 1
        waiters[req.reply_to.actor_urn] = (req.reply_to, req.token)
        self._enqueue(req.code)

    def _enqueue(self, code: str) -> None:
        if code in self._in_flight or code in self._retrying or code in self._queue or code not in self._waiters:
            return
        self._queue.append(code)
        self._drain()

    def _drain(self) -> None:
        self._refill()
        while self._queue and self._tokens >= 1.0:
            batch = [self._queue.popleft()]
            while self._queue and len(batch) < self._venue.snapshot_batch:
                batch.append(self._queue.popleft())
            wait_s = self._limits.wait_s(batch)
            if wait_s > 0:  # paused by the venue, or out of weight: the batch waits at the head
                self._queue.extendleft(reversed(batch))
                if not self._drain_scheduled:
                    self._drain_scheduled = True
                    self._scheduler.schedule(wait_s, self.actor_ref, DrainQueue())
                return
            self._tokens -= 1.0
            self._start_fetch(tuple(batch))
        if self._queue and not self._drain_scheduled:
            self._drain_scheduled = True
            wait_s = (1.0 - self._tokens) / self._cfg.max_per_second
            self._scheduler.schedule(wait_s, self.actor_ref, DrainQueue())

    def _refill(self) -> None:
        now = time.monotonic()
        burst = max(1.0, self._cfg.max_per_second)
        self._tokens = min(burst, self._tokens + (now - self._refilled_at) * self._cfg.max_per_second)
        self._refilled_at = now

    def _start_fetch(self, codes: tuple[str, ...]) -> None:
        assert self._pool is not None
        self._in_flight.update(codes)
        self.counters.requests += 1
        self._trace += 1
        future = self._pool.submit(fetch, self._venue, self._url, codes, self._timeout_s,
                                   f"dk-{self._trace}", self._limits.paused_for)
        ref = self.actor_ref

        def done(f: Future[FetchDone]) -> None:
            try:
                result = f.result()
            except Exception as exc:  # cancelled at shutdown, or a bug in fetch
                result = FetchDone(codes, (), f"worker failed: {exc!r}")
            tell(ref, result)

        future.add_done_callback(done)

    def _on_done(self, done: FetchDone) -> None:
        self._in_flight.difference_update(done.codes)
        self._limits.heard(done)
        got = {s.code: s for s in done.results}
        for code in done.codes:
            if code not in self._waiters:
                self._attempts.pop(code, None)
                continue  # nobody waits any more (socket lost, or unsubscribed)
            snap = got.get(code)
            if snap is not None:
                self._deliver(code, snap)
            elif done.retry_after_s is not None:
                self._enqueue(code)  # no warning per code: the pause was logged once, the queue waits it out
            else:
                self._failed(code, done.error or "code missing from reply", done.fatal)

    def _deliver(self, code: str, snap: Snapshot | DepthPush) -> None:
        self._attempts.pop(code, None)
        for ref, token in self._waiters.pop(code, {}).values():
            if tell(ref, SnapshotReady(code, token, snap)):  # False: the book was unsubscribed meanwhile
                self.counters.delivered += 1

    def _failed(self, code: str, error: str, fatal: bool) -> None:
        self.counters.errors += 1
        attempt = self._attempts.get(code, 0)
        self._attempts[code] = attempt + 1
        cfg = self._cfg
        delay = cfg.retry_max_s * 10 if fatal else backoff_delay(attempt, cfg.retry_min_s, cfg.retry_max_s,
                                                                  self._rng, jitter=Jitter.FULL)
        self.log.bind(symbol=code).warning("snapshot fetch failed ({}); retry {} in {:.2f}s", redact(error),
                                            attempt + 1, delay)
        self.counters.retries += 1
        self._retrying.add(code)
        self._scheduler.schedule(delay, self.actor_ref, RetryFetch(code))


def fetch(venue: Venue, url: str, codes: tuple[str, ...], timeout_s: float, trace: str,
          paused_for: Callable[[], float] | None = None) -> FetchDone:
    """Blocking REST request (runs on a worker thread). Never raises.

    ``paused_for`` is asked first: a request that waited in the pool while the venue paused us
    is not sent (it comes back as paused, and waits in the queue like the others)."""
    pause_s = paused_for() if paused_for is not None else 0.0
    if pause_s > 0:
        return FetchDone(codes, (), "paused by the venue's rate limit", retry_after_s=pause_s)
    full = venue.snapshot_url(url, codes, trace)
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as response:
            body = response.read()
            used = venue.used_weight(response.headers)
    except urllib.error.HTTPError as exc:
        return FetchDone(codes, (), f"HTTP {exc.code} from {redact(full)}", fatal=venue.http_error(exc.code),
                         retry_after_s=retry_after_s(exc.code, exc.headers), used_weight=venue.used_weight(exc.headers))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return FetchDone(codes, (), f"{type(exc).__name__}: {exc} ({redact(full)})")
    reply = venue.parse_snapshot(body, codes)
    if reply.error is not None:
        return FetchDone(codes, (), reply.error, fatal=reply.fatal, used_weight=used)
    return FetchDone(codes, reply.books, used_weight=used)
