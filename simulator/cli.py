"""``depthkeeper sim``: run a simulator in the foreground until SIGINT/SIGTERM.

The first line on stdout is one JSON object with the URLs, flushed at once, so a parent
process (a test, a chaos script, the demo) can read the ephemeral port from a pipe instead of
guessing it. Nothing else is printed to stdout; logs go wherever the host configured loguru.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .config import SimConfig
from .handle import Simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthkeeper sim", description="Run the local exchange simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (default)")
    parser.add_argument("--dialect", default="article", choices=["article", "alltick", "binance"])
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated codes")
    parser.add_argument("--rate", type=float, default=50.0, help="diffs/s per symbol; <= 0 = as fast as possible")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--token", default=None)
    parser.add_argument("--stamp", action="store_true", help='add "ts" to every article diff')
    parser.add_argument("--record-history", action="store_true")
    parser.add_argument("--no-acks", action="store_true", help="article: never send acks")
    parser.add_argument("--max-symbols-per-connection", type=int, default=0)
    parser.add_argument("--alltick-min-interval-s", type=float, default=1.0)
    parser.add_argument("--alltick-heartbeat-timeout-s", type=float, default=30.0)
    parser.add_argument("--alltick-int-numbers", action="store_true", help="seq/tick_time as ints, not strings")
    parser.add_argument("--tick-time-unit", default="ms", choices=["ms", "s"])
    binance = parser.add_argument_group("binance", "the binance dialect (see simulator/binance.py)")
    binance.add_argument("--binance-lenient", action="store_true",
                         help="count the message, connection and weight limits instead of enforcing them")
    binance.add_argument("--binance-interval-scale", type=float, default=1.0,
                         help="window length factor (0.1 s / 1 s); 0 = an event per pump batch")
    binance.add_argument("--binance-max-messages-per-s", type=int, default=5, help="0 = no limit")
    binance.add_argument("--binance-max-streams-per-connection", type=int, default=1024)
    binance.add_argument("--binance-max-connections-per-window", type=int, default=300, help="0 = no limit")
    binance.add_argument("--binance-connection-window-s", type=float, default=300.0)
    binance.add_argument("--binance-ping-interval-s", type=float, default=20.0, help="0 = no server pings")
    binance.add_argument("--binance-pong-timeout-s", type=float, default=60.0)
    binance.add_argument("--binance-lifetime-scale", type=float, default=1.0, help="x 24 h; 0 = never cut")
    binance.add_argument("--binance-weight-limit", type=int, default=6000, help="REST weight per window; 0 = none")
    binance.add_argument("--binance-weight-window-s", type=float, default=60.0)
    binance.add_argument("--binance-ban-after-429s", type=int, default=3, help="0 = never 418")
    binance.add_argument("--binance-ban-s", type=float, default=120.0)
    binance.add_argument("--binance-max-url-bytes", type=int, default=65536)
    binance.add_argument("--binance-snapshot-max-limit", type=int, default=5000)
    binance.add_argument("--binance-accept-unknown-symbols", action="store_true",
                         help="SUBSCRIBE to unlisted symbols is acked and silent (real Binance) instead of an error")
    binance.add_argument("--binance-send-log", default="", metavar="PATH",
                         help="append (symbol index, era, u, send time) per depth event (simulator/send_log.py)")
    binance.add_argument("--replay", action="append", default=[], metavar="PATH",
                         help="serve a recorded Binance file (repeatable); --symbols must name its symbols")
    binance.add_argument("--replay-speed", type=float, default=1.0, help="x recorded pace; <= 0 = as fast as read")
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
        replay_paths=tuple(args.replay),
        replay_speed=args.replay_speed,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 2 on a bad argument."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        with Simulator.start(config) as sim:
            line = {"url": sim.url, "rest_url": sim.rest_url, "control_url": sim.control_url}
            print(json.dumps(line), flush=True)
            while not stop.wait(0.5):  # wake up regularly so signals are handled promptly
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.stdout.flush()
    return 0
