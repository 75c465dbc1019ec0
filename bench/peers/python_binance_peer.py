"""python-binance (1.0.37, Python 3.11) ``DepthCacheManager`` on the simulator's binance dialect.

Run with the peer's venv (peers_bench.py does it; options in binance_harness.py).

How it is pointed at the simulator (notes, section 3.5): the class attributes ``AsyncClient.API_URL``
and ``BinanceSocketManager.STREAM_URL`` are set to the simulator before any instance exists (their
``__init__`` formats them with the TLD, a no-op on these strings). ``AsyncClient.create()`` calls
``/api/v3/ping`` and ``/api/v3/time``.

Usage as the library's docs show it: one ``DepthCacheManager(client, symbol, ws_interval=100)`` per
symbol, each ``async with`` and ``await dcm.recv()`` in its own task (``recv`` returns an error dict
when the socket closed or its 100-message queue overflowed, i.e. events were lost: the loop then starts
a fresh manager, as a user must); they share one
``BinanceSocketManager`` but every depth cache opens **its own socket** (``/ws/<sym>@depth@100ms``)
and takes its REST snapshot (``limit=500``, the class default) **before** the socket opens. A "naive
library" row: symbol counts stay small (real Binance allows 300 connections per 5 minutes).

Observed per applied event: a wrapper around each manager's ``_apply_orders(msg)``, called once per
applied event (``msg`` is the raw event, with ``u`` and the ``"x"`` stamp) and once per snapshot
(``msg`` is the REST answer, with ``lastUpdateId``).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import binance_harness as harness


class PythonBinanceAdapter(harness.PeerAdapter):
    name = "python-binance"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        self.version = harness.dist_version("python-binance")
        self.args = args
        self.recorder = recorder
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.managers: dict[str, Any] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.client: Any = None
        self.errors: dict[str, int] = {}
        self.stopped: asyncio.Event | None = None

    def _hook(self, code: str, manager: Any) -> None:
        original = manager._apply_orders
        recorder = self.recorder

        def apply_orders(msg: dict[str, Any]) -> Any:
            result = original(msg)
            if "u" in msg:
                stamp = msg.get("x")
                recorder.applied(code, msg["u"], float(stamp) if stamp is not None else None)
            elif "lastUpdateId" in msg:
                recorder.snapshot(code, msg["lastUpdateId"])
            return result

        manager._apply_orders = apply_orders

    async def _run_one(self, code: str, bm: Any) -> None:
        from binance import DepthCacheManager

        while True:
            manager = DepthCacheManager(self.client, code, bm=bm, ws_interval=100)
            self._hook(code, manager)
            self.managers[code] = manager
            try:
                async with manager as socket:
                    while True:
                        cache = await socket.recv()
                        if isinstance(cache, dict) and cache.get("e") == "error":
                            # the library hands errors to the caller (closed socket, queue overflow: events
                            # lost); a user's loop starts a fresh manager: new socket, new snapshot
                            kind = str(cache.get("type"))
                            self.errors[kind] = self.errors.get(kind, 0) + 1
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                await asyncio.sleep(0.1)

    async def _main(self, codes: list[str]) -> None:
        from binance import AsyncClient, BinanceSocketManager

        AsyncClient.API_URL = f"{self.args.rest_url}/api"
        BinanceSocketManager.STREAM_URL = f"{self.args.ws_url}/"
        self.stopped = asyncio.Event()
        self.client = await AsyncClient.create()
        bm = BinanceSocketManager(self.client)
        self.tasks = [asyncio.ensure_future(self._run_one(code, bm)) for code in codes]
        await self.stopped.wait()

    def start(self, codes: list[str]) -> None:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._main(codes))
            except BaseException as exc:
                print(f"python-binance loop ended: {exc!r}", file=sys.stderr)

        self.thread = threading.Thread(target=run, name="python-binance", daemon=True)
        self.thread.start()

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        async def read() -> dict[str, harness.Book]:
            out: dict[str, harness.Book] = {}
            for code, manager in list(self.managers.items()):
                cache = manager.get_depth_cache()
                if cache is None:
                    continue
                out[code] = (manager._last_update_id or 0, [tuple(lv) for lv in cache.get_bids()[:depth]],
                             [tuple(lv) for lv in cache.get_asks()[:depth]])
            return out

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(harness.DUMP_TIMEOUT_S)

    def stop(self) -> None:
        async def close() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            try:
                await asyncio.wait_for(self.client.close_connection(), 10)
            finally:
                assert self.stopped is not None
                self.stopped.set()

        if self.client is not None:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(15)

    def facts(self) -> dict[str, Any]:
        return {"errors": self.errors, "sockets": "one per symbol", "snapshot_limit": 500,
                "snapshot_order": "REST snapshot before the socket opens"}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: PythonBinanceAdapter(args, rec), "python-binance"))
