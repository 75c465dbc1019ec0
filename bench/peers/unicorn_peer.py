"""unicorn-binance-local-depth-cache (UBLDC 2.14.0 on UBWA 2.16.1, Python 3.11) on the binance dialect.

Run with the peer's venv (peers_bench.py does it; options in binance_harness.py).

How it is pointed at the simulator (notes, section 3.4): UBLDC builds its REST manager (UBRA), which
hard-codes ``https://api.binance.com/api`` and calls ``/api/v3/time`` inside ``__init__``; a subclass
rewrites ``API_URL`` in ``get_server_time`` (the first call) and is passed as ``ubra_manager``. UBLDC
builds its WebSocket manager itself: ``ldc.ubwa.websocket_base_uri`` is set to the simulator before
the first depth cache is created. ``warn_on_update=False`` everywhere (otherwise it asks GitHub).

Configuration: ``high_performance=True`` (no init slots: every book initialises at once),
``depth_cache_update_interval=100`` (``@depth@100ms``, as every other peer), ``init_interval=0.2``:
UBLDC's manager thread sleeps ``init_interval`` (default 4 s) after each market it subscribes, so the
default needs 4 s per symbol before the last book can be live; 0.2 s matches Binance's 5 messages/s.
Subscriptions are therefore paced by the peer itself: strict mode is kept. Its own weight guard waits
while the venue reports more than 2200 REST weight used in the minute, so symbol counts stay small.

Observed per applied event: UBLDC has no per-update callback. It applies every event (live or
replayed from its init buffer) through ``_apply_updates(asks, bids, market)`` and sets
``last_update_id = u`` right after; the harness wraps ``ubwa.get_stream_data_from_asyncio_queue`` to
index each dequeued event by its ``asks`` list, and ``_apply_updates`` to look the event up (``u``
and the ``"x"`` stamp). A call whose ``asks`` is no event's is the REST snapshot.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import binance_harness as harness

#: dequeued events not yet applied kept for the lookup (events that are dropped are pruned)
MAX_PENDING = 200_000


class UnicornAdapter(harness.PeerAdapter):
    name = "unicorn"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        self.version = (f"{harness.dist_version('unicorn-binance-local-depth-cache')} "
                        f"(ubwa {harness.dist_version('unicorn-binance-websocket-api')})")
        self.args = args
        self.recorder = recorder
        self.ldc: Any = None
        self.pending: dict[int, tuple[str, int, float | None]] = {}
        self.lock = threading.Lock()
        self.snapshot_applies = 0
        self.resync_requests = 0

    def _rest_manager(self) -> Any:
        from unicorn_binance_rest_api import BinanceRestApiManager

        api_url = f"{self.args.rest_url}/api"

        class LocalRest(BinanceRestApiManager):  # endpoint only; no behaviour changed
            def get_server_time(self) -> Any:
                self.API_URL = api_url
                return super().get_server_time()

        return LocalRest(exchange="binance.com", warn_on_update=False, disable_colorama=True)

    def start(self, codes: list[str]) -> None:
        from unicorn_binance_local_depth_cache import BinanceLocalDepthCacheManager

        self.ldc = ldc = BinanceLocalDepthCacheManager(
            exchange="binance.com", ubra_manager=self._rest_manager(), warn_on_update=False, high_performance=True,
            depth_cache_update_interval=100, init_interval=0.2, disable_colorama=True)
        ldc.ubwa.websocket_base_uri = f"{self.args.ws_url}/"
        recorder, pending, lock = self.recorder, self.pending, self.lock
        original_dequeue = ldc.ubwa.get_stream_data_from_asyncio_queue
        original_apply = ldc._apply_updates
        original_resync = ldc.set_resync_request

        async def dequeue(stream_id: Any = None) -> Any:
            data = await original_dequeue(stream_id=stream_id)
            event = data.get("data") if isinstance(data, dict) else None
            if isinstance(event, dict) and "u" in event:
                with lock:
                    if len(pending) > MAX_PENDING:
                        pending.clear()
                    stamp = event.get("x")
                    pending[id(event["a"])] = (event["s"], int(event["u"]), float(stamp) if stamp is not None else None)
            return data

        def apply_updates(asks: Any = None, bids: Any = None, market: Any = None) -> Any:
            result = original_apply(asks=asks, bids=bids, market=market)
            with lock:
                found = pending.pop(id(asks), None)
            if found is None:
                self.snapshot_applies += 1
                recorder.snapshot(str(market).upper(), 0)
            else:
                recorder.applied(*found)
            return result

        def set_resync_request(market: Any = None, unsubscribe: bool = True) -> Any:
            self.resync_requests += 1
            return original_resync(market=market, unsubscribe=unsubscribe)

        ldc.ubwa.get_stream_data_from_asyncio_queue = dequeue
        ldc._apply_updates = apply_updates
        ldc.set_resync_request = set_resync_request
        ldc.create_depthcache(markets=[code.lower() for code in codes])

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        out: dict[str, harness.Book] = {}
        for market, cache in list(self.ldc.depth_caches.items()):
            try:
                bids = self.ldc.get_bids(market=market, limit_count=depth)
                asks = self.ldc.get_asks(market=market, limit_count=depth)
            except Exception:
                bids, asks = [], []
            out[market.upper()] = (int(cache.get("last_update_id") or 0),
                                   [tuple(level[:2]) for level in bids], [tuple(level[:2]) for level in asks])
        return out

    def stop(self) -> None:
        if self.ldc is not None:
            self.ldc.stop_manager()

    def facts(self) -> dict[str, Any]:
        return {"snapshot_applies": self.snapshot_applies, "resync_requests": self.resync_requests,
                "high_performance": True, "init_interval_s": 0.2, "stream": "depth@100ms", "snapshot_limit": 1000}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: UnicornAdapter(args, rec), "unicorn"))
