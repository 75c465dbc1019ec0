"""The Redis key layout of one cluster, in one place (see the README's cluster section).

Every symbol's three keys share a hash tag made of a *stable bucket* (crc32 of the code mod
``BUCKETS``), never the symbol's shard or slot: the publish script touches all three in one
call, so on Redis Cluster they must live in one hash slot, and their names never change when a
symbol moves to another shard. Consumers read a whole bucket's streams in one ``XREAD`` (and
never two buckets in one: lanes.py). The control keys (desired set, assignment, leases, epochs, rate bucket) share the
tag ``{name:ctl}`` so the scripts that touch several of them are Cluster-safe.

    {name:b17}:BTCUSDT:log       stream: S (snapshot) / D (delta) / X (status) entries
    {name:b17}:BTCUSDT:snap      string: stream id of the latest S entry (set in the same script)
    {name:b17}:BTCUSDT:status    hash: ep sq id st why owner slot hb vs
    {name:ctl}:desired           set of codes the cluster keeps
    {name:ctl}:assign            hash code -> slot
    {name:ctl}:slots             hash slot -> number of codes
    {name:ctl}:ver               assignment version (INCR on every change)
    {name:ctl}:epoch             fencing epoch counter
    {name:ctl}:lease:<k>         owner id of slot k, PX lease_ttl
    {name:ctl}:shards            zset shard id -> last seen (ms, Redis clock)
    {name:ctl}:shard:<id>        hash of one shard's counters (expires)
    {name:ctl}:boot              random token; a new one means Redis lost its data
    {name:ctl}:meta              hash lease_ttl_ms hb_timeout_ms snapshot_every
    {name:ctl}:rl:connect        token bucket for opening venue connections
"""

from __future__ import annotations

import zlib

#: fixed forever for a cluster: changing it renames every key
BUCKETS = 64


def bucket(code: str) -> int:
    """The stable bucket of ``code`` (same on every host and Python version)."""
    return zlib.crc32(code.encode()) % BUCKETS


class Keys:
    """Key names of the cluster called ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        ctl = "{" + name + ":ctl}"
        self.desired = f"{ctl}:desired"
        self.assign = f"{ctl}:assign"
        self.slots = f"{ctl}:slots"
        self.version = f"{ctl}:ver"
        self.epoch = f"{ctl}:epoch"
        self.shards = f"{ctl}:shards"
        self.boot = f"{ctl}:boot"
        self.meta = f"{ctl}:meta"
        self.connect_bucket = f"{ctl}:rl:connect"
        self._ctl = ctl
        self._sym: dict[str, tuple[str, str, str]] = {}
        self._bucket: dict[str, int] = {}

    def lease(self, slot: int) -> str:
        return f"{self._ctl}:lease:{slot}"

    def shard(self, shard_id: str) -> str:
        return f"{self._ctl}:shard:{shard_id}"

    def bucket(self, code: str) -> int:
        """:func:`bucket` of ``code``, cached (a consumer groups every followed code by it on every read)."""
        number = self._bucket.get(code)
        if number is None:
            number = self._bucket[code] = bucket(code)
        return number

    def tag(self, code: str) -> str:
        return "{" + f"{self.name}:b{bucket(code):02d}" + "}"

    def symbol(self, code: str) -> tuple[str, str, str]:
        """``(log, snap, status)`` of ``code`` (cached: the publish path asks for them constantly)."""
        keys = self._sym.get(code)
        if keys is None:
            base = f"{self.tag(code)}:{code}"
            keys = self._sym[code] = (f"{base}:log", f"{base}:snap", f"{base}:status")
        return keys

    def log(self, code: str) -> str:
        return self.symbol(code)[0]

    def snap(self, code: str) -> str:
        return self.symbol(code)[1]

    def status(self, code: str) -> str:
        return self.symbol(code)[2]
