"""The simulator's few exceptions, one place so callers can catch them by meaning.

They are raised to the embedding test (through the handle) or mapped to HTTP statuses by the
control endpoints (404 for unknown things, 409 for history that is no longer there).
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every error the simulator raises on purpose."""


class UnknownCode(SimulatorError, KeyError):
    """A symbol code the venue does not list."""

    def __str__(self) -> str:
        return f"unknown code: {self.args[0]!r}"


class UnknownConnection(SimulatorError, KeyError):
    """A connection id that is not (or no longer) open."""

    def __str__(self) -> str:
        return f"unknown connection: {self.args[0]!r}"


class HistoryUnavailable(SimulatorError, LookupError):
    """A past book that the undo log no longer holds (or a seq from the future)."""


class SimulatorStopped(SimulatorError, RuntimeError):
    """The handle was used after ``stop()``, or the server thread died."""


class FaultNotSupported(SimulatorError, ValueError):
    """A fault the venue's dialect has no notion of (answered 400 over HTTP)."""
