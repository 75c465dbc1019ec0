"""Configuration of the simulated venue.

`SimConfig` is a frozen value: one instance describes one venue for its whole life, so tests
and the CLI can build it once, log it and compare it. Every field is validated on
construction, and the error names the field, because a misconfigured simulator otherwise shows
up far away as a confusing protocol failure in some integration test.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from typing import Any

import attrs

#: Valid symbol codes on both dialects: upper-case letters and digits (``BTC-USDT`` is malformed).
CODE_PATTERN = re.compile(r"^[A-Z0-9]{1,32}$")

#: Upper bound of ``levels``; deeper books only slow the REST snapshots down.
MAX_LEVELS = 1000


class Dialect(str, enum.Enum):
    """The wire protocol the venue speaks (``protocols/article.md``, ``alltick.md``, simulator/binance.py)."""

    ARTICLE = "article"
    ALLTICK = "alltick"
    BINANCE = "binance"


class TickTimeUnit(str, enum.Enum):
    """Unit of AllTick's ``tick_time``: documented as ms, one official example uses seconds."""

    MILLISECONDS = "ms"
    SECONDS = "s"


def _to_symbols(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return tuple(value)


def _to_dialect(value: Dialect | str) -> Dialect:
    try:
        return Dialect(value)
    except ValueError:
        choices = ", ".join(d.value for d in Dialect)
        raise ValueError(f"SimConfig.dialect: must be one of {choices}, got {value!r}") from None


def _to_tick_time_unit(value: TickTimeUnit | str) -> TickTimeUnit:
    try:
        return TickTimeUnit(value)
    except ValueError:
        raise ValueError(f"SimConfig.tick_time_unit: must be 'ms' or 's', got {value!r}") from None


def _to_paths(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


def _int_field(field_name: str, value: Any, *, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"SimConfig.{field_name}: must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"SimConfig.{field_name}: must be >= {minimum}, got {value!r}")


def _finite_float(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"SimConfig.{field_name}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"SimConfig.{field_name}: must be finite, got {value!r}")
    return float(value)


@attrs.frozen
class SimConfig:
    """Everything that defines one simulated venue.

    ``rate_per_symbol`` is in diffs per second per symbol; ``<= 0`` means "as fast as the
    subscribers can read" (benchmarks). ``port=0`` asks the OS for an ephemeral port. The
    ``binance_*`` and ``replay_*`` keys are documented in simulator/binance.py.
    """

    host: str = "127.0.0.1"
    port: int = 0
    dialect: Dialect = attrs.field(default=Dialect.ARTICLE, converter=_to_dialect)
    symbols: tuple[str, ...] = attrs.field(default=("BTCUSDT", "ETHUSDT"), converter=_to_symbols)
    rate_per_symbol: float = 50.0
    seed: int = 1
    levels: int = 20
    alltick_min_interval_s: float = 1.0
    alltick_heartbeat_timeout_s: float = 30.0
    alltick_string_numbers: bool = True
    tick_time_unit: TickTimeUnit = attrs.field(default=TickTimeUnit.MILLISECONDS, converter=_to_tick_time_unit)
    max_symbols_per_connection: int = 0
    token: str | None = None
    stamp: bool = False
    record_history: bool = False
    send_acks: bool = True
    # -- binance (simulator/binance.py documents each one) --
    binance_interval_scale: float = 1.0
    binance_enforce_limits: bool = True
    binance_max_messages_per_s: int = 5
    binance_max_streams_per_connection: int = 1024
    binance_max_connections_per_window: int = 300
    binance_connection_window_s: float = 300.0
    binance_ping_interval_s: float = 20.0
    binance_pong_timeout_s: float = 60.0
    binance_lifetime_scale: float = 1.0
    binance_weight_limit: int = 6000
    binance_weight_window_s: float = 60.0
    binance_ban_after_429s: int = 3
    binance_ban_s: float = 120.0
    binance_max_url_bytes: int = 65536
    binance_snapshot_max_limit: int = 5000
    binance_reject_unknown_symbols: bool = True
    #: benchmark join: append (symbol index, era, u, send time) per rendered depth event to this file
    binance_send_log: str = ""
    #: the window clock runs the garbage collector's full collections itself, right after a window is
    #: sent (simulator/binance.py ``_window_clock``); for a process of its own (the CLI hands it them)
    binance_collect_between_windows: bool = False
    #: recorded Binance files to serve instead of the generated market (simulator/replay.py)
    replay_paths: tuple[str, ...] = attrs.field(default=(), converter=_to_paths)
    replay_speed: float = 1.0

    def __attrs_post_init__(self) -> None:
        self._validate_network()
        self._validate_market()
        self._validate_alltick()
        self._validate_binance()
        for name in (
            "alltick_string_numbers", "stamp", "record_history", "send_acks",
            "binance_enforce_limits", "binance_reject_unknown_symbols",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SimConfig.{name}: must be a bool, got {getattr(self, name)!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ValueError(f"SimConfig.token: must be None or a non-empty str, got {self.token!r}")
        if self.token is not None and any(ch in self.token for ch in "&#? \t\r\n"):
            raise ValueError("SimConfig.token: must not contain '&', '#', '?' or whitespace")

    def _validate_network(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"SimConfig.host: must be a non-empty str, got {self.host!r}")
        _int_field("port", self.port, minimum=0)
        if self.port > 65535:
            raise ValueError(f"SimConfig.port: must be <= 65535, got {self.port!r}")

    def _validate_market(self) -> None:
        if not self.symbols:
            raise ValueError("SimConfig.symbols: must name at least one symbol")
        for code in self.symbols:
            if not isinstance(code, str) or not CODE_PATTERN.match(code):
                raise ValueError(
                    f"SimConfig.symbols: {code!r} is not a valid code (upper-case letters and digits)"
                )
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("SimConfig.symbols: duplicate codes")
        _finite_float("rate_per_symbol", self.rate_per_symbol)
        _int_field("seed", self.seed)
        _int_field("levels", self.levels, minimum=1)
        if self.levels > MAX_LEVELS:
            raise ValueError(f"SimConfig.levels: must be <= {MAX_LEVELS}, got {self.levels!r}")
        _int_field("max_symbols_per_connection", self.max_symbols_per_connection, minimum=0)

    def _validate_alltick(self) -> None:
        interval_s = _finite_float("alltick_min_interval_s", self.alltick_min_interval_s)
        if interval_s < 0:
            raise ValueError(f"SimConfig.alltick_min_interval_s: must be >= 0, got {interval_s!r}")
        timeout_s = _finite_float("alltick_heartbeat_timeout_s", self.alltick_heartbeat_timeout_s)
        if timeout_s <= 0:
            raise ValueError(f"SimConfig.alltick_heartbeat_timeout_s: must be > 0, got {timeout_s!r}")

    def _validate_binance(self) -> None:
        for name in ("binance_max_messages_per_s", "binance_max_connections_per_window", "binance_weight_limit",
                     "binance_ban_after_429s"):
            _int_field(name, getattr(self, name), minimum=0)
        _int_field("binance_max_streams_per_connection", self.binance_max_streams_per_connection, minimum=1)
        _int_field("binance_max_url_bytes", self.binance_max_url_bytes, minimum=1024)
        _int_field("binance_snapshot_max_limit", self.binance_snapshot_max_limit, minimum=1)
        for name in ("binance_interval_scale", "binance_ping_interval_s", "binance_lifetime_scale"):
            if _finite_float(name, getattr(self, name)) < 0:
                raise ValueError(f"SimConfig.{name}: must be >= 0, got {getattr(self, name)!r}")
        for name in ("binance_connection_window_s", "binance_pong_timeout_s", "binance_weight_window_s",
                     "binance_ban_s"):
            if _finite_float(name, getattr(self, name)) <= 0:
                raise ValueError(f"SimConfig.{name}: must be > 0, got {getattr(self, name)!r}")
        _finite_float("replay_speed", self.replay_speed)
        if not isinstance(self.binance_send_log, str):
            raise ValueError(f"SimConfig.binance_send_log: must be a str ('' = off), got {self.binance_send_log!r}")
        if any(not isinstance(path, str) or not path for path in self.replay_paths):
            raise ValueError(f"SimConfig.replay_paths: must be non-empty str paths, got {self.replay_paths!r}")
        if self.replay_paths and self.dialect is not Dialect.BINANCE:
            raise ValueError("SimConfig.replay_paths: recordings are Binance frames; needs dialect 'binance'")

    @property
    def ws_path(self) -> str:
        """The WebSocket path: AllTick's crypto path; binance has several (/ws, /stream), so none."""
        return "" if self.dialect is Dialect.BINANCE else "/quote-b-ws-api"

    @property
    def rest_path(self) -> str:
        """The REST snapshot path of this dialect."""
        if self.dialect is Dialect.BINANCE:
            return "/api/v3/depth"
        return "/depth" if self.dialect is Dialect.ARTICLE else "/quote-b-api/depth-tick"

    @property
    def rest_url_path(self) -> str:
        """What the handle's ``rest_url`` ends with: the snapshot path, or nothing for binance (a base URL:
        its clients append ``/api/v3/depth``, ``/api/v3/exchangeInfo`` ... themselves)."""
        return "" if self.dialect is Dialect.BINANCE else self.rest_path

    @property
    def binance_lifetime_s(self) -> float:
        """Binance cuts every connection after 24 h; scaled so tests see it in seconds (0 = never)."""
        return 86_400.0 * self.binance_lifetime_scale

    @property
    def as_fast_as_possible(self) -> bool:
        """``rate_per_symbol <= 0``: generate as fast as the subscribers can read."""
        return self.rate_per_symbol <= 0
