"""BookService: the public facade hosts, the CLI and tests use (DESIGN.md §4).

``BookService.start(cfg, parent=None)`` builds the tree (and the embedded simulator when
configured) and returns at once; the books sync in the background. Every call from
outside the tree that needs an actor's answer uses ``ask`` with a timeout and never
blocks past it. ``parent`` (a pykka ref or a callable) receives ``Escalated`` exactly
once if the root supervisor gives up; the service never exits the process and never
touches actors that are not its own.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import pykka
from loguru import logger

from depthkeeper.actors.book import BookActor
from depthkeeper.actors.connection import ConnectionActor
from depthkeeper.actors.listeners import ListenerHub, ListenerTarget
from depthkeeper.actors.messages import (
    BookStats,
    BookView,
    GetBookStats,
    GetCounters,
    GetLatencies,
    GetView,
    Subscribe,
    Unsubscribe,
)
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.readport import ReadPorts
from depthkeeper.actors.routing import EpochCounter, Peers, RoutingTable, SubscriptionLedger
from depthkeeper.actors.snapshot import SnapshotActor
from depthkeeper.actors.subscription import SubscriptionActor
from depthkeeper.actors.core.symbols import SymbolRules
from depthkeeper.actors.venues import venue_class
from depthkeeper.actors.core.wire import redact
from depthkeeper.supervisor.service.config import AppConfig
from depthkeeper.supervisor.otp.dispatch import Dispatcher
from depthkeeper.supervisor.service.errors import ServiceError
from depthkeeper.supervisor.otp.messages import Escalated, GetChildren, GetStats
from depthkeeper.supervisor.otp.scheduler import Scheduler
from depthkeeper.supervisor.otp.spec import ChildContext, ChildSpec, Restart, Strategy, SupervisorFlags
from depthkeeper.supervisor.service.stats import ServiceStats, build_stats
from depthkeeper.supervisor.service.tree import BOOK_PREFIX, BooksSupervisor, TreeState, TreeSupervisor

class BookUnavailable(ServiceError):
    """The book is not subscribed, or did not answer within the timeout."""


@attrs.frozen
class SubscribeResult:
    #: valid codes asked for (already-subscribed ones included)
    accepted: tuple[str, ...]
    #: (code, reason) for codes refused before anything was sent
    rejected: tuple[tuple[str, str], ...]
    #: codes that were not subscribed before this call
    added: tuple[str, ...] = ()


@attrs.frozen
class Health:
    ok: bool
    problems: tuple[str, ...]


#: ``book_stats()`` gives up the GIL after this many books (a long scan would stall the data path)
YIELD_EVERY_BOOKS = 16


class BookService:
    """Use :meth:`start`; see the module docstring."""

    def __init__(self, cfg: AppConfig, parent: pykka.ActorRef[Any] | Callable[[Escalated], Any] | None,
                 ask_timeout_s: float) -> None:
        self.cfg = cfg
        self._parent = parent
        self.ask_timeout_s = ask_timeout_s
        self.escalation: Escalated | None = None
        #: codes refused by subscribe() before anything was sent (malformed / not allowed)
        self.rejected_codes = 0
        self.simulator: Any = None
        self._stopped = False
        self._log = logger.bind(actor="service")
        self.rules = SymbolRules(cfg.symbols.pattern, frozenset(cfg.symbols.allowed))
        #: the venue (one object, shared by every actor and the reader thread)
        self.venue = venue_class(cfg.venue.dialect)(cfg.venue)
        self.routes = RoutingTable()
        self.peers = Peers()
        self.epochs = EpochCounter()
        #: the one socket as every reader sees it (the LIVE promise, see actors/promise.py)
        self.socket = SocketState(cfg.heartbeat.interval_s * cfg.heartbeat.silent_intervals)
        self.ports = ReadPorts()
        self.hub = ListenerHub(ports=self.ports)
        self.ledger = SubscriptionLedger()
        self.scheduler = Scheduler()
        #: the shared threads every BookActor runs on (None: a thread per book)
        self.dispatcher = Dispatcher("books", cfg.book.threads) if cfg.book.threads else None
        self.state = TreeState(desired=frozenset(cfg.symbols.initial))
        self.started_at = time.time()
        self.root: pykka.ActorRef[Any] | None = None
        self.metrics: Any = None
        self._stats_stop = threading.Event()
        self._stats_thread: threading.Thread | None = None
        # One registry per service: the library never touches prometheus' global one.
        from prometheus_client import CollectorRegistry

        from depthkeeper.supervisor.chaos import Chaos
        from depthkeeper.supervisor.service.metrics import make_latency_histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.latency_histogram = make_latency_histogram(self.registry)

        self.chaos = Chaos(self)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def start(cls, cfg: AppConfig, parent: pykka.ActorRef[Any] | Callable[[Escalated], Any] | None = None, *,
              ask_timeout_s: float = 2.0) -> BookService:
        svc = cls(cfg, parent, ask_timeout_s)
        try:
            svc._start()
        except BaseException:
            svc.stop()
            raise
        return svc

    def _start(self) -> None:
        cfg = self.cfg
        url, rest_url = cfg.venue.url, cfg.venue.snapshot_url
        if cfg.simulator.enabled:
            from depthkeeper.simulator import SimConfig, Simulator

            symbols = tuple(dict.fromkeys((*cfg.simulator.symbols, *cfg.symbols.initial)))
            self.simulator = Simulator.start(SimConfig(
                host="127.0.0.1", port=cfg.simulator.port, dialect=cfg.simulator.dialect, symbols=symbols,
                rate_per_symbol=cfg.simulator.rate_per_symbol, seed=cfg.simulator.seed, levels=cfg.simulator.levels))
            url, rest_url = self.simulator.url, self.simulator.rest_url
        self.url, self.rest_url = url, rest_url
        sup = cfg.supervisor
        flags = SupervisorFlags(strategy=Strategy(sup.strategy), max_restarts=sup.max_restarts, period_s=sup.period_s,
                                backoff_min_s=sup.restart_backoff_min_s, backoff_max_s=sup.restart_backoff_max_s,
                                backoff_reset_s=sup.backoff_reset_s, liveness_interval_s=sup.liveness_interval_s)
        self.root = TreeSupervisor.start(None, flags, self._specs(url, rest_url, flags), name="depthkeeper",
                                         escalate=self._on_escalation, routes=self.routes, peers=self.peers,
                                         book_spec=self._book_spec, state=self.state, socket=self.socket)
        if cfg.log.stats_interval_s > 0:
            self._stats_stop = threading.Event()
            self._stats_thread = threading.Thread(target=self._log_throughput, args=(cfg.log.stats_interval_s,),
                                                  name="depthkeeper-statslog", daemon=True)
            self._stats_thread.start()
        if cfg.metrics.port:
            from depthkeeper.supervisor.service.metrics import MetricsServer

            self.metrics = MetricsServer(self, self.registry, cfg.metrics.port)
        self._log.info("started: dialect {} venue {} ({} symbols)", cfg.venue.dialect, redact(url),
                       len(self.state.desired))

    def _specs(self, url: str, rest_url: str, flags: SupervisorFlags) -> list[ChildSpec]:
        cfg, venue = self.cfg, self.venue
        pace_s = venue.send_interval_s(cfg.subscription)
        books_flags = attrs.evolve(flags, strategy=Strategy.ONE_FOR_ONE)
        extra: list[ChildSpec] = []
        if cfg.archive.path:
            from depthkeeper.archive.actor import MAX_PENDING_EVENTS, ArchiveActor, ArchiveMailbox

            # Listening before any book starts: the archive sees every status change from the first.
            mailbox = ArchiveMailbox(MAX_PENDING_EVENTS)
            listener_id = self.hub.add(mailbox, min_interval_s=cfg.archive.interval_s / 2)
            extra.append(ChildSpec("archive", lambda ctx: ArchiveActor.start(
                ctx, path=cfg.archive.path, interval_s=cfg.archive.interval_s, depth=cfg.archive.depth, hub=self.hub,
                scheduler=self.scheduler, mailbox=mailbox, listener_id=listener_id)))
        return [
            ChildSpec("snapshot", lambda ctx: SnapshotActor.start(
                ctx, venue=venue, url=rest_url, cfg=cfg.snapshot,
                timeout_s=cfg.venue.rest_timeout_s, scheduler=self.scheduler, socket=self.socket)),
            ChildSpec("books", lambda ctx: BooksSupervisor.start(
                ctx, books_flags, [self._book_spec(c) for c in sorted(self.state.desired)], name="books",
                routes=self.routes), kind="supervisor", shutdown_timeout_s=30.0),
            ChildSpec("subscription", lambda ctx: SubscriptionActor.start(
                ctx, venue=venue, cfg=cfg.subscription, rules=self.rules, peers=self.peers,
                scheduler=self.scheduler, desired=self.state.desired, epoch=self.epochs.current,
                ledger=self.ledger, rejected=self.state.rejected)),
            ChildSpec("connection", lambda ctx: ConnectionActor.start(
                ctx, venue=venue, url=url, heartbeat=cfg.heartbeat, reconnect=cfg.reconnect, routes=self.routes,
                peers=self.peers, epochs=self.epochs, scheduler=self.scheduler,
                min_send_interval_s=pace_s, inbox_limit=cfg.book.inbox_limit, rng=random.Random(),
                socket=self.socket)),
            *extra,  # last: under rest_for_one an archive crash must not restart the tree
        ]

    def _book_spec(self, code: str) -> ChildSpec:
        cfg = self.cfg

        def factory(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return BookActor.start(ctx, code, venue=self.venue, cfg=cfg.book, peers=self.peers, hub=self.hub,
                                   scheduler=self.scheduler, epoch=self.epochs.current,
                                   calibration_interval_s=cfg.calibration.interval_s,
                                   latency_histogram=self.latency_histogram if cfg.metrics.port else None,
                                   ports=self.ports, dispatcher=self.dispatcher, socket=self.socket,
                                   rejected=self.state.rejected.get(code))

        return ChildSpec(BOOK_PREFIX + code, factory, restart=Restart.PERMANENT, kind="book")

    def _on_escalation(self, event: Escalated) -> None:
        if self.escalation is not None:
            return
        self.escalation = event
        self._log.error("the tree gave up after {} restarts; escalating", event.restarts)
        parent = self._parent
        if isinstance(parent, pykka.ActorRef):
            try:
                parent.tell(event)
            except pykka.ActorDeadError:
                pass
        elif parent is not None:
            parent(event)

    # -- public API ------------------------------------------------------------------------

    def _root(self) -> pykka.ActorRef[Any]:
        if self.root is None or self._stopped or not self.root.is_alive():
            raise ServiceError("the service is not running")
        return self.root

    def _change(self, message: Subscribe | Unsubscribe) -> tuple[str, ...]:
        """Asked, not told: when this returns the tree holds the new desired set."""
        try:
            added = self._root().ask(message, block=True, timeout=self.ask_timeout_s)
            return tuple(added)
        except pykka.Timeout:
            raise ServiceError(f"the tree did not take {message!r} within {self.ask_timeout_s}s") from None
        except pykka.ActorDeadError:
            raise ServiceError("the service is not running") from None

    def subscribe(self, codes: Iterable[str]) -> SubscribeResult:
        """Add codes on the live connection. Malformed codes are rejected here, never sent."""
        accepted, rejected = self.rules.split(list(codes))
        self.rejected_codes += len(rejected)
        for code, reason in rejected:
            self._log.bind(event="malformed_code", symbol=code).warning("rejected code {}: {}", code, reason)
        added = self._change(Subscribe(accepted)) if accepted else ()
        return SubscribeResult(accepted, rejected, added)

    def unsubscribe(self, codes: Iterable[str]) -> tuple[str, ...]:
        """Remove codes (their books are stopped and freed); returns those that were subscribed."""
        codes = tuple(codes)
        return self._change(Unsubscribe(codes)) if codes else ()

    def subscriptions(self) -> frozenset[str]:
        """The desired set (what the tree keeps subscribed)."""
        return self.state.desired

    def book(self, code: str, depth: int | None = None, timeout_s: float | None = None) -> BookView:
        """A frozen view of the book, best first. Lock-free copy in the caller's thread; if the
        book keeps changing under the copy, an ask to its actor (never past the timeout)."""
        port = self.ports.get(code)
        if port is not None:
            view = port.read(depth)
            if view is not None:
                return view
        ref = self.routes.get(code)
        if ref is None:
            raise BookUnavailable(f"{code} is not subscribed" if code not in self.state.desired
                                  else f"{code} is starting; no book yet")
        try:
            return ref.ask(GetView(depth), timeout=timeout_s or self.ask_timeout_s)
        except pykka.Timeout:
            raise BookUnavailable(f"{code} did not answer within {timeout_s or self.ask_timeout_s}s") from None
        except pykka.ActorDeadError:
            raise BookUnavailable(f"{code} is restarting") from None

    def wait_live(self, codes: Iterable[str] | None = None, timeout: float = 10.0) -> bool:
        """True once every given (default: every desired) book is LIVE; False at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            wanted = tuple(codes) if codes is not None else tuple(self.state.desired)
            if all(self._is_live(code, deadline) for code in wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # polling a condition against a deadline

    def _is_live(self, code: str, deadline: float) -> bool:
        port = self.ports.get(code)
        if port is not None:
            return port.status() is BookStatus.LIVE  # a few attribute reads: no copy, no sort
        try:
            left = max(0.05, deadline - time.monotonic())
            return self.book(code, depth=0, timeout_s=left).status is BookStatus.LIVE
        except BookUnavailable:
            return False

    def add_listener(self, target: ListenerTarget, codes: Iterable[str] | None = None) -> int:
        """Deliver BookUpdated / BookStatusChanged to a pykka ref or a callable (conflated)."""
        return self.hub.add(target, codes)

    def remove_listener(self, listener_id: int) -> bool:
        return self.hub.remove(listener_id)

    def book_stats(self) -> dict[str, BookStats]:
        """Every book's stats, read in the caller's thread between two of the book's messages (see
        ``BookReadPort.consistent``): no message, so a scrape never holds up the books' data."""
        return self._read_books(lambda actor, code: actor.stats(), lambda code: GetBookStats())

    def latency_samples(self, since: Mapping[str, int] | None = None
                        ) -> tuple[dict[str, int], dict[str, list[tuple[float, int]]]]:
        """``(marks, samples)``: per book, the ``(seconds from venue send to applied, diffs)``
        samples, one per applied batch, timed from its oldest diff (an upper bound for every diff in
        it); at most the last 1024 per book. ``marks`` counts the samples so far: pass it back as
        ``since`` to get only what was recorded after it (a measurement window). Needs stamped
        frames (``ts``)."""
        after = since or {}
        windows = self._read_books(lambda actor, code: actor.latency_window(after.get(code, 0)),
                                   lambda code: GetLatencies(after.get(code, 0)))
        return {code: w[0] for code, w in windows.items()}, {code: w[1] for code, w in windows.items()}

    def _read_books(self, read: Callable[[Any, str], Any], message: Callable[[str], Any]) -> dict[str, Any]:
        """``read(book_actor, code)`` for every book through its port; ask those without one."""
        out: dict[str, Any] = {}
        asked: dict[str, pykka.ActorRef[Any]] = {}
        for i, (code, ref) in enumerate(self.routes.table.items()):
            if i % YIELD_EVERY_BOOKS == YIELD_EVERY_BOOKS - 1:
                time.sleep(0)  # let the reader and the books have the GIL: a scan of 1000 books is ~50 ms
            port = self.ports.get(code)
            owner = port.owner if port is not None else None
            value = None if owner is None else port.consistent(functools.partial(read, owner, code))
            if value is None:
                asked[code] = ref
            else:
                out[code] = value
        if asked:
            out.update(self._ask_books({code: message(code) for code in asked}, asked))
        return out

    def _ask_books(self, messages: Mapping[str, Any], refs: Mapping[str, pykka.ActorRef[Any]]) -> dict[str, Any]:
        futures = {code: ref.ask(messages[code], block=False) for code, ref in refs.items()}
        out: dict[str, Any] = {}
        deadline = time.monotonic() + self.ask_timeout_s
        for code, future in futures.items():
            try:
                out[code] = future.get(timeout=max(0.01, deadline - time.monotonic()))
            except (pykka.Timeout, pykka.ActorDeadError):
                continue
        return out

    def _ask(self, ref: pykka.ActorRef[Any] | None, message: Any) -> Any:
        if ref is None:
            return None
        try:
            return ref.ask(message, timeout=self.ask_timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError):
            return None

    def stats(self) -> ServiceStats:
        root = self.root
        children = self._ask(root, GetChildren()) or ()
        books_ref = next((c.ref for c in children if c.id == "books"), None)
        return build_stats(
            books=self.book_stats(),
            connection={**(self._ask(self.peers.connection, GetCounters()) or {}), "connected": self.socket.connected,
                        "down_reason": "" if self.socket.connected else self.socket.down_reason},
            subscription=self._ask(self.peers.subscription, GetCounters()) or {},
            snapshot=self._ask(self.peers.snapshot, GetCounters()) or {},
            root=self._ask(root, GetStats()),
            books_sup=self._ask(books_ref, GetStats()),
            escalations=1 if self.escalation else 0,
            listeners=self.hub.stats(),
        )

    def health(self) -> Health:
        problems = []
        if self.escalation is not None:
            problems.append(f"supervisor gave up: {self.escalation.reason}")
        if self.state.venue_failure:
            problems.append(f"venue refused us: {self.state.venue_failure}")
        if not self.socket.connected:
            problems.append(f"not connected ({self.socket.down_reason})")
        for code, stats in self.book_stats().items():
            if stats.status is not BookStatus.LIVE:
                problems.append(f"{code} is {stats.status.name}: {stats.reason}" if stats.reason
                                else f"{code} is {stats.status.name}")
        missing = self.state.desired - self.routes.codes()
        problems.extend(f"{code} has no book" for code in sorted(missing))
        return Health(not problems, tuple(problems))

    def _log_throughput(self, interval_s: float) -> None:
        """Every interval: msgs/s received and the apply latency (read -> applied), as one line."""
        last_frames, last_at = 0, time.monotonic()
        while not self._stats_stop.wait(interval_s):
            try:
                stats = self.book_stats()
                conn = self._ask(self.peers.connection, GetCounters()) or {}
            except Exception:  # noqa: BLE001 - logging must never take the service down
                continue
            now, frames = time.monotonic(), conn.get("frames", 0)
            rate = (frames - last_frames) / max(now - last_at, 1e-9) if frames >= last_frames else 0.0
            last_frames, last_at = frames, now
            p50 = max((b.apply_p50_s for b in stats.values()), default=0.0)
            p99 = max((b.apply_p99_s for b in stats.values()), default=0.0)
            live = sum(1 for b in stats.values() if b.status is BookStatus.LIVE)
            self._log.bind(event="throughput").info(
                "throughput {:.0f} msgs/s; apply latency p50 {:.0f}us p99 {:.0f}us (worst book); {}/{} books live",
                rate, p50 * 1e6, p99 * 1e6, live, len(stats))

    # -- shutdown --------------------------------------------------------------------------

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the tree (children in reverse order), listeners, timers and the simulator. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._stats_thread is not None:
            self._stats_stop.set()
            self._stats_thread.join(timeout=2.0)
        if self.metrics is not None:
            self.metrics.stop()
        if self.root is not None:
            try:
                self.root.stop(block=True, timeout=timeout_s)
            except pykka.Timeout:
                self._log.error("the tree did not stop within {}s", timeout_s)
        if self.dispatcher is not None and not self.dispatcher.stop():
            self._log.error("book dispatcher threads did not end")
        self.hub.close()
        self.scheduler.close()
        if self.simulator is not None:
            self.simulator.stop()
        self._log.info("stopped")

    def __enter__(self) -> BookService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
