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
  a sub/unsub race on the server) is unsubscribed again — see "Ghosts" below.

Ghosts (issue 12). Only a code THIS socket subscribed and we then left can be a ghost; a
code we never subscribed on this socket (a venue bug, a flood of made-up codes) is counted
and never answered: one unsubscribe per made-up code would be a flood of our own, and on
AllTick every client frame is rate-limited. Frames for a code we are leaving are in flight,
not ghosts, until the venue has acknowledged that unsubscribe (the reader tells us acks
after the data read before them, so stream order holds); when the venue sends no acks, a
grace period from the moment the unsubscribe was issued (plus the pacing) stands in for
the ack. Each left code is reaped at most once per socket, and the per-code state lives in
a bounded LRU that a new socket clears.

article: ``sub``/``unsub`` with only the difference. alltick: a 22002 with the WHOLE
wanted list (it replaces the server's list), or 22006 when nothing is wanted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

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
#: alltick responses to the requests that set our depth list (their seq_id is one of ours)
_LIST_RESPONSES = (codec_alltick.SUBSCRIBE_DEPTH_ACK, codec_alltick.CANCEL_ACK)
#: without acks on this socket: frames this long (+ two pacing intervals) after we issued an
#: unsubscribe are still in flight, not ghosts
_UNSUB_GRACE_S = 1.0
#: with acks on this socket we wait for the unsubscribe's ack, but never longer than this
_UNSUB_ACK_TIMEOUT_S = 10.0
#: codes left on one socket whose ghost state we keep (least recently left forgotten first)
LEFT_CODES_LIMIT = 4096


@attrs.define
class LeftCode:
    """A code this socket subscribed and then left: is its data still in flight, or a ghost?"""

    #: unsubscribe commands (article) naming it on this socket, and acks of them seen
    unsubs: int = 0
    unsub_acks: int = 0
    #: alltick: seq_id of the last request that left it; settled once a response >= it arrives
    request: int = 0
    #: when we issued the last unsubscribe (monotonic seconds)
    left_at_s: float = 0.0
    #: frames seen after the unsubscribe settled
    frames: int = 0
    #: already unsubscribed again as a ghost on this socket (never twice)
    reaped: bool = False


class SubscriptionActor(SupervisedActor):
    def __init__(self, ctx: ChildContext, *, dialect: str, cfg: SubscriptionConfig, rules: SymbolRules,
                 peers: Peers, scheduler: Scheduler, desired: frozenset[str], epoch: int = 0,
                 depth_level: int = 5, ledger: SubscriptionLedger | None = None,
                 rejected: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx)
        self._dialect = dialect
        self._cfg = cfg
        self._rules = rules
        self._peers = peers
        self._scheduler = scheduler
        self._depth_level = depth_level
        #: monotonic seconds (a test drives the ghost grace periods with its own clock)
        self._clock = clock
        self.desired: frozenset[str] = frozenset()
        self.active: set[str] = set()
        #: code -> the venue's refusal (kept across our restarts by the tree; retried on an explicit subscribe)
        self.rejected: dict[str, str] = dict(rejected or {})
        self.epoch = epoch
        self._last_sent_at = -1e9
        self._flush_scheduled = False
        #: codes this socket subscribed and then left (bounded, cleared per socket)
        self._left: OrderedDict[str, LeftCode] = OrderedDict()
        self._acks_seen = 0
        self._acked_request = 0
        self._seq_id = 0
        self._added_by_request: dict[int, frozenset[str]] = {}
        self.counters = {"commands": 0, "codes_subscribed": 0, "codes_unsubscribed": 0, "invalid_codes": 0,
                         "venue_rejected": 0, "unwanted_frames": 0, "ghost_unsubscribes": 0, "replays": 0,
                         "in_flight_frames": 0, "unknown_code_frames": 0, "acks": 0}
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
                    self._settle(ack)
                    self._on_ack(ack)
            case GetCounters():
                return dict(self.counters, desired=sorted(self.desired), active=sorted(self.active),
                            rejected=dict(self.rejected), epoch=self.epoch, left_codes=len(self._left))
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
        self._left.clear()
        self._acks_seen = self._acked_request = 0
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
        wait_s = self._last_sent_at + self._cfg.min_interval_s - self._clock()
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
            self._mark_left(to_unsub)
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
        self._mark_left(self.active - want, request=self._seq_id)
        self.active = set(want)
        self._commit()

    def _send(self, text: str, what: str) -> None:
        self._last_sent_at = self._clock()
        self.counters["commands"] += 1
        self._log.bind(epoch=self.epoch).info("sending {}", what)
        self._peers.tell_connection(SendFrame(self.epoch, text, what))

    def _commit(self) -> None:
        self._ledger.record(self.epoch, self.active)

    # -- ghosts ----------------------------------------------------------------------------

    def _mark_left(self, codes: set[str] | list[str], request: int = 0) -> None:
        """We just issued the command that leaves ``codes`` (``request``: its alltick seq_id)."""
        now = self._clock()
        left = self._left
        for code in codes:
            entry = left.pop(code, None) or LeftCode()
            entry.unsubs += 1
            entry.request = request
            entry.left_at_s = now
            entry.frames = 0
            left[code] = entry  # most recently left last
        while len(left) > LEFT_CODES_LIMIT:
            left.popitem(last=False)

    def _settled(self, entry: LeftCode, now: float) -> bool:
        """Has the venue certainly processed our last unsubscribe of this code?"""
        if self._dialect == "alltick":
            if entry.request and self._acked_request >= entry.request:
                return True  # responses come in request order
        elif entry.unsub_acks >= entry.unsubs:
            return True
        waited_s = now - entry.left_at_s
        if self._acks_seen:
            return waited_s >= _UNSUB_ACK_TIMEOUT_S  # an ack went missing: do not wait forever
        return waited_s >= _UNSUB_GRACE_S + 2 * self._cfg.min_interval_s

    def _settle(self, ack: Ack) -> None:
        """An ack on this socket: which of our unsubscribes has the venue now processed."""
        self._acks_seen += 1
        self.counters["acks"] += 1
        if self._dialect == "alltick":
            # only answers to our 22002/22006 (heartbeats have seq_ids of their own)
            if ack.cmd_id in _LIST_RESPONSES and ack.seq_id is not None and ack.seq_id > self._acked_request:
                self._acked_request = ack.seq_id
        elif ack.msg == "unsub":  # article: the ack names the codes
            for code in (*ack.codes, *ack.rejected):
                entry = self._left.get(code)
                if entry is not None and entry.unsub_acks < entry.unsubs:
                    entry.unsub_acks += 1

    def _on_unwanted(self, message: UnwantedData) -> None:
        self.counters["unwanted_frames"] += message.frames
        if message.epoch != self.epoch:
            return
        now = self._clock()
        ghosts: list[str] = []
        for code, frames in message.counts:
            if code in self.desired or code in self.active:
                continue  # a book being started or restarted, or our unsub not sent yet: not a ghost
            entry = self._left.get(code)
            if entry is None:
                self.counters["unknown_code_frames"] += frames  # never subscribed here: count, never answer
            elif entry.reaped:
                continue  # unsubscribed again once on this socket already; counted above
            elif not self._settled(entry, now):
                self.counters["in_flight_frames"] += frames  # sent before the venue processed our unsub
            else:
                entry.frames += frames
                if entry.frames >= self._cfg.ghost_threshold:
                    entry.reaped = True
                    ghosts.append(code)
        if ghosts:
            self._reap(ghosts)

    def _reap(self, codes: list[str]) -> None:
        self.counters["ghost_unsubscribes"] += len(codes)
        for code in codes:
            self._log.bind(symbol=code, event="ghost").warning("data keeps arriving for unwanted {}; unsubscribing",
                                                               code)
        if self._dialect == "alltick":
            self.active.update(codes)  # the next 22002 (the whole wanted list) drops them
            self._schedule(self._cfg.coalesce_window_s)
            return
        valid = [code for code in codes if self._rules.problem(code) is None]
        if valid:
            self._send(codec_article.encode_command("unsub", valid), f"unsub ghost {valid}")
            self._mark_left(valid)

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
