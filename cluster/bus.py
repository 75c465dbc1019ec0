"""The bus port: everything the cluster needs from its engine, in two small interfaces.

``Bus`` is the data plane (fenced publish, heartbeats, a consumer's bootstrap and reads) and
``ControlPlane`` the control plane (desired set and slot assignment, leases, fencing epochs,
the shared rate bucket). ``RedisBus`` (redis_bus.py) implements both on Redis >= 7; another
engine (NATS JetStream: subjects per symbol, last-per-subject snapshots, expected-sequence
headers, a KV bucket for leases) would implement the same two protocols. Nothing above this
module knows it talks to Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from depthkeeper.cluster.entries import Entry

#: one stream entry as a consumer reads it: (stream id, fields)
StreamEntry = tuple[str, dict[str, str]]


class BusUnavailable(Exception):
    """The engine did not answer (down, restarting, unreachable): callers retry on their next tick."""


def refused(verdict: str) -> bool:
    """A publish verdict that is not a stream id: FENCED / LOST / BADSEQ (see publish.lua)."""
    return verdict[:1].isalpha()


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream id ``"ms-seq"`` as a comparable pair (``""`` and ``"0"`` are the start)."""
    if not entry_id or entry_id in ("0", "-"):
        return (0, 0)
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


@attrs.frozen
class Bootstrap:
    """One symbol's atomic starting point: its status hash, its latest snapshot's stream id, and
    every entry from that snapshot on (from the start of the stream when there is none)."""

    status: dict[str, str]
    snap_id: str | None
    entries: list[StreamEntry]
    now_ms: int


@attrs.frozen
class Read:
    """What one :meth:`Bus.read` returned: the new entries per code (codes without any are absent), and
    for every code whose read was *answered* (with entries or without), when that read was asked
    (``time.monotonic()``). A code's answer is conclusive about its stream as of that moment: entries
    that existed then and are not in the answer (up to ``count``) are gone. Reads run concurrently per
    bucket, so a code may be answered for a request asked before the caller's last status poll."""

    entries: dict[str, list[StreamEntry]]
    asked_at: dict[str, float]


class Bus(Protocol):
    def publish(self, epoch: int, owner: str, slot: int,
                batches: Mapping[str, Sequence[Entry]]) -> dict[str, str]:
        """Append each code's entries atomically, fenced by ``epoch``; per code the last stream id,
        or a refusal (``refused(verdict)``) after which the publisher must stop that slot."""

    def heartbeat(self, epoch: int, codes: Sequence[str]) -> dict[str, int]:
        """Stamp liveness on codes still owned by ``epoch``: 1 stamped, 0 fenced, -1 lost."""

    def bootstrap(self, code: str, max_entries: int) -> Bootstrap: ...

    def statuses(self, codes: Sequence[str]) -> tuple[int, dict[str, dict[str, str]]]:
        """(engine clock in ms, each code's status; ``{}`` when the code has none). ``now - hb`` must be a
        heartbeat's true age: on an engine of several nodes each ``hb`` is put on the clock ``now`` came from."""

    def read(self, cursors: Mapping[str, str], block_ms: int, count: int) -> Read:
        """Entries after each code's cursor; waits up to ``block_ms`` when there are none. Never one
        command over two buckets (Redis Cluster refuses keys of two hash slots in one command).
        Called by one thread (a consumer's reader)."""

    def close(self) -> None: ...


class ControlPlane(Protocol):
    def boot_token(self) -> str:
        """A token that changes when the engine lost its data (created on first use)."""

    def desire(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Change the cluster's desired set: (codes that were new, codes that were removed)."""

    def assign(self, slot_size: int, max_slots: int) -> tuple[str, ...]:
        """Give unassigned desired codes a slot (shards call it); answers the codes left without one."""

    def desired(self) -> frozenset[str]: ...

    def assignment(self) -> tuple[int, dict[str, int]]:
        """(version, code -> slot)."""

    def version(self) -> int: ...

    def next_epoch(self, floor: int) -> int: ...

    def try_lease(self, slot: int, owner: str, ttl_ms: int) -> bool: ...

    def renew(self, slots: Sequence[int], owner: str, ttl_ms: int) -> dict[int, bool]: ...

    def release(self, slot: int, owner: str) -> bool: ...

    def lease_owners(self, slots: Sequence[int]) -> dict[int, str | None]: ...

    def register_shard(self, shard_id: str, info: Mapping[str, str | int | float], ttl_ms: int) -> None: ...

    def live_shards(self, ttl_ms: int) -> list[str]: ...

    def take_token(self, rate_per_s: float, burst: int) -> int:
        """0 when a token was taken, else milliseconds to wait before asking again."""

    def meta(self) -> dict[str, str]: ...

    def set_meta(self, values: Mapping[str, str | int | float]) -> None: ...
