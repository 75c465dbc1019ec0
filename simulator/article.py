"""The "article" dialect, exactly as ``protocols/article.md`` specifies it.

Written from the protocol page, independently of the client's codec (``depthkeeper.actors``):
a bug in a shared codec would be invisible to every integration test.

- ``{"cmd_id": 22004, "action": "sub"|"unsub", "code": [...]}`` adds to / removes from the
  connection's set; the optional ack lists the valid codes in ``code`` and the malformed or
  unlisted ones in ``rejected``.
- One diff per frame, ``price``/``size`` as decimal strings, per-symbol ``seq`` = the symbol's
  book version (+1 per diff, shared by every connection).
- ``GET /depth?code=X`` returns the full book at its seq, best first.
"""

from __future__ import annotations

import enum
import time
from typing import Any

import orjson

from depthkeeper.simulator.config import CODE_PATTERN
from depthkeeper.simulator.faults import UNKNOWN_CODE, MalformedKind, RestFaults
from depthkeeper.simulator.market import DiffTuple, SymbolMarket, format_price, format_size, render_side
from depthkeeper.simulator.registry import ConnState
from depthkeeper.simulator.snapshot_faults import apply_shape
from depthkeeper.simulator.venue import DialectHandler, HttpReply, Reply, Venue, dumps

#: The only command of the dialect (the article calls it "subscribe order book").
CMD_SUBSCRIBE = 22004
#: The ``type`` of an unknown-type flood: well-formed JSON, a type the protocol does not define.
UNKNOWN_TYPE = "something_else"

#: Diff templates: bytes %-formatting is several times cheaper than json.dumps per diff.
_DIFF = b'{"type":"orderbook_diff","code":"%s","seq":%d,"side":"%s","price":"%s","size":"%s"}'
_DIFF_STAMPED = (
    b'{"type":"orderbook_diff","code":"%s","seq":%d,"side":"%s","price":"%s","size":"%s","ts":%.6f}'
)
_BID, _ASK = b"bid", b"ask"
#: Rendered prices/sizes are cached; the caches are cleared when they grow past this.
_CACHE_LIMIT = 200_000


class Action(str, enum.Enum):
    SUB = "sub"
    UNSUB = "unsub"


