"""The one place the cluster touches the single-process service's types.

The cluster is built on BookService's *public* API only (start, subscribe, unsubscribe, book,
add_listener, stop, ...) and on the event/view types it hands out. Statuses are handled by
*name*, so statuses added to BookStatus later (DISCONNECTED, REJECTED, ...) flow through without
a change here, and a ``reason`` is carried when BookView has that field. ``depthkeeper watch``
draws remote books with the live view of ``depthkeeper run`` (its BookSource types, TerminalUI).
"""

from __future__ import annotations

from typing import Any

import attrs

from depthkeeper.actors.messages import BookStatus, BookStatusChanged, BookUpdated, BookView
from depthkeeper.supervisor.cli.logs import add_console_sink, setup_logging
from depthkeeper.supervisor.cli.tui import BookSample, LinkSample, SourceSnapshot, StatusEvent, TerminalUI
from depthkeeper.supervisor.service import BookService, BookUnavailable, SubscribeResult
from depthkeeper.supervisor.service.config import AppConfig, load_config
from depthkeeper.supervisor.service.errors import ConfigError

__all__ = [
    "AppConfig",
    "BookSample",
    "BookService",
    "BookStatus",
    "BookStatusChanged",
    "BookUnavailable",
    "BookUpdated",
    "BookView",
    "ConfigError",
    "LinkSample",
    "SourceSnapshot",
    "StatusEvent",
    "SubscribeResult",
    "TerminalUI",
    "add_console_sink",
    "load_config",
    "make_view",
    "reason_of",
    "setup_logging",
    "to_status",
]

_VIEW_FIELDS = frozenset(f.name for f in attrs.fields(BookView))
_EVENT_FIELDS = frozenset(f.name for f in attrs.fields(BookStatusChanged))
#: a status name BookStatus does not know is shown as this (its name goes into the reason)
FALLBACK = "RESYNCING"


def to_status(name: str) -> Any:
    """The BookStatus member called ``name``, or the fallback (the caller keeps the name in the reason)."""
    members = BookStatus.__members__
    return members.get(name) or members.get(FALLBACK) or next(iter(members.values()))


def known(name: str) -> bool:
    return name in BookStatus.__members__


def reason_of(obj: Any) -> str:
    """A view's or event's reason, when the type has one."""
    return str(getattr(obj, "reason", "") or "")


def make_view(code: str, status_name: str, seq: int, bids: tuple[tuple[float, float], ...],
              asks: tuple[tuple[float, float], ...], updated_at: float, complete: tuple[int, int],
              reason: str) -> BookView:
    """The same BookView class BookService.book returns (with ``reason`` if BookView has it)."""
    if not known(status_name):
        reason = f"{status_name}: {reason}" if reason else status_name
    kwargs: dict[str, Any] = {"code": code, "status": to_status(status_name), "seq": seq, "bids": bids,
                              "asks": asks, "updated_at": updated_at}
    if "complete_levels" in _VIEW_FIELDS:
        kwargs["complete_levels"] = complete
    if "reason" in _VIEW_FIELDS:
        kwargs["reason"] = reason
    return BookView(**kwargs)


def make_status_event(code: str, old: str, new: str, seq: int, reason: str) -> BookStatusChanged:
    if not known(new):
        reason = f"{new}: {reason}" if reason else new
    kwargs: dict[str, Any] = {"code": code, "old": to_status(old), "new": to_status(new), "seq": seq}
    if "reason" in _EVENT_FIELDS:
        kwargs["reason"] = reason
    return BookStatusChanged(**kwargs)
