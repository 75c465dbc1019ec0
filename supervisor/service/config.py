"""Load and validate a deployment file (TOML) into frozen attrs sections.

Every value is checked before any actor starts. Any problem — a missing file, bad TOML,
an unknown section or key, a wrong type, an out-of-range value, a missing token variable
— raises one :class:`ConfigError` whose message names the file, the key and the problem.
Secrets never live in the file: ``[venue] token_env`` names the environment variable that
holds the token, and the token field is excluded from ``repr``.

Relative paths in a file (``[archive] path``, ``[log] file``) are relative to the file's own
directory, so a deployment means the same thing from any working directory; :func:`load_config`
makes them absolute (``base_dir`` overrides the directory). :func:`config_from_mapping` leaves
them as given. ``[chaos]`` belongs to the chaos tooling (``depthkeeper chaos`` validates it and so
does ``depthkeeper run``); the service carries it as ``cfg.chaos`` and ignores it.

The shipped deployments (``conf/*.toml``) are package data (``depthkeeper.conf``):
:func:`resolve_config_path` finds ``conf/NAME.toml`` there when it is not in the working directory.
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from depthkeeper.actors.settings import (
    BookConfig,
    CalibrationConfig,
    HeartbeatConfig,
    ReconnectConfig,
    SnapshotConfig,
    SubscriptionConfig,
    SymbolsConfig,
    VenueConfig,
)
from depthkeeper.actors.settings import setting as _opt
from depthkeeper.actors.venues import VENUES
from depthkeeper.supervisor.otp.spec import Strategy
from depthkeeper.supervisor.service.errors import ConfigError

#: the simulator's dialects (it implements the protocols on its own)
_SIM_DIALECTS = ("article", "alltick", "binance")


class LogLevel(enum.StrEnum):
    """loguru's levels, by name."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@attrs.frozen
class SupervisorConfig:
    strategy: Strategy = _opt(Strategy.ONE_FOR_ONE)
    max_restarts: int = _opt(20, lo=0, hi=1_000_000)
    period_s: float = _opt(30.0, lo=0.001, hi=86_400)
    restart_backoff_min_s: float = _opt(0.05, lo=0, hi=3600)
    restart_backoff_max_s: float = _opt(5.0, lo=0, hi=3600)
    backoff_reset_s: float = _opt(10.0, lo=0, hi=86_400)
    #: how often the safety net looks for zombie actors (thread dead, ref alive); 0 = off
    liveness_interval_s: float = _opt(0.5, lo=0, hi=60)


@attrs.frozen
class SimulatorConfig:
    enabled: bool = _opt(False)
    dialect: str = _opt("article", choices=_SIM_DIALECTS)
    symbols: tuple[str, ...] = _opt(("BTCUSDT", "ETHUSDT"), kind=tuple)
    rate_per_symbol: float = _opt(50.0, lo=0, hi=10_000_000)
    seed: int = _opt(1, lo=0)
    port: int = _opt(0, lo=0, hi=65535)
    levels: int = _opt(20, lo=1, hi=1000)
    #: binance only: the length of its 100 ms / 1 s event windows times this (0 = one event per
    #: market batch); below 1 events flow faster than the real venue's, for quick chaos recoveries
    binance_interval_scale: float = _opt(1.0, lo=0, hi=100)

    def sim_config(self, *, symbols: tuple[str, ...], port: int | None = None, seed: int | None = None,
                   record_history: bool = False) -> Any:
        """The simulator's own ``SimConfig`` for this section (imported here: the service needs the
        simulator package only when one is embedded)."""
        from depthkeeper.simulator import SimConfig

        return SimConfig(host="127.0.0.1", port=self.port if port is None else port, dialect=self.dialect,
                         symbols=symbols, rate_per_symbol=self.rate_per_symbol,
                         seed=self.seed if seed is None else seed, levels=self.levels,
                         record_history=record_history,
                         binance_interval_scale=self.binance_interval_scale)  # other dialects ignore it


@attrs.frozen
class LogConfig:
    level: LogLevel = _opt(LogLevel.INFO)
    #: also log to this file ("" = stderr only)
    file: str = _opt("")
    #: seconds between throughput log lines (msgs/s, apply latency); 0 = off
    stats_interval_s: float = _opt(10.0, lo=0, hi=86_400)


@attrs.frozen
class MetricsConfig:
    port: int = _opt(0, lo=0, hi=65535)


@attrs.frozen
class ArchiveConfig:
    path: str = _opt("")
    interval_s: float = _opt(1.0, lo=0.01, hi=86_400)
    depth: int = _opt(10, lo=1, hi=10_000)


