"""Chaos tooling: kill our actors through the normal failure path (``svc.chaos``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pykka

from depthkeeper.supervisor.messages import Crash

if TYPE_CHECKING:
    from depthkeeper.supervisor.service import BookService

SINGLETONS = ("connection", "subscription", "snapshot")


class Chaos:
    """Kill targets: "connection" | "subscription" | "snapshot" | "book:CODE" | "book" | "random"."""

    def __init__(self, svc: BookService, rng: random.Random | None = None) -> None:
        self._svc = svc
        self.rng = rng or random.Random()
        self.kills: dict[str, int] = {}

    def targets(self) -> list[str]:
        return [*SINGLETONS, *(f"book:{c}" for c in sorted(self._svc.routes.codes()))]

    def resolve(self, target: str) -> tuple[str, pykka.ActorRef[Any] | None]:
        if target == "random":
            target = self.rng.choice(self.targets())
        elif target == "book":
            books = self.targets()[len(SINGLETONS):]
            target = self.rng.choice(books) if books else "connection"
        if target.startswith("book:"):
            return target, self._svc.routes.get(target[5:])
        if target in SINGLETONS:
            return target, getattr(self._svc.peers, target)
        raise ValueError(f"unknown chaos target {target!r}")

    def kill(self, target: str) -> str:
        """Crash the target (it raises inside a tell); returns the resolved target name."""
        name, ref = self.resolve(target)
        if ref is None:
            return name
        try:
            ref.tell(Crash("chaos kill"))
        except pykka.ActorDeadError:
            return name
        kind = name.split(":", 1)[0]
        self.kills[kind] = self.kills.get(kind, 0) + 1
        return name
