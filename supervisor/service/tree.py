"""The book tree: our Supervisor subclasses and the restart/resync matrix (DESIGN.md §2).

::

    TreeSupervisor "depthkeeper"  (strategy from config; owns desired set, routes, epochs)
     +-- snapshot       SnapshotActor
     +-- subscription   SubscriptionActor
     +-- connection     ConnectionActor (+ reader thread per socket)
     +-- books          BooksSupervisor (always one_for_one: one bad book never touches another)
          +-- book:BTCUSDT, book:ETHUSDT, ...   (dynamic: started on subscribe, terminated on unsubscribe)

Restart/resync matrix:

- connection restarted -> it opens a new socket with a new epoch -> ``SocketOpened``
  -> every book is told ``Resync(epoch)``, the subscription replays the desired set;
- subscription restarted -> built from the desired set held here, it reconciles;
- snapshot restarted -> every book told ``SnapshotLost`` (a waiting book re-requests);
- a book restarted -> the routing table points at the new ref (replaced, never a gap
  with no route); the new book starts empty, SYNCING, and resyncs itself;
- books supervisor restarted -> rebuilt from the desired set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pykka

from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.sync import ResyncReason
from depthkeeper.actors.messages import (
    CheckRejected,
    CodeRejected,
    DesiredChanged,
    Resync,
    RetryRejected,
    SnapshotLost,
    SocketLost,
    SocketOpened,
    Subscribe,
    Unsubscribe,
    VenueFailure,
)
from depthkeeper.actors.routing import Peers, RoutingTable
from depthkeeper.supervisor.otp.messages import StartChild, TerminateChild
from depthkeeper.supervisor.otp.spec import ChildSpec, ExitReason
from depthkeeper.supervisor.otp.supervisor import Supervisor
from depthkeeper.supervisor.otp.tell import tell

BOOK_PREFIX = "book:"


@attrs.define
class TreeState:
    """The durable state. Written only by the TreeSupervisor's thread; read by factories."""

    desired: frozenset[str] = frozenset()
    venue_failure: str | None = None
    #: code -> the venue's refusal, until the code is subscribed again or unsubscribed
    rejected: dict[str, str] = attrs.Factory(dict)
    #: the newest socket epoch opened
    epoch: int = 0


@attrs.frozen
class BroadcastToBooks:
    """Tree -> BooksSupervisor: tell every live book this message."""

    message: Any


@attrs.frozen
class GetDesired:
    """Outside -> tree (ask): the desired set."""


