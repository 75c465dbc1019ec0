"""An asyncio program that awaits book updates.

depthkeeper runs on threads (pykka actors); an asyncio program talks to it through a listener:
the listener is called on depthkeeper's delivery thread, so it must not touch the event loop's
objects directly -- it hands each event over with ``loop.call_soon_threadsafe`` into an
``asyncio.Queue``. ``BookService.start`` and ``stop`` block (they start and join threads): run
them in a worker thread (``asyncio.to_thread``). ``svc.book()`` is a lock-free copy and can be
called from a coroutine as it is.

    python examples/asyncio_consumer.py [--duration 5] [--updates 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from depthkeeper.supervisor import (
    BookService,
    BookStatusChanged,
    BookUpdated,
    load_config,
    resolve_config_path,
)


class QueueBridge:
    """A depthkeeper listener that feeds an asyncio.Queue owned by ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[BookUpdated | BookStatusChanged] = asyncio.Queue()

    def __call__(self, event: BookUpdated | BookStatusChanged) -> None:
        # depthkeeper's delivery thread: never block here, never call the queue directly
        self._loop.call_soon_threadsafe(self.queue.put_nowait, event)


async def consume(bridge: QueueBridge, updates: int, duration_s: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    while sum(counts.values()) < updates and loop.time() < deadline:
        try:
            event = await asyncio.wait_for(bridge.queue.get(), timeout=deadline - loop.time())
        except TimeoutError:
            break
        if isinstance(event, BookStatusChanged):
            print(f"status  {event.code:<8} {event.old.name} -> {event.new.name} ({event.detail})")
        else:
            view = event.view
            counts[view.code] = counts.get(view.code, 0) + 1
            print(f"update  {view.code:<8} {view.status.name:<9} seq {view.seq:>7}  bid {view.best_bid or '-'}  "
                  f"ask {view.best_ask or '-'}")
    return counts


async def main_async(args: Any) -> int:
    cfg = load_config(resolve_config_path(args.config)[0])
    svc = await asyncio.to_thread(BookService.start, cfg)
    bridge = QueueBridge(asyncio.get_running_loop())
    # min_interval_s: each code's newest view at most 10 times a second (status changes at once),
    # so a slow coroutine never builds a backlog; 0 = every update.
    listener = svc.add_listener(bridge, min_interval_s=0.1)
    try:
        counts = await consume(bridge, args.updates, args.duration)
    finally:
        svc.remove_listener(listener)  # before the loop goes away: nothing may call into it after
        await asyncio.to_thread(svc.stop)
    print("updates per symbol:", counts)
    return 0 if counts else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/demo.toml", help="deployment file (conf/NAME.toml: the shipped one)")
    parser.add_argument("--duration", type=float, default=5.0, help="stop after this many seconds at most")
    parser.add_argument("--updates", type=int, default=50, help="stop after this many updates")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
