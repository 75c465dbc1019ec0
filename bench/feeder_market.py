"""The replay feeder's market: per symbol, a short cycle of pre-rendered Binance depth events that
leaves the book exactly where it started, replayed forever with ever-increasing update ids.

Why a cycle: a "max" run must measure the client, so the feeder may not spend its time generating a
market (the simulator does: a random walk, windows, rendering; at max it is at 100% CPU before the
client is). A finite pre-recorded stream would run out, and a client that applies a stream whose book
jumps is not being measured on correct data. So each symbol's events are generated once with the
simulator's own market model (same seed, same level model as the simulator's runs), ``steps`` level
changes per event, ``events`` events, then one closing event that sets every level that differs from
the starting book back to its starting size. After each cycle the book is the starting book again;
only ``U``/``u`` (and ``E``, ``x``) change, and they are the only fields rendered per send
(``%``-formatting into a template that already holds the levels).

The truth at any moment is the starting book with the current cycle's events replayed up to the last
event sent, so snapshots and ``/_control/truth`` are exact, like the simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from depthkeeper.simulator.binance_wire import price_text, render_levels, size_text, units_text
from depthkeeper.simulator.market import SymbolMarket

#: Level changes per event when not given: what the simulator's max mode puts in one event
#: (2048 changes per pump batch spread over the symbols).
BATCH_CHANGES = 2048
EVENTS_PER_CYCLE = 64

Change = tuple[bool, int, int]  # (is_bid, price in cents, size in 1e-4 units; 0 deletes)


def _render(changes: list[Change]) -> tuple[bytes, bytes]:
    bids = {cents: units for is_bid, cents, units in changes if is_bid}
    asks = {cents: units for is_bid, cents, units in changes if not is_bid}
    return (render_levels([(price_text(c), size_text(bids[c])) for c in sorted(bids, reverse=True)]),
            render_levels([(price_text(c), size_text(asks[c])) for c in sorted(asks)]))


@dataclass
class SymbolCycle:
    """One symbol: its starting book, the cycle's events, and where the replay stands."""

    code: str
    index: int
    tick_cents: int
    base_bids: dict[int, int]
    base_asks: dict[int, int]
    #: per event: (ids it spans, its changes, payload template with %d E, %d U, %d u, %.6f x)
    events: list[tuple[int, list[Change], bytes]] = field(default_factory=list)
    stream: bytes = b""
    sent: int = 0  # events sent so far (all cycles)
    last_id: int = 0  # u of the last event sent (0 = none yet)

    def next_payload(self, event_ms: int, now_s: float) -> bytes:
        """The next event, rendered, and the replay advanced past it."""
        ids, _changes, template = self.events[self.sent % len(self.events)]
        first = self.last_id + 1
        self.last_id += ids
        self.sent += 1
        return template % (event_ms, first, self.last_id, now_s)

    def book(self) -> tuple[int, dict[int, int], dict[int, int]]:
        """(last id sent, bids, asks) now: the starting book plus this cycle's events sent so far."""
        bids, asks = dict(self.base_bids), dict(self.base_asks)
        for _ids, changes, _template in self.events[: self.sent % len(self.events)]:
            for is_bid, cents, units in changes:
                side = bids if is_bid else asks
                if units:
                    side[cents] = units
                else:
                    side.pop(cents, None)
        return self.last_id, bids, asks

    def precision(self) -> tuple[str, str]:
        """(tickSize, stepSize) for exchangeInfo, as the simulator reports them."""
        return units_text(self.tick_cents * 10**6), "0.00010000"


def build_cycle(code: str, index: int, *, seed: int, levels: int, steps: int, events: int,
                stamp: bool = True) -> SymbolCycle:
    """Generate one symbol's cycle with the simulator's market model."""
    market = SymbolMarket(code, seed=seed, era=1, levels=levels, history_limit=0)
    cycle = SymbolCycle(code, index, market.tick_cents, dict(market.bids), dict(market.asks),
                        stream=f"{code.lower()}@depth@100ms".encode())
    head = b'{"e":"depthUpdate","E":%%d,"s":"%s","U":%%d,"u":%%d,' % code.encode()
    tail = b',"x":%.6f}' if stamp else b'}'
    raw: list[tuple[int, list[Change]]] = []
    for _ in range(events):
        out: list[tuple[int, bool, int, int]] = []
        while len(out) < steps:
            market.step(out)
        last: dict[tuple[bool, int], int] = {}
        for _seq, is_bid, cents, units in out:
            last[(is_bid, cents)] = units
        raw.append((len(out), [(is_bid, cents, units) for (is_bid, cents), units in last.items()]))
    closing: list[Change] = []
    for is_bid, now, base in ((True, market.bids, cycle.base_bids), (False, market.asks, cycle.base_asks)):
        for cents in set(now) | set(base):
            if now.get(cents, 0) != base.get(cents, 0):
                closing.append((is_bid, cents, base.get(cents, 0)))
    if not closing:  # the walk came back by itself: re-set one level to its size (a harmless change)
        cents = max(cycle.base_bids)
        closing.append((True, cents, cycle.base_bids[cents]))
    raw.append((len(closing), closing))
    for ids, changes in raw:
        bids, asks = _render(changes)
        body = b'"b":[%s],"a":[%s]' % (bids, asks)
        cycle.events.append((ids, changes, head + body.replace(b"%", b"%%") + tail))
    return cycle


def build_market(codes: list[str], *, seed: int, levels: int, steps: int | None = None,
                 events: int = EVENTS_PER_CYCLE, stamp: bool = True) -> list[SymbolCycle]:
    per_event = steps if steps is not None else max(1, BATCH_CHANGES // max(1, len(codes)))
    return [build_cycle(code, i, seed=seed, levels=levels, steps=per_event, events=events, stamp=stamp)
            for i, code in enumerate(codes)]


def render_snapshot(cycle: SymbolCycle, limit: int) -> dict[str, object]:
    """``/api/v3/depth`` at the last event sent (strings with 8 decimals, best first)."""
    last_id, bids, asks = cycle.book()
    return {
        "lastUpdateId": last_id,
        "bids": [[price_text(c).decode(), size_text(bids[c]).decode()] for c in sorted(bids, reverse=True)[:limit]],
        "asks": [[price_text(c).decode(), size_text(asks[c]).decode()] for c in sorted(asks)[:limit]],
    }
