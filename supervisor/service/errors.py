"""The few exceptions depthkeeper raises on purpose."""

from __future__ import annotations


class DepthkeeperError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(DepthkeeperError):
    """A deployment file is wrong; the message names the file, the key and the problem."""


class ServiceError(DepthkeeperError):
    """The service cannot do what was asked (not started, stopped, timed out)."""
