"""``depthkeeper run``: start the service from a config file and show the live view.

On a terminal the live view (supervisor/cli/tui/) takes the screen until ``q``, Ctrl-C, the
``--duration`` or an escalation; warnings go to its events pane meanwhile, not under it.
Without a terminal, or with ``--no-table`` / ``--json``, nothing is drawn: the service just
runs and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loguru import logger

from depthkeeper.supervisor.cli.logs import add_console_sink, setup_logging
from depthkeeper.supervisor.service.config import AppConfig, load_config
from depthkeeper.supervisor.service.errors import ConfigError

if TYPE_CHECKING:
    from depthkeeper.supervisor.cli.tui import TerminalUI
    from depthkeeper.supervisor.service.facade import BookService

#: how often the loop checks the duration and the supervisor
REFRESH_S = 0.25
#: how often the live view redraws (a key redraws at once)
FRAME_S = 0.5
#: the events pane shows records from this level up
PANE_LEVEL = "WARNING"


@contextlib.contextmanager
def live_view(svc: BookService, stop: threading.Event, out: TextIO, console_sink: int,
              console_level: str) -> Iterator[TerminalUI]:
    """The live view with the stderr sink swapped for its events pane, restored on the way out."""
    from rich.console import Console

    from depthkeeper.supervisor.cli.tui import ServiceSource, TerminalUI

    ui = TerminalUI(ServiceSource(svc), stop, console=Console(file=out))
    logger.remove(console_sink)
    pane = logger.add(ui.events.sink, level=console_level, format="{message}")
    try:
        with ui:
            yield ui
    finally:
        logger.remove(pane)
        add_console_sink(console_level)  # shutdown problems are still said, now on the normal screen


def quieter(level: str, floor: str) -> str:
    """The less verbose of two loguru level names."""
    return level if logger.level(level).no >= logger.level(floor).no else floor


def load(args: argparse.Namespace) -> AppConfig:
    """The deployment, ``[chaos]`` included (validated although ``run`` ignores it); a shipped file's
    relative paths are relative to the working directory (the package's directory is not yours)."""
    base_dir = Path.cwd() if getattr(args, "config_shipped", False) else None
    cfg = load_config(args.config, base_dir=base_dir)
    if cfg.chaos:
        from depthkeeper.chaos.schedule import settings_from_mapping

        settings_from_mapping(cfg.chaos, cfg.source)
    return cfg


def fail(problem: object) -> int:
    """A usage, config or start-up problem: one line on stderr, exit status 2."""
    text = " ".join(str(problem).split()) or type(problem).__name__
    print(f"depthkeeper: {text}", file=sys.stderr)
    return 2


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        cfg = load(args)
    except ConfigError as exc:
        return fail(exc)
    level = getattr(args, "log_level", None) or cfg.log.level
    show_table = not args.no_table and not args.json and out.isatty()
    try:
        console_sink = setup_logging(level, cfg.log.file)
    except (OSError, ValueError) as exc:
        return fail(f"{cfg.source}: [log] file: cannot write {cfg.log.file}: {exc}")
    console_level = quieter(level, PANE_LEVEL)
    if show_table:  # only warnings on the terminal, before, in and after the screen (the file keeps the level)
        logger.remove(console_sink)
        console_sink = add_console_sink(console_level)
    from depthkeeper.supervisor.service.facade import BookService

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        svc = BookService.start(cfg)
    except Exception as exc:  # noqa: BLE001 - any start-up failure: one line, exit 2 (start() cleaned up)
        return fail(f"cannot start: {exc}")
    # The process is ours here (never in the library): move everything built so far out of the
    # collector's reach, so a full collection walks only what changes (at 1000 symbols a full
    # collection otherwise pauses every thread for ~25 ms, the worst latency we measure).
    gc.freeze()
    started = time.monotonic()
    gave_up: str | None = None
    try:
        with live_view(svc, stop, out, console_sink, console_level) if show_table else contextlib.nullcontext() as ui:
            while not (ui.wait(FRAME_S) if ui is not None else stop.wait(REFRESH_S)):
                if svc.escalation is not None:
                    gave_up = f"{svc.escalation.reason} after {svc.escalation.restarts} restarts"
                    break
                if args.duration is not None and time.monotonic() - started >= args.duration:
                    break
                if ui is not None:
                    ui.draw()
        final = svc.stats()
    finally:
        svc.stop()
    if args.json:
        print(json.dumps(final.as_dict(), indent=2, sort_keys=True, default=str), file=out)
    if gave_up is not None:
        print(f"depthkeeper: the supervisor gave up ({gave_up}); stopped", file=sys.stderr)
        return 3
    return 0
