"""ccxt (ccxt.pro ``binance``, 4.5.90, Python 3.11) on the simulator's binance dialect.

Run with the peer's venv (peers_bench.py does it; options in binance_harness.py).

Configuration ("tuned to one socket", notes section 3.2): ``streamLimits.spot = 1`` so every
symbol shares one socket (the default spreads watches round-robin over 50 sockets),
``subscriptionLimitByStream.spot >= N``, ``enableRateLimit = False`` (with the default ``True``
SUBSCRIBEs go out at 4/s and each ``limit=1000`` snapshot waits ~0.5 s: 1000 symbols would need
minutes before the last book is live). Unpaced SUBSCRIBEs break Binance's 5 messages/s rule, so this
peer runs against the simulator's lenient mode. ``fetchMarkets.types = ['spot']`` keeps ccxt off the
futures hosts. Endpoints: ``urls.api.public`` and ``urls.api.ws.spot`` point at the simulator; ccxt
connects to ``/ws/0`` and subscribes by message, then snapshots each symbol on its ack.

Usage as a user writes it: one ``watch_order_book(symbol)`` loop per symbol; a ``ChecksumError``
(ccxt's answer to a gap: it drops the book and its subscription) or a network error is answered by
calling ``watch_order_book`` again, which re-subscribes and re-snapshots.

Observed per applied event: a wrapper around ``handle_order_book_message(client, message,
orderbook)``, which ccxt calls once per applied event (buffer replay and live); ``message`` is the
raw event (``u`` and the ``"x"`` stamp). Snapshots: a wrapper around ``fetch_rest_order_book_safe``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import binance_harness as harness


class CcxtAdapter(harness.PeerAdapter):
    name = "ccxt"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        import ccxt.pro
        from ccxt.base.errors import ChecksumError

        self.ccxt_pro = ccxt.pro
        self.checksum_error = ChecksumError
        self.version = harness.dist_version("ccxt")
        self.args = args
        self.recorder = recorder
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.exchange: Any = None
        self.tasks: list[asyncio.Task[None]] = []
        self.checksum_errors = 0
        self.other_errors: dict[str, int] = {}
        self.running = True

    def _make_exchange(self, symbols: int) -> Any:
        ex = self.ccxt_pro.binance({
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "streamLimits": {"spot": 1},
                "subscriptionLimitByStream": {"spot": max(200, symbols)},
                "fetchCurrencies": False,
            },
        })
        ex.urls["api"]["public"] = f"{self.args.rest_url}/api/v3"
        ex.urls["api"]["ws"]["spot"] = f"{self.args.ws_url}/ws"
        recorder = self.recorder
        original_apply = ex.handle_order_book_message
        original_snapshot = ex.fetch_rest_order_book_safe

        def handle_order_book_message(client: Any, message: dict[str, Any], orderbook: Any) -> Any:
            result = original_apply(client, message, orderbook)
            stamp = message.get("x")
            recorder.applied(message["s"], message["u"], float(stamp) if stamp is not None else None)
            return result

        async def fetch_rest_order_book_safe(symbol: str, limit: Any = None, params: Any = None) -> Any:
            snapshot = await original_snapshot(symbol, limit, params or {})
            if snapshot is not None:
                recorder.snapshot(symbol.replace("/", ""), snapshot.get("nonce") or 0)
            return snapshot

        ex.handle_order_book_message = handle_order_book_message
        ex.fetch_rest_order_book_safe = fetch_rest_order_book_safe
        return ex

    async def _watch(self, symbol: str) -> None:
        while self.running:
            try:
                await self.exchange.watch_order_book(symbol)
            except self.checksum_error:
                self.checksum_errors += 1
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self.running or (task is not None and task.cancelling()):
                    raise
                # ccxt cancels the future a watch awaits when it replaces it: not our task being cancelled
                self.other_errors["CancelledError"] = self.other_errors.get("CancelledError", 0) + 1
            except Exception as exc:
                name = type(exc).__name__
                self.other_errors[name] = self.other_errors.get(name, 0) + 1
                await asyncio.sleep(0.1)

    async def _main(self, codes: list[str]) -> None:
        self.exchange = self._make_exchange(len(codes))
        await self.exchange.load_markets()
        self.tasks = [asyncio.ensure_future(self._watch(f"{code[:-4]}/USDT")) for code in codes]
        self.stopped = asyncio.Event()
        await self.stopped.wait()

    def start(self, codes: list[str]) -> None:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._main(codes))
            except BaseException as exc:
                print(f"ccxt loop ended: {exc!r}", file=sys.stderr)
                raise

        self.thread = threading.Thread(target=run, name="ccxt", daemon=True)
        self.thread.start()

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        async def read() -> dict[str, harness.Book]:
            out: dict[str, harness.Book] = {}
            for symbol, book in list(self.exchange.orderbooks.items()):
                out[symbol.replace("/", "")] = (book["nonce"] or 0, [tuple(lv[:2]) for lv in book["bids"][:depth]],
                                                [tuple(lv[:2]) for lv in book["asks"][:depth]])
            return out

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(harness.DUMP_TIMEOUT_S)

    def stop(self) -> None:
        async def close() -> None:
            self.running = False
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            try:
                await asyncio.wait_for(self.exchange.close(), 10)
            finally:
                self.stopped.set()

        if self.exchange is not None:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(15)

    def facts(self) -> dict[str, Any]:
        return {"checksum_errors": self.checksum_errors, "other_errors": self.other_errors,
                "enableRateLimit": False, "streamLimits.spot": 1, "snapshot_limit": 1000}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: CcxtAdapter(args, rec), "ccxt"))
