"""The market clock: generates diffs on schedule and hands each batch to the venue.

Generation runs whether or not anybody is subscribed, so seqs keep advancing like on a real
venue and a late subscriber sees diffs "from the next change on".

Two regimes:

- ``rate_per_symbol > 0``: Poisson arrivals per symbol. Arrival times come from a per-symbol
  *timing* RNG, separate from the content RNG in the market, so the content of a symbol's diff
  sequence never depends on the wall clock. Each loop iteration generates everything that is due,
  publishes it as one batch, then sleeps until the next arrival (at most `MAX_SLEEP_S`).
- ``rate_per_symbol <= 0``: as fast as the subscribers read. Each iteration generates
  `FAST_BATCH_DIFFS` diffs spread over the symbols, and waits while any subscriber's unsent
  buffer is above `HIGH_WATER_BYTES` (backpressure instead of unbounded memory). With no
  subscriber at all it only ticks every `IDLE_SLEEP_S`: an embedded simulator must not starve
  the host's threads of the GIL while nobody is listening.

A connection whose unsent buffer exceeds `SLOW_CONSUMER_BYTES` at a finite rate is dropped,
like real venues drop slow consumers.
"""

from __future__ import annotations

import asyncio
import random

from loguru import logger

from depthkeeper.simulator.market import DiffTuple, SymbolMarket
from depthkeeper.simulator.venue import Venue

#: Upper bound of one sleep between batches (keeps freeze/unfreeze and stalls responsive).
MAX_SLEEP_S = 0.01
#: After a hiccup longer than this, skip the backlog instead of bursting it out.
MAX_CATCHUP_S = 0.5
#: Diffs per iteration in as-fast-as-possible mode.
FAST_BATCH_DIFFS = 2048
#: Sleep between batches in as-fast-as-possible mode while nobody is subscribed.
IDLE_SLEEP_S = 0.01
#: Backpressure threshold of the as-fast-as-possible mode.
HIGH_WATER_BYTES = 1 << 20
#: Unsent bytes after which a connection counts as a slow consumer and is dropped.
SLOW_CONSUMER_BYTES = 64 << 20
#: Poll period while waiting for backpressure to clear.
BACKPRESSURE_POLL_S = 0.0005

log = logger.bind(component="simulator").opt(capture=False)  # format kwargs are not context


class Pump:
    """Drives the market of one venue from the event loop."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        config = venue.config
        self._rate = config.rate_per_symbol
        self._timing = {code: random.Random(f"timing:{config.seed}:{code}") for code in config.symbols}
        now_s = venue.now_s()
        self._next_at_s = {code: now_s + self._timing[code].expovariate(self._rate) if self._rate > 0 else now_s
                           for code in config.symbols}
        self.resumed = asyncio.Event()
        self.resumed.set()

    def freeze(self) -> None:
        self._venue.frozen = True
        self.resumed.clear()
        self._venue.release_held()

    def unfreeze(self) -> None:
        if not self._venue.frozen:
            return
        now_s = self._venue.now_s()
        self._next_at_s = dict.fromkeys(self._next_at_s, now_s)  # no burst for the frozen time
        self._venue.frozen = False
        self.resumed.set()

    async def run(self) -> None:
        log.debug("pump started rate_per_symbol={rate}", rate=self._rate)
        while True:
            if self._venue.frozen:
                await self.resumed.wait()
                continue
            if self._rate > 0:
                delay_s = self._generate_due()
                await asyncio.sleep(delay_s)
            elif self._venue.registry.subscribers:
                await self._wait_for_readers()
                if not self._venue.frozen:
                    self._generate_batch(FAST_BATCH_DIFFS)
                await asyncio.sleep(0)
            else:  # nobody reads: keep seqs moving without burning a core (and the GIL)
                self._generate_batch(len(self._venue.market.symbols))
                await asyncio.sleep(IDLE_SLEEP_S)

    def _generate_due(self) -> float:
        """Generate every arrival that is due; return the time until the next one."""
        venue = self._venue
        now_s = venue.now_s()
        rate = self._rate
        changes: list[tuple[SymbolMarket, list[DiffTuple]]] = []
        next_due_s = now_s + MAX_SLEEP_S
        for code, symbol in venue.market.symbols.items():
            at_s = self._next_at_s[code]
            if at_s <= now_s:
                if now_s - at_s > MAX_CATCHUP_S:
                    at_s = now_s
                timing = self._timing[code]
                out: list[DiffTuple] = []
                while at_s <= now_s:
                    for _ in range(symbol.step(out)):
                        at_s += timing.expovariate(rate)
                changes.append((symbol, out))
                self._next_at_s[code] = at_s
            next_due_s = min(next_due_s, at_s)
        if changes:
            venue.publish(changes)
            self._drop_slow_consumers()
        return max(0.0, next_due_s - venue.now_s())

    def _generate_batch(self, diffs: int) -> None:
        symbols = list(self._venue.market.symbols.values())
        per_symbol = max(1, diffs // len(symbols))
        changes: list[tuple[SymbolMarket, list[DiffTuple]]] = []
        for symbol in symbols:
            out: list[DiffTuple] = []
            step = symbol.step
            while len(out) < per_symbol:
                step(out)
            changes.append((symbol, out))
        self._venue.publish(changes)

    async def _wait_for_readers(self) -> None:
        """Backpressure: wait while some subscriber has more than HIGH_WATER_BYTES unsent."""
        registry = self._venue.registry
        while any(
            conn.subscriptions and conn.outbox.buffered_bytes() > HIGH_WATER_BYTES for conn in registry.open.values()
        ):
            await asyncio.sleep(BACKPRESSURE_POLL_S)

    def _drop_slow_consumers(self) -> None:
        registry = self._venue.registry
        for conn in list(registry.open.values()):
            if conn.outbox.buffered_bytes() > SLOW_CONSUMER_BYTES:
                log.warning("dropping slow consumer conn_id={conn_id}", conn_id=conn.conn_id)
                registry.counters["slow_consumers_closed"] += 1
                conn.abort()