@attrs.frozen
class ClusterConfig:
    """``depthkeeper shard`` only (issue 17); ``run`` and BookService ignore it and need no Redis."""

    redis_url: str = _opt("redis://127.0.0.1:6379/0")
    #: redis_url is a node of a Redis Cluster (the client discovers the others and routes by slot)
    redis_cluster: bool = _opt(False)
    #: key prefix: several clusters can share one Redis
    name: str = _opt("depthkeeper")
    #: a dead shard's slots move to survivors within this (renewals every third of it)
    lease_ttl_s: float = _opt(3.0, lo=0.3, hi=600)
    #: symbols per slot (one venue connection's worth; one slot = one socket)
    slot_size: int = _opt(100, lo=1, hi=100_000)
    #: most slots (= venue connections) the whole cluster may open; 0 = no cap
    max_slots: int = _opt(0, lo=0, hi=100_000)
    #: a snapshot entry after this many deltas (bounds each stream and a consumer's catch-up)
    snapshot_every: int = _opt(1000, lo=10, hi=1_000_000)
    #: cluster-wide token bucket for opening venue connections (a failover storm obeys the venue)
    connect_rate_per_s: float = _opt(1.0, lo=0.001, hi=10_000)
    connect_burst: int = _opt(5, lo=1, hi=10_000)


_SECTIONS: dict[str, type] = {
    "venue": VenueConfig,
    "symbols": SymbolsConfig,
    "book": BookConfig,
    "heartbeat": HeartbeatConfig,
    "reconnect": ReconnectConfig,
    "subscription": SubscriptionConfig,
    "snapshot": SnapshotConfig,
    "supervisor": SupervisorConfig,
    "calibration": CalibrationConfig,
    "simulator": SimulatorConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "archive": ArchiveConfig,
    "cluster": ClusterConfig,
}


@attrs.frozen
class AppConfig:
    """The whole deployment; each actor receives only its own section."""

    venue: VenueConfig = VenueConfig()
    symbols: SymbolsConfig = SymbolsConfig()
    book: BookConfig = BookConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    subscription: SubscriptionConfig = SubscriptionConfig()
    snapshot: SnapshotConfig = SnapshotConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    log: LogConfig = LogConfig()
    metrics: MetricsConfig = MetricsConfig()
    archive: ArchiveConfig = ArchiveConfig()
    cluster: ClusterConfig = ClusterConfig()
    source: str = "<defaults>"
    #: the ``[chaos]`` table as written, for the chaos tooling; the service ignores it
    chaos: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


#: the package that ships ``conf/*.toml``
SHIPPED_PACKAGE = "depthkeeper.conf"


def shipped_config(name: str) -> Path | None:
    """The shipped deployment ``name`` (``"demo.toml"``), or None when there is no such file."""
    try:
        candidate = resources.files(SHIPPED_PACKAGE).joinpath(name)
    except ModuleNotFoundError:  # a source tree that was never installed
        return None
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_config_path(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """``(path, shipped)``: ``path`` itself when it exists; else, for ``conf/NAME.toml`` (or a bare
    ``NAME.toml``), the deployment shipped with the package, so the README's commands work from any
    directory. A path that matches neither comes back unchanged (loading it says "file not found")."""
    given = Path(path)
    if given.exists() or given.is_absolute() or given.parent not in (Path("."), Path("conf")):
        return given, False
    shipped = shipped_config(given.name)
    return (shipped, True) if shipped is not None else (given, False)


def resolve_paths(cfg: AppConfig, base_dir: str | os.PathLike[str]) -> AppConfig:
    """``cfg`` with a relative ``[archive] path`` and ``[log] file`` made absolute against ``base_dir``."""
    base = Path(base_dir)

    def absolute(value: str) -> str:
        return str((base / value).resolve()) if value and not Path(value).is_absolute() else value

    return attrs.evolve(cfg, archive=attrs.evolve(cfg.archive, path=absolute(cfg.archive.path)),
                        log=attrs.evolve(cfg.log, file=absolute(cfg.log.file)))


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ, *,
                base_dir: str | os.PathLike[str] | None = None) -> AppConfig:
    """Read ``path`` (TOML) into an :class:`AppConfig`, or raise one ConfigError. Relative paths in
    it are made absolute against ``base_dir`` (default: the file's own directory)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    cfg = config_from_mapping(data, environ, source)
    return resolve_paths(cfg, base_dir if base_dir is not None else Path(path).resolve().parent)


def config_from_mapping(data: Mapping[str, Any], environ: Mapping[str, str] = os.environ,
                        source: str = "<mapping>") -> AppConfig:
    """Validate an already-parsed mapping (tests build configs this way)."""
    sections: dict[str, Any] = {}
    # subscription and book defaults depend on the dialect, so those sections are always built
    for name, table in {"subscription": {}, "book": {}, **data}.items():
        if name not in _SECTIONS and name != "chaos":
            raise ConfigError(f"{source}: [{name}]: unknown section (known: {', '.join([*_SECTIONS, 'chaos'])})")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{name}]: must be a table")
        # [chaos] is the chaos tooling's: carried as written, validated by the commands that use it
        sections[name] = dict(table) if name == "chaos" else _section(_SECTIONS[name], name, table, source, data)
    cfg = AppConfig(**sections, source=source)
    return _cross_checks(cfg, data, environ, source)


def _section(cls: type, name: str, table: Mapping[str, Any], source: str, data: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in attrs.fields(cls) if not f.metadata.get("internal")}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{source}: [{name}] {key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(fields)})")
        values[key] = _check(fields[key].metadata, value, where)
    if cls is SubscriptionConfig and "min_interval_s" not in values:
        venue = _venue_of(data)
        values["min_interval_s"] = venue.default_min_interval_s if venue is not None else 0.0
    if cls is BookConfig and "max_levels" not in values:
        venue = _venue_of(data)
        if venue is not None and venue.default_max_levels:
            values["max_levels"] = venue.default_max_levels
    return cls(**values)


def _venue_of(data: Mapping[str, Any]) -> Any:
    """The venue class the mapping's ``[venue] dialect`` names (None if unknown: reported later)."""
    dialect = data.get("venue", {}).get("dialect", "article") if isinstance(data.get("venue"), Mapping) else "article"
    return VENUES.get(dialect)


