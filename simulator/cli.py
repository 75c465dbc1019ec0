"""``depthkeeper sim``: run a simulator in the foreground until SIGINT/SIGTERM.

The first line on stdout is one JSON object with the URLs, flushed at once, so a parent
process (a test, a chaos script, the demo) can read the ephemeral port from a pipe instead of
guessing it. Nothing else is printed to stdout; logs go to stderr (``--log-level``).
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from loguru import logger

from depthkeeper.simulator.config import SimConfig
from depthkeeper.simulator.errors import SimulatorError
from depthkeeper.simulator.handle import Simulator

#: loguru's level names, least to most severe
#: the collector's full-collection threshold once the window clock runs them (never reached: the
#: clock collects every ``binance.FULL_COLLECTION_EVERY`` younger collections)
MANUAL_FULL_COLLECTIONS = 1000
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Says every default, except the ones that say nothing (None, a flag's False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        says_nothing = action.default is None or action.default is False or action.default == []
        if says_nothing or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthkeeper sim", formatter_class=HelpFormatter,
        description="Run the local exchange simulator (WebSocket + REST snapshots + /_control faults on one "
                    "port) until Ctrl-C or SIGTERM. The first line on stdout is JSON with its URLs.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 = an ephemeral port")
    parser.add_argument("--dialect", default="article", choices=["article", "alltick", "binance"],
                        help="wire protocol: the seed article's, AllTick's, or Binance spot's")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated codes the venue lists")
    parser.add_argument("--rate", type=float, default=50.0, help="diffs/s per symbol; <= 0 = as fast as possible")
    parser.add_argument("--seed", type=int, default=1, help="market seed (the same seed gives the same market)")
    parser.add_argument("--levels", type=int, default=20, help="price levels per side of each book")
    parser.add_argument("--token", default=None,
                        help="require this token (alltick: ?token=; a wrong one gets 401); default: none required")
    parser.add_argument("--stamp", action="store_true", help='add the send time "ts" to every article diff')
    parser.add_argument("--record-history", action="store_true",
                        help="keep every book state by seq (chaos checks; memory grows with the run)")
    parser.add_argument("--no-acks", action="store_true", help="article: never answer sub/unsub with an ack")
    parser.add_argument("--max-symbols-per-connection", type=int, default=0,
                        help="refuse subscriptions beyond this many codes per connection; 0 = no limit")
    parser.add_argument("--alltick-min-interval-s", type=float, default=1.0,
                        help="alltick: minimum spacing of client frames (the real API's 1 request/s)")
    parser.add_argument("--alltick-heartbeat-timeout-s", type=float, default=30.0,
                        help="alltick: close a connection that sent no 22000 heartbeat for this long")
    parser.add_argument("--alltick-int-numbers", action="store_true",
                        help="alltick: seq/tick_time as ints, not strings")
    parser.add_argument("--tick-time-unit", default="ms", choices=["ms", "s"],
                        help="alltick: unit of tick_time")
    parser.add_argument("--log-level", type=str.upper, default="INFO", choices=LOG_LEVELS, metavar="LEVEL",
                        help="log level: " + ", ".join(LOG_LEVELS))
    binance = parser.add_argument_group("binance", "the binance dialect (see simulator/binance.py)")
    binance.add_argument("--binance-lenient", action="store_true",
                         help="count the message, connection and weight limits instead of enforcing them")
    binance.add_argument("--binance-interval-scale", type=float, default=1.0,
                         help="window length factor (0.1 s / 1 s); 0 = an event per pump batch")
    binance.add_argument("--binance-max-messages-per-s", type=int, default=5,
                         help="client messages per second per connection; 0 = no limit")
    binance.add_argument("--binance-max-streams-per-connection", type=int, default=1024,
                         help="streams one connection may subscribe")
    binance.add_argument("--binance-max-connections-per-window", type=int, default=300,
                         help="new connections per window per client; 0 = no limit")
    binance.add_argument("--binance-connection-window-s", type=float, default=300.0,
                         help="the window of --binance-max-connections-per-window")
    binance.add_argument("--binance-ping-interval-s", type=float, default=20.0,
                         help="seconds between server pings; 0 = no server pings")
    binance.add_argument("--binance-pong-timeout-s", type=float, default=60.0,
                         help="close a connection that answers no ping for this long")
    binance.add_argument("--binance-lifetime-scale", type=float, default=1.0,
                         help="connection lifetime, x 24 h; 0 = never cut")
    binance.add_argument("--binance-weight-limit", type=int, default=6000, help="REST weight per window; 0 = none")
    binance.add_argument("--binance-weight-window-s", type=float, default=60.0, help="the REST weight window")
    binance.add_argument("--binance-ban-after-429s", type=int, default=3,
                         help="429 answers before an IP ban (418); 0 = never 418")
    binance.add_argument("--binance-ban-s", type=float, default=120.0, help="length of an IP ban")
    binance.add_argument("--binance-max-url-bytes", type=int, default=65536, help="longest request URL accepted")
    binance.add_argument("--binance-snapshot-max-limit", type=int, default=5000,
                         help="largest depth snapshot limit accepted")
    binance.add_argument("--binance-accept-unknown-symbols", action="store_true",
                         help="SUBSCRIBE to unlisted symbols is acked and silent (real Binance) instead of an error")
    binance.add_argument("--binance-send-log", default="", metavar="PATH",
                         help="append (symbol index, era, u, send time) per depth event (simulator/send_log.py)")
    binance.add_argument("--replay", action="append", default=[], metavar="PATH",
                         help="serve a recorded Binance file (repeatable); --symbols must name its symbols")
    binance.add_argument("--replay-speed", type=float, default=1.0, help="x recorded pace; <= 0 = as fast as read")
    for action in parser._actions:  # short metavars keep the usage readable at 80 columns
        if action.metavar is None and action.type in (int, float):
            action.metavar = "N" if action.type is int else "S" if action.dest.endswith("_s") else "X"
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=args.host,
        port=args.port,
        dialect=args.dialect,
        symbols=args.symbols,
        rate_per_symbol=args.rate,
        seed=args.seed,
        levels=args.levels,
        token=args.token,
        stamp=args.stamp,
        record_history=args.record_history,
        send_acks=not args.no_acks,
        max_symbols_per_connection=args.max_symbols_per_connection,
        alltick_min_interval_s=args.alltick_min_interval_s,
        alltick_heartbeat_timeout_s=args.alltick_heartbeat_timeout_s,
        alltick_string_numbers=not args.alltick_int_numbers,
        tick_time_unit=args.tick_time_unit,
        binance_enforce_limits=not args.binance_lenient,
        binance_interval_scale=args.binance_interval_scale,
        binance_max_messages_per_s=args.binance_max_messages_per_s,
        binance_max_streams_per_connection=args.binance_max_streams_per_connection,
        binance_max_connections_per_window=args.binance_max_connections_per_window,
        binance_connection_window_s=args.binance_connection_window_s,
        binance_ping_interval_s=args.binance_ping_interval_s,
        binance_pong_timeout_s=args.binance_pong_timeout_s,
        binance_lifetime_scale=args.binance_lifetime_scale,
        binance_weight_limit=args.binance_weight_limit,
        binance_weight_window_s=args.binance_weight_window_s,
        binance_ban_after_429s=args.binance_ban_after_429s,
        binance_ban_s=args.binance_ban_s,
        binance_max_url_bytes=args.binance_max_url_bytes,
        binance_snapshot_max_limit=args.binance_snapshot_max_limit,
        binance_reject_unknown_symbols=not args.binance_accept_unknown_symbols,
        binance_send_log=args.binance_send_log,
        # a process of its own: the window clock may time the collector (see main)
        binance_collect_between_windows=args.dialect == "binance" and args.binance_interval_scale > 0
        and not args.replay,
        replay_paths=tuple(args.replay),
        replay_speed=args.replay_speed,
    )


def _time_the_collector() -> None:
    """The process is ours: a full collection of a venue with 1000 symbols pauses it for 20-50 ms
    (measured), and one that lands between stamping a 100 ms window and sending it adds that to the
    latency of every event in it, for whichever client is measured. So: what start-up built is
    frozen out of the collector's reach, and full collections are left to the window clock, which
    runs them right after sending a window (``SimConfig.binance_collect_between_windows``)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, MANUAL_FULL_COLLECTIONS)


def _default_logs(level: str) -> None:
    """``python -m depthkeeper.simulator``: loguru's own stderr format at ``level`` (``depthkeeper sim``
    passes the CLI's set-up instead, the one format of every depthkeeper command)."""
    logger.remove()
    logger.add(sys.stderr, level=level)
    logger.enable("depthkeeper")


def main(argv: list[str] | None = None, setup_logs: Callable[[str], object] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 2 on a bad argument or a port in use.

    ``setup_logs(level)`` configures the log sinks (the only process-wide side effect besides signals)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    (setup_logs or _default_logs)(args.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            sim = Simulator.start(config)
        except (OSError, SimulatorError) as exc:
            print(f"depthkeeper sim: cannot start on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 2
        if config.binance_collect_between_windows:
            _time_the_collector()
        with sim:
            line = {"url": sim.url, "rest_url": sim.rest_url, "control_url": sim.control_url}
            print(json.dumps(line), flush=True)
            while not stop.wait(0.5):  # wake up regularly so signals are handled promptly
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.stdout.flush()
    return 0
