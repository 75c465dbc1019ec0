"""A network blackhole as the venue's side of a socket sees it: silence both ways, no close.

Packets dropped on the path (no FIN, no RST) are what a heartbeat watchdog exists for, and the
one fault a closed socket cannot stand in for: the client's socket stays open, its pings go
unanswered, its commands are never read. While a connection is blackholed the venue

- sends it nothing: business frames, acks, responses, injected frames and pongs alike. Frames
  meant for it are discarded (counted as ``blackhole_frames_discarded``), like datagrams lost
  on the path; when the blackhole ends the connection resumes with the live stream, so an
  article client sees a seq gap. (To model TCP holding the bytes and retransmitting them, use
  `depthkeeper.simulator.proxy.TcpProxy.pause`: there the kernel buffers hold them.)
- does not read it: the transport stops reading, so the client's frames (pings, commands, a close
  frame, even a FIN) wait in the kernel buffers and are read only when the blackhole ends;
  AllTick's heartbeat watchdog gives no verdict meanwhile and starts counting afresh after it.
- does not close it.

With ``new_connections`` the blackhole also swallows new connections while it lasts: their
WebSocket handshake gets no answer (the client's ``connect()`` blocks) until it ends.

Everything runs on the event-loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import time

from loguru import logger

from depthkeeper.simulator.registry import ConnState

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


class Blackhole:
    """Which connections are blackholed, until when, and the events their waiters block on."""

    def __init__(self, counts: collections.Counter[str], *, counter: str) -> None:
        self._counts = counts
        self._counter = counter
        #: conn_id -> (connection, set when it is released)
        self._held: dict[int, tuple[ConnState, asyncio.Event]] = {}
        #: Set while new connections are swallowed too; set() releases their handshakes.
        self._new: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __contains__(self, conn_id: int) -> bool:
        return conn_id in self._held

    def __bool__(self) -> bool:
        return bool(self._held) or self._new is not None

    @property
    def swallows_new(self) -> bool:
        return self._new is not None

    def start(self, conns: list[ConnState], seconds: float | None, *, new_connections: bool) -> int:
        """Blackhole ``conns`` (and new connections if asked); end after ``seconds`` (None: on `lift`).

        Adds to a blackhole in progress; the new deadline replaces the old one. Returns the number
        of connections newly blackholed.
        """
        added = 0
        for conn in conns:
            if conn.conn_id in self._held or conn.ws is None:
                continue
            conn.ws.transport.pause_reading()
            self._held[conn.conn_id] = (conn, asyncio.Event())
            added += 1
        if new_connections and self._new is None:
            self._new = asyncio.Event()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)
        self._counts[self._counter] += added
        log.info("fault blackhole connections={n} seconds={s} new_connections={new}",
                 n=added, s=seconds, new=new_connections)
        return added

    def _expire(self) -> None:
        self._timer = None
        self.lift()

    def lift(self) -> int:
        """End the blackhole: read and write again, release held handshakes; return connections released."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self:
            return 0
        held, self._held = self._held, {}
        now_s = time.monotonic()
        released = 0
        for conn, event in held.values():
            if conn.ws is not None:
                conn.last_heartbeat_s = max(conn.last_heartbeat_s, now_s)  # nothing was read: no verdict
                conn.ws.transport.resume_reading()
                released += 1
            event.set()
        if self._new is not None:
            self._new.set()
            self._new = None
        log.info("fault blackhole lifted connections={n}", n=released)
        return released

    def release(self, conn: ConnState) -> None:
        """Forget a connection that is being closed (its waiters must not outlive it)."""
        entry = self._held.pop(conn.conn_id, None)
        if entry is not None:
            entry[1].set()

    async def wait(self, conn: ConnState) -> None:
        """Return once ``conn`` is not (or no longer) blackholed."""
        entry = self._held.get(conn.conn_id)
        if entry is not None:
            await entry[1].wait()

    async def hold_handshake(self, transport: asyncio.Transport) -> bool:
        """Swallow a new connection's handshake while new connections are blackholed.

        Returns True if it was held (the caller answers it normally afterwards).
        """
        new = self._new
        if new is None:
            return False
        self._counts[self._counter] += 1
        self._counts["blackhole_handshakes_held"] += 1
        transport.pause_reading()
        try:
            await new.wait()
        finally:
            if not transport.is_closing():
                transport.resume_reading()
        return True
