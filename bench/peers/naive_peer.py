"""The seed article's naive loop on the Binance feed: the throughput bar, not a correct client.

Run with the repository's interpreter (it needs only websocket-client, and orjson for the variant);
options in binance_harness.py. bench/peers/naive.py is the same loop on the article's own dialect;
this is its algorithm moved to Binance's wire, our code:

- one ``websocket.WebSocketApp`` on the combined stream (``{ws_url}/stream``); ``on_open`` sends one
  ``SUBSCRIBE`` with every ``<symbol>@depth@100ms`` and creates ``{"bids": {}, "asks": {}, "last_u": 0}``
  per symbol (the article's one ``sub`` command and its per-code dicts);
- ``on_message``: ``json.loads`` -> skip what is not a depth event -> the id check -> ``float(price)``,
  ``float(size)`` and one dict write per level (size 0 deletes);
- the id check as the article writes its seq check, on Binance's ids: ``if last_u != 0 and U !=
  last_u + 1`` clear both sides, set ``last_u = 0`` and drop the event; the next event is then
  accepted as a fresh start on an empty book. No REST snapshot, ever: the books hold only levels
  that changed since the subscription, so they are never exact (the correctness table says so), and
  the loop does strictly less work than a correct client. After a socket close it stays down (the
  article's ``on_close`` clears everything; ``run_forever`` does not reconnect).
- ``run_forever(ping_interval=10, ping_timeout=5)`` as in the article.

Variants (``--variant``): ``""`` = the article verbatim (stdlib json, websocket-client's UTF-8
validation); ``"orjson"`` = ``orjson.loads`` and ``skip_utf8_validation=True``, the two cheap fixes
anyone would make first.

Observed per applied event: ``recorder.applied(symbol, u, x)`` right after the event's levels are
written (the ``"x"`` send stamp is in every event of the bench's feeds).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import binance_harness as harness
import websocket

STREAM = "depth@100ms"


class NaiveAdapter(harness.PeerAdapter):
    name = "naive"

    def __init__(self, args: Any, recorder: harness.Recorder) -> None:
        self.args = args
        self.recorder = recorder
        self.orjson = args.variant == "orjson"
        self.version = f"websocket-client {harness.dist_version('websocket-client')}"
        self.loads: Any = json.loads
        if self.orjson:
            import orjson

            self.loads = orjson.loads
            self.version += f", orjson {harness.dist_version('orjson')}"
        self.books: dict[str, dict[str, Any]] = {}
        self.app: Any = None
        self.thread: threading.Thread | None = None
        self.id_breaks = 0
        self.errors = 0
        self.closes = 0

    def start(self, codes: list[str]) -> None:
        books, recorder, loads = self.books, self.recorder, self.loads
        applied = recorder.applied

        def on_open(ws: Any) -> None:
            params = [f"{code.lower()}@{STREAM}" for code in codes]
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1}))
            for code in codes:
                books.setdefault(code, {"bids": {}, "asks": {}, "last_u": 0})

        def on_message(ws: Any, message: Any) -> None:
            try:
                data = loads(message).get("data")
                if data is None or data.get("e") != "depthUpdate":
                    return
                cache = books.get(data["s"])
                if cache is None:
                    return
                last_u = cache["last_u"]
                if last_u != 0 and data["U"] != last_u + 1:
                    cache["bids"].clear()
                    cache["asks"].clear()
                    cache["last_u"] = 0
                    self.id_breaks += 1
                    return
                bids, asks = cache["bids"], cache["asks"]
                for price, size in data["b"]:
                    p, q = float(price), float(size)
                    if q <= 0:
                        bids.pop(p, None)
                    else:
                        bids[p] = q
                for price, size in data["a"]:
                    p, q = float(price), float(size)
                    if q <= 0:
                        asks.pop(p, None)
                    else:
                        asks[p] = q
                u = data["u"]
                cache["last_u"] = u
                stamp = data.get("x")
                applied(data["s"], u, float(stamp) if stamp is not None else None)
            except Exception as exc:
                self.errors += 1
                print("Message parsing error:", exc, file=sys.stderr)

        def on_close(ws: Any, code: Any, msg: Any) -> None:
            self.closes += 1
            books.clear()

        self.app = websocket.WebSocketApp(f"{self.args.ws_url.rstrip('/')}/stream", on_open=on_open,
                                          on_message=on_message, on_close=on_close)
        self.thread = threading.Thread(target=self.app.run_forever, name="naive-ws", daemon=True,
                                       kwargs={"ping_interval": 10, "ping_timeout": 5,
                                               "skip_utf8_validation": self.orjson})
        self.thread.start()

    def dump_books(self, depth: int) -> dict[str, harness.Book]:
        out: dict[str, harness.Book] = {}
        for code, cache in list(self.books.items()):
            bids, asks = cache["bids"].copy(), cache["asks"].copy()  # C-level copies: atomic under the GIL
            out[code] = (cache["last_u"], sorted(bids.items(), reverse=True)[:depth], sorted(asks.items())[:depth])
        return out

    def stop(self) -> None:
        if self.app is not None:
            self.app.keep_running = False
            self.app.close()
        if self.thread is not None:
            self.thread.join(5.0)

    def facts(self) -> dict[str, Any]:
        return {"id_breaks": self.id_breaks, "errors": self.errors, "closes": self.closes,
                "json": "orjson" if self.orjson else "stdlib", "skip_utf8_validation": self.orjson,
                "snapshots": "never (the article's loop)"}


if __name__ == "__main__":
    sys.exit(harness.main(lambda args, rec: NaiveAdapter(args, rec), "naive"))