def _check(meta: Mapping[str, Any], value: Any, where: str) -> Any:
    kind = meta["kind"]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        choices = [member.value for member in kind]
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        return kind(value)
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings, got {value!r}")
        return tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: must be {kind.__name__}, got {type(value).__name__} {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{where}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise ConfigError(f"{where}: out of range ({bounds}), got {value!r}")
    return value


def _cross_checks(cfg: AppConfig, data: Mapping[str, Any], environ: Mapping[str, str], source: str) -> AppConfig:
    venue = cfg.venue
    venue_cls = VENUES.get(venue.dialect)
    if venue_cls is None:
        raise ConfigError(f"{source}: [venue] dialect: must be one of {', '.join(VENUES)}, got {venue.dialect!r}")
    for key in ("url", "snapshot_url"):
        value = getattr(venue, key)
        if "token=" in value:
            raise ConfigError(f"{source}: [venue] {key}: contains a token; name its env var in token_env instead")
        if not value and not cfg.simulator.enabled:
            value = getattr(venue_cls, f"default_{key}")  # the venue's public endpoint, if it has one
            if not value:
                raise ConfigError(f"{source}: [venue] {key}: required unless [simulator] enabled = true")
            venue = attrs.evolve(venue, **{key: value})
    cfg = attrs.evolve(cfg, venue=venue)
    if venue.url and not venue.url.startswith(("ws://", "wss://")):
        raise ConfigError(f"{source}: [venue] url: must start with ws:// or wss://, got {venue.url!r}")
    if venue.snapshot_url and not venue.snapshot_url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: [venue] snapshot_url: must start with http:// or https://")
    if cfg.simulator.enabled and cfg.simulator.dialect != venue.dialect:
        raise ConfigError(f"{source}: [simulator] dialect: must equal [venue] dialect ({venue.dialect!r})")
    pairs = [("reconnect", "backoff_min_s", "backoff_max_s"), ("snapshot", "retry_min_s", "retry_max_s"),
             ("book", "resync_backoff_min_s", "resync_backoff_max_s"),
             ("supervisor", "restart_backoff_min_s", "restart_backoff_max_s")]
    for section, lo_key, hi_key in pairs:
        sec = getattr(cfg, section)
        if getattr(sec, lo_key) > getattr(sec, hi_key):
            raise ConfigError(f"{source}: [{section}] {lo_key}: must not exceed {hi_key}")
    problem = venue_cls.check_config(cfg.heartbeat.interval_s, cfg.subscription)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    _check_codes(cfg, source)
    _check_cluster(cfg.cluster, source)
    if venue.token_env:
        token = environ.get(venue.token_env)
        if not token:
            raise ConfigError(f"{source}: [venue] token_env: environment variable {venue.token_env} is not set")
        cfg = attrs.evolve(cfg, venue=attrs.evolve(venue, token=token))
    return cfg


def _check_cluster(cluster: ClusterConfig, source: str) -> None:
    import re

    if not cluster.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{source}: [cluster] redis_url: must start with redis://, rediss:// or unix://, "
                          f"got {cluster.redis_url!r}")
    db = cluster.redis_url.partition("?")[0].rstrip("/").rpartition("/")[2]
    if cluster.redis_cluster and (cluster.redis_url.startswith("unix://") or (db.isdigit() and db != "0")):
        raise ConfigError(f"{source}: [cluster] redis_url: a Redis Cluster has database 0 only, over TCP "
                          f"(redis_cluster = true), got {cluster.redis_url!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cluster.name):
        raise ConfigError(f"{source}: [cluster] name: 1-64 letters, digits, '_', '.' or '-' (it is part of every "
                          f"key and hash tag), got {cluster.name!r}")


def _check_codes(cfg: AppConfig, source: str) -> None:
    import re

    try:
        pattern = re.compile(cfg.symbols.pattern)
    except re.error as exc:
        raise ConfigError(f"{source}: [symbols] pattern: not a valid regular expression: {exc}") from None
    for key in ("initial", "allowed"):
        for code in getattr(cfg.symbols, key):
            if not pattern.fullmatch(code):
                raise ConfigError(f"{source}: [symbols] {key}: {code!r} does not match pattern {cfg.symbols.pattern}")
    allowed = set(cfg.symbols.allowed)
    for code in cfg.symbols.initial:
        if allowed and code not in allowed:
            raise ConfigError(f"{source}: [symbols] initial: {code!r} is not in [symbols] allowed")
