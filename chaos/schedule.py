"""Chaos settings (the ``[chaos]`` table of a deployment file) and the seeded schedule.

The schedule is drawn up front from the seed, so a failing run can be replayed exactly
from ``--seed``. Two lanes, because they answer different questions:

- the **global** lane (connection kill, abrupt close, venue restart, stall, slow handshake,
  blackhole, reject, and on binance a ping burst that makes the venue close with 1008)
  disrupts every book at once; its events are spaced by
  ``global_spacing_s`` (plus jitter, plus the longest stall / blackhole, plus a reject's
  hold) so the recovery of each one can be measured rather than smeared together. A reject
  (the venue refuses one code's subscription, and the socket is closed so the re-subscribe
  meets the refusal) is followed after its hold by a ``lift:reject`` action: the venue accepts
  the code again and the runner subscribes it again;
- the **local** lane (book kills, zombies, singleton kills, stream and REST faults, bad
  snapshots, far-future diffs, malformed frames and floods, subscription churn) is a set of
  Poisson processes on top.

``[chaos]`` is not a section the service knows, so it is taken out of the file before
the rest is validated by :func:`~depthkeeper.supervisor.service.config.config_from_mapping`.
"""

from __future__ import annotations

import os
import random
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from depthkeeper.chaos.faults import LIMIT_RANGES, FaultLimits, VenueFault, faults_for
from depthkeeper.supervisor.service.config import AppConfig, config_from_mapping
from depthkeeper.supervisor.service.errors import ConfigError

#: the global lane's kinds (``global_weights`` keys): "connection" is a connection kill, the rest venue faults
GLOBAL_FAULTS = (VenueFault.CLOSE, VenueFault.RESTART, VenueFault.STALL, VenueFault.SLOW_HANDSHAKE,
                 VenueFault.BLACKHOLE, VenueFault.REJECT, VenueFault.PING_BURST)
GLOBAL_NAMES = ("connection", *(f.value for f in GLOBAL_FAULTS))
GLOBAL_KINDS = ("kill:connection", *(f"fault:{f.value}" for f in GLOBAL_FAULTS))
LOCAL_FAULTS = tuple(f.value for f in VenueFault if f not in GLOBAL_FAULTS)
FAULT_NAMES = frozenset(f.value for f in VenueFault)
#: what follows a reject after its hold
LIFT_REJECT = "lift:reject"
#: singleton targets of the local lane ("archive" only when the deployment has one)
SINGLETON_KILLS = ("subscription", "snapshot", "archive")
ZOMBIE_TARGETS = ("book", "connection", "subscription", "snapshot")


def _weights(default: Mapping[str, float]) -> Any:
    return attrs.field(factory=lambda: dict(default))


@attrs.frozen
class ChaosSettings:
    """Rates are per second of run time; every fault is bounded (see ``limits``)."""

    seed: int = 7
    duration_s: float = 60.0
    book_kills_per_s: float = 3.5
    singleton_kills_per_s: float = 0.35
    #: which singleton the singleton kills hit ("archive" only counts when one is configured)
    singleton_weights: dict[str, float] = _weights({"subscription": 1, "snapshot": 1, "archive": 1})
    zombies_per_s: float = 0.4
    #: whose thread the zombies kill (a zombie runs no cleanup of its own: the safety net does)
    zombie_weights: dict[str, float] = _weights({"book": 4, "connection": 1, "subscription": 1, "snapshot": 1})
    local_faults_per_s: float = 0.9
    churn_per_s: float = 0.0
    #: codes churn may unsubscribe and subscribe again (the rest of the desired set stays)
    churn_codes: tuple[str, ...] = ()
    global_spacing_s: float = 2.0
    global_jitter_s: float = 0.6
    #: ping_burst only where it bites (binance: the 1008 close); a file that leaves it out has none
    global_weights: dict[str, float] = _weights({"connection": 2, "close": 1, "restart": 1, "stall": 1,
                                                 "slow_handshake": 1, "blackhole": 2, "reject": 1,
                                                 "ping_burst": 0})
    local_fault_weights: dict[str, float] = _weights({
        "drop": 3, "duplicate": 1, "reorder": 2, "malformed": 1, "rest_delay": 1, "rest_fail": 1, "stale_snapshot": 1,
        "future_diff": 1, "future_snapshot": 1, "empty_snapshot": 1, "short_snapshot": 1, "crossed_snapshot": 1,
        "unknown_type_flood": 1, "distinct_code_flood": 1})
    warmup_timeout_s: float = 20.0
    recovery_timeout_s: float = 10.0
    quiesce_timeout_s: float = 30.0
    leak_timeout_s: float = 10.0
    #: the freshness invariant's margin: L = the heartbeat silence bound + this
    freshness_margin_s: float = 0.5
    #: how often the venue's seqs are sampled (the freshness check is this much less sharp)
    sample_interval_s: float = 0.02
    #: how often the poller reads every book with ``svc.book``
    poll_interval_s: float = 0.01
    limits: FaultLimits = FaultLimits()


