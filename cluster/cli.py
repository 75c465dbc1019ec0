"""``depthkeeper shard`` and ``depthkeeper watch`` (supervisor/cli.py delegates here).

``shard`` prints one JSON line first (``{"shard": id, "pid": ...}``, flushed) so a parent process
can tell which shard it started; logs go to stderr. ``watch`` shows remote books in the live view of
``run`` on a terminal (cluster/watch.py), a plain table per refresh otherwise (or with ``--plain``),
``--json`` one JSON object per refresh (scripts, tests). Both honour the global ``--log-level``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

REFRESH_S = 0.5


def add_parsers(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``shard`` and ``watch`` with the main CLI's ``command(name, help)`` factory (its help format and
    its ``--log-level``, also accepted after the command)."""
    shard = command("shard", "run one cluster shard (leases slots, publishes books to Redis)")
    shard.add_argument("--config", required=True, metavar="FILE", help="TOML deployment file with a [cluster] section")
    shard.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                       help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    shard.add_argument("--id", default=None, help="shard id (default: host-pid-random)")
    watch = command("watch", "live table of the cluster's books (from Redis)")
    watch.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db of the cluster")
    watch.add_argument("--name", default="depthkeeper", help="the cluster's name ([cluster] name)")
    watch.add_argument("--redis-cluster", action="store_true",
                       help="the URL is a node of a Redis Cluster ([cluster] redis_cluster)")
    watch.add_argument("--subscribe", action="store_true", help="also add the codes to the cluster's desired set")
    watch.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                       help="stop after this many seconds (default: until q, Ctrl-C or SIGTERM)")
    watch.add_argument("--interval", type=float, default=REFRESH_S, metavar="SECONDS", help="seconds between refreshes")
    watch.add_argument("--json", action="store_true", help="print one JSON object per refresh")
    watch.add_argument("--plain", action="store_true",
                       help="a plain table per refresh instead of the live view (also when stdout is no terminal)")
    watch.add_argument("codes", nargs="+", metavar="CODE")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def shard_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from depthkeeper.cluster.compat import ConfigError, load_config, setup_logging

    try:
        cfg = load_config(args.config)
        if cfg.simulator.enabled:
            raise ConfigError(f"{args.config}: [simulator] enabled: a shard needs a venue shared by the whole "
                              "cluster (start one with `depthkeeper sim`), not one simulator per slot")
    except ConfigError as exc:
        print(f"depthkeeper: {exc}", file=sys.stderr)
        return 2
    try:
        setup_logging(getattr(args, "log_level", None) or cfg.log.level, cfg.log.file)
    except (OSError, ValueError) as exc:
        print(f"depthkeeper: {cfg.source}: [log] file: cannot write {cfg.log.file}: {exc}", file=sys.stderr)
        return 2
    from depthkeeper.cluster.shard import Shard

    if cfg.metrics.port or cfg.archive.path:
        print("depthkeeper: [metrics] and [archive] are not supported per shard yet; ignored", file=sys.stderr)
    stop = _stop_on_signals()
    shard = Shard(cfg, shard_id=args.id)
    print(json.dumps({"shard": shard.id, "pid": os.getpid()}), file=out, flush=True)
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    import gc

    # the process is ours here (never in the library): move the start-up heap out of the collector's
    # reach once the first slot runs, as `depthkeeper run` does
    shard.run(stop, on_ready=gc.freeze)
    return 0


def watch_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from depthkeeper.cluster.compat import setup_logging
    from depthkeeper.cluster.remote import RemoteBooks
    from depthkeeper.cluster.watch import print_loop

    live = not args.json and not args.plain and out.isatty()
    console_sink = setup_logging(getattr(args, "log_level", None) or "WARNING")
    stop = _stop_on_signals()
    with RemoteBooks(args.redis, name=args.name, record_latency=live, redis_cluster=args.redis_cluster) as books:
        if args.subscribe:
            books.subscribe(args.codes)
        if live:
            live_view(books, args, stop, out, console_sink)
        else:
            print_loop(books, args.codes, stop, out, as_json=args.json, interval_s=args.interval,
                       duration_s=args.duration, clear=not args.json and out.isatty())
    return 0


def live_view(books: Any, args: argparse.Namespace, stop: threading.Event, out: TextIO, console_sink: int) -> None:
    """The live view of ``run`` over remote books until q, Ctrl-C, SIGTERM or ``--duration``; warnings go to its
    events pane meanwhile (the stderr sink is put back afterwards)."""
    from loguru import logger
    from rich.console import Console

    from depthkeeper.cluster.compat import TerminalUI, add_console_sink
    from depthkeeper.cluster.watch import RemoteSource

    level = getattr(args, "log_level", None) or "WARNING"
    if logger.level(level).no < logger.level("WARNING").no:
        level = "WARNING"  # the pane is for warnings, as in `run` (more verbose records would flood it)
    ui = TerminalUI(RemoteSource(books, args.codes, url=args.redis, name=args.name), stop, console=Console(file=out))
    logger.remove(console_sink)
    pane = logger.add(ui.events.sink, level=level, format="{message}")
    started = time.monotonic()
    try:
        with ui:
            while not ui.wait(args.interval):
                if args.duration is not None and time.monotonic() - started >= args.duration:
                    break
                ui.draw()
    finally:
        logger.remove(pane)
        add_console_sink(level)
