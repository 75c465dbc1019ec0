"""SubscriptionActor: the only sender of sub/unsub commands.

It is told the complete *desired* set (the tree owns it) and works out what to send
against what it believes the server has on the current socket (``active``):

- codes are validated before anything is sent (a malformed code is a WARNING naming the
  code and the rule; it is never sent);
- nothing already in the wanted state is sent again (dedupe), and an empty list is
  never sent;
- bursts are coalesced: changes within ``coalesce_window_s`` become one flush, and
  flushes are at least ``min_interval_s`` apart;
- on every new socket epoch the desired set is replayed from scratch;
- data for codes nobody wants is counted, and a code that keeps sending (a ghost left by
  a sub/unsub race on the server) is unsubscribed again.

article: ``sub``/``unsub`` with only the difference. alltick: a 22002 with the WHOLE
wanted list (it replaces the server's list), or 22006 when nothing is wanted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from depthkeeper.actors import codec_alltick, codec_article
from depthkeeper.actors.messages import (
    AckReceived,
    CodeRejected,
    DesiredChanged,
    FlushSubscriptions,
    GetCounters,
    RetryRejected,
    SendFrame,
    SocketLost,
    SocketOpened,
    UnwantedData,
    VenueFailure,
)
from depthkeeper.supervisor.base import SupervisedActor

from depthkeeper.actors.routing import SubscriptionLedger

if TYPE_CHECKING:
    from depthkeeper.actors.routing import Peers
    from depthkeeper.actors.symbols import SymbolRules
    from depthkeeper.actors.wire import Ack
    from depthkeeper.supervisor.config import SubscriptionConfig
    from depthkeeper.supervisor.scheduler import Scheduler
    from depthkeeper.supervisor.spec import ChildContext

#: alltick ret codes that mean "this code is not for you"
_CODE_REJECTED = (600, 604)
#: a ghost is unsubscribed again at most this often
_GHOST_COOLDOWN_S = 1.0
#: frames still in flight right after our own unsub are not ghosts
_UNSUB_GRACE_S = 1.0


class SubscriptionActor(SupervisedActor):
    def __init__(self, ctx: ChildContext, *, dialect: str, cfg: SubscriptionConfig, rules: SymbolRules,
                 peers: Peers, scheduler: Scheduler, desired: frozenset[str], epoch: int = 0,
                 depth_level: int = 5, ledger: SubscriptionLedger | None = None,
                 rejected: dict[str, str] | None = None) -> None:
        super().__init__(ctx)
        self._dialect = dialect
        self._cfg = cfg
        self._rules = rules
        self._peers = peers
        self._scheduler = scheduler
        self._depth_level = depth_level
        self.desired: frozenset[str] = frozenset()
        self.active: set[str] = set()
        #: code -> the venue's refusal (kept across our restarts by the tree; retried on an explicit subscribe)
        self.rejected: dict[str, str] = dict(rejected or {})
        self.epoch = epoch
        self._last_sent_at = -1e9
        self._flush_scheduled = False
        self._ghost_frames: dict[str, int] = {}
        self._ghost_unsub_at: dict[str, float] = {}
        self._left_at: dict[str, float] = {}
        self._seq_id = 0
        self._added_by_request: dict[int, frozenset[str]] = {}
        self.counters = {"commands": 0, "codes_subscribed": 0, "codes_unsubscribed": 0, "invalid_codes": 0,
                         "venue_rejected": 0, "unwanted_frames": 0, "ghost_unsubscribes": 0, "replays": 0}
        self._log = logger.bind(actor="subscription")
        self._initial = desired
        self._ledger = ledger if ledger is not None else SubscriptionLedger()

    def init(self) -> None:
        self._set_desired(self._initial)
        if not self.epoch:
            return  # no socket yet: SocketOpened will trigger the first send
        if self._ledger.epoch == self.epoch:
            # restarted on the same live socket: the ledger says what the server has
            self.active = set(self._ledger.active)
        else:
            self.counters["replays"] += 1  # a socket we never sent on: replay everything
        self._flush()

    def on_receive(self, message: Any) -> Any:
        match message:
            case DesiredChanged(desired=desired):
                self._set_desired(desired)
                self._schedule(self._cfg.coalesce_window_s)
            case SocketOpened(epoch=epoch):
                self._on_socket(epoch)
            case SocketLost(epoch=epoch):
                if epoch == self.epoch:
                    self.active.clear()
                    self._commit()
            case RetryRejected(codes=codes):
                for code in codes:
                    self.rejected.pop(code, None)
                self._schedule(self._cfg.coalesce_window_s)
            case FlushSubscriptions():
                self._flush_scheduled = False
                self._flush()
            case UnwantedData():
                self._on_unwanted(message)
            case AckReceived(epoch=epoch, ack=ack):
                if epoch == self.epoch:
                    self._on_ack(ack)
            case GetCounters():
                return dict(self.counters, desired=sorted(self.desired), active=sorted(self.active),
                            rejected=dict(self.rejected), epoch=self.epoch)
            case _:
                return super().on_receive(message)
        return None

    def _set_desired(self, desired: frozenset[str]) -> None:
        accepted, refused = self._rules.split(sorted(desired))
        for code, reason in refused:
            self.counters["invalid_codes"] += 1
            self._log.bind(event="malformed_code", symbol=code).warning("refusing to send code {}: {}", code, reason)
        self.desired = frozenset(accepted)

    def _on_socket(self, epoch: int) -> None:
        if epoch <= self.epoch and self.epoch:
            return
        self.epoch = epoch
        self.active = set()
        self._commit()
        self._ghost_frames.clear()
        self.counters["replays"] += 1
        self._log.bind(epoch=epoch).info("new socket: replaying {} codes", len(self.desired))
        self._flush()

    def _schedule(self, delay_s: float) -> None:
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        if delay_s <= 0:
            self.actor_ref.tell(FlushSubscriptions())
        else:
            self._scheduler.schedule(delay_s, self.actor_ref, FlushSubscriptions())

    def _flush(self) -> None:
        if not self.epoch:
            return
        wait_s = self._last_sent_at + self._cfg.min_interval_s - time.monotonic()
        if wait_s > 0:
            self._schedule(wait_s + 0.001)
            return
        want = self.desired - self.rejected.keys()
        if self._dialect == "alltick":
            self._flush_alltick(want)
        else:
            self._flush_article(want)

    def _flush_article(self, want: frozenset[str]) -> None:
        to_sub = sorted(want - self.active)
        to_unsub = sorted(self.active - want)
        if to_sub:
            self._send(codec_article.encode_command("sub", to_sub), f"sub {to_sub}")
            self.active.update(to_sub)
            self._commit()
            self.counters["codes_subscribed"] += len(to_sub)
            if to_unsub and self._cfg.min_interval_s > 0:
                self._schedule(self._cfg.min_interval_s)
                return
        if to_unsub:
            self._send(codec_article.encode_command("unsub", to_unsub), f"unsub {to_unsub}")
            self.active.difference_update(to_unsub)
            self._commit()
            self._left_at.update(dict.fromkeys(to_unsub, time.monotonic()))
            self.counters["codes_unsubscribed"] += len(to_unsub)

    def _flush_alltick(self, want: frozenset[str]) -> None:
        if want == self.active:
            return
        self._seq_id += 1
        trace = f"dk-sub-{self.epoch}-{self._seq_id}"
        if want:
            text = codec_alltick.encode_subscribe(sorted(want), self._depth_level, self._seq_id, trace)
            self._added_by_request[self._seq_id] = frozenset(want - self.active)
            self._send(text, f"22002 ({len(want)} codes)")
        else:
            self._send(codec_alltick.encode_cancel(self._seq_id, trace), "22006 cancel depth")
        self.counters["codes_subscribed"] += len(want - self.active)
        self.counters["codes_unsubscribed"] += len(self.active - want)
        self._left_at.update(dict.fromkeys(self.active - want, time.monotonic()))
        self.active = set(want)
        self._commit()

    def _send(self, text: str, what: str) -> None:
        self._last_sent_at = time.monotonic()
        self.counters["commands"] += 1
        self._log.bind(epoch=self.epoch).info("sending {}", what)
        self._peers.tell_connection(SendFrame(self.epoch, text, what))

    def _commit(self) -> None:
        self._ledger.record(self.epoch, self.active)

    def _on_unwanted(self, message: UnwantedData) -> None:
        self.counters["unwanted_frames"] += message.frames
        code = message.code
        if message.epoch != self.epoch or code in self.desired:
            return  # a book being started or restarted; not a ghost
        now = time.monotonic()
        if now - self._left_at.get(code, -1e9) < _UNSUB_GRACE_S:
            return  # frames sent before the server processed our unsub
        frames = self._ghost_frames.get(code, 0) + message.frames
        self._ghost_frames[code] = frames
        if frames < self._cfg.ghost_threshold or now - self._ghost_unsub_at.get(code, -1e9) < _GHOST_COOLDOWN_S:
            return
        self._ghost_frames[code] = 0
        self._ghost_unsub_at[code] = now
        self.counters["ghost_unsubscribes"] += 1
        self._log.bind(symbol=code, event="ghost").warning("data keeps arriving for unwanted {}; unsubscribing", code)
        if self._dialect == "alltick":
            self.active.add(code)  # force the whole list to be sent again
            self._flush()
        elif self._rules.problem(code) is None:
            self._send(codec_article.encode_command("unsub", [code]), f"unsub ghost {code}")

    def _on_ack(self, ack: Ack) -> None:
        if ack.rejected:
            for code in ack.rejected:
                self._reject(code, "rejected by the venue")
        if ack.ret == 200:
            return
        if ack.ret in _CODE_REJECTED:
            for code in self._added_by_request.get(ack.seq_id or -1, frozenset()):
                self._reject(code, f"ret {ack.ret} {ack.msg}")
        elif ack.ret == 401:
            self._log.bind(event="venue_refused").error("venue says the token is invalid (ret 401 {})", ack.msg)
            self._peers.tell_connection(VenueFailure(f"ret 401 {ack.msg}"))
        elif ack.ret == 603:
            self._log.warning("venue says the plan's symbol limit is reached (ret 603 {}); extra codes ignored",
                              ack.msg)
        else:
            self._log.warning("venue answered cmd {} with ret {} {}", ack.cmd_id, ack.ret, ack.msg)

    def _reject(self, code: str, why: str) -> None:
        if code in self.rejected:
            return
        self.rejected[code] = why
        self.active.discard(code)
        self._commit()
        self.counters["venue_rejected"] += 1
        self._log.bind(symbol=code, event="code_rejected").warning("venue rejected {}: {}", code, why)
        self._peers.tell_tree(CodeRejected(code, why))