@attrs.frozen
class Action:
    """One scheduled step: "kill:KIND", "zombie:KIND", "fault:KIND", "lift:reject" or "churn"."""

    at_s: float
    what: str


def _poisson(rng: random.Random, rate_per_s: float, end_s: float) -> list[float]:
    times: list[float] = []
    if rate_per_s <= 0:
        return times
    t = rng.expovariate(rate_per_s)
    while t < end_s:
        times.append(t)
        t += rng.expovariate(rate_per_s)
    return times


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = sorted(k for k, w in weights.items() if w > 0)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


class _Deck:
    """Weighted draws that deal every kind (weight > 0) once, in a seeded order, before the
    first weighted draw: a lane with at least as many events as kinds exercises each of them."""

    def __init__(self, rng: random.Random, weights: Mapping[str, float]) -> None:
        self._rng = rng
        self._weights = weights
        self._first = sorted(k for k, w in weights.items() if w > 0)
        rng.shuffle(self._first)

    def draw(self) -> str:
        return self._first.pop() if self._first else _pick(self._rng, self._weights)


def build_schedule(s: ChaosSettings, rng: random.Random, *, archive: bool = False) -> list[Action]:
    """The whole run's actions, in time order (deterministic in ``rng``'s seed)."""
    end_s = max(0.0, s.duration_s - 0.5)  # the last actions still get a moment before the end
    plan: list[Action] = []
    if any(w > 0 for w in s.global_weights.values()):
        t = s.global_spacing_s / 2
        deck = _Deck(rng, s.global_weights)
        while t < end_s - 1.0:
            kind = deck.draw()
            if kind == "reject" and t + s.limits.reject_hold_min_s >= end_s - 1.0:
                kind = "close"  # no time left to lift it: a rejected code would end the run REJECTED
            plan.append(Action(t, "kill:connection" if kind == "connection" else f"fault:{kind}"))
            if kind == "reject":
                hold_s = min(rng.uniform(s.limits.reject_hold_min_s, s.limits.reject_hold_max_s), end_s - 1.0 - t)
                t += hold_s
                plan.append(Action(t, LIFT_REJECT))
            t += s.global_spacing_s + rng.uniform(0.0, s.global_jitter_s)
            t += {"stall": s.limits.stall_max_s, "blackhole": s.limits.blackhole_max_s,
                  "slow_handshake": s.limits.slow_handshake_max_s}.get(kind, 0.0)
    singletons = {k: w for k, w in s.singleton_weights.items() if archive or k != "archive"}
    plan += [Action(t, "kill:book") for t in _poisson(rng, s.book_kills_per_s, end_s)]
    if any(w > 0 for w in singletons.values()):
        plan += [Action(t, f"kill:{_pick(rng, singletons)}") for t in _poisson(rng, s.singleton_kills_per_s, end_s)]
    plan += [Action(t, f"zombie:{_pick(rng, s.zombie_weights)}") for t in _poisson(rng, s.zombies_per_s, end_s)]
    if any(w > 0 for w in s.local_fault_weights.values()):
        local = _Deck(rng, s.local_fault_weights)
        plan += [Action(t, f"fault:{local.draw()}") for t in _poisson(rng, s.local_faults_per_s, end_s)]
    plan += [Action(t, "churn") for t in _poisson(rng, s.churn_per_s, end_s)]
    return sorted(plan, key=lambda a: a.at_s)


