"""The few exceptions depthkeeper raises on purpose."""

from __future__ import annotations


class DepthkeeperError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(DepthkeeperError):
    """A deployment file is wrong; the message names the file, the key and the problem."""


class ServiceError(DepthkeeperError):
    """The service cannot do what was asked (not started, stopped, timed out)."""


class RestartIntensityExceeded(ServiceError):
    """A supervisor saw more restarts than its intensity allows and gave up."""


class ChaosCrash(Exception):
    """Raised inside an actor by a chaos kill: a crash through the normal failure path."""
