"""nautilus_trader (1.231.0, Python 3.13; its Python Binance adapter) on the simulator's binance dialect.

Run with the peer's venv (peers_bench.py does it; options in binance_harness.py).

How it is pointed at the simulator (notes, sections 3.3 and 4): ``BinanceDataClientConfig`` with
``base_url_http`` / ``base_url_ws`` set to the simulator, no API keys (1.231.0 runs keyless and
zero-fee), instruments loaded for exactly the bench's symbols (``GET /api/v3/exchangeInfo?symbols=``),
``update_instruments_interval_mins=None``. HTTP and WebSocket go through nautilus' Rust clients,
which Python's socket layer never sees: the harness' /proc socket watcher is the guard that applies.

The node: a minimal ``TradingNode`` with one actor that subscribes ``L2_MBP`` order book deltas
(``depth=0`` = full book; the adapter then uses ``@depth@100ms`` and a ``limit=1000`` snapshot) for
every symbol in ``on_start``. The adapter sends one SUBSCRIBE per symbol, unpaced (Binance's 5/s
rule would close the socket with 1008): this peer runs against the simulator's lenient mode. The
books are kept by nautilus' data engine (``managed=True``) in ``cache.order_book(id)``.

Observed per applied event: ``Actor.on_order_book_deltas(deltas)``, called once per ``depthUpdate``
after the data engine applied it to the cached book (the engine's handler has the higher priority),
and once per snapshot (``deltas.is_snapshot``). ``deltas.sequence`` is ``u``. nautilus decodes with
a strict msgspec schema that drops unknown fields, so the ``"x"`` stamp is invisible here: latency
comes only from the runner's join with the simulator's send log on ``(symbol, u)``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import binance_harness as harness


class NautilusAdapter(harness.PeerAdapter):
    name = "nautilus_trader"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        for key in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
            os.environ.pop(key, None)

        self.version = harness.dist_version("nautilus_trader")
        self.args = args
        self.recorder = recorder
        self.node: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.ids: list[Any] = []

    def _build(self, codes: list[str]) -> Any:
        from nautilus_trader.adapters.binance import (
            BINANCE,
            BinanceAccountType,
            BinanceDataClientConfig,
            BinanceLiveDataClientFactory,
        )
        from nautilus_trader.common.actor import Actor
        from nautilus_trader.config import ActorConfig, InstrumentProviderConfig, LoggingConfig, TradingNodeConfig
        from nautilus_trader.live.node import TradingNode
        from nautilus_trader.model.enums import BookType
        from nautilus_trader.model.identifiers import InstrumentId

        recorder = self.recorder
        self.ids = [InstrumentId.from_str(f"{code}.BINANCE") for code in codes]
        ids = self.ids

        class Probe(Actor):
            def __init__(self) -> None:
                super().__init__(ActorConfig(component_id="BenchProbe"))

            def on_start(self) -> None:
                for instrument_id in ids:
                    self.subscribe_order_book_deltas(instrument_id, book_type=BookType.L2_MBP, depth=0)

            def on_order_book_deltas(self, deltas: Any) -> None:
                code = deltas.instrument_id.symbol.value
                if deltas.is_snapshot:
                    recorder.snapshot(code, deltas.sequence)
                else:
                    recorder.applied(code, deltas.sequence, None)

        config = TradingNodeConfig(
            trader_id="BENCH-001",
            logging=LoggingConfig(log_level="WARNING"),
            data_clients={BINANCE: BinanceDataClientConfig(
                api_key=None, api_secret=None, account_type=BinanceAccountType.SPOT,
                base_url_http=self.args.rest_url, base_url_ws=self.args.ws_url,
                instrument_provider=InstrumentProviderConfig(load_ids=frozenset(str(i) for i in ids)),
                update_instruments_interval_mins=None,
            )},
            exec_clients={},
        )
        node = TradingNode(config=config)
        node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
        node.trader.add_actor(Probe())
        node.build()
        return node

    def start(self, codes: list[str]) -> None:
        self.node = self._build(codes)
        self.loop = self.node.get_event_loop()

        def run() -> None:
            assert self.loop is not None
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.node.run_async())
            except BaseException as exc:
                print(f"nautilus node ended: {exc!r}", file=sys.stderr)

        self.thread = threading.Thread(target=run, name="nautilus", daemon=True)
        self.thread.start()

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        async def read() -> dict[str, harness.Book]:
            out: dict[str, harness.Book] = {}
            for instrument_id in self.ids:
                book = self.node.cache.order_book(instrument_id)
                if book is None:
                    continue
                out[instrument_id.symbol.value] = (
                    book.sequence,
                    [(str(level.price), str(level.size())) for level in book.bids()[:depth]],
                    [(str(level.price), str(level.size())) for level in book.asks()[:depth]],
                )
            return out

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(harness.DUMP_TIMEOUT_S)

    def stop(self) -> None:
        if self.loop is not None and self.node is not None:
            asyncio.run_coroutine_threadsafe(self.node.stop_async(), self.loop).result(15)

    def facts(self) -> dict[str, Any]:
        return {"latency_source": "join only (the stamp is dropped by the decoder)", "snapshot_limit": 1000,
                "book": "data engine, managed=True"}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: NautilusAdapter(args, rec), "nautilus_trader"))
