"""depthkeeper.cluster: shards on Redis Streams that look like one service to every consumer.

Consumers::

    from depthkeeper.cluster import RemoteBooks

    with RemoteBooks("redis://127.0.0.1:6379/0") as books:
        books.subscribe(["BTCUSDT"])
        view = books.book("BTCUSDT", depth=10)   # the same BookView as BookService.book

Shards: ``depthkeeper shard --config FILE`` (a ``[cluster]`` section); a live table:
``depthkeeper watch --redis URL CODE...``. Importing this package needs redis-py; the single
process (``depthkeeper run``, BookService) never imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RemoteBooks", "RedisBus", "Shard"]


def __getattr__(name: str) -> Any:
    if name == "RemoteBooks":
        from depthkeeper.cluster.remote import RemoteBooks

        return RemoteBooks
    if name == "RedisBus":
        from depthkeeper.cluster.redis_bus import RedisBus

        return RedisBus
    if name == "Shard":
        from depthkeeper.cluster.shard import Shard

        return Shard
    raise AttributeError(name)
