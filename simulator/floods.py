"""Floods of well-formed frames a client must drop cheaply, without slowing its data path.

Two kinds (issue 12): frames of a message type the protocol does not define, and business
frames for many distinct codes nobody subscribed to. Both are sent "as fast as possible":
one background task per target connection writes them in chunks of `FLOOD_CHUNK_FRAMES`,
yielding to the pump between chunks (the real stream goes on, interleaved) and waiting while
the connection's unsent buffer is above the pump's high-water mark, so a flood of millions of
frames costs bounded memory and never trips the slow-consumer cut. Each chunk is counted under
its `FaultKind` as it is handed to the connection (a blackholed connection discards it, and the
discard is counted too).

Event-loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container

from loguru import logger

from depthkeeper.simulator.faults import FLOOD_CODE_PREFIX, FaultKind
from depthkeeper.simulator.pump import BACKPRESSURE_POLL_S, HIGH_WATER_BYTES
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.venue import Venue
from depthkeeper.simulator.wire import frame_text

#: Frames per write (and per turn of the event loop).
FLOOD_CHUNK_FRAMES = 2048

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


def flood_code(index: int, taken: Container[str]) -> str:
    """The ``index``-th invented code (0-based): ``ZZ000001``, ...; never one the venue lists."""
    code = f"{FLOOD_CODE_PREFIX}{index + 1:06d}"
    while code in taken:
        code += "X"
    return code


class Floods:
    """Starts flood tasks and keeps them referenced until they end (or `cancel`)."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, conns: list[ConnState], kind: FaultKind, count: int, payload: Callable[[int], bytes]) -> int:
        """Send ``payload(0..count-1)`` to each of ``conns`` in the background; return the frames planned."""
        loop = asyncio.get_running_loop()
        for conn in conns:
            task = loop.create_task(self._run(conn, kind, count, payload), name=f"depthkeeper-sim-flood-{kind.value}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("fault {kind} frames={count} connections={n}", kind=kind.value, count=count, n=len(conns))
        return count * len(conns)

    async def _run(self, conn: ConnState, kind: FaultKind, count: int, payload: Callable[[int], bytes]) -> None:
        venue = self._venue
        sent = 0
        while sent < count and conn.conn_id in venue.registry.open:
            if conn.outbox.buffered_bytes() > HIGH_WATER_BYTES:
                await asyncio.sleep(BACKPRESSURE_POLL_S)
                continue
            n = min(FLOOD_CHUNK_FRAMES, count - sent)
            conn.outbox.add_many(b"".join(frame_text(payload(sent + i)) for i in range(n)), n)
            venue.dirty.add(conn)
            venue.flush()
            venue.faults.counts[kind.value] += n
            sent += n
            await asyncio.sleep(0)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
