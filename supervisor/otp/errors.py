"""The exceptions of the supervision layer."""

from __future__ import annotations


class RestartIntensityExceeded(Exception):
    """A supervisor saw more restarts than its intensity allows and gave up."""


class ChaosCrash(Exception):
    """Raised inside an actor by a told ``Crash``: a crash through the normal failure path."""
