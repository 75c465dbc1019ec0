"""Logging set-up: the only place that configures loguru sinks. Called by the CLI only.

Library code never adds sinks, and every depthkeeper package disables its logger on import
(``logger.disable("depthkeeper")``, loguru's convention for libraries); this module is the
host that turns it on (:func:`setup_logging` calls ``logger.enable("depthkeeper")``). Every
command (``run``, ``sim``, ``chaos``) goes through it, so they all log in one format::

    12:00:01.234 WARNING book    seq break (gap): resyncing from seq 79  symbol=ADAUSDT epoch=2

time, level, who (the actor or component), the message, then the context the code bound
(``symbol=``, ``epoch=``, ...) minus what the message already says. The stdlib loggers of pykka,
websocket-client and websockets are routed into loguru; websockets (the embedded simulator's
server) only from WARNING up, so its per-connection access log never reaches an operator.
Tokens are redacted from every line as a last line of defence (the code already logs redacted
URLs).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from loguru import logger

from depthkeeper.actors.core.wire import redact

#: loguru's level names, least to most severe (``--log-level`` and ``[log] level`` take these)
LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[who]: <12}</cyan> {message}<dim>{extra[ctx]}</dim>"
)
#: stdlib loggers of our dependencies, routed into loguru, with the lowest level each may log at
#: (websockets logs every connection and HTTP request of the embedded simulator at INFO)
ROUTED_LOGGERS = {"pykka": "TRACE", "websocket": "TRACE", "websockets": "WARNING"}
#: extra keys that say who logged (shown in the "who" column, never repeated in the context)
_WHO_KEYS = ("actor", "component")
_INTERNAL = frozenset((*_WHO_KEYS, "who", "ctx"))


class InterceptHandler(logging.Handler):
    """Forward stdlib records to loguru at the same level (loguru's documented recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(actor=record.name).opt(exception=record.exc_info, depth=6).log(level, redact(record.getMessage()))


def _said(key: str, value: Any, message: str) -> bool:
    """True when the message already says this context item (``key=value``, or a name it contains)."""
    text = str(value)
    if f"{key}={text}" in message:
        return True
    return isinstance(value, str) and len(text) >= 3 and re.search(rf"(?<![\w:]){re.escape(text)}(?![\w:])",
                                                                   message) is not None


def context_suffix(extra: dict[str, Any], message: str) -> str:
    """The bound context a line shows after its message: ``"  symbol=BTCUSDT epoch=3"``, or ``""``.
    A name already shown (in the message, or under another key: ``supervisor=books child_id=books``)
    is not repeated."""
    items: list[str] = []
    shown: set[str] = set()
    for key, value in extra.items():
        if key in _INTERNAL or _said(key, value, message):
            continue
        if isinstance(value, str) and len(value) >= 3:
            if value in shown:
                continue
            shown.add(value)
        items.append(f"{key}={value}")
    return "  " + " ".join(items) if items else ""


def _patch(record: Any) -> None:
    record["message"] = redact(record["message"])
    extra = record["extra"]
    extra["who"] = next((str(extra[k]) for k in _WHO_KEYS if extra.get(k)), "-")
    extra["ctx"] = context_suffix(extra, record["message"])


def add_console_sink(level: str) -> int:
    """The stderr sink; returns its id (``logger.remove(id)`` takes it away again)."""
    return logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)


def _stdlib_level(level: str, floor: str) -> int:
    """The stdlib level for a routed logger: ours, but never below its floor."""
    ours = max(LEVELS.index(level), LEVELS.index(floor))
    return {"TRACE": logging.DEBUG, "SUCCESS": logging.INFO}.get(LEVELS[ours], getattr(logging, LEVELS[ours]))


def setup_logging(level: str = "INFO", file: str = "") -> int:
    """Configure sinks for a CLI process and turn depthkeeper's logs on. Idempotent. Returns the
    stderr sink's id (the live view removes it while the screen is up, so warnings go to its events
    pane instead)."""
    logger.remove()
    logger.configure(patcher=_patch)
    logger.enable("depthkeeper")
    console = add_console_sink(level)
    if file:
        logger.add(file, level=level, format=FORMAT, colorize=False, rotation="50 MB", enqueue=True)
    handler = InterceptHandler()
    for name, floor in ROUTED_LOGGERS.items():
        stdlib = logging.getLogger(name)
        stdlib.handlers = [handler]
        stdlib.setLevel(_stdlib_level(level, floor))
        stdlib.propagate = False
    return console
