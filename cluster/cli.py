"""``depthkeeper shard`` and ``depthkeeper watch`` (supervisor/cli.py delegates here).

``shard`` prints one JSON line first (``{"shard": id, "pid": ...}``, flushed) so a parent process
can tell which shard it started; logs go to stderr. ``watch`` draws a plain live table of remote
books (``--json``: one JSON object per refresh instead, for scripts and tests).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

REFRESH_S = 0.5


def add_parsers(sub: Any) -> None:
    shard = sub.add_parser("shard", help="run one cluster shard (leases slots, publishes books to Redis)")
    shard.add_argument("--config", required=True, help="TOML deployment file with a [cluster] section")
    shard.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    shard.add_argument("--id", default=None, help="shard id (default: host-pid-random)")
    watch = sub.add_parser("watch", help="live table of the cluster's books (from Redis)")
    watch.add_argument("--redis", required=True, help="redis://host:port/db of the cluster")
    watch.add_argument("--name", default="depthkeeper", help="the cluster's name ([cluster] name)")
    watch.add_argument("--subscribe", action="store_true", help="also add the codes to the cluster's desired set")
    watch.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    watch.add_argument("--interval", type=float, default=REFRESH_S, help="seconds between refreshes")
    watch.add_argument("--json", action="store_true", help="print one JSON object per refresh")
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
    setup_logging(cfg.log.level, cfg.log.file)
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


def render(views: dict[str, Any], stats: dict[str, Any], elapsed_s: float) -> str:
    books = stats.get("books", {})
    head = (f"depthkeeper watch  up {elapsed_s:6.1f}s  redis {'ok' if stats.get('connected') else 'DOWN'}  "
            f"rebootstraps {stats.get('counters', {}).get('rebootstraps', 0)}")
    cols = (f"{'symbol':<10} {'status':<9} {'seq':>9} {'best bid':>12} {'best ask':>12} {'levels':>7} "
            f"{'age s':>7} {'epoch':>5} {'reboot':>6}  reason")
    lines = [head, "", cols, "-" * len(cols)]
    for code, view in views.items():
        if view is None:
            lines.append(f"{code:<10} {'-':<9}")
            continue
        info = books.get(code, {})
        age = f"{view.age_s:7.1f}" if view.age_s != float("inf") else f"{'-':>7}"
        bid = view.best_bid if view.best_bid is not None else "-"
        ask = view.best_ask if view.best_ask is not None else "-"
        lines.append(f"{code:<10} {view.status.name:<9} {view.seq:>9} {bid:>12} {ask:>12} "
                     f"{view.complete_levels[0]}/{view.complete_levels[1]:<5} {age} {info.get('ep', 0):>5} "
                     f"{info.get('rebootstraps', 0):>6}  {getattr(view, 'reason', '') or ''}")
    return "\n".join(lines)


def watch_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from depthkeeper.cluster.compat import BookUnavailable, setup_logging
    from depthkeeper.cluster.remote import RemoteBooks

    setup_logging("WARNING")
    stop = _stop_on_signals()
    started = time.monotonic()
    with RemoteBooks(args.redis, name=args.name) as books:
        if args.subscribe:
            books.subscribe(args.codes)
        while True:
            views: dict[str, Any] = {}
            for code in args.codes:
                try:
                    views[code] = books.book(code, depth=1)
                except BookUnavailable:
                    views[code] = None
            stats = books.stats()
            elapsed = time.monotonic() - started
            if args.json:
                row = {"t": round(elapsed, 3), "counters": stats["counters"],
                       "books": {code: None if v is None else
                                 {"status": v.status.name, "seq": v.seq, "bid": v.best_bid, "ask": v.best_ask,
                                  "rebootstraps": stats["books"].get(code, {}).get("rebootstraps", 0)}
                                 for code, v in views.items()}}
                out.write(json.dumps(row) + "\n")
            else:
                out.write("\x1b[H\x1b[2J" + render(views, stats, elapsed) + "\n")
            out.flush()
            if args.duration is not None and elapsed >= args.duration:
                break
            if stop.wait(args.interval):
                break
    return 0
