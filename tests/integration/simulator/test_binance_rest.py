"""Binance REST: /api/v3/depth, exchangeInfo, ping, time; weights, 429, 418 and lenient mode."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from depthkeeper.simulator import SimHandle

#: Fields nautilus_trader's strict exchangeInfo decoder requires (../shared/notes/binance-and-peers.md 3.3).
NAUTILUS_SYMBOL_FIELDS = {
    "symbol", "status", "baseAsset", "baseAssetPrecision", "quoteAsset", "quotePrecision", "quoteAssetPrecision",
    "orderTypes", "icebergAllowed", "ocoAllowed", "quoteOrderQtyMarketAllowed", "allowTrailingStop",
    "isSpotTradingAllowed", "isMarginTradingAllowed", "filters", "permissions",
}
NAUTILUS_FILTERS = ["PRICE_FILTER", "LOT_SIZE", "ICEBERG_PARTS", "MARKET_LOT_SIZE", "TRAILING_DELTA",
                    "PERCENT_PRICE_BY_SIDE", "NOTIONAL", "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS"]


def get(url: str) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def used(headers: dict[str, str]) -> int:
    assert headers["X-MBX-USED-WEIGHT"] == headers["X-MBX-USED-WEIGHT-1M"] and headers["Date"].endswith("GMT")
    return int(headers["X-MBX-USED-WEIGHT-1M"])


@pytest.fixture
def deep_sim(start_sim: Callable) -> SimHandle:
    return start_sim(dialect="binance", symbols=("BTCUSDT", "SYM0001USDT"), levels=150, rate_per_symbol=50.0)


def test_depth_shape_limits_and_order(deep_sim: SimHandle) -> None:
    base = f"{deep_sim.rest_url}/api/v3/depth?symbol=BTCUSDT"
    status, _, body = get(base)
    assert status == 200 and list(body) == ["lastUpdateId", "bids", "asks"]
    assert len(body["bids"]) == 100 and len(body["asks"]) == 100, "default limit 100"
    bids, asks = [Decimal(p) for p, _ in body["bids"]], [Decimal(p) for p, _ in body["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(len(p.split(".")[1]) == 8 and len(q.split(".")[1]) == 8 for p, q in body["bids"] + body["asks"])
    assert [len(get(f"{base}&limit={n}")[2]["bids"]) for n in (5, 1)] == [5, 1]
    deep_sim.freeze()
    truth = deep_sim.truth("BTCUSDT")
    full = get(f"{base}&limit=7000")[2]
    assert full["lastUpdateId"] == truth["seq"]
    assert [(Decimal(p), Decimal(q)) for p, q in full["bids"]] == [(Decimal(p), Decimal(q)) for p, q in truth["bids"]]


def test_weight_by_limit_and_endpoint_in_the_headers(deep_sim: SimHandle) -> None:
    api = f"{deep_sim.rest_url}/api/v3"
    steps = [("depth?symbol=BTCUSDT&limit=100", 5), ("depth?symbol=BTCUSDT&limit=500", 25),
             ("depth?symbol=BTCUSDT&limit=1000", 50), ("depth?symbol=BTCUSDT&limit=5000", 250),
             ("depth?symbol=BTCUSDT", 5), ("ping", 1), ("time", 1), ("exchangeInfo", 20)]
    total = 0
    for path, weight in steps:
        status, headers, _ = get(f"{api}/{path}")
        total += weight
        assert status == 200 and used(headers) == total, path


def test_budget_429_then_418_with_retry_after(start_sim: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_weight_limit=20, binance_ban_after_429s=2)
    depth = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT"
    assert [get(depth)[0] for _ in range(4)] == [200] * 4
    status, headers, body = get(depth)
    assert status == 429 and body["code"] == -1003
    assert body["msg"].startswith("Too much request weight used; current limit is 20 request weight per 1 MINUTE.")
    assert 1 <= int(headers["Retry-After"]) <= 60 and used(headers) == 20
    assert get(f"{sim.rest_url}/api/v3/ping")[0] == 429
    status, headers, body = get(depth)
    assert status == 418 and body["msg"].startswith("Way too much request weight used; IP banned until")
    assert 100 <= int(headers["Retry-After"]) <= 120
    assert get(f"{sim.rest_url}/api/v3/time")[0] == 418
    counters = sim.counters()
    assert (counters["binance_rest_429"], counters["binance_rest_418"]) == (2, 2)


def test_lenient_mode_serves_over_the_budget_and_counts(start_sim: Callable) -> None:
    sim = start_sim(dialect="binance", symbols=("BTCUSDT",), binance_weight_limit=10, binance_enforce_limits=False)
    replies = [get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT") for _ in range(4)]
    assert [status for status, _, _ in replies] == [200] * 4
    assert [used(headers) for _, headers, _ in replies] == [5, 10, 15, 20]
    assert sim.counters()["binance_rest_429"] == 2


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("", 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}),
        ("symbol=btcusdt", 400,
         {"code": -1100, "msg": "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."}),
        ("symbol=XRPUSDT", 400, {"code": -1121, "msg": "Invalid symbol."}),
        ("symbol=BTCUSDT&limit=ten", 400,
         {"code": -1100, "msg": "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}),
    ],
)
def test_depth_errors_in_binance_shape(deep_sim: SimHandle, query: str, status: int, body: dict[str, Any]) -> None:
    got_status, headers, got_body = get(f"{deep_sim.rest_url}/api/v3/depth?{query}")
    assert (got_status, got_body) == (status, body)
    assert used(headers) == 5, "errors cost weight too"


def test_exchange_info_has_what_peers_parse(deep_sim: SimHandle) -> None:
    status, _, info = get(f"{deep_sim.rest_url}/api/v3/exchangeInfo")
    assert status == 200
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"} <= set(info)
    assert info["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                     "limit": 6000}
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "SYM0001USDT"]
    for entry in info["symbols"]:
        assert set(entry) >= NAUTILUS_SYMBOL_FIELDS and entry["status"] == "TRADING"
        assert [f["filterType"] for f in entry["filters"]] == NAUTILUS_FILTERS, "PRICE_FILTER first (cryptofeed)"
        tick = Decimal(entry["filters"][0]["tickSize"])
        assert tick > 0 and all(Decimal(p) % tick == 0 for p, _ in deep_sim.truth(entry["symbol"])["bids"])
    assert (info["symbols"][1]["baseAsset"], info["symbols"][1]["quoteAsset"]) == ("SYM0001", "USDT")
    one = get(f"{deep_sim.rest_url}/api/v3/exchangeInfo?symbol=SYM0001USDT")[2]
    assert [s["symbol"] for s in one["symbols"]] == ["SYM0001USDT"]
    quoted = urllib.request.quote('["SYM0001USDT","BTCUSDT"]')
    assert [s["symbol"] for s in get(f"{deep_sim.rest_url}/api/v3/exchangeInfo?symbols={quoted}")[2]["symbols"]] == [
        "SYM0001USDT", "BTCUSDT"]
    assert get(f"{deep_sim.rest_url}/api/v3/exchangeInfo?symbol=NOPE")[:3:2] == (400, {"code": -1121,
                                                                                      "msg": "Invalid symbol."})


def test_ping_and_time_carry_the_headers_unicorn_reads(deep_sim: SimHandle) -> None:
    status, headers, body = get(f"{deep_sim.rest_url}/api/v3/ping")
    assert (status, body) == (200, {}) and used(headers) == 1
    status, headers, body = get(f"{deep_sim.rest_url}/api/v3/time")
    assert status == 200 and list(body) == ["serverTime"] and body["serverTime"] > 1_600_000_000_000
    assert get(f"{deep_sim.rest_url}/api/v3/klines")[0] == 404
