"""Binance spot REST: ``/api/v3/depth``, ``exchangeInfo``, ``ping``, ``time``, with request weight.

What real clients call at start (see ../shared/notes/binance-and-peers.md, section 5) and the
shapes they parse:

- ``GET /api/v3/ping`` -> ``{}`` (weight 1). unicorn needs the weight headers and ``Date`` on it.
- ``GET /api/v3/time`` -> ``{"serverTime": ms}`` (weight 1).
- ``GET /api/v3/exchangeInfo[?symbol=X | ?symbols=["A","B"]]`` (weight 20) -> the 2026 field set
  that nautilus' strict decoder requires, ``PRICE_FILTER`` first (cryptofeed reads
  ``filters[0].tickSize``). Unknown symbol -> 400 ``-1121``.
- ``GET /api/v3/depth?symbol=X&limit=N`` -> ``{"lastUpdateId", "bids", "asks"}``, 8-decimal strings,
  best first. ``limit`` defaults to 100 and is capped at 5000 (``binance_snapshot_max_limit``);
  weight 5/25/50/250 by limit. Missing symbol -> 400 ``-1102``; bad characters -> 400 ``-1100``;
  unknown symbol -> 400 ``{"code": -1121, "msg": "Invalid symbol."}``.

Every ``/api/`` answer carries ``X-MBX-USED-WEIGHT-1M``, the legacy ``X-MBX-USED-WEIGHT`` and
``Date``. Over the weight budget: 429 ``-1003`` with ``Retry-After``; kept going: 418 (see
binance_limits.py). Injected REST faults (delay, fail, stale snapshot) apply to ``/api/v3/depth``
only, so a client's exchangeInfo or ping never consumes a fault armed for a snapshot.
"""

from __future__ import annotations

import email.utils
import heapq
import re
import time
from typing import Any, Protocol

import orjson

from depthkeeper.simulator.binance_limits import Verdict, WeightBudget, depth_weight
from depthkeeper.simulator.binance_wire import decimal_units, price_text, size_text, split_symbol, units_text
from depthkeeper.simulator.faults import RestFaults
from depthkeeper.simulator.snapshot_faults import ShapeFault, apply_shape
from depthkeeper.simulator.venue import HttpReply, Venue

DEPTH_PATH = "/api/v3/depth"
EXCHANGE_INFO_PATH = "/api/v3/exchangeInfo"
PING_PATH = "/api/v3/ping"
TIME_PATH = "/api/v3/time"
_WEIGHTS = {PING_PATH: 1, TIME_PATH: 1, EXCHANGE_INFO_PATH: 20}
DEFAULT_DEPTH_LIMIT = 100
MAX_DEPTH_LIMIT = 5000

_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_LIMIT_RE = re.compile(r"^[0-9]{1,20}$")
_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
_STP_MODES = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]


class DepthSource(Protocol):
    """Where snapshots and symbol precision come from: the generated market or a recording."""

    def snapshot(self, code: str, limit: int, lag: int) -> tuple[int, list[list[str]], list[list[str]]]:
        """(lastUpdateId, bids, asks) best first, at most ``limit`` a side, ``lag`` updates old."""

    def precision(self, code: str) -> tuple[str, str]:
        """(tickSize, stepSize) as 8-decimal strings."""


