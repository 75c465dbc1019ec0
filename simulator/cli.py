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
    parser.add_argument("--dialect", default="article", choices=["article", "alltick"])
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
