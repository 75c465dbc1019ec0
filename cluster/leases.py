"""Which slots a shard should hold: fair share over the live shards (pure, tested directly).

Slots are numbered; a slot with codes assigned is *active*. Every live shard aims at
``ceil(active / live)`` slots. A shard below its share claims free slots; a shard above it
gives one back per tick, and only while some live shard is below the share (so the cluster
settles instead of trading slots back and forth). A slot's lease (``SET NX PX``, renewed every
few ticks by a compare-and-``PEXPIRE`` script) is the right to open that slot's socket; taking
one also takes a new fencing epoch, which is what actually keeps a paused former owner off the bus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import attrs


@attrs.frozen
class Plan:
    #: free slots to try to claim, in order
    claim: tuple[int, ...]
    #: owned slots to hand back (gracefully)
    release: tuple[int, ...]
    fair: int


def fair_share(active: int, live: int) -> int:
    return math.ceil(active / max(1, live))


def plan(me: str, active: Sequence[int], owners: Mapping[int, str | None], live: Sequence[str]) -> Plan:
    """What ``me`` should claim or release, given the active slots, their lease owners and the live shards."""
    live_set = set(live) | {me}
    fair = fair_share(len(active), len(live_set))
    counts = Counter(owner for slot, owner in owners.items() if owner is not None and slot in active)
    mine = sorted(slot for slot in active if owners.get(slot) == me)
    free = [slot for slot in active if owners.get(slot) is None]
    # a lease held by a shard that is no longer live expires by itself; until then it is not free
    if len(mine) < fair:
        # start at an offset of our own so shards starting together try different slots first
        offset = sum(me.encode()) % len(free) if free else 0
        ordered = free[offset:] + free[:offset]
        return Plan(tuple(ordered[: fair - len(mine)]), (), fair)
    if len(mine) > fair and any(counts.get(shard, 0) < fair for shard in live_set if shard != me):
        return Plan((), (mine[-1],), fair)
    return Plan((), (), fair)
