"""The live view against a real BookService and its embedded simulator, drawn into an 80x24 virtual terminal."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable

import pytest
from rich.console import Console

from depthkeeper.supervisor.cli.tui import ServiceSource, TerminalUI
from depthkeeper.supervisor.service.facade import BookService
from tests.support import wait_until

pytestmark = pytest.mark.integration


def test_the_live_view_shows_live_books_a_seq_break_and_a_lost_socket(
        service: Callable[..., BookService]) -> None:
    svc = service()
    wait_until(lambda: len(svc.book_stats()) == 2, 10, "both books started")
    console = Console(width=80, height=24, record=True, force_terminal=True, color_system=None, file=io.StringIO())
    source = ServiceSource(svc)
    with TerminalUI(source, threading.Event(), console=console, keys=None) as ui:
        assert "symbol" in console.export_text(clear=True)  # the first screen, drawn on entering

        def screen() -> list[str]:
            ui.draw()
            lines = console.export_text(clear=True).splitlines()
            assert len(lines) == 24 and max(map(len, lines)) <= 80
            return lines

        def live_and_flowing() -> list[str] | None:
            lines = screen()
            rows = {cells[0]: cells[1] for cells in (line.split() for line in lines[5:])
                    if cells and cells[0].endswith("USDT")}
            rate = int(lines[3].split()[1])
            return lines if rows == {"BTCUSDT": "LIVE", "ETHUSDT": "LIVE"} and rate > 0 else None

        lines = wait_until(live_and_flowing, 15.0, "both books LIVE on screen with diffs flowing")
        assert lines[0].startswith("depthkeeper  ws://127.0.0.1:") and "(article)" in lines[0]
        assert lines[1].startswith("connection UP  epoch 1")
        assert "q or Ctrl-C to quit" in lines[-1]

        svc.simulator.faults.drop(3, code="BTCUSDT")  # a gap: a seq break and a resync
        wait_until(lambda: any("BTCUSDT LIVE -> RESYNCING: " in line for line in screen()), 10.0,
                   "the seq break in the events pane")
        assert svc.wait_live(timeout=10.0)
        wait_until(lambda: any(line.split()[:2] == ["BTCUSDT", "LIVE"] and line.split()[-1] == "1"
                               for line in screen()), 10.0, "BTCUSDT LIVE again, one resync counted")

        svc.simulator.faults.close()  # the socket drops: the pane says so, the header counts the new epoch
        wait_until(lambda: any("WARN connection lost" in line for line in screen()), 10.0, "connection lost")
        assert svc.wait_live(timeout=10.0)
        wait_until(lambda: re.match(r"connection UP  epoch 2  last error: \d\d:\d\d:\d\d connection lost", screen()[1]),
                   10.0, "back up, the last error kept")
    assert svc.stats().listeners == {}, "the view's listener is gone with the view"
