"""The embeddable simulator: a `SimServer` on its own event loop in a background thread.

Tests and the demo service are synchronous code; the server is asyncio. The handle owns the
thread and the loop, returns from `Simulator.start` only once the port is listening, and runs
every query or fault *on the loop* (marshalled through ``call_soon_threadsafe``) so the venue's
state never needs a lock and a query always sees it between two pump batches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from loguru import logger

from depthkeeper.simulator.config import SimConfig
from depthkeeper.simulator.errors import SimulatorStopped
from depthkeeper.simulator.faults import FUTURE_SEQ, MalformedKind
from depthkeeper.simulator.registry import CommandRecord, ConnectionInfo
from depthkeeper.simulator.server import SimServer

R = TypeVar("R")

#: How long a handle call waits for the loop (a stuck loop is a bug, not a slow test).
CALL_TIMEOUT_S = 10.0
#: How long `Simulator.start` waits for the port to listen.
STARTUP_TIMEOUT_S = 10.0
#: How long `SimHandle.stop` waits for the thread.
JOIN_TIMEOUT_S = 10.0

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


class Faults:
    """Fault injection, reached as ``handle.faults`` (each call is counted by the venue)."""

    def __init__(self, handle: SimHandle) -> None:
        self._handle = handle

    def _ctl(self) -> Any:
        return self._handle._server.controller

    def drop(self, n: int, code: str | None = None) -> None:
        """Do not send the next ``n`` diffs (of ``code``, or of any subscribed code); seqs still advance."""
        self._handle._call(lambda: self._ctl().drop(n, code))

    def duplicate(self, code: str | None = None) -> None:
        """Send the next diff twice."""
        self._handle._call(lambda: self._ctl().duplicate(code))

    def reorder(self, code: str | None = None) -> None:
        """Swap the next two diffs of one code."""
        self._handle._call(lambda: self._ctl().reorder(code))

    def stall(self, seconds: float) -> None:
        """Send no business frames for ``seconds`` from now (socket open, pings answered, seqs
        advance). Replaces a stall in progress; ``stall(0)`` ends it."""
        self._handle._call(lambda: self._ctl().stall(seconds))

    def close(self, conn_id: int | None = None) -> int:
        """Abort every connection (or one) without a close frame; return how many."""
        return self._handle._call(lambda: self._ctl().close(conn_id))

    def restart(self) -> int:
        """Close everything, new books, seqs from 1, ``era`` + 1; return the new era."""
        return self._handle._call(lambda: self._ctl().restart())

    def malformed(self, kind: MalformedKind | str, count: int = 1, conn_id: int | None = None) -> int:
        """Send ``count`` bad frames to every connection (or one); return frames sent."""
        return self._handle._call(lambda: self._ctl().malformed(kind, count, conn_id))

    def rest_delay(self, seconds: float, count: int = 1) -> None:
        """Answer the next ``count`` REST snapshots ``seconds`` late."""
        self._handle._call(lambda: self._ctl().rest_delay(seconds, count))

    def rest_fail(self, status: int, count: int = 1) -> None:
        """Fail the next ``count`` REST snapshots with HTTP ``status`` (429, 500, ...)."""
        self._handle._call(lambda: self._ctl().rest_fail(status, count))

    def stale_snapshot(self, lag: int, count: int = 1) -> None:
        """Serve the next ``count`` snapshots as they were ``lag`` diffs ago (with that seq)."""
        self._handle._call(lambda: self._ctl().stale_snapshot(lag, count))

    # -- issue 12: the faults a LIVE view must survive --------------------------------------------

    def slow_handshake(self, seconds: float, count: int = 1) -> None:
        """Hold each of the next ``count`` WebSocket handshakes ``seconds`` before the upgrade
        completes (the client's ``connect()`` blocks that long), then answer it normally."""
        self._handle._call(lambda: self._ctl().slow_handshake(seconds, count))

    def blackhole(self, seconds: float | None = None, conn_id: int | None = None, *,
                  new_connections: bool = False) -> int:
        """Silence every open connection (or one) both ways, without closing it: nothing is sent
        (data, acks, pongs: discarded), nothing is read (the client's frames wait in the kernel).
        Ends after ``seconds`` (None: at `lift_blackhole`), then the live stream resumes. With
        ``new_connections``, handshakes arriving meanwhile get no answer until it ends. Returns the
        number of connections blackholed; see ``simulator/blackhole.py``."""
        return self._handle._call(lambda: self._ctl().blackhole(seconds, conn_id, new_connections))

    def lift_blackhole(self) -> int:
        """End a blackhole now; return the number of connections released."""
        return self._handle._call(lambda: self._ctl().lift_blackhole())

    def future_diff(self, code: str, seq: int = FUTURE_SEQ) -> int:
        """Send ONE business message of ``code`` with a far-future ``seq`` to its subscribers now
        (article: a diff re-stating the best level; alltick: the current top-N push). The real
        seq chain goes on untouched after it. Returns the number of connections it reached."""
        return self._handle._call(lambda: self._ctl().future_diff(code, seq))

    def future_snapshot(self, lead: int = 1000, count: int = 1, code: str | None = None, *,
                        until_lifted: bool = False) -> None:
        """The next ``count`` REST snapshots (of ``code``, or of any code) carry the current book
        but a seq ``lead`` ahead of it (of the stream)."""
        self._handle._call(lambda: self._ctl().future_snapshot(lead, count, code, until_lifted))

    def empty_snapshot(self, count: int = 1, code: str | None = None, *, until_lifted: bool = False) -> None:
        """The next ``count`` REST snapshots are well-formed, at the current seq, with no levels."""
        self._handle._call(lambda: self._ctl().empty_snapshot(count, code, until_lifted))

    def short_snapshot(self, levels: int, count: int = 1, code: str | None = None, *,
                       until_lifted: bool = False) -> None:
        """The next ``count`` REST snapshots keep only the best ``levels`` levels per side."""
        self._handle._call(lambda: self._ctl().short_snapshot(levels, count, code, until_lifted))

    def crossed_snapshot(self, count: int = 1, code: str | None = None, *, until_lifted: bool = False) -> None:
        """The next ``count`` REST snapshots (or all, ``until_lifted``) are crossed: the current
        book plus one bid a tick above the best ask, at the current seq."""
        self._handle._call(lambda: self._ctl().crossed_snapshot(count, code, until_lifted))

    def lift_snapshot_faults(self) -> int:
        """Disarm every future/empty/short/crossed snapshot fault; return how many were armed."""
        return self._handle._call(lambda: self._ctl().lift_snapshot_faults())

    def reject(self, *codes: str) -> None:
        """Refuse every later subscription of ``codes`` until lifted: article acks list them in
        ``rejected``; alltick answers the 22002 that asks for them with ret 604 (code unauthorized);
        binance answers the SUBSCRIBE naming them with error 2 "Invalid request: invalid stream", and
        (all or nothing) subscribes none of its streams. Existing subscriptions stay."""
        self._handle._call(lambda: self._ctl().reject(codes))

    def lift_reject(self, *codes: str) -> int:
        """Accept ``codes`` (none given: every rejected code) again; return how many were lifted."""
        return self._handle._call(lambda: self._ctl().lift_reject(codes or None))

    def unknown_type_flood(self, count: int, conn_id: int | None = None) -> int:
        """Send ``count`` well-formed frames of a type the protocol does not define (article:
        ``{"type": "something_else", ...}``; alltick: ``cmd_id`` 22777) to every subscribed
        connection (or one), as fast as it reads. Returns the frames planned; each is counted
        under ``unknown_type_flood`` as it is written."""
        return self._handle._call(lambda: self._ctl().unknown_type_flood(count, conn_id))

    def distinct_code_flood(self, count: int, conn_id: int | None = None) -> int:
        """Send one well-formed data frame (diff / push) for each of ``count`` distinct codes
        nobody subscribed (``ZZ000001``, ``ZZ000002``, ...) to every subscribed connection (or
        one), as fast as it reads. Returns the frames planned, counted as written."""
        return self._handle._call(lambda: self._ctl().distinct_code_flood(count, conn_id))

    def ping_burst(self, count: int, conn_id: int | None = None) -> int:
        """Send ``count`` WebSocket pings at once to every open connection (or one); return the
        pings sent. Binance counts the client's pongs toward its 5 messages/s: a burst of 6 or more
        makes the venue close with 1008 "Too many requests" (issue 14: the rule, provoked)."""
        return self._handle._call(lambda: self._ctl().ping_burst(count, conn_id))


class SimHandle:
    """A running simulator. Use `Simulator.start`; stop with `stop` or a ``with`` block."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = Faults(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: SimServer
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="depthkeeper-simulator", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self, timeout_s: float) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"simulator did not start listening within {timeout_s}s")
        if self._startup_error is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._stopped = True
            raise self._startup_error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        try:
            self._server = SimServer(self.config)
            self._stop_requested = asyncio.Event()
            await self._server.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread, which re-raises it
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop_requested.wait()
        await self._server.stop()

    def stop(self) -> None:
        """Close everything and join the thread. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_requested.set)
            except RuntimeError:  # the loop closed in between
                pass
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("simulator thread did not stop within {t}s", t=JOIN_TIMEOUT_S)

    def __repr__(self) -> str:
        where = self.url if self._ready.is_set() and self._startup_error is None else "not listening"
        state = "stopped" if self._stopped else "running"
        return f"<SimHandle {self.config.dialect.value} {where} {state}>"

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` on the loop thread and return its result (or raise its exception)."""
        loop = self._loop
        if self._stopped or loop is None or not self._thread.is_alive():
            raise SimulatorStopped("the simulator is not running")
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            raise SimulatorStopped("the simulator is not running") from None
        return future.result(CALL_TIMEOUT_S)

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """WebSocket URL without the token (clients append ``?token=...`` themselves).

        For binance this is the base (``ws://host:port``): clients append ``/stream`` or ``/ws/...``."""
        return f"ws://{self.config.host}:{self.port}{self.config.ws_path}"

    @property
    def rest_url(self) -> str:
        """The REST snapshot URL; for binance the base (``http://host:port``), clients append ``/api/v3/...``."""
        return f"http://{self.config.host}:{self.port}{self.config.rest_url_path}"

    @property
    def control_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/_control"

    # -- truth and introspection ------------------------------------------------------------------

    def truth(self, code: str) -> dict[str, Any]:
        """The full book now: ``{"code","seq","bids":[[p,s],..],"asks":[..]}``, best first."""
        return self._call(lambda: self._server.controller.truth(code))

    def book_at(self, code: str, seq: int) -> dict[str, Any]:
        """The book as it was at ``seq`` of the current era (HistoryUnavailable if not retained)."""
        return self._call(lambda: self._server.controller.book_at(code, seq))

    def subscriptions(self) -> dict[int, frozenset[str]]:
        return self._call(lambda: self._server.controller.subscriptions())

    def connections(self) -> list[ConnectionInfo]:
        return self._call(lambda: self._server.controller.connections())

    def counters(self) -> dict[str, Any]:
        return self._call(lambda: self._server.controller.counters())

    def command_log(self, conn_id: int | None = None) -> list[CommandRecord]:
        return self._call(lambda: self._server.controller.command_log(conn_id))

    def state(self) -> dict[str, Any]:
        return self._call(lambda: self._server.controller.state())

    @property
    def era(self) -> int:
        return self._call(lambda: self._server.controller.era)

    def freeze(self) -> None:
        """Stop changing the market (pushes stop too) so clients can converge on `truth`."""
        self._call(lambda: self._server.controller.freeze())

    def unfreeze(self) -> None:
        self._call(lambda: self._server.controller.unfreeze())


class Simulator:
    """Entry point: ``with Simulator.start(SimConfig(...)) as sim: ...``."""

    @staticmethod
    def start(config: SimConfig | None = None, *, timeout_s: float = STARTUP_TIMEOUT_S) -> SimHandle:
        """Start a simulator in a background thread; return once it is listening."""
        handle = SimHandle(config if config is not None else SimConfig())
        handle._start(timeout_s)
        return handle
