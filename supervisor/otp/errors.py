"""The exceptions of the supervision layer."""

from __future__ import annotations


class RestartIntensityExceeded(Exception):
    """A supervisor saw more restarts than its intensity allows and gave up."""


class ChaosCrash(Exception):
    """Raised inside an actor by a told ``Crash``: a crash through the normal failure path."""

    def __init__(self, text: str, *, injected: bool = False) -> None:
        super().__init__(text)
        self.injected = injected


def mark_injected(thing: object) -> None:
    """Mark a fault injected on purpose (chaos tooling): an exception, or a thread (a dispatcher
    lane) about to be killed. The supervision layer handles it exactly like a real one, but logs
    it at INFO, so a chaos run's log at WARNING shows only the trouble nobody asked for."""
    thing.injected = True  # type: ignore[attr-defined]


def is_injected(thing: object) -> bool:
    """True for what :func:`mark_injected` marked (or a class or instance with ``injected = True``)."""
    return getattr(thing, "injected", False) is True
