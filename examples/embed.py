"""Embed depthkeeper in a program: start the service (here with its embedded simulator), read a
few views, stop. The library logs nothing until you enable it (see --verbose).

    python examples/embed.py [--config conf/demo.toml] [--duration 5] [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from loguru import logger

from depthkeeper.supervisor import BookService, load_config, resolve_config_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/demo.toml", help="deployment file (conf/NAME.toml: the shipped one)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to print views for")
    parser.add_argument("--verbose", action="store_true", help="turn depthkeeper's logs on (WARNING and up)")
    args = parser.parse_args()
    if args.verbose:  # the host decides: a sink of its own, then enable the library's logger
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        logger.enable("depthkeeper")

    cfg = load_config(resolve_config_path(args.config)[0])
    with BookService.start(cfg) as svc:  # returns at once; the books sync in the background
        if not svc.wait_live(timeout=10):
            print("not live:", "; ".join(svc.health().problems))
            return 1
        pause = threading.Event()  # never set: a paced loop that stops at the deadline
        deadline = time.monotonic() + args.duration
        while True:
            for code in sorted(svc.subscriptions()):
                view = svc.book(code, depth=5)  # a frozen copy, read in this thread (no message)
                print(f"{code:<8} {view.status.name:<7} seq {view.seq:>7}  bid {view.best_bid:>10.2f}  "
                      f"ask {view.best_ask:>10.2f}  levels {len(view.bids)}/{len(view.asks)}  "
                      f"age {view.age_s * 1000:5.0f} ms")
            if time.monotonic() >= deadline:
                break
            print()
            pause.wait(1.0)
        print("health:", "ok" if svc.health().ok else svc.health().problems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
