"""The live view of ``depthkeeper run``: a terminal UI over any :class:`BookSource` (see screen.py).

A source of remote books provides the same :class:`SourceSnapshot` and gets the same screen.
"""

from __future__ import annotations

from depthkeeper.supervisor.cli.tui.model import EventLog, Frame, ViewModel
from depthkeeper.supervisor.cli.tui.screen import Key, TerminalUI
from depthkeeper.supervisor.cli.tui.source import (
    BookSample,
    BookSource,
    LinkSample,
    ServiceSource,
    SourceSnapshot,
    StatusEvent,
)

__all__ = ["BookSample", "BookSource", "EventLog", "Frame", "Key", "LinkSample", "ServiceSource", "SourceSnapshot",
           "StatusEvent", "TerminalUI", "ViewModel"]