class GeneratedDepth:
    """`DepthSource` over the simulator's generated market (prices in cents, sizes in 1e-4)."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue

    def snapshot(self, code: str, limit: int, lag: int) -> tuple[int, list[list[str]], list[list[str]]]:
        market = self._venue.market
        seq, bids, asks = market.get(code).levels_at(market.lagged_seq(code, lag) if lag else None)
        return (
            seq,
            [[price_text(p).decode(), size_text(bids[p]).decode()] for p in heapq.nlargest(limit, bids)],
            [[price_text(p).decode(), size_text(asks[p]).decode()] for p in heapq.nsmallest(limit, asks)],
        )

    def precision(self, code: str) -> tuple[str, str]:
        return units_text(self._venue.market.get(code).tick_cents * 10**6), "0.00010000"


def _error(status: int, code: int, msg: str) -> HttpReply:
    return HttpReply(status, {"code": code, "msg": msg})


def _illegal(name: str, legal: str) -> HttpReply:
    return _error(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def symbol_info(code: str, tick: str, step: str) -> dict[str, Any]:
    """One ``symbols[]`` entry with every field nautilus' decoder requires (rest-api.md, 2026)."""
    base, quote = split_symbol(code)
    return {
        "symbol": code, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": _ORDER_TYPES, "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
        "opoAllowed": True, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
        "cancelReplaceAllowed": True, "amendAllowed": True, "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER", "allowedSelfTradePreventionModes": _STP_MODES,
    }


