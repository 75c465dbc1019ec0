"""The seed article's naive loop, re-implemented from its text (our code, its algorithm).

What the article does, and what this module therefore does:

- one ``websocket.WebSocketApp``; ``on_open`` sends ``{"cmd_id": 22004, "action": "sub",
  "code": [...]}`` and creates ``{"bids": {}, "asks": {}, "last_seq": 0}`` per code;
- ``on_message``: ``json.loads`` -> type check -> ``float(price)``, ``float(size)`` -> drop
  codes not in ``subscriptions`` -> seq check -> one dict write;
- the seq check exactly as written: ``if last_seq != 0 and seq != last_seq + 1`` clear both
  sides, set ``last_seq = 0`` and return. Note the consequence (a bug of the article, kept here
  on purpose because this is the peer): the book never fetches a snapshot, so it starts from an
  empty book and only holds levels that changed since it subscribed, and after a gap the next
  diff is accepted as a fresh start on an empty book. Its throughput is therefore that of a
  loop that does strictly less work than a correct client;
- ``run_forever(ping_interval=10, ping_timeout=5)`` as in the article.

Variants (``variant=``):
- ``"naive"``: the article verbatim (stdlib json, websocket-client's default UTF-8 validation,
  which is pure Python unless ``wsaccel`` is installed — it is not here);
- ``"naive+skiputf8"``: stdlib json, ``skip_utf8_validation=True`` (the one-flag fix);
- ``"naive+orjson"``: ``orjson.loads`` and ``skip_utf8_validation=True`` — the two cheap fixes
  anyone would make first.

Bench instrumentation (not in the article, marked ``# bench:``): count applied diffs and, while
the measurement window is open, record ``time.time() - msg["ts"]`` for every applied diff.
The article's ``print`` calls are kept; the runner redirects stdout to stderr.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import websocket
from common import ProcessMeter, lag_diffs, percentile, resource_figures, venue_seqs

#: bench: newest applied-diff latencies kept (seconds)
LATENCY_SAMPLES = 200_000
#: bench: how long to wait for every book to see its first diff
FIRST_DIFF_TIMEOUT_S = 30.0

# -- the article's global state ------------------------------------------------------------
subscriptions: set[str] = set()
order_book_depth_storage: dict[str, dict[str, Any]] = {}  # {code: {"bids": {}, "asks": {}, "last_seq": 0}}
INIT_CODES: list[str] = []

# -- bench instrumentation -----------------------------------------------------------------
json_loads = json.loads
applied = 0
seq_breaks = 0
errors = 0
measuring = False
latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)


def send_sub_cmd(ws: Any, action: str, code_list: list[str]) -> None:
    """Unified subscription modifier with fixed cmd_id=22004."""
    if not code_list:
        return
    cmd_payload = {"cmd_id": 22004, "action": action, "code": code_list}
    ws.send(json.dumps(cmd_payload))
    if action == "sub":
        for code in code_list:
            subscriptions.add(code)
            if code not in order_book_depth_storage:
                order_book_depth_storage[code] = {"bids": {}, "asks": {}, "last_seq": 0}
    elif action == "unsub":
        for code in code_list:
            if code in subscriptions:
                subscriptions.remove(code)


def update_depth_storage(side_map: dict[float, float], price: float, size: float) -> None:
    """Apply one level change: size <= 0 deletes, else sets."""
    if size <= 0:
        side_map.pop(price, None)
    else:
        side_map[price] = size


def on_open(ws: Any) -> None:
    send_sub_cmd(ws, "sub", INIT_CODES)
    print("WebSocket connection established, initial subscription loaded:", len(INIT_CODES), "codes")


def on_message(ws: Any, message: Any) -> None:
    global applied, seq_breaks, errors  # bench
    if not message:
        return
    try:
        data = json_loads(message)
        msg_type = data.get("type")
        if msg_type != "orderbook_diff":
            return
        code = data.get("code")
        seq = data.get("seq")
        side = data.get("side")
        price = float(data.get("price", 0))
        size = float(data.get("size", 0))
        if code not in subscriptions:
            return
        depth_cache = order_book_depth_storage[code]
        last_seq = depth_cache["last_seq"]
        if last_seq != 0 and seq != last_seq + 1:
            depth_cache["bids"].clear()
            depth_cache["asks"].clear()
            depth_cache["last_seq"] = 0
            seq_breaks += 1  # bench
            print(f"{code} sequence discontinuity detected, clearing local depth cache")
            return
        target_map = depth_cache["bids"] if side == "bid" else depth_cache["asks"]
        update_depth_storage(target_map, price, size)
        depth_cache["last_seq"] = seq
        applied += 1  # bench
        if measuring:  # bench
            latencies.append(time.time() - data["ts"])
    except Exception as e:
        errors += 1  # bench
        print("Message parsing error:", str(e))


def on_error(ws: Any, error: Any) -> None:
    print("WebSocket connection exception:", error)


def on_close(ws: Any, close_code: Any, close_msg: Any) -> None:
    print("WebSocket disconnected, reset all subscriptions & depth cache")
    subscriptions.clear()
    order_book_depth_storage.clear()


# -- the bench driver (not the article) ------------------------------------------------------

def _local_seqs() -> dict[str, int]:
    return {code: cache["last_seq"] for code, cache in list(order_book_depth_storage.items())}


def _read_top(code: str, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The article's read: sort the dicts when the strategy asks (from another thread)."""
    cache = order_book_depth_storage[code]
    bids = sorted(cache["bids"].items(), reverse=True)[:depth]
    asks = sorted(cache["asks"].items())[:depth]
    return bids, asks


