"""Logging set-up: the only place that configures loguru sinks. Called by the CLI only.

Library code never adds sinks; it binds context (``actor=``, ``symbol=``, ``epoch=``) and
logs constant templates. Here we add one stderr sink (and optionally a file), route the
stdlib loggers of pykka, websocket-client and websockets into loguru, and redact tokens
from every line as a last line of defence (the code already logs redacted URLs).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from loguru import logger

from depthkeeper.actors.core.wire import redact

_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[actor]}</cyan> {message} <dim>{extra[ctx]}</dim>"
)
#: stdlib loggers of our dependencies, routed into loguru
ROUTED_LOGGERS = ("pykka", "websocket", "websockets")


class InterceptHandler(logging.Handler):
    """Forward stdlib records to loguru at the same level (loguru's documented recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(actor=record.name).opt(exception=record.exc_info, depth=6).log(level, redact(record.getMessage()))


def _patch(record: Any) -> None:
    record["message"] = redact(record["message"])
    extra = record["extra"]
    extra.setdefault("actor", "-")
    ctx = {k: v for k, v in extra.items() if k not in ("actor", "ctx")}
    extra["ctx"] = " ".join(f"{k}={v}" for k, v in ctx.items())


def setup_logging(level: str = "INFO", file: str = "") -> None:
    """Configure sinks for a CLI process. Idempotent."""
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(sys.stderr, level=level, format=_FORMAT, backtrace=False, diagnose=False)
    if file:
        logger.add(file, level=level, format=_FORMAT, colorize=False, rotation="50 MB", enqueue=True)
    handler = InterceptHandler()
    for name in ROUTED_LOGGERS:
        stdlib = logging.getLogger(name)
        stdlib.handlers = [handler]
        stdlib.setLevel(logging.DEBUG if level in ("TRACE", "DEBUG") else logging.INFO)
        stdlib.propagate = False