# -- loading ------------------------------------------------------------------------------


def _check_weights(where: str, value: Any, known: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table")
    out = {}
    for key, weight in value.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown kind (known: {', '.join(known)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}.{key}: must be a number >= 0, got {weight!r}")
        out[key] = float(weight)
    return out


def _value(where: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings")
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(default):
        raise ConfigError(f"{where}: must be {type(default).__name__}, got {value!r}")
    if isinstance(value, (int, float)) and value < 0:
        raise ConfigError(f"{where}: must be >= 0, got {value!r}")
    return value


def settings_from_mapping(table: Mapping[str, Any], source: str = "<mapping>") -> ChaosSettings:
    """Validate a ``[chaos]`` table (unknown keys are errors, like everywhere else)."""
    defaults = ChaosSettings()
    fields = {f.name for f in attrs.fields(ChaosSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{source}: [chaos] {key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
        if key == "global_weights":
            values[key] = _check_weights(where, value, GLOBAL_NAMES)
        elif key == "zombie_weights":
            values[key] = _check_weights(where, value, ZOMBIE_TARGETS)
        elif key == "singleton_weights":
            values[key] = _check_weights(where, value, SINGLETON_KILLS)
        elif key == "local_fault_weights":
            values[key] = _check_weights(where, value, LOCAL_FAULTS)
        elif key == "limits":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: must be a table")
            known = {f.name: f.default for f in attrs.fields(FaultLimits)}
            for name in value:
                if name not in known:
                    raise ConfigError(f"{where}.{name}: unknown key (known: {', '.join(known)})")
            values[key] = FaultLimits(**{k: _value(f"{where}.{k}", v, known[k]) for k, v in value.items()})
        else:
            values[key] = _value(where, value, getattr(defaults, key))
    settings = ChaosSettings(**values)
    for low, high in LIMIT_RANGES:
        if getattr(settings.limits, low) > getattr(settings.limits, high):
            raise ConfigError(f"{source}: [chaos.limits] {low} must not exceed {high}")
    if settings.sample_interval_s <= 0 or settings.poll_interval_s <= 0:
        raise ConfigError(f"{source}: [chaos] sample_interval_s and poll_interval_s must be > 0")
    return settings


def load_chaos_config(path: str | os.PathLike[str], *, seed: int | None = None, duration_s: float | None = None,
                      environ: Mapping[str, str] = os.environ) -> tuple[AppConfig, ChaosSettings]:
    """Read a deployment file with a ``[chaos]`` table; ``seed``/``duration_s`` override it."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    table = data.pop("chaos", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [chaos]: must be a table")
    cfg = config_from_mapping(data, environ, source)
    settings = settings_from_mapping(table, source)
    usable = {f.value for f in faults_for(cfg.venue.dialect)}
    for where, weights in (("global_weights", settings.global_weights),
                           ("local_fault_weights", settings.local_fault_weights)):
        for kind, weight in weights.items():
            if weight > 0 and kind in FAULT_NAMES and kind not in usable:
                raise ConfigError(f"{source}: [chaos.{where}] {kind}: does not bite on dialect "
                                  f"{cfg.venue.dialect!r} (set its weight to 0)")
    if seed is not None:
        settings = attrs.evolve(settings, seed=seed)
    if duration_s is not None:
        if duration_s <= 0:
            raise ConfigError(f"--duration must be > 0, got {duration_s}")
        settings = attrs.evolve(settings, duration_s=float(duration_s))
    return cfg, settings
