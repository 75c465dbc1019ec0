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
    of replaying the whole desired set (which the venue would see as duplicate subscribes).
    """

    __slots__ = ("active", "epoch")

    def __init__(self) -> None:
        self.epoch = 0
        self.active: frozenset[str] = frozenset()

    def record(self, epoch: int, active: set[str] | frozenset[str]) -> None:
        self.epoch, self.active = epoch, frozenset(active)
