"""``svc.tree`` (also ``svc.chaos``): the narrow handle into the running tree for tests, probes,
metrics and chaos tooling.

It resolves a target name to the current ref of that actor (``connection``, ``subscription``,
``snapshot``, ``archive``, ``book:CODE``, ``book`` or ``random``), kills one through the normal
failure path (a told ``Crash``: the actor raises inside that message, ``on_failure`` reports
``ChildExited(CRASHED)``, its supervisor restarts it), and lists the root's children. That is
all a host's tests or the chaos runner (``depthkeeper.chaos``, which adds zombies and venue
faults on top) need; the service's internals stay its own.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pykka

from depthkeeper.supervisor.otp.messages import ChildInfo, Crash, GetChildren, child_ref
from depthkeeper.supervisor.otp.tell import tell

if TYPE_CHECKING:
    from depthkeeper.supervisor.service.runtime import Runtime

SINGLETONS = ("connection", "subscription", "snapshot")
BOOK = "book"
ARCHIVE = "archive"
RANDOM = "random"


class TreeHandle:
    """See the module docstring."""

    def __init__(self, rt: Runtime, ask_timeout_s: float, rng: random.Random | None = None) -> None:
        self._rt = rt
        self._ask_timeout_s = ask_timeout_s
        self.rng = rng or random.Random()
        #: delivered kills per kind ("book", "connection", ...)
        self.kills: Counter[str] = Counter()

    @property
    def epoch(self) -> int:
        """The newest socket epoch (each connection incarnation gets a new one)."""
        return self._rt.epochs.current

    @property
    def scheduler(self) -> Any:
        """The timer service every actor of this service shares (tests count what it holds)."""
        return self._rt.scheduler

    def silent_s(self) -> float:
        """Seconds since the open socket last delivered business data."""
        return self._rt.socket.silent_for(time.monotonic())

    def book_codes(self) -> frozenset[str]:
        """Codes that have a running book right now."""
        return self._rt.routes.codes()

    def children(self) -> tuple[ChildInfo, ...]:
        """The root supervisor's children (empty when it does not answer)."""
        root = self._rt.root
        if root is None:
            return ()
        try:
            return tuple(root.ask(GetChildren(), timeout=self._ask_timeout_s))
        except (pykka.Timeout, pykka.ActorDeadError):
            return ()

    def root_alive(self) -> bool:
        return self._rt.root is not None and self._rt.root.is_alive()

    def targets(self) -> list[str]:
        """Every concrete target right now (books in code order)."""
        extra = [ARCHIVE] if self._rt.cfg.archive.path else []
        return [*SINGLETONS, *extra, *(f"{BOOK}:{c}" for c in sorted(self.book_codes()))]

    def resolve(self, target: str) -> tuple[str, pykka.ActorRef[Any] | None]:
        """``target`` -> (concrete name, current ref or None while it restarts)."""
        if target == RANDOM:
            target = self.rng.choice(self.targets())
        elif target == BOOK:
            books = sorted(self.book_codes())
            if not books:
                return BOOK, None
            target = f"{BOOK}:{self.rng.choice(books)}"
        if target.startswith(BOOK + ":"):
            return target, self._rt.routes.get(target[len(BOOK) + 1:])
        if target in SINGLETONS:
            return target, getattr(self._rt.peers, target)
        if target == ARCHIVE:
            return target, child_ref(self.children(), ARCHIVE)
        raise ValueError(f"unknown chaos target {target!r} (connection, subscription, snapshot, book, "
                         f"book:CODE, archive, random)")

    def ref(self, target: str) -> pykka.ActorRef[Any] | None:
        """The current ref of a concrete target (None while it restarts)."""
        return self.resolve(target)[1]

    def kill(self, target: str = RANDOM) -> str:
        """Crash ``target`` through the normal failure path; return the concrete target name
        ("" when it was not running: restarting, or already dead)."""
        name, ref = self.resolve(target)
        if ref is None:
            return ""
        if not tell(ref, Crash("chaos kill", injected=True)):  # logged at INFO: the caller asked for it
            return ""
        self.kills[name.split(":", 1)[0]] += 1
        return name
