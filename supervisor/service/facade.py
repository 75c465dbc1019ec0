"""BookService: the public facade hosts, the CLI and tests use (DESIGN.md §4).

``BookService.start(cfg, parent=None)`` builds the tree (and the embedded simulator when
configured) and returns at once; the books sync in the background. Every call from
outside the tree that needs an actor's answer uses ``ask`` with a timeout and never
blocks past it. ``parent`` (a pykka ref or a callable) receives ``Escalated`` exactly
once if the root supervisor gives up; the service never exits the process and never
touches actors that are not its own.

What a host uses: ``subscribe``, ``unsubscribe``, ``subscriptions``, ``book``, ``wait_live``,
``add_listener``/``remove_listener``, ``stats``, ``book_stats``, ``latency_samples``, ``health``,
``stop``; ``cfg``, ``simulator`` (the embedded one, if configured), ``escalation``. Tests, metrics
and chaos tooling get the narrow ``tree`` handle (handle.py; ``chaos`` is the same object).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pykka
from loguru import logger

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.wire import redact
from depthkeeper.actors.listeners import ListenerTarget
from depthkeeper.actors.messages import BookStats, BookView, GetCounters, Subscribe, Unsubscribe
from depthkeeper.supervisor.otp.messages import Escalated, GetChildren, GetStats, child_ref
from depthkeeper.supervisor.otp.spec import SupervisorFlags
from depthkeeper.supervisor.otp.tell import tell
from depthkeeper.supervisor.service.config import AppConfig, LogLevel
from depthkeeper.supervisor.service.errors import ServiceError
from depthkeeper.supervisor.service.handle import TreeHandle
from depthkeeper.supervisor.service.reads import BookUnavailable, Reads
from depthkeeper.supervisor.service.runtime import Runtime
from depthkeeper.supervisor.service.stats import ServiceStats, build_stats, throughput_line
from depthkeeper.supervisor.service.tree import TreeSupervisor

#: loguru's levels, least severe first
_LEVELS = tuple(LogLevel)

__all__ = ["BookService", "BookUnavailable", "Health", "SubscribeResult"]


@attrs.frozen
class SubscribeResult:
    #: valid codes asked for (already-subscribed ones included)
    accepted: tuple[str, ...]
    #: (code, reason) for codes refused before anything was sent
    rejected: tuple[tuple[str, str], ...]
    #: codes that were not subscribed before this call
    added: tuple[str, ...] = ()


@attrs.frozen
class Health:
    ok: bool
    problems: tuple[str, ...]


class BookService:
    """Use :meth:`start`; see the module docstring."""

    def __init__(self, cfg: AppConfig, parent: pykka.ActorRef[Any] | Callable[[Escalated], Any] | None,
                 ask_timeout_s: float) -> None:
        self.cfg = cfg
        self._parent = parent
        self.ask_timeout_s = ask_timeout_s
        self.escalation: Escalated | None = None
        #: codes refused by subscribe() before anything was sent (malformed / not allowed)
        self.rejected_codes = 0
        #: the embedded simulator's handle, when ``[simulator] enabled``
        self.simulator: Any = None
        self.url = self.rest_url = ""
        self.started_at = time.time()
        self.metrics: Any = None
        self._stopped = False
        self._log = logger.bind(actor="service")
        self._rt = Runtime(cfg)
        self._reads = Reads(self._rt, ask_timeout_s, self._gave_up)
        #: the narrow handle into the tree for tests, metrics and chaos tooling (kill, resolve targets,
        #: children); ``chaos`` is the same object under the name DESIGN.md gives its ``kill``
        self.tree = TreeHandle(self._rt, ask_timeout_s)
        self.chaos = self.tree
        self._stats_stop = threading.Event()
        self._stats_thread: threading.Thread | None = None
        # One registry per service: the library never touches prometheus' global one.
        from prometheus_client import CollectorRegistry

        from depthkeeper.supervisor.service.metrics import make_latency_histogram

        self.registry = CollectorRegistry(auto_describe=True)
        histogram = make_latency_histogram(self.registry)
        self._rt.latency_histogram = histogram if cfg.metrics.port else None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def start(cls, cfg: AppConfig, parent: pykka.ActorRef[Any] | Callable[[Escalated], Any] | None = None, *,
              ask_timeout_s: float = 2.0) -> BookService:
        svc = cls(cfg, parent, ask_timeout_s)
        try:
            svc._start()
        except BaseException:
            svc.stop()
            raise
        return svc

    def _start(self) -> None:
        cfg, rt = self.cfg, self._rt
        self._preflight()
        url, rest_url = cfg.venue.url, cfg.venue.snapshot_url
        if cfg.simulator.enabled:
            from depthkeeper.simulator import Simulator

            symbols = tuple(dict.fromkeys((*cfg.simulator.symbols, *cfg.symbols.initial)))
            self.simulator = Simulator.start(cfg.simulator.sim_config(symbols=symbols))
            url, rest_url = self.simulator.url, self.simulator.rest_url
        self.url, self.rest_url = url, rest_url
        sup = cfg.supervisor
        flags = SupervisorFlags(strategy=sup.strategy, max_restarts=sup.max_restarts, period_s=sup.period_s,
                                backoff_min_s=sup.restart_backoff_min_s, backoff_max_s=sup.restart_backoff_max_s,
                                backoff_reset_s=sup.backoff_reset_s, liveness_interval_s=sup.liveness_interval_s)
        rt.root = TreeSupervisor.start(None, flags, rt.specs(url, rest_url, flags), name="depthkeeper",
                                       escalate=self._on_escalation, routes=rt.routes, peers=rt.peers,
                                       book_spec=rt.book_spec, state=rt.state, socket=rt.socket)
        # The throughput line is INFO: below a configured WARNING nothing shows it, and computing it
        # reads every book's stats (its latency rings sorted: ~3-6 ms of CPU a second at 1000 books).
        if cfg.log.stats_interval_s > 0 and _LEVELS.index(cfg.log.level) <= _LEVELS.index(LogLevel.INFO):
            self._stats_thread = threading.Thread(target=self._log_throughput, args=(cfg.log.stats_interval_s,),
                                                  name="depthkeeper-statslog", daemon=True)
            self._stats_thread.start()
        self._log.info("started: dialect {} venue {} ({} symbols)", cfg.venue.dialect, redact(url),
                       len(rt.state.desired))

    def _preflight(self) -> None:
        """What can fail at start-up fails here, before the simulator, the archive or any actor
        starts: the metrics port is bound first (a scrape before the tree is up reads empty
        stats), and the archive's directory must exist."""
        cfg = self.cfg
        archive_dir = Path(cfg.archive.path).parent if cfg.archive.path else None
        if archive_dir is not None and not archive_dir.is_dir():
            raise ServiceError(f"[archive] path {cfg.archive.path}: directory {archive_dir} does not exist")
        if cfg.metrics.port:
            from depthkeeper.supervisor.service.metrics import MetricsServer

            try:
                self.metrics = MetricsServer(self, self.registry, cfg.metrics.port)
            except OSError as exc:
                raise ServiceError(f"[metrics] port {cfg.metrics.port}: cannot serve on 127.0.0.1:"
                                   f"{cfg.metrics.port}: {exc.strerror or exc}") from None

    def _on_escalation(self, event: Escalated) -> None:
        if self.escalation is not None:
            return
        self.escalation = event
        self._log.error("the tree gave up after {} restarts; escalating", event.restarts)
        parent = self._parent
        if isinstance(parent, pykka.ActorRef):
            tell(parent, event)
        elif parent is not None:
            parent(event)

    def _gave_up(self) -> str | None:
        event = self.escalation
        return None if event is None else f"{event.reason} after {event.restarts} restarts"

    # -- subscriptions ---------------------------------------------------------------------

    def _change(self, message: Subscribe | Unsubscribe) -> tuple[str, ...]:
        """Asked, not told: when this returns the tree holds the new desired set."""
        root = self._rt.root
        if root is None or self._stopped or not root.is_alive():
            gave_up = self._gave_up()
            raise ServiceError(f"the service gave up ({gave_up})" if gave_up else "the service is not running")
        try:
            return tuple(root.ask(message, block=True, timeout=self.ask_timeout_s))
        except pykka.Timeout:
            raise ServiceError(f"the tree did not take {message!r} within {self.ask_timeout_s}s") from None
        except pykka.ActorDeadError:
            raise ServiceError("the service is not running") from None

    def subscribe(self, codes: Iterable[str]) -> SubscribeResult:
        """Add codes on the live connection. Malformed codes are rejected here, never sent; a code
        the venue rejected is asked for again."""
        accepted, rejected = self._rt.rules.split(list(codes))
        self.rejected_codes += len(rejected)
        for code, reason in rejected:
            self._log.bind(event="malformed_code", symbol=code).warning("rejected code {}: {}", code, reason)
        added = self._change(Subscribe(accepted)) if accepted else ()
        return SubscribeResult(accepted, rejected, added)

    def unsubscribe(self, codes: Iterable[str]) -> tuple[str, ...]:
        """Remove codes (their books are stopped and freed); returns those that were subscribed."""
        codes = tuple(codes)
        return self._change(Unsubscribe(codes)) if codes else ()

    def subscriptions(self) -> frozenset[str]:
        """The desired set (what the tree keeps subscribed)."""
        return self._rt.state.desired

    # -- reads -----------------------------------------------------------------------------

    def book(self, code: str, depth: int | None = None, timeout_s: float | None = None) -> BookView:
        """A frozen view of the book, best first. Lock-free copy in the caller's thread; if the
        book keeps changing under the copy, an ask to its actor (never past the timeout)."""
        return self._reads.book(code, depth, timeout_s)

    def wait_live(self, codes: Iterable[str] | None = None, timeout: float = 10.0) -> bool:
        """True once every given (default: every desired) book is LIVE; False at the deadline."""
        return self._reads.wait_live(codes, timeout)

    def add_listener(self, target: ListenerTarget, codes: Iterable[str] | None = None, *,
                     min_interval_s: float = 0.0, depth: int | None = None, inline: bool = False) -> int:
        """Deliver BookUpdated / BookStatusChanged to a pykka ref or a callable (conflated).
        ``min_interval_s`` > 0: each code's newest view at most that often (status changes still at
        once), so a listener that samples, or wants status changes only, costs no more. ``depth``:
        each view holds at most that many levels a side (``view.complete`` says when it is cut).
        ``inline=True`` (a callable): called by the book itself at the end of each turn that changed
        it, with that turn's view -- no conflation, no thread hop, the lowest latency -- so it must
        return quickly and must not wait on this service; while it runs, that book waits
        (actors/listeners.py)."""
        return self._rt.hub.add(target, codes, min_interval_s=min_interval_s, depth=depth, inline=inline)

    def remove_listener(self, listener_id: int) -> bool:
        return self._rt.hub.remove(listener_id)

    def book_stats(self) -> dict[str, BookStats]:
        """Every book's stats, read in the caller's thread between two of the book's messages (see
        ``BookReadPort.stats``): no message, so a scrape never holds up the books' data."""
        return self._reads.book_stats()

    def latency_samples(self, since: Mapping[str, int] | None = None
                        ) -> tuple[dict[str, int], dict[str, list[tuple[float, int]]]]:
        """``(marks, samples)``: per book, the ``(seconds from venue send to applied, diffs)``
        samples, one per applied batch, timed from its oldest diff (an upper bound for every diff in
        it); at most the last 1024 per book. ``marks`` counts the samples so far: pass it back as
        ``since`` to get only what was recorded after it (a measurement window). Needs stamped
        frames (``ts``)."""
        return self._reads.latency_samples(since)

    def _ask(self, ref: pykka.ActorRef[Any] | None, message: Any) -> Any:
        if ref is None:
            return None
        try:
            return ref.ask(message, timeout=self.ask_timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError):
            return None

    def stats(self) -> ServiceStats:
        rt = self._rt
        return build_stats(
            books=self.book_stats(),
            connection=self._ask(rt.peers.connection, GetCounters()),
            socket=rt.socket,
            subscription=self._ask(rt.peers.subscription, GetCounters()),
            snapshot=self._ask(rt.peers.snapshot, GetCounters()),
            root=self._ask(rt.root, GetStats()),
            books_sup=self._ask(child_ref(self._ask(rt.root, GetChildren()) or (), "books"), GetStats()),
            escalations=1 if self.escalation else 0,
            listeners=rt.hub.stats(),
        )

    def health(self) -> Health:
        rt = self._rt
        problems = []
        gave_up = self._gave_up()
        if gave_up is not None:
            problems.append(f"supervisor gave up: {gave_up}")
        if rt.state.venue_failure:
            problems.append(f"venue refused us: {rt.state.venue_failure}")
        if not rt.socket.connected:
            problems.append(f"not connected ({rt.socket.down_reason})")
        for code, stats in self.book_stats().items():
            if stats.status is not BookStatus.LIVE:
                problems.append(f"{code} is {stats.status.name}: {stats.reason}")
        missing = rt.state.desired - rt.routes.codes()
        problems.extend(f"{code} has no book" for code in sorted(missing))
        return Health(not problems, tuple(problems))

    def _log_throughput(self, interval_s: float) -> None:
        """Every interval: msgs/s received and the apply latency (read -> applied), as one line."""
        last_frames, last_at = 0, time.monotonic()
        log = self._log.bind(event="throughput")
        while not self._stats_stop.wait(interval_s):
            try:
                stats = self.book_stats()
                report = self._ask(self._rt.peers.connection, GetCounters())
            except Exception:  # noqa: BLE001 - logging must never take the service down
                continue
            now, frames = time.monotonic(), report.reader.frames if report is not None else 0
            rate = (frames - last_frames) / max(now - last_at, 1e-9) if frames >= last_frames else 0.0
            last_frames, last_at = frames, now
            log.info(*throughput_line(rate, stats))

    # -- shutdown --------------------------------------------------------------------------

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the tree (children in reverse order), listeners, timers and the simulator. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        rt = self._rt
        if self._stats_thread is not None:
            self._stats_stop.set()
            self._stats_thread.join(timeout=2.0)
        if self.metrics is not None:
            self.metrics.stop()
        if rt.root is not None:
            try:
                rt.root.stop(block=True, timeout=timeout_s)
            except pykka.Timeout:
                self._log.error("the tree did not stop within {}s", timeout_s)
        if rt.dispatcher is not None and not rt.dispatcher.stop():
            self._log.error("book dispatcher threads did not end")
        rt.hub.close()
        rt.scheduler.close()
        if self.simulator is not None:
            self.simulator.stop()
        if rt.root is not None:  # a start that failed in its preflight started nothing: nothing to say
            self._log.info("stopped")

    def __enter__(self) -> BookService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
