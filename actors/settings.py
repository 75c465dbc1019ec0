"""The settings each actor takes: frozen attrs sections with defaults and bounds.

The actors define what they are configured with (each receives only its own section); the
service's loader (``depthkeeper.supervisor.service.facade.config``) reads TOML into these, checks
every value against the bounds kept in each field's metadata, and adds the service's own
sections. Nothing here reads files or the environment.
"""

from __future__ import annotations

from typing import Any

import attrs


def setting(default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] = (),
         kind: type | None = None, repr: bool = True) -> Any:
    """A config field: default, numeric bounds (inclusive), allowed strings, value kind."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "kind": kind or type(default)}
    return attrs.field(default=default, metadata=meta, repr=repr)


@attrs.frozen
class VenueConfig:
    #: a registered venue name (see actors/venues)
    dialect: str = setting("article")
    #: WebSocket URL without the token; filled from the simulator when it is enabled
    url: str = setting("")
    #: REST snapshot endpoint (article: .../depth, alltick: .../quote-b-api/depth-tick)
    snapshot_url: str = setting("")
    #: name of the environment variable holding the token ("" = no token)
    token_env: str = setting("")
    #: alltick depth_level per symbol (1..5)
    depth_level: int = setting(5, lo=1, hi=5)
    #: binance diff-depth stream per symbol: ``<symbol lower>@<depth_stream>`` (100 ms or 1 s events)
    depth_stream: str = setting("depth@100ms", choices=("depth@100ms", "depth", "depth@1000ms"))
    #: binance REST snapshot ``limit`` (levels per side; weight 5/25/50/250 for <=100/500/1000/5000)
    snapshot_limit: int = setting(1000, lo=1, hi=5000)
    #: reconnect (planned) once a socket is this old; 0 = the venue's own (binance: 23 h 45 min, before its 24 h cut)
    max_socket_age_s: float = setting(0.0, lo=0, hi=7 * 86_400)
    connect_timeout_s: float = setting(5.0, lo=0.1, hi=120)
    rest_timeout_s: float = setting(5.0, lo=0.1, hi=120)
    #: the token itself, read from ``token_env``; never printed
    token: str | None = attrs.field(default=None, repr=False, metadata={"internal": True})


@attrs.frozen
class SymbolsConfig:
    initial: tuple[str, ...] = setting((), kind=tuple)
    allowed: tuple[str, ...] = setting((), kind=tuple)
    pattern: str = setting(r"^[A-Z0-9]{2,30}$")


@attrs.frozen
class BookConfig:
    max_levels: int = setting(50, lo=1, hi=100_000)
    snapshot_buffer: int = setting(10_000, lo=1, hi=10_000_000)
    #: a LIVE book with no update for this long is flagged STALE (0 = never)
    stale_after_s: float = setting(0.0, lo=0)
    #: the reader stops feeding a book whose inbox holds this many batches (the book then resyncs)
    inbox_limit: int = setting(2000, lo=1, hi=10_000_000)
    #: a LIVE book applying data older than this (seconds since read) is flagged STALE (0 = off)
    max_lag_s: float = setting(1.0, lo=0, hi=3600)
    #: threads shared by all BookActors (a dispatcher); 0 = one thread per book
    threads: int = setting(1, lo=0, hi=64)
    #: how long a snapshot ahead of the stream waits for the stream to reach it before a refetch
    bridge_wait_s: float = setting(0.5, lo=0.01, hi=60)
    #: per-book backoff (full jitter) between snapshot attempts that failed to sync
    resync_backoff_min_s: float = setting(0.1, lo=0, hi=3600)
    resync_backoff_max_s: float = setting(5.0, lo=0, hi=3600)


@attrs.frozen
class HeartbeatConfig:
    interval_s: float = setting(10.0, lo=0.01, hi=3600)
    silent_intervals: int = setting(3, lo=1, hi=1000)


@attrs.frozen
class ReconnectConfig:
    backoff_min_s: float = setting(0.5, lo=0, hi=3600)
    backoff_max_s: float = setting(30.0, lo=0, hi=3600)
    #: the venue's minimum wait between reconnects (alltick: 3 s paid, 10 s free)
    floor_s: float = setting(0.0, lo=0, hi=3600)


@attrs.frozen
class SubscriptionConfig:
    #: minimum spacing of subscription requests (default 0 for article, 1.0 for alltick)
    min_interval_s: float = setting(0.0, lo=0, hi=3600)
    coalesce_window_s: float = setting(0.02, lo=0, hi=60)
    #: frames for a code nobody wants before we unsubscribe it again
    ghost_threshold: int = setting(3, lo=1, hi=1_000_000)


@attrs.frozen
class SnapshotConfig:
    max_per_second: float = setting(20.0, lo=0.01, hi=100_000)
    retry_min_s: float = setting(0.1, lo=0, hi=600)
    retry_max_s: float = setting(5.0, lo=0, hi=600)


@attrs.frozen
class CalibrationConfig:
    #: REST-vs-book comparison every this many seconds (0 = off)
    interval_s: float = setting(1800.0, lo=0, hi=86_400 * 7)
