"""The ``depthkeeper`` command: the only place that configures log sinks or exits the process."""

from __future__ import annotations

from depthkeeper.supervisor.cli.main import main

__all__ = ["main"]