class BinanceRest:
    """The REST side of the binance dialect (event-loop thread only)."""

    def __init__(self, venue: Venue, depth: DepthSource) -> None:
        self._venue = venue
        self._depth = depth
        config = venue.config
        self._enforce = config.binance_enforce_limits
        self._max_limit = min(MAX_DEPTH_LIMIT, config.binance_snapshot_max_limit)
        self.budget = WeightBudget(
            config.binance_weight_limit, config.binance_weight_window_s, config.binance_ban_after_429s,
            config.binance_ban_s,
        )

    def _headers(self, ip: str) -> tuple[tuple[str, str], ...]:
        used = str(self.budget.used(ip, self._venue.now_s()))
        return (("X-MBX-USED-WEIGHT-1M", used), ("X-MBX-USED-WEIGHT", used),
                ("Date", email.utils.formatdate(usegmt=True)))

    def headers(self, ip: str) -> tuple[tuple[str, str], ...]:
        """Headers of every ``/api/`` answer (the snapshot path adds them after its faults)."""
        return self._headers(ip)

    def front(self, method: str, path: str, params: dict[str, list[str]], ip: str) -> HttpReply | None:
        """Charge weight and answer everything but the snapshot; None = go on to the snapshot."""
        if path != DEPTH_PATH and path not in _WEIGHTS:
            return None
        if method != "GET":
            return HttpReply(405, {"code": -1000, "msg": "use GET"}, self._headers(ip))
        rejection = self._charge(ip, self._weight(path, params))
        if rejection is not None:
            return rejection
        if path == DEPTH_PATH:
            return None
        if path == PING_PATH:
            body: Any = {}
        elif path == TIME_PATH:
            body = {"serverTime": int(time.time() * 1000)}
        else:
            reply = self.exchange_info(params)
            return HttpReply(reply.status, reply.body, self._headers(ip))
        return HttpReply(200, body, self._headers(ip))

    @staticmethod
    def _weight(path: str, params: dict[str, list[str]]) -> int:
        if path != DEPTH_PATH:
            return _WEIGHTS[path]
        limit = _first(params, "limit")
        return depth_weight(int(limit)) if limit is not None and _LIMIT_RE.match(limit) else 5

    def _charge(self, ip: str, weight: int) -> HttpReply | None:
        now_s = self._venue.now_s()
        charge = self.budget.charge(ip, weight, now_s)
        if charge.verdict is Verdict.OK:
            return None
        counters = self._venue.registry.counters
        counters[f"binance_rest_{charge.verdict.value}"] += 1
        if not self._enforce:
            self.budget.add(ip, weight, now_s)
            return None
        if charge.verdict is Verdict.BANNED:
            msg = (f"Way too much request weight used; IP banned until {int((time.time() + charge.retry_after_s) * 1000)}."
                   " Please use WebSocket Streams for live updates to avoid bans.")
        else:
            msg = self._too_much_weight_msg()
        headers = (*self._headers(ip), ("Retry-After", str(charge.retry_after_s)))
        return HttpReply(charge.verdict.value, {"code": -1003, "msg": msg}, headers)

    def _too_much_weight_msg(self) -> str:
        per = "1 MINUTE" if self.budget.window_s == 60 else f"{self.budget.window_s:g} SECOND"
        return (f"Too much request weight used; current limit is {self.budget.limit} request weight per {per}."
                " Please use WebSocket Streams for live updates to avoid polling the API.")

    # -- endpoints ------------------------------------------------------------------------------

    def exchange_info(self, params: dict[str, list[str]]) -> HttpReply:
        one, many = _first(params, "symbol"), _first(params, "symbols")
        if one is not None and many is not None:
            return _error(400, -1128, "Combination of optional parameters invalid.")
        wanted: Any = list(self._venue.market.symbols)
        if one is not None:
            wanted = [one]
        elif many is not None:
            try:
                wanted = orjson.loads(many)
            except orjson.JSONDecodeError:
                wanted = None
            if not isinstance(wanted, list) or not all(isinstance(c, str) for c in wanted):
                return _illegal("symbols", '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$')
        if any(code not in self._venue.market.symbols for code in wanted):
            return _error(400, -1121, "Invalid symbol.")
        limit = self.budget.limit or 6000
        return HttpReply(200, {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [symbol_info(code, *self._depth.precision(code)) for code in wanted],
        })

    def depth(self, params: dict[str, list[str]], faults: RestFaults) -> HttpReply:
        symbol = _first(params, "symbol")
        if not symbol:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not _SYMBOL_RE.match(symbol):
            return _illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
        if symbol not in self._venue.market.symbols:
            return _error(400, -1121, "Invalid symbol.")
        limit_text = _first(params, "limit")
        if limit_text is not None and not _LIMIT_RE.match(limit_text):
            return _illegal("limit", "^[0-9]{1,20}$")
        limit = DEFAULT_DEPTH_LIMIT if limit_text is None else max(1, min(int(limit_text), self._max_limit))
        last_update_id, bids, asks = self._depth.snapshot(symbol, limit, faults.lag)
        shape = self._venue.faults.shapes.take(symbol)
        if shape is not None:
            last_update_id, bids, asks = self._shaped(shape, symbol, last_update_id, bids, asks)
        return HttpReply(200, {"lastUpdateId": last_update_id, "bids": bids, "asks": asks})

    def _shaped(self, shape: ShapeFault, symbol: str, last_update_id: int, bids: list[list[str]],
                asks: list[list[str]]) -> tuple[int, list[list[str]], list[list[str]]]:
        """A snapshot bent by an armed shape (snapshot_faults.py), computed in exact 1e-8 units."""
        def units(rows: list[list[str]]) -> dict[int, int]:
            return {decimal_units(price): decimal_units(qty) for price, qty in rows}

        tick = decimal_units(self._depth.precision(symbol)[0])
        seq, bent_bids, bent_asks = apply_shape(shape, last_update_id, units(bids), units(asks), tick)
        return (seq, [[units_text(p), units_text(bent_bids[p])] for p in sorted(bent_bids, reverse=True)],
                [[units_text(p), units_text(bent_asks[p])] for p in sorted(bent_asks)])

    def failure(self, status: int) -> HttpReply:
        """An injected failure in Binance's error shape (429/418 carry ``Retry-After``)."""
        if status == 429:
            return HttpReply(429, {"code": -1003, "msg": self._too_much_weight_msg()}, (("Retry-After", "1"),))
        if status == 418:
            return HttpReply(418, {"code": -1003, "msg": "Way too much request weight used; IP banned. Please use "
                                   "WebSocket Streams for live updates to avoid bans."}, (("Retry-After", "1"),))
        if status >= 500:
            return _error(status, -1001, "Internal error; unable to process your request. Please try again.")
        return _error(status, -1000, "An unknown error occurred while processing the request.")
