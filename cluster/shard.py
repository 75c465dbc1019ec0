"""``Shard``: one ``depthkeeper shard`` process — leases slots and runs one BookService per slot.

A slot is one venue connection's worth of symbols, so a slot is one BookService (one socket).
Every tick (a sixth of the lease TTL) the shard, in this order:

1. checks the boot token (a new one means Redis lost its data: every slot is stopped, the desired
   set is seeded again from ``[symbols] initial``, the cluster's meta hash rewritten);
2. beats in the live-shards set;
3. stamps the fenced heartbeat of every code it publishes (a 0 = fenced, -1 = lost stops the slot);
4. renews its leases (refused, or Redis unreachable: the slot's socket is stopped at once);
5. follows the assignment (codes added to or removed from its slots);
6. claims free slots up to its fair share (leases.py) or gives one back gracefully;
7. opens the sockets of claimed slots, each after a token from the cluster-wide connect bucket
   (so a failover storm obeys the venue's connection-rate limit across all shards).

Claiming a slot takes a new fencing epoch and immediately publishes a RESYNCING entry with bus
seq 1 on every code of the slot: from then on the former owner's publishes are refused by the
script, whatever its lease believes. The service only ever sees its public API: start, subscribe,
unsubscribe, book, add_listener, stop.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from loguru import logger

from depthkeeper.cluster.bus import BusUnavailable
from depthkeeper.cluster.compat import AppConfig, BookService
from depthkeeper.cluster.leases import plan
from depthkeeper.cluster.publisher import SlotPublisher


@attrs.define
class Slot:
    index: int
    epoch: int
    publisher: SlotPublisher
    codes: set[str]
    service: Any = None


#: ticks a new shard only beats before claiming anything
STARTUP_TICKS = 2


def new_shard_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Shard:
    def __init__(self, cfg: AppConfig, *, shard_id: str | None = None, bus: Any = None) -> None:
        self.cfg = cfg
        self.cc = cfg.cluster
        self.id = shard_id or new_shard_id()
        if bus is None:
            from depthkeeper.cluster.redis_bus import RedisBus

            bus = RedisBus(self.cc.redis_url, self.cc.name, socket_timeout_s=max(0.5, self.cc.lease_ttl_s / 3),
                           snapshot_every=self.cc.snapshot_every, redis_cluster=self.cc.redis_cluster)
        self.bus = bus
        self.ttl_ms = int(self.cc.lease_ttl_s * 1000)
        self.tick_s = min(1.0, max(0.05, self.cc.lease_ttl_s / 6))
        self.slots: dict[int, Slot] = {}
        self.counters: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._boot: str | None = None
        self._version = -1
        self._assigned: dict[int, set[str]] = {}
        self._max_epoch = 0
        self._ticks = 0
        self._stoppers: list[threading.Thread] = []
        self._log = logger.bind(actor="shard", shard=self.id)

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event, on_ready: Callable[[], Any] | None = None) -> None:
        """Tick until ``stop`` is set, then hand every slot back. ``on_ready`` runs once, after the
        first slot's socket is open (the CLI freezes the start-up heap out of the collector's way)."""
        self._log.info("shard {} on {} (cluster {!r}, lease {}s)", self.id, self.cc.redis_url, self.cc.name,
                       self.cc.lease_ttl_s)
        try:
            while True:
                self.tick()
                if on_ready is not None and self.counters["sockets_opened"]:
                    on_ready()
                    on_ready = None
                if stop.wait(self.tick_s):
                    break
        finally:
            self.close()

    def tick(self) -> None:
        self._ticks += 1
        try:
            self._check_boot()
            self._beat()
            self._heartbeat()
            self._renew()
            self._follow_assignment()
            self._balance()
            self._open_sockets()
        except BusUnavailable as exc:
            self.counters["bus_errors"] += 1
            if self.slots:
                self._log.warning("Redis unavailable ({}): stopping {} slot(s): renewals cannot succeed", exc,
                                  len(self.slots))
                for index in list(self.slots):
                    self._stop_slot(index, "renew_failed", "Redis unavailable")

    def _check_boot(self) -> None:
        token = self.bus.boot_token()
        if token == self._boot:
            return
        if self._boot is not None:
            self._log.warning("Redis lost its data (new boot token): stopping every slot, seeding again")
            for index in list(self.slots):
                self._stop_slot(index, "lost", "Redis lost its data")
        if self.cfg.symbols.initial:
            self.bus.desire(add=list(self.cfg.symbols.initial))
        self.bus.set_meta({"lease_ttl_ms": self.ttl_ms, "hb_timeout_ms": self.ttl_ms,
                           "snapshot_every": self.cc.snapshot_every, "slot_size": self.cc.slot_size})
        self._boot = token
        self._version = -1

    def _beat(self) -> None:
        with self._lock:
            slots = sorted(self.slots)
            entries = sum(s.publisher.counters["entries"] for s in self.slots.values())
        info = {"pid": os.getpid(), "slots": ",".join(map(str, slots)), "entries": entries + self.counters["entries"],
                **{k: v for k, v in self.counters.items() if k != "entries"}}
        self.bus.register_shard(self.id, info, self.ttl_ms)

    def _heartbeat(self) -> None:
        for index, slot in list(self.slots.items()):
            codes = slot.publisher.acked()
            if not codes:
                continue
            answers = self.bus.heartbeat(slot.epoch, codes)
            if any(a == 0 for a in answers.values()):
                self._stop_slot(index, "fenced", "heartbeat fenced: a newer owner took the slot")
            elif any(a < 0 for a in answers.values()):
                self._stop_slot(index, "lost", "heartbeat found no state of ours")

    def _renew(self) -> None:
        owned = sorted(self.slots)
        for index, ok in self.bus.renew(owned, self.id, self.ttl_ms).items():
            if not ok:
                self._stop_slot(index, "renew_failed", "lease renewal refused")

    def _follow_assignment(self) -> None:
        if self.bus.version() == self._version:
            return
        unplaced = self.bus.assign(self.cc.slot_size, self.cc.max_slots)
        if unplaced:
            self.counters["unplaced"] = len(unplaced)
            self._log.warning("{} desired codes have no slot: max_slots {} reached", len(unplaced), self.cc.max_slots)
        self._version, assignment = self.bus.assignment()
        assigned: dict[int, set[str]] = {}
        for code, index in assignment.items():
            assigned.setdefault(index, set()).add(code)
        self._assigned = assigned
        for index in list(self.slots):
            codes = assigned.get(index, set())
            if codes:
                self._reconcile(index, codes)
            else:
                self._stop_slot(index, "released", "slot has no codes", graceful=True)

    def _reconcile(self, index: int, codes: set[str]) -> None:
        slot = self.slots[index]
        added, removed = codes - slot.codes, slot.codes - codes
        if not added and not removed:
            return
        slot.codes = set(codes)
        slot.publisher.claim(sorted(added), f"slot {index} of shard {self.id} (epoch {slot.epoch})")
        slot.publisher.retire(sorted(removed))
        if slot.service is not None:
            if removed:
                slot.service.unsubscribe(sorted(removed))
            if added:
                self._subscribe(slot, added)

    def _balance(self) -> None:
        if self._ticks <= STARTUP_TICKS:
            return  # let shards starting together see each other first (no claim-then-release churn)
        active = sorted(self._assigned)
        owners = self.bus.lease_owners(active)
        live = self.bus.live_shards(self.ttl_ms)
        decision = plan(self.id, active, owners, live)
        for index in decision.claim:
            if self.bus.try_lease(index, self.id, self.ttl_ms):
                self._claim(index)
        for index in decision.release:
            self._stop_slot(index, "released", "rebalancing", graceful=True)

    def _claim(self, index: int) -> None:
        epoch = self.bus.next_epoch(self._max_epoch)
        self._max_epoch = max(self._max_epoch, epoch)
        publisher = SlotPublisher(self.bus, index, epoch, self.id, snapshot_every=self.cc.snapshot_every,
                                  on_refused=self._on_refused)
        codes = set(self._assigned.get(index, ()))
        publisher.claim(sorted(codes), f"slot {index} taken by shard {self.id} (epoch {epoch})")
        with self._lock:
            self.slots[index] = Slot(index, epoch, publisher, codes)
        self.counters["claims"] += 1
        self._log.info("claimed slot {} ({} codes) at epoch {}", index, len(codes), epoch)

    def _open_sockets(self) -> None:
        for slot in list(self.slots.values()):
            if slot.service is not None or slot.publisher.closed:
                continue
            wait_ms = self.bus.take_token(self.cc.connect_rate_per_s, self.cc.connect_burst)
            if wait_ms:
                self.counters["connect_waits"] += 1
                return  # the cluster's connect budget is spent: try again next tick
            index = slot.index
            service = BookService.start(self.slot_config(),
                                        parent=lambda event, index=index: self._on_escalated(index, event))
            slot.publisher.read_view = service.book
            service.add_listener(slot.publisher)
            slot.service = service
            if slot.publisher.closed or slot.index not in self.slots:  # fenced meanwhile
                self._stopper(service)
                continue
            self._subscribe(slot, slot.codes)
            self.counters["sockets_opened"] += 1

    def _subscribe(self, slot: Slot, codes: Iterable[str]) -> None:
        result = slot.service.subscribe(sorted(codes))
        for code, reason in result.rejected:
            slot.publisher.reject(code, reason)
        slot.publisher.sweep(result.accepted)

    def slot_config(self) -> AppConfig:
        """The deployment for one slot's BookService: no initial codes (the slot subscribes its own),
        no embedded simulator, no per-slot metrics port or archive file (they would collide)."""
        cfg = self.cfg
        return attrs.evolve(cfg, symbols=attrs.evolve(cfg.symbols, initial=()),
                            simulator=attrs.evolve(cfg.simulator, enabled=False),
                            metrics=attrs.evolve(cfg.metrics, port=0), archive=attrs.evolve(cfg.archive, path=""))

    # -- stopping slots --------------------------------------------------------------------

    def _on_escalated(self, index: int, event: Any) -> None:
        """The slot's service gave up (restart intensity): hand the slot over rather than publish
        nothing under a fresh heartbeat."""
        self._stop_slot(index, "escalated", f"the slot's service gave up: {getattr(event, 'reason', event)}",
                        graceful=True)

    def _on_refused(self, index: int, code: str, verdict: str) -> None:
        """From a publisher's flusher thread: its publish was refused; stop that slot's socket now."""
        self._stop_slot(index, verdict.split(":")[0].lower(), f"publish of {code} refused: {verdict}")

    def _stop_slot(self, index: int, kind: str, why: str, graceful: bool = False) -> None:
        """Stop publishing and close the slot's socket at once (any thread); ``graceful`` first tells
        consumers (RESYNCING) and gives the lease back so another shard can claim it immediately."""
        with self._lock:
            slot = self.slots.pop(index, None)
        if slot is None:
            return
        if graceful:
            slot.publisher.handover(f"shard {self.id} handed slot {index} over ({why})", timeout_s=self.tick_s)
        else:
            slot.publisher.close()
        self.counters[kind] += 1
        self.counters["entries"] += slot.publisher.counters["entries"]
        if graceful:
            self._log.info("handed slot {} back: {}", index, why)
        else:
            self._log.warning("stopped slot {} (epoch {}): {}", index, slot.epoch, why)
        self._stopper(slot.service, index if graceful else None)

    def _stopper(self, service: Any, release: int | None = None) -> None:
        def stop() -> None:
            if service is not None:
                service.stop()
            if release is not None:
                try:
                    self.bus.release(release, self.id)
                except BusUnavailable:
                    pass  # it expires by itself

        thread = threading.Thread(target=stop, name="depthkeeper-slot-stop", daemon=True)
        thread.start()
        self._stoppers.append(thread)

    def close(self, timeout_s: float = 30.0) -> None:
        """Hand every slot back (graceful), wait for their sockets to close, close the bus."""
        for index in list(self.slots):
            self._stop_slot(index, "released", "shard stopping", graceful=True)
        deadline = time.monotonic() + timeout_s
        for thread in self._stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.bus.close()
