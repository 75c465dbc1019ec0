"""The CLI's log lines: who, message, then the bound context minus what the line already says."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from depthkeeper.supervisor.cli.logs import context_suffix, setup_logging


def test_context_keeps_what_the_message_does_not_say() -> None:
    assert context_suffix({"actor": "book", "symbol": "BTCUSDT", "epoch": 3}, "seq break (gap)") \
        == "  symbol=BTCUSDT epoch=3"
    # said in the message (as key=value, or the name itself), or already shown under another key
    assert context_suffix({"component": "simulator", "host": "127.0.0.1", "port": 5},
                          "simulator listening host=127.0.0.1 port=5") == ""
    assert context_suffix({"offender": "book:BTCUSDT", "reason": "crashed", "generation": 1},
                          "book:BTCUSDT generation 1 exited: crashed") == "  generation=1"
    assert context_suffix({"supervisor": "books", "child_id": "books", "generation": 1, "epoch": 1}, "x") \
        == "  supervisor=books generation=1 epoch=1"


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """Undo setup_logging for the rest of the suite: loguru's default sink, stdlib loggers as they were."""
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.__stderr__)
    for name in ("pykka", "websocket", "websockets"):
        stdlib = logging.getLogger(name)
        stdlib.handlers, stdlib.propagate = [], True
        stdlib.setLevel(logging.NOTSET)


def test_one_format_and_websockets_access_log_kept_out(cli_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # here: pytest re-installs its own capture between phases
    setup_logging("INFO")
    logger.bind(actor="book", symbol="BTCUSDT").warning("seq break (gap): resyncing from seq {}", 7)
    logging.getLogger("websockets.server").info("connection open")  # the access log: INFO, dropped
    logging.getLogger("websockets.server").warning("handshake failed")
    logging.getLogger("pykka").info("an actor said something")
    lines = stderr.getvalue().splitlines()
    pattern = r"^\d\d:\d\d:\d\d\.\d{3} (?P<level>\w+) +(?P<who>\S+) +(?P<rest>.*)$"
    parsed = [re.match(pattern, line) for line in lines]
    assert all(parsed), lines
    assert [(m["level"], m["who"], m["rest"]) for m in parsed if m] == [
        ("WARNING", "book", "seq break (gap): resyncing from seq 7  symbol=BTCUSDT"),
        ("WARNING", "websockets.server", "handshake failed"),
        ("INFO", "pykka", "an actor said something"),
    ]
