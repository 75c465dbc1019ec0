"""A consumer's blocking read of many streams without ever putting two buckets in one ``XREAD``.

On Redis Cluster a multi-key command must name keys of one hash slot: one blocking ``XREAD`` over
streams of different buckets (``{name:b03}:…`` and ``{name:b17}:…``) is a CROSSSLOT error. Blocking
reads of different buckets cannot share a connection either (a blocked command holds its connection
until it returns), and a pipeline of blocking reads runs them one after the other. So each bucket
gets a *lane*: its own connection (to the node that holds the bucket's slot) with at most one
``XREAD BLOCK`` over that bucket's streams in flight; one ``select()`` waits on every lane at once.

Why not cheaper: a non-blocking read per bucket and a doorbell (pub/sub) to wait on costs one more
round trip between "data is there" and "the consumer has it", and polling costs CPU when idle.
A lane's reply *is* the data, as with a single ``XREAD`` on one node; what grows is the number of
connections (one per followed bucket, at most ``BUCKETS``) and of replies per round (one per bucket
that has news).

A lane's request carries the cursors it was sent with. When the caller's cursors for that bucket
change by something other than the reply itself (a symbol followed or dropped, a re-bootstrap), the
request is stale: the lane's connection is dropped (Redis forgets a blocked client whose socket
closed) and a fresh one asks again. Used by one thread (the consumer's reader).
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from depthkeeper.cluster.bus import BusUnavailable, StreamEntry

#: how long one lane's XREAD blocks on the server (its reply, data or none, frees the lane for the
#: next request); the caller's own wait is separate and usually shorter
LANE_BLOCK_MS = 2000
#: a request unanswered this long past its BLOCK means a dead peer (no RST): the lane reconnects
LANE_GRACE_S = 5.0

#: (bucket, one of its keys) -> a new, unconnected redis-py connection to the node holding that key
Connect = Callable[[int, str], Any]


class _Lane:
    __slots__ = ("conn", "sent", "sent_at", "sock")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        # redis-py keeps the socket private; a lane needs it only to wait on it with the others (and
        # keeps it: redis-py forgets it when it drops a connection after an error)
        self.sock = conn._sock
        #: key -> cursor of the request in flight (None: no request in flight)
        self.sent: dict[str, str] | None = None
        self.sent_at = 0.0


def parse_xread(reply: Any) -> dict[str, list[StreamEntry]]:
    """XREAD's reply by key: a map ``{key: [[id, [f, v, ...]], ...]}`` (RESP3, redis-py >= 8's default),
    ``[[key, entries], ...]`` (RESP2), or nil."""
    out: dict[str, list[StreamEntry]] = {}
    pairs = reply.items() if isinstance(reply, dict) else (reply or ())
    for key, entries in pairs:
        out[key] = [(entry_id, dict(zip(flat[::2], flat[1::2], strict=True))) for entry_id, flat in entries]
    return out


class Lanes:
    """One blocking ``XREAD`` per bucket in flight, one connection each, waited on together."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._lanes: dict[int, _Lane] = {}
        self._selector = selectors.DefaultSelector()
        #: XREADs sent, and lanes dropped because their request went stale
        self.requests = 0
        self.reconnects = 0

    def __len__(self) -> int:
        return len(self._lanes)

    def read(self, groups: Mapping[int, Mapping[str, str]], block_ms: int,
             count: int) -> tuple[dict[str, list[StreamEntry]], dict[str, float]]:
        """(entries by stream key, when each answered key's request was sent), ``groups`` being bucket ->
        {stream key: cursor}. Waits up to ``block_ms`` for the first reply (0: only what has arrived)."""
        for bucket in [b for b in self._lanes if b not in groups]:
            self._drop(bucket)
        now = time.monotonic()
        for bucket, cursors in groups.items():
            lane = self._lanes.get(bucket)
            if lane is not None and lane.sent is not None and (
                    lane.sent != cursors or now - lane.sent_at > LANE_BLOCK_MS / 1000 + LANE_GRACE_S):
                self._drop(bucket)  # a stale request (cursors moved under it) or a silent peer
                self.reconnects += 1
                lane = None
            if lane is None:
                lane = self._open(bucket, next(iter(cursors)))
            if lane.sent is None:
                self._send(bucket, lane, cursors, count, now)
        out: dict[str, list[StreamEntry]] = {}
        asked_at: dict[str, float] = {}
        if not self._lanes:
            return out, asked_at
        try:
            ready = self._selector.select(max(0, block_ms) / 1000)
        except OSError as exc:
            raise BusUnavailable(f"select: {exc}") from exc
        lost: Exception | None = None
        for key, _ in ready:
            bucket = key.data
            lane = self._lanes[bucket]
            try:
                reply = lane.conn.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._drop(bucket)  # every lane of a server that went away is readable now: drop them all
                lost = exc
                continue
            except Exception:
                self._drop(bucket)  # an error reply (e.g. MOVED while the cluster reshards): ask again anew
                raise
            asked_at.update(dict.fromkeys(lane.sent or (), lane.sent_at))
            lane.sent = None
            out.update(parse_xread(reply))
        if lost is not None and not asked_at:
            raise BusUnavailable(str(lost)) from lost
        return out, asked_at

    def _open(self, bucket: int, key: str) -> _Lane:
        conn = self._connect(bucket, key)
        try:
            conn.connect()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BusUnavailable(str(exc)) from exc
        lane = self._lanes[bucket] = _Lane(conn)
        self._selector.register(lane.sock, selectors.EVENT_READ, bucket)
        return lane

    def _send(self, bucket: int, lane: _Lane, cursors: Mapping[str, str], count: int, now: float) -> None:
        keys = list(cursors)
        try:
            lane.conn.send_command("XREAD", "COUNT", count, "BLOCK", LANE_BLOCK_MS, "STREAMS", *keys,
                                   *(cursors[k] or "0-0" for k in keys))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._drop(bucket)
            raise BusUnavailable(str(exc)) from exc
        lane.sent = dict(cursors)
        lane.sent_at = now
        self.requests += 1

    def _drop(self, bucket: int) -> None:
        lane = self._lanes.pop(bucket, None)
        if lane is None:
            return
        try:
            self._selector.unregister(lane.sock)
        except (KeyError, ValueError):
            pass  # never registered
        lane.conn.disconnect()

    def close(self) -> None:
        for bucket in list(self._lanes):
            self._drop(bucket)
        self._selector.close()