class BooksSupervisor(Supervisor):
    """one_for_one over BookActors; keeps the routing table pointing at live books."""

    def __init__(self, *args: Any, routes: RoutingTable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._routes = routes

    def child_started(self, child_id: str, ref: pykka.ActorRef[Any], generation: int, restarted: bool) -> None:
        if child_id.startswith(BOOK_PREFIX):
            self._routes.set(child_id[len(BOOK_PREFIX):], ref)
            # The factory read the tree's refusals before the route pointed here: a CodeRejected or a
            # lift the tree sent in between reached the predecessor. Now that the route is set, any
            # later one comes here; this makes the book look at what it may have missed.
            tell(ref, CheckRejected())

    def on_receive(self, message: Any) -> Any:
        match message:
            case BroadcastToBooks(message=inner):
                for ref in self._routes.table.values():
                    tell(ref, inner)
                return None
            case _:
                return super().on_receive(message)


class TreeSupervisor(Supervisor):
    """Root of the tree: applies the matrix and owns the durable state."""

    log_name = "tree"

    def __init__(self, *args: Any, routes: RoutingTable, peers: Peers,
                 book_spec: Callable[[str], ChildSpec], state: TreeState, socket: SocketState | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._routes = routes
        self._peers = peers
        self._socket = socket
        self._book_spec = book_spec
        self.state = state
        # Set before any child starts: the connection reports SocketOpened to us.
        peers.tree = self.actor_ref
        self._books: pykka.ActorRef[Any] | None = None

    # matrix ----------------------------------------------------------------------------

    def child_started(self, child_id: str, ref: pykka.ActorRef[Any], generation: int, restarted: bool) -> None:
        if child_id == "snapshot":
            self._peers.snapshot = ref
            if restarted:
                self._tell_books(SnapshotLost())
        elif child_id == "subscription":
            self._peers.subscription = ref
        elif child_id == "connection":
            self._peers.connection = ref
        elif child_id == "books":
            self._books = ref
        if restarted:
            # INFO: why it exited was logged (WARNING unless injected on purpose); this is the recovery
            self.log.bind(child_id=child_id, generation=generation).info("{} restarted", child_id)

    def child_exited(self, child_id: str, generation: int, reason: ExitReason) -> None:
        if child_id == "connection":
            self._peers.connection = None
            socket = self._socket
            # Its cleanup normally did this; a connection that died behind our back did not.
            epoch = socket.epoch if socket is not None else 0
            if socket is not None and socket.closed(epoch, f"connection actor exited ({reason.value})"):
                self._socket_lost(epoch, socket.down_reason)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Subscribe(codes=codes):
                return self._subscribe(codes)
            case Unsubscribe(codes=codes):
                return self._unsubscribe(codes)
            case SocketOpened(epoch=epoch):
                self.state.epoch = max(self.state.epoch, epoch)
                self._tell_books(Resync(epoch, ResyncReason.RECONNECT))
                self._peers.tell_subscription(SocketOpened(epoch))
            case SocketLost(epoch=epoch, reason=reason):
                self._socket_lost(epoch, reason)
            case CodeRejected(code=code, reason=reason):
                self._rejected(code, reason)
            case VenueFailure(reason=reason):
                self.state.venue_failure = reason
            case GetDesired():
                return self.state.desired
            case _:
                return super().on_receive(message)
        return None

    def _socket_lost(self, epoch: int, reason: str) -> None:
        message = SocketLost(epoch, reason)
        self._tell_books(message)
        self._peers.tell_snapshot(message)
        self._peers.tell_subscription(message)

    def _rejected(self, code: str, reason: str) -> None:
        if code not in self.state.desired:
            return
        self.state.rejected[code] = reason
        ref = self._routes.get(code)
        if ref is not None:
            tell(ref, CodeRejected(code, reason))

    def _retry_rejected(self, codes: tuple[str, ...]) -> None:
        """An explicit subscribe of a rejected code asks the venue again."""
        retry = [c for c in codes if self.state.rejected.pop(c, None) is not None]
        if not retry:
            return
        self._peers.tell_subscription(RetryRejected(frozenset(retry)))
        for code in retry:
            ref = self._routes.get(code)
            if ref is not None:
                tell(ref, Resync(self.state.epoch, ResyncReason.RESUBSCRIBED))
        self.log.info("retrying rejected {}", retry)

    def _subscribe(self, codes: tuple[str, ...]) -> tuple[str, ...]:
        self._retry_rejected(codes)
        new = [c for c in dict.fromkeys(codes) if c not in self.state.desired]
        if not new:
            return ()
        self.state.desired = self.state.desired | frozenset(new)
        for code in new:
            tell(self._books, StartChild(self._book_spec(code)))
        self._peers.tell_subscription(DesiredChanged(self.state.desired))
        self.log.info("subscribed {} (desired: {})", new, len(self.state.desired))
        return tuple(new)

    def _unsubscribe(self, codes: tuple[str, ...]) -> tuple[str, ...]:
        gone = [c for c in dict.fromkeys(codes) if c in self.state.desired]
        if not gone:
            return ()
        self.state.desired = self.state.desired - frozenset(gone)
        for code in gone:
            self.state.rejected.pop(code, None)
            self._routes.remove(code)
            tell(self._books, TerminateChild(BOOK_PREFIX + code))
        self._peers.tell_subscription(DesiredChanged(self.state.desired))
        self.log.info("unsubscribed {} (desired: {})", gone, len(self.state.desired))
        return tuple(gone)

    def _tell_books(self, message: Any) -> None:
        tell(self._books, BroadcastToBooks(message))

