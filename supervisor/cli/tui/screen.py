"""``depthkeeper run``'s live view: a full-screen terminal UI over any :class:`BookSource`.

Why rich, not textual: this is one screen that redraws a few times a second and reads three
keys. rich gives exactly that -- a ``Live`` display on the alternate screen (nothing floods
the scrollback, the shell comes back as it was), tables that fit the terminal's width, and
rendering into a fixed-size ``Console`` for tests -- while textual would be a whole
application framework (its own event loop, widgets, CSS) around a single table.

The pieces: :mod:`.source` (what is shown, and the adapter for a local ``BookService``),
:mod:`.model` (pure: snapshots to display strings, the events pane), :mod:`.render` (the
layout at the terminal's size) and this module (the terminal: the alternate screen and the
keyboard). The caller owns the loop::

    with TerminalUI(ServiceSource(svc), stop) as ui:
        sink = logger.add(ui.events.sink, level="WARNING")   # warnings into the pane
        while not ui.wait(0.5):
            ui.draw()
"""

from __future__ import annotations

import enum
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from depthkeeper.supervisor.cli.tui.model import EventLog, Frame, ViewModel
from depthkeeper.supervisor.cli.tui.render import Pager, ScreenView
from depthkeeper.supervisor.cli.tui.source import BookSource

#: how often the key reader checks whether it should stop
KEY_POLL_S = 0.1


class Key(enum.Enum):
    QUIT = "quit"
    NEXT_PAGE = "next_page"
    PREVIOUS_PAGE = "previous_page"


_SEQUENCES = {b"\x1b[6~": Key.NEXT_PAGE, b"\x1b[5~": Key.PREVIOUS_PAGE, b"\x1b[B": Key.NEXT_PAGE,
              b"\x1b[A": Key.PREVIOUS_PAGE}
_SINGLE = {b"q": Key.QUIT, b"Q": Key.QUIT, b"\x03": Key.QUIT, b" ": Key.NEXT_PAGE, b"n": Key.NEXT_PAGE,
           b"j": Key.NEXT_PAGE, b"p": Key.PREVIOUS_PAGE, b"b": Key.PREVIOUS_PAGE, b"k": Key.PREVIOUS_PAGE}


def parse_keys(data: bytes) -> list[Key]:
    """Keys in what one read returned; unknown bytes and escape sequences are ignored."""
    keys: list[Key] = []
    i = 0
    while i < len(data):
        if data[i:i + 1] == b"\x1b":
            end = i + 1
            while end < len(data) and end - i < 8 and not (data[end:end + 1].isalpha() or data[end:end + 1] == b"~"):
                end += 1
            seq = data[i:end + 1]
            if seq in _SEQUENCES:
                keys.append(_SEQUENCES[seq])
            i = end + 1
            continue
        key = _SINGLE.get(data[i:i + 1])
        if key is not None:
            keys.append(key)
        i += 1
    return keys


class KeyReader:
    """Reads keys from a terminal in cbreak mode on a daemon thread.

    cbreak (not raw): keys arrive one by one without Enter or echo, while Ctrl-C still raises
    SIGINT, so the process' own handler stops it the usual way. :meth:`close` restores the
    terminal's settings exactly, and so does a failure to start.
    """

    def __init__(self, on_key: Callable[[Key], None], stream: TextIO) -> None:
        self._on_key = on_key
        self._stream = stream
        self._closed = threading.Event()
        self._saved: list[Any] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """False when the stream is no terminal (then there are no keys, Ctrl-C still works)."""
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        if not os.isatty(fd):
            return False
        import termios
        import tty

        self._saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed already
            self._thread = threading.Thread(target=self._run, args=(fd,), name="depthkeeper-keys", daemon=True)
            self._thread.start()
        except BaseException:
            self._restore(fd)
            raise
        return True

    def _run(self, fd: int) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], KEY_POLL_S)
                data = os.read(fd, 64) if ready else b""
            except OSError:
                return  # the terminal went away: no more keys
            for key in parse_keys(data):
                self._on_key(key)

    def _restore(self, fd: int) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def close(self) -> None:
        """Stop reading and restore the terminal (idempotent)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._saved is not None:
            self._restore(self._stream.fileno())


class TerminalUI:
    """The live view on one console: alternate screen, keys, one frame per :meth:`draw`.

    ``stop`` is set by ``q`` (Ctrl-C is the caller's signal handler). ``keys=None`` reads no
    keyboard and ``screen=False`` draws in place: tests render into a recording console.
    """

    def __init__(self, source: BookSource, stop: threading.Event, *, console: Console | None = None,
                 keys: TextIO | None = sys.stdin, screen: bool = True) -> None:
        self.source = source
        self.stop = stop
        self.console = console if console is not None else Console()
        self.model = ViewModel()
        self.pager = Pager()
        self._frame: Frame | None = None
        self._wake = threading.Event()
        self._keys = KeyReader(self.on_key, keys) if keys is not None else None
        self._live = Live(ScreenView(self.frame, self.pager), console=self.console, screen=screen,
                          auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False)

    @property
    def events(self) -> EventLog:
        """The events pane; ``events.sink`` is a loguru sink for warnings while the screen is up."""
        return self.model.events

    def frame(self) -> Frame:
        if self._frame is None:
            self._frame = self.model.update(self.source.snapshot())
        return self._frame

    def __enter__(self) -> TerminalUI:
        self.frame()
        # keys first: once the screen says "q to quit", q works (nothing typed before is flushed)
        if self._keys is not None:
            self._keys.start()
        try:
            self._live.start(refresh=True)
        except BaseException:
            if self._keys is not None:
                self._keys.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._keys is not None:
                self._keys.close()
        finally:
            self._live.stop()
            self.source.close()

    def draw(self) -> None:
        """Read the source once and show it."""
        self._frame = self.model.update(self.source.snapshot())
        self._live.refresh()

    def on_key(self, key: Key) -> None:
        if key is Key.QUIT:
            self.stop.set()
        elif key is Key.NEXT_PAGE:
            self.pager.next()
        elif key is Key.PREVIOUS_PAGE:
            self.pager.previous()
        self._wake.set()

    def wait(self, timeout_s: float) -> bool:
        """Until the next frame is due or a key was pressed; True once the view should stop."""
        if not self.stop.is_set():
            self._wake.wait(timeout_s)
        self._wake.clear()
        return self.stop.is_set()
