"""The service's runtime: the objects the tree shares, and the child specs that wire the actors.

One ``Runtime`` per BookService. It owns what must outlive any one actor incarnation — the
routing table, the peers' current refs, the epoch counter, the shared socket state (the LIVE
promise), the read ports, the listener hub, the subscription ledger, the timer service, the
books' dispatcher and the tree's durable state — and builds the child specs of the tree
(``specs``) and of each book (``book_spec``). Hosts never see it; the facade, the read side
and the narrow handles for chaos and metrics are built on it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from depthkeeper.actors.book import BookActor
from depthkeeper.actors.connection import ConnectionActor
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.symbols import SymbolRules
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.readport import ReadPorts
from depthkeeper.actors.routing import EpochCounter, Peers, RoutingTable, SubscriptionLedger
from depthkeeper.actors.snapshot import SnapshotActor
from depthkeeper.actors.subscription import SubscriptionActor
from depthkeeper.actors.venues import venue_class
from depthkeeper.supervisor.otp.dispatch import Dispatcher
from depthkeeper.supervisor.otp.scheduler import Scheduler
from depthkeeper.supervisor.otp.spec import ChildContext, ChildSpec, Restart, Strategy, SupervisorFlags
from depthkeeper.supervisor.service.tree import BOOK_PREFIX, BooksSupervisor, TreeState

if TYPE_CHECKING:
    from depthkeeper.supervisor.service.config import AppConfig


class Runtime:
    """See the module docstring."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.rules = SymbolRules(cfg.symbols.pattern, frozenset(cfg.symbols.allowed))
        #: the venue (one object, shared by every actor and the reader thread)
        self.venue = venue_class(cfg.venue.dialect)(cfg.venue)
        self.routes = RoutingTable()
        self.peers = Peers()
        self.epochs = EpochCounter()
        #: the one socket as every reader sees it (the LIVE promise, see actors/core/promise.py)
        self.socket = SocketState(cfg.heartbeat.interval_s * cfg.heartbeat.silent_intervals)
        self.ports = ReadPorts()
        self.hub = ListenerHub(ports=self.ports)
        self.ledger = SubscriptionLedger()
        self.scheduler = Scheduler()
        #: the shared threads every BookActor runs on (None: a thread per book)
        self.dispatcher = Dispatcher("books", cfg.book.threads) if cfg.book.threads else None
        self.state = TreeState(desired=frozenset(cfg.symbols.initial))
        #: frame read -> applied histogram (a prometheus Histogram) when metrics are served
        self.latency_histogram: Any = None
        self.root: pykka.ActorRef[Any] | None = None

    def specs(self, url: str, rest_url: str, flags: SupervisorFlags) -> list[ChildSpec]:
        """The tree's children, in start order."""
        cfg, venue = self.cfg, self.venue
        books_flags = attrs.evolve(flags, strategy=Strategy.ONE_FOR_ONE)
        return [
            ChildSpec("snapshot", lambda ctx: SnapshotActor.start(
                ctx, venue=venue, url=rest_url, cfg=cfg.snapshot, timeout_s=cfg.venue.rest_timeout_s,
                scheduler=self.scheduler, socket=self.socket)),
            ChildSpec("books", lambda ctx: BooksSupervisor.start(
                ctx, books_flags, [self.book_spec(c) for c in sorted(self.state.desired)], name="books",
                routes=self.routes), kind="supervisor", shutdown_timeout_s=30.0),
            ChildSpec("subscription", lambda ctx: SubscriptionActor.start(
                ctx, venue=venue, cfg=cfg.subscription, rules=self.rules, peers=self.peers,
                scheduler=self.scheduler, desired=self.state.desired, epoch=self.epochs.current,
                ledger=self.ledger, rejected=self.state.rejected)),
            ChildSpec("connection", lambda ctx: ConnectionActor.start(
                ctx, venue=venue, url=url, heartbeat=cfg.heartbeat, reconnect=cfg.reconnect, routes=self.routes,
                peers=self.peers, epochs=self.epochs, scheduler=self.scheduler,
                min_send_interval_s=venue.send_interval_s(cfg.subscription), inbox_limit=cfg.book.inbox_limit,
                rng=random.Random(), socket=self.socket)),
            *self._archive(),  # last: under rest_for_one an archive crash must not restart the tree
        ]

    def _archive(self) -> list[ChildSpec]:
        cfg = self.cfg.archive
        if not cfg.path:
            return []
        from depthkeeper.archive.actor import MAX_PENDING_EVENTS, ArchiveActor, ArchiveMailbox

        # Listening before any book starts: the archive sees every status change from the first,
        # and none is lost while it restarts.
        mailbox = ArchiveMailbox(MAX_PENDING_EVENTS)
        listener_id = self.hub.add(mailbox, min_interval_s=cfg.interval_s / 2)
        return [ChildSpec("archive", lambda ctx: ArchiveActor.start(
            ctx, path=cfg.path, interval_s=cfg.interval_s, depth=cfg.depth, hub=self.hub, scheduler=self.scheduler,
            mailbox=mailbox, listener_id=listener_id))]

    def book_spec(self, code: str) -> ChildSpec:
        """The spec of ``code``'s BookActor (started on subscribe, restarted on failure)."""
        cfg = self.cfg

        def factory(ctx: ChildContext) -> pykka.ActorRef[Any]:
            return BookActor.start(ctx, code, venue=self.venue, cfg=cfg.book, peers=self.peers, hub=self.hub,
                                   scheduler=self.scheduler, epoch=self.epochs.current,
                                   calibration_interval_s=cfg.calibration.interval_s,
                                   latency_histogram=self.latency_histogram, ports=self.ports,
                                   dispatcher=self.dispatcher, socket=self.socket,
                                   rejected=self.state.rejected.get(code), ledger=self.ledger,
                                   rejected_now=lambda: self.state.rejected.get(code))

        return ChildSpec(BOOK_PREFIX + code, factory, restart=Restart.PERMANENT, kind="book")