def _read_latencies(codes: list[str], calls: int, budget_s: float) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for i in range(calls):
        t0 = time.perf_counter()
        _read_top(codes[i % len(codes)], 10)
        t1 = time.perf_counter()
        out.append(t1 - t0)
        if t1 > deadline:
            break
    return sorted(out)


VARIANTS = ("naive", "naive+skiputf8", "naive+orjson")


def run(url: str, control_url: str, codes: list[str], *, variant: str, warmup_s: float, seconds: float,
        read_calls: int = 2000, sim_pid: int | None = None) -> dict[str, Any]:
    """Connect, wait for data on every code, measure one window, return the figures."""
    global json_loads, measuring
    if variant not in VARIANTS:
        raise ValueError(f"unknown naive variant {variant!r}")
    meter = ProcessMeter(sim_pid)
    rss_base = meter.rss_bytes()
    skip_utf8 = variant != "naive"
    if variant == "naive+orjson":
        import orjson

        json_loads = orjson.loads
    INIT_CODES[:] = codes
    app = websocket.WebSocketApp(url, on_open=on_open, on_message=on_message, on_error=on_error, on_close=on_close)
    thread = threading.Thread(target=app.run_forever, name="naive-ws", daemon=True,
                              kwargs={"ping_interval": 10, "ping_timeout": 5, "skip_utf8_validation": skip_utf8})
    started = time.perf_counter()
    thread.start()
    try:
        deadline = started + FIRST_DIFF_TIMEOUT_S
        while time.perf_counter() < deadline:
            seqs = _local_seqs()
            if len(seqs) == len(codes) and all(seqs.values()):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"naive: not every code saw a diff within {FIRST_DIFF_TIMEOUT_S}s")
        ready_s = time.perf_counter() - started
        time.sleep(warmup_s)

        venue0, local0, applied0, breaks0 = venue_seqs(control_url), _local_seqs(), applied, seq_breaks
        meter.start()
        measuring = True
        t0 = time.perf_counter()
        time.sleep(seconds)
        applied1, t1 = applied, time.perf_counter()
        measuring = False
        cpu_window = meter.stop()
        local1, venue1 = _local_seqs(), venue_seqs(control_url)
        breaks1 = seq_breaks
        rss = meter.rss_bytes()
        lat = sorted(latencies)
        reads = _read_latencies(codes, read_calls, budget_s=5.0)
        levels = sum(len(c["bids"]) + len(c["asks"]) for c in order_book_depth_storage.values())
    finally:
        app.keep_running = False
        app.close()
        thread.join(5.0)
    elapsed = t1 - t0
    offered = sum(venue1.values()) - sum(venue0.values())
    return {
        "peer": variant,
        "symbols": len(codes),
        "ready_s": ready_s,
        "window_s": elapsed,
        "offered_per_s": offered / elapsed,
        "applied": applied1 - applied0,
        "applied_per_s": (applied1 - applied0) / elapsed,
        "lag_start": lag_diffs(venue0, local0),
        "lag_end": lag_diffs(venue1, local1),
        "latency_samples": len(lat),
        "latency_p50_s": percentile(lat, 0.5),
        "latency_p99_s": percentile(lat, 0.99),
        "latency_max_s": lat[-1] if lat else 0.0,
        **resource_figures(cpu_window, rss, rss_base, len(codes), reads),
        "levels_held": levels,
        "seq_breaks": breaks1 - breaks0,
        "errors": errors,
    }
