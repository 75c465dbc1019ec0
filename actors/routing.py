"""State shared between the tree and the reader thread, owned by the tree.

The reader thread routes every frame without a hop through an actor, so it needs the
code -> BookActor table without locks on the hot path. The tree owns the table and
replaces the whole mapping on every change (copy-on-write); the reader reads one
reference per batch, which is atomic in CPython. Epochs must keep growing across
ConnectionActor restarts, so the counter lives here too, not in the actor.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pykka

from depthkeeper.supervisor.otp.tell import tell


class RoutingTable:
    """code -> BookActor ref. Written by the tree, read lock-free by the reader thread."""

    __slots__ = ("_lock", "table")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.table: Mapping[str, pykka.ActorRef[Any]] = MappingProxyType({})

    def set(self, code: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            new = dict(self.table)
            new[code] = ref
            self.table = MappingProxyType(new)

    def remove(self, code: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        """Forget ``code`` (only if it still points at ``ref``, when given)."""
        with self._lock:
            if code in self.table and (ref is None or self.table[code] is ref):
                new = dict(self.table)
                del new[code]
                self.table = MappingProxyType(new)

    def get(self, code: str) -> pykka.ActorRef[Any] | None:
        return self.table.get(code)

    def codes(self) -> frozenset[str]:
        return frozenset(self.table)

    def __len__(self) -> int:
        return len(self.table)


class EpochCounter:
    """Monotonic connection epochs, shared by every ConnectionActor incarnation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def next(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    @property
    def current(self) -> int:
        return self._value


class Peers:
    """The current refs of the tree's singletons, kept up to date by the tree.

    A restart gives an actor a new ref; everyone who talks to it reads the ref here at
    the moment of telling, so nobody keeps a ref to a dead incarnation (and nobody looks
    actors up in pykka's global registry).
    """

    __slots__ = ("connection", "snapshot", "subscription", "tree")

    def __init__(self) -> None:
        self.tree: pykka.ActorRef[Any] | None = None
        self.connection: pykka.ActorRef[Any] | None = None
        self.subscription: pykka.ActorRef[Any] | None = None
        self.snapshot: pykka.ActorRef[Any] | None = None

    def tell_tree(self, message: Any) -> bool:
        return tell(self.tree, message)

    def tell_connection(self, message: Any) -> bool:
        return tell(self.connection, message)

    def tell_subscription(self, message: Any) -> bool:
        return tell(self.subscription, message)

    def tell_snapshot(self, message: Any) -> bool:
        return tell(self.snapshot, message)


class SubscriptionLedger:
    """What the SubscriptionActor last sent on which socket epoch; survives its restarts.

    Written only by the (current) SubscriptionActor, right after it tells the frame to the
    connection within the same handler, so a chaos kill (a message) can never fall between
    the two. A restarted SubscriptionActor on the same epoch reconciles against this instead
    of replaying the whole desired set (which the venue would see as duplicate subscribes), and
    numbers its requests on from ``last_id`` (answers to the dead incarnation's requests must
    never be read as answers to the new one's).

    BookActors read it too (:meth:`holds`): a book whose stream has sent nothing may be taken
    LIVE from a snapshot alone (a quiet market) only once the venue has confirmed its
    subscription on this socket; before that, silence proves nothing (the stream has not begun).
    The state is one tuple, replaced whole, so a reader on another thread never sees a mix.
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        #: (epoch, active codes, code -> id of the request whose answer is awaited, last request id)
        self._state: tuple[int, frozenset[str], Mapping[str, int], int] = (0, frozenset(), MappingProxyType({}), 0)

    @property
    def epoch(self) -> int:
        return self._state[0]

    @property
    def active(self) -> frozenset[str]:
        """Codes sent on ``epoch`` (subscribed, answered or not)."""
        return self._state[1]

    @property
    def pending(self) -> Mapping[str, int]:
        """Active codes whose subscribe the venue has not answered yet (code -> request id)."""
        return self._state[2]

    @property
    def last_id(self) -> int:
        """The last request id used on ``epoch`` (0: the venue's requests carry none)."""
        return self._state[3]

    def record(self, epoch: int, active: set[str] | frozenset[str], pending: Mapping[str, int] | None = None,
               last_id: int = 0) -> None:
        self._state = (epoch, frozenset(active), MappingProxyType(dict(pending or {})), last_id)

    def holds(self, epoch: int, code: str) -> bool:
        """True when ``code`` is subscribed on socket ``epoch`` and the venue has answered that
        subscribe (a venue whose answers carry no request id: as soon as it was sent)."""
        state = self._state
        return state[0] == epoch and code in state[1] and code not in state[2]