class ArticleDialect(DialectHandler):
    """Commands, diffs, snapshots and bad frames of the article protocol."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self._code_bytes = {code: code.encode() for code in self.config.symbols}
        self._prices: dict[int, bytes] = {}
        self._sizes: dict[int, bytes] = {}

    # -- client frames --------------------------------------------------------------------------

    def on_text(self, conn: ConnState, text: str, now_s: float) -> Reply:
        registry = self.venue.registry
        try:
            message: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            registry.log_command(conn, now_s, None, None, (), text)
            return self._invalid("bad request: not a JSON object")
        cmd_id, action, codes = message.get("cmd_id"), message.get("action"), message.get("code")
        logged_codes = tuple(c for c in codes if isinstance(c, str)) if isinstance(codes, list) else ()
        registry.log_command(
            conn,
            now_s,
            cmd_id if isinstance(cmd_id, int) and not isinstance(cmd_id, bool) else None,
            action if isinstance(action, str) else None,
            logged_codes,
            text,
        )
        if cmd_id != CMD_SUBSCRIBE or isinstance(cmd_id, bool):
            return self._invalid(f"bad request: cmd_id must be {CMD_SUBSCRIBE}", action=action)
        if action not in (Action.SUB.value, Action.UNSUB.value):
            return self._invalid("bad request: action must be sub or unsub", action=action)
        if not isinstance(codes, list) or len(logged_codes) != len(codes):
            return self._invalid("bad request: code must be a list of strings", action=action)
        if not codes:
            registry.counters["empty_lists"] += 1
            return self._ack(action, [], [], ret=400, msg="empty code list")
        valid = [c for c in codes if CODE_PATTERN.match(c) and c in self.venue.market.symbols]
        rejected = [c for c in codes if c not in valid]
        registry.counters["rejected_codes"] += len(rejected)
        if action == Action.SUB.value:
            refused = self.venue.faults.take_rejected(valid)  # FaultKind.REJECT: listed, never streamed
            if refused:
                valid = [c for c in valid if c not in refused]
                rejected += refused
            self._subscribe(conn, valid)
        else:
            self._unsubscribe(conn, valid)
        return self._ack(action, valid, rejected, ret=200)

    def _subscribe(self, conn: ConnState, codes: list[str]) -> None:
        registry = self.venue.registry
        limit = self.config.max_symbols_per_connection
        for code in codes:
            if code in conn.subscriptions:
                registry.counters["duplicate_subscribes"] += 1
            elif limit and len(conn.subscriptions) >= limit:
                registry.counters["ignored_over_limit"] += 1  # silently, like AllTick's plans
            else:
                registry.subscribe(conn, code)

    def _unsubscribe(self, conn: ConnState, codes: list[str]) -> None:
        for code in codes:
            if not self.venue.registry.unsubscribe(conn, code):
                self.venue.registry.counters["unsubscribes_not_subscribed"] += 1

    def _invalid(self, msg: str, action: Any = None) -> Reply:
        self.venue.registry.counters["invalid_commands"] += 1
        return self._ack(action if isinstance(action, str) else None, [], [], ret=400, msg=msg)

    def _ack(self, action: str | None, codes: list[str], rejected: list[str], *, ret: int, msg: str = "") -> Reply:
        if not self.config.send_acks:
            return Reply()
        ack: dict[str, Any] = {
            "type": "ack", "cmd_id": CMD_SUBSCRIBE, "action": action, "code": codes, "rejected": rejected, "ret": ret,
        }
        if msg:
            ack["msg"] = msg
        return Reply(payloads=(dumps(ack),))

    # -- business messages ----------------------------------------------------------------------

    def _render(self, code: str, diffs: list[DiffTuple]) -> list[bytes]:
        """Each diff as one complete WebSocket text frame (header + JSON)."""
        code_b = self._code_bytes[code]
        prices, sizes = self._prices, self._sizes
        if len(prices) > _CACHE_LIMIT or len(sizes) > _CACHE_LIMIT:
            prices.clear()
            sizes.clear()
        stamped = self.config.stamp
        now = time.time()
        frames = []
        for seq, is_bid, cents, units in diffs:
            price = prices.get(cents)
            if price is None:
                price = prices[cents] = format_price(cents).encode()
            size = sizes.get(units)
            if size is None:
                size = sizes[units] = format_size(units).encode()
            side = _BID if is_bid else _ASK
            if stamped:
                payload = _DIFF_STAMPED % (code_b, seq, side, price, size, now)
            else:
                payload = _DIFF % (code_b, seq, side, price, size)
            length = len(payload)
            if length < 126:
                frames.append(bytes((0x81, length)) + payload)
            else:
                frames.append(bytes((0x81, 126)) + length.to_bytes(2, "big") + payload)
        return frames

    def publish(self, symbol: SymbolMarket, diffs: list[DiffTuple]) -> None:
        frames = self._render(symbol.code, diffs)
        venue = self.venue
        if venue.faults.stream_active:
            for frame in frames:
                venue.deliver_routed(symbol.code, frame)
            return
        joined = b"".join(frames)
        subscribers = venue.registry.subscribers.get(symbol.code, ())
        for conn in subscribers:
            conn.outbox.add_many(joined, len(frames))
            venue.dirty.add(conn)
        venue.registry.counters["pushes_sent"] += len(frames) * len(subscribers)

    def deliver(self, code: str, message: Any) -> None:
        subscribers = self.venue.registry.subscribers.get(code, ())
        for conn in subscribers:
            conn.outbox.add(message)
            self.venue.dirty.add(conn)
        self.venue.registry.counters["pushes_sent"] += len(subscribers)

    # -- REST -----------------------------------------------------------------------------------

    def rest(self, params: dict[str, list[str]], faults: RestFaults) -> HttpReply:
        codes = params.get("code")
        if not codes:
            return HttpReply(400, {"error": "missing code"})
        market = self.venue.market
        code = codes[0]
        if code not in market.symbols:
            return HttpReply(404, {"error": "unknown code"})
        seq = market.lagged_seq(code, faults.lag) if faults.lag else None
        shape = self.venue.faults.shapes.take(code)
        if shape is None:
            return HttpReply(200, market.book(code, seq))
        symbol = market.get(code)
        at_seq, bids, asks = apply_shape(shape, *symbol.levels_at(seq), symbol.tick_cents)
        return HttpReply(200, {
            "code": code,
            "seq": at_seq,
            "bids": [list(level) for level in render_side(bids, None, best_high=True)],
            "asks": [list(level) for level in render_side(asks, None, best_high=False)],
        })

    def rest_failure(self, status: int) -> HttpReply:
        return HttpReply(status, {"error": "rate limited" if status == 429 else "injected failure"})

    # -- bad frames -----------------------------------------------------------------------------

    def malformed(self, kind: MalformedKind, conn: ConnState) -> bytes:
        code = self.target_code(conn)
        if kind is MalformedKind.BAD_JSON:
            return b'{"type":"orderbook_diff","code":"%s","seq":' % code.encode()
        if kind is MalformedKind.MISSING_FIELD:
            return dumps({"type": "orderbook_diff", "code": code, "side": "bid", "price": "1.00", "size": "1"})
        if kind is MalformedKind.WRONG_TYPE:
            return dumps(
                {"type": "orderbook_diff", "code": code, "seq": "oops", "side": "bid", "price": "1.00", "size": "1"}
            )
        return dumps(
            {"type": "orderbook_diff", "code": UNKNOWN_CODE, "seq": 1, "side": "bid", "price": "1.00", "size": "1"}
        )

    # -- issue 12 faults -------------------------------------------------------------------------

    def render_future(self, code: str, seq: int) -> bytes:
        """A diff that re-states the best level (no real change) under a far-future ``seq``."""
        symbol = self.venue.market.get(code)
        if symbol.bids:
            price = max(symbol.bids)
            diff = (seq, True, price, symbol.bids[price])
        elif symbol.asks:
            price = min(symbol.asks)
            diff = (seq, False, price, symbol.asks[price])
        else:
            diff = (seq, True, symbol.tick_cents, 10_000)
        return self._render(code, [diff])[0]

    def unknown_type_payload(self, index: int) -> bytes:
        return b'{"type":"%s","n":%d}' % (UNKNOWN_TYPE.encode(), index)

    def code_payload(self, code: str) -> bytes:
        return _DIFF % (code.encode(), 1, _BID, b"1.00", b"1")
