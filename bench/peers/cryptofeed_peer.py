"""cryptofeed (3.0.1 on Python 3.13, or 2.4.1 on 3.11) on the simulator's binance dialect.

Run with the peer's venv: ``<venv>/bin/python bench/peers/cryptofeed_peer.py --ws-url ... ``
(peers_bench.py does it; options in binance_harness.py).

How it is pointed at the simulator (notes, section 3.1): a ``Binance`` subclass whose WebSocket and
REST endpoints are the simulator's; cryptofeed refuses any address that is not ``wss://``, so
``WSAsyncConn.__init__`` is wrapped to accept the ``ws://`` loopback address (the only patch).
Streams go in the URL (``/stream?streams=<sym>@depth@100ms/...``, no SUBSCRIBE), the snapshot
is fetched lazily on each symbol's first event. ``max_depth=1000`` picks the ``limit=1000``
snapshot every other peer uses (3.0.1 defaults to 5000: REST weight 250 per symbol, 12,500 for
50 symbols, twice Binance's budget per minute) and caps the book at 1000 levels (the simulated
books hold 50). Everything else is cryptofeed's default, uvloop included.

Observed per applied event: the ``L2_BOOK`` callback, which cryptofeed calls once per applied
diff (``book.delta`` set, ``book.sequence_number`` = ``u``, ``book.raw`` = the event, with the
``"x"`` stamp) and once per snapshot (``book.delta is None``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
from typing import Any

import binance_harness as harness


class CryptofeedAdapter(harness.PeerAdapter):
    name = "cryptofeed"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        self.version = harness.dist_version("cryptofeed")
        self.args = args
        self.recorder = recorder
        self.v3 = not self.version.startswith("2.")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.feed: Any = None
        self.fh: Any = None
        self.thread: threading.Thread | None = None
        self.resets = 0
        self.log_path = os.path.join(tempfile.gettempdir(), f"cryptofeed-bench-{os.getpid()}.log")

    def _patch_ws_scheme(self) -> None:
        from cryptofeed import connection

        original = connection.WSAsyncConn.__init__

        def init(conn: Any, address: str, *args: Any, **kwargs: Any) -> None:
            original(conn, "wss://" + address.split("://", 1)[1], *args, **kwargs)
            conn.address = address

        connection.WSAsyncConn.__init__ = init

    def _feed_class(self) -> Any:
        from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
        from cryptofeed.exchanges import Binance

        ws_url, rest_url = self.args.ws_url, self.args.rest_url

        class LocalBinance(Binance):  # endpoints only; no behaviour changed
            websocket_endpoints = [WebsocketEndpoint(ws_url)]
            rest_endpoints = [RestEndpoint(rest_url, routes=Routes(
                "/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"))]

        return LocalBinance

    async def _on_book(self, book: Any, receipt_ts: float) -> None:
        code = book.symbol.replace("-", "")
        if book.delta is None:
            self.recorder.snapshot(code, book.sequence_number)
            return
        stamp = book.raw.get("x") if isinstance(book.raw, dict) else None
        self.recorder.applied(code, book.sequence_number, float(stamp) if stamp is not None else None)

    def start(self, codes: list[str]) -> None:
        from cryptofeed import FeedHandler
        from cryptofeed.defines import L2_BOOK

        self._patch_ws_scheme()
        config = {"uvloop": True, "log": {"filename": self.log_path, "level": "WARNING"}}
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.fh = FeedHandler(config=config)  # 2.x installs uvloop's policy here: make the loop after
                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
                symbols = [f"{code[:-4]}-USDT" for code in codes]
                self.feed = self._feed_class()(symbols=symbols, channels=[L2_BOOK], max_depth=1000,
                                               callbacks={L2_BOOK: self._on_book}, depth_interval="100ms")
                self.fh.add_feed(self.feed)
                ready.set()
                if self.v3:
                    self.loop.run_until_complete(self.fh.run_async(install_signal_handlers=False))
                else:
                    self.fh.run(start_loop=True, install_signal_handlers=False)
            except BaseException as exc:
                failure.append(exc)
                ready.set()

        self.thread = threading.Thread(target=run, name="cryptofeed", daemon=True)
        self.thread.start()
        ready.wait(60)
        if failure:
            raise RuntimeError(f"cryptofeed failed to start: {failure[0]!r}")

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        async def read() -> dict[str, harness.Book]:
            out: dict[str, harness.Book] = {}
            for pair, book in list(self.feed._l2_book.items()):
                code = pair.replace("-", "")
                bids, asks = book.book.bids, book.book.asks
                out[code] = (self.feed.last_update_id.get(pair, 0),
                             [bids.index(i) for i in range(min(depth, len(bids)))],
                             [asks.index(i) for i in range(min(depth, len(asks)))])
            return out

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(harness.DUMP_TIMEOUT_S)

    def stop(self) -> None:
        if self.loop is None:
            return
        if self.v3:
            self.loop.call_soon_threadsafe(self.fh.request_stop)
        else:
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(15)

    def facts(self) -> dict[str, Any]:
        resets = 0
        try:
            with open(self.log_path) as log:
                resets = sum("missing book update" in line.lower() for line in log)
        except OSError:
            pass
        return {"gap_resets_logged": resets, "snapshot_limit": 1000, "uvloop": True,
                "connections": "one per 1024 streams (3.x) / 200 (2.x)"}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: CryptofeedAdapter(args, rec), "cryptofeed"))
