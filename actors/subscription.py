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

Ghosts (issue 12): see ghosts.py; this actor counts what it says and unsubscribes a reaped code again.

Venue limits and checks (issue 14): a venue holds at most ``Venue.max_streams`` codes per
socket, so a code past it is refused here, REJECTED with a reason naming the limit (codes the
venue already has keep their place). A venue that refuses a whole request for one bad code
(Binance's all-or-nothing SUBSCRIBE) answers with ``retry_groups``: those codes are asked again,
one group per request, until the bad one is alone and rejected by name. A venue that can list
our subscriptions (``Venue.can_list``) is asked once a burst has settled, and what it lists
becomes ``active`` (the next flush fixes any difference; a code it keeps leaving out is rejected).

What goes on the wire is the venue's (``Venue.plan``: the article sends ``sub``/``unsub``
with only the difference, AllTick a 22002 with the WHOLE wanted list, Binance SUBSCRIBE /
UNSUBSCRIBE with request ids), and so is what an answer means (``Venue.read_ack``). A ghost
is unsubscribed again by keeping it in ``active`` and planning the next flush: the venue's
own request shape does the rest, coalesced with any other change.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from depthkeeper.actors.ghosts import Frames, LeftCodes
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
from depthkeeper.actors.routing import SubscriptionLedger
from depthkeeper.supervisor.otp.base import SupervisedActor

if TYPE_CHECKING:
    from depthkeeper.actors.core.symbols import SymbolRules
    from depthkeeper.actors.core.wire import Ack
    from depthkeeper.actors.routing import Peers
    from depthkeeper.actors.settings import SubscriptionConfig
    from depthkeeper.actors.venues import AckVerdict, Request, Venue
    from depthkeeper.supervisor.otp.scheduler import Scheduler
    from depthkeeper.supervisor.otp.spec import ChildContext

#: our requests on one socket kept for their answers (the oldest forgotten first)
REQUESTS_KEPT = 256


@attrs.define
class SubscriptionCounters:
    """What the SubscriptionActor counts (cumulative; GetCounters answers a copy in a report)."""

    commands: int = 0
    codes_subscribed: int = 0
    codes_unsubscribed: int = 0
    invalid_codes: int = 0
    venue_rejected: int = 0
    unwanted_frames: int = 0
    ghost_unsubscribes: int = 0
    replays: int = 0
    #: frames for a code we are leaving, still in flight (not ghosts)
    in_flight_frames: int = 0
    #: frames for a code this socket never subscribed (counted, never answered)
    unknown_code_frames: int = 0
    acks: int = 0


@attrs.frozen
class SubscriptionReport:
    """The answer to GetCounters."""

    counters: SubscriptionCounters
    desired: tuple[str, ...]
    active: tuple[str, ...]
    rejected: dict[str, str]
    epoch: int
    left_codes: int


class SubscriptionActor(SupervisedActor):
    log_name = "subscription"

    def __init__(self, ctx: ChildContext, *, venue: Venue, cfg: SubscriptionConfig, rules: SymbolRules,
                 peers: Peers, scheduler: Scheduler, desired: frozenset[str], epoch: int = 0,
                 ledger: SubscriptionLedger | None = None,
                 rejected: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx)
        self._venue = venue
        self._cfg = cfg
        self._rules = rules
        self._peers = peers
        self._scheduler = scheduler
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
        self._left = LeftCodes()
        self._request_id = 0
        #: active codes whose subscribe (a request with an id) the venue has not answered yet
        self._pending: dict[str, int] = {}
        #: our requests on this socket that carry an id, for the venue's answers
        self._requests: OrderedDict[int, Request] = OrderedDict()
        self.counters = SubscriptionCounters()
        #: groups of codes to ask for one group per request (``AckVerdict.retry_groups``), this socket
        self._groups: list[frozenset[str]] = []
        #: a LIST of our subscriptions is due once the current burst is sent (``Venue.can_list``)
        self._list_due = False
        #: code -> times the venue's list left it out although we had subscribed it (this socket)
        self._unlisted: dict[str, int] = {}
        self._initial = desired
        self._ledger = ledger if ledger is not None else SubscriptionLedger()

    def init(self) -> None:
        self._set_desired(self._initial)
        if not self.epoch:
            return  # no socket yet: SocketOpened will trigger the first send
        if self._ledger.epoch == self.epoch:
            # restarted on the same live socket: the ledger says what the server has, which of it
            # the venue has not answered yet, and where request ids go on (never reused on a socket)
            self.active = set(self._ledger.active)
            self._pending = dict(self._ledger.pending)
            self._request_id = self._ledger.last_id
            # answers to the dead incarnation's requests may be lost with it: ask the venue what it has
            self._list_due = self._venue.can_list
        else:
            self.counters.replays += 1  # a socket we never sent on: replay everything
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
                    self._pending.clear()
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
                return SubscriptionReport(attrs.evolve(self.counters), tuple(sorted(self.desired)),
                                          tuple(sorted(self.active)), dict(self.rejected), self.epoch, len(self._left))
            case _:
                return super().on_receive(message)
        return None

    def _set_desired(self, desired: frozenset[str]) -> None:
        accepted, refused = self._rules.split(sorted(desired))
        for code, reason in refused:
            self.counters.invalid_codes += 1
            self.log.bind(event="malformed_code", symbol=code).warning("refusing to send code {}: {}", code, reason)
        self.desired = frozenset(accepted)

    def _on_socket(self, epoch: int) -> None:
        if epoch <= self.epoch and self.epoch:
            return
        self.epoch = epoch
        self.active = set()
        self._pending.clear()
        self._commit()
        self._left.clear()
        self._groups, self._list_due, self._unlisted = [], False, {}
        self.counters.replays += 1
        self.log.bind(epoch=epoch).info("new socket: replaying {} codes", len(self.desired))
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
        want = self._within_limit(frozenset(self.desired - self.rejected.keys()))
        apart = frozenset().union(*self._groups) if self._groups else frozenset()
        requests = self._venue.plan(want - apart, frozenset(self.active), self._next_id, self.epoch)
        if not requests:
            requests = self._next_group(want) or self._list_request()
        if requests and self._cfg.min_interval_s > 0:
            if len(requests) > 1:
                self._schedule(self._cfg.min_interval_s)  # one request per interval: the rest next time
            requests = requests[:1]
        for request in requests:
            self._issue(request)
        if requests and (self._groups or self._list_due):
            self._schedule(max(self._cfg.min_interval_s, self._cfg.coalesce_window_s))

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id

    def _issue(self, request: Request) -> None:
        self._send(request.text, request.what)
        if request.request_id:
            self._requests[request.request_id] = request
            while len(self._requests) > REQUESTS_KEPT:
                self._requests.popitem(last=False)
        self.active.update(request.added)
        self.active.difference_update(request.removed)
        for code in request.removed:
            self._pending.pop(code, None)
        if request.request_id:
            self._pending.update(dict.fromkeys(request.added, request.request_id))
        self._list_due = self._list_due or (bool(request.added) and self._venue.can_list)
        self._commit()
        self.counters.codes_subscribed += len(request.added)
        self.counters.codes_unsubscribed += len(request.removed)
        if request.removed:
            self._left.left(request.removed, request.request_id, self._clock())

    def _send(self, text: str, what: str) -> None:
        self._last_sent_at = self._clock()
        self.counters.commands += 1
        self.log.bind(epoch=self.epoch).info("sending {}", what)
        self._peers.tell_connection(SendFrame(self.epoch, text, what))

    def _commit(self) -> None:
        pending = {code: rid for code, rid in self._pending.items() if code in self.active}
        self._ledger.record(self.epoch, self.active, pending, self._request_id)

    # -- ghosts (ghosts.py decides; this actor counts and acts) -----------------------------

    def _settle(self, verdict: AckVerdict) -> None:
        """An answer on this socket: which of our requests the venue has now processed."""
        self.counters.acks += 1
        before = self._left.acked_request
        self._left.answered(verdict.settled_through, verdict.unsubscribed)
        if self._left.acked_request > before:
            self._pending = {code: rid for code, rid in self._pending.items() if rid > self._left.acked_request}

    def _on_unwanted(self, message: UnwantedData) -> None:
        self.counters.unwanted_frames += message.frames
        if message.epoch != self.epoch:
            return
        now = self._clock()
        ghosts: list[str] = []
        for code, frames in message.counts:
            if code in self.desired or code in self.active:
                continue  # a book being started or restarted, or our unsub not sent yet: not a ghost
            verdict = self._left.classify(code, frames, now, self._cfg.min_interval_s, self._cfg.ghost_threshold)
            if verdict is Frames.UNKNOWN:
                self.counters.unknown_code_frames += frames  # never subscribed here: count, never answer
            elif verdict is Frames.IN_FLIGHT:
                self.counters.in_flight_frames += frames  # sent before the venue processed our unsub
            elif verdict is Frames.REAP:
                ghosts.append(code)
        if ghosts:
            self._reap(ghosts)

    def _reap(self, codes: list[str]) -> None:
        """Unsubscribe ghosts again: kept in ``active``, the next flush plans their unsubscribe."""
        self.counters.ghost_unsubscribes += len(codes)
        for code in codes:
            self.log.bind(symbol=code, event="ghost").warning("data keeps arriving for unwanted {}; unsubscribing",
                                                               code)
        self.active.update(codes)
        self._schedule(self._cfg.coalesce_window_s)

    def _on_ack(self, ack: Ack) -> None:
        verdict = self._venue.read_ack(ack, self._requests)
        self._settle(verdict)
        for code, why in verdict.rejected:
            self._reject(code, why)
        if verdict.retry_groups:
            self._retry_apart(verdict.retry_groups)
        if verdict.listed is not None:
            self._reconcile(verdict.listed, verdict.settled_through)
        if verdict.fatal is not None:
            self.log.bind(event="venue_refused").error("venue refused us: {}", verdict.fatal)
            self._peers.tell_connection(VenueFailure(verdict.fatal))
        elif verdict.warning is not None:
            self.log.warning("{}", verdict.warning)
        self._commit()  # once the whole answer is read: books see a subscribe confirmed only if it stood

    def _reject(self, code: str, why: str) -> None:
        if code in self.rejected:
            return
        self.rejected[code] = why
        self.active.discard(code)
        self._commit()
        self.counters.venue_rejected += 1
        self.log.bind(symbol=code, event="code_rejected").warning("venue rejected {}: {}", code, why)
        self._peers.tell_tree(CodeRejected(code, why))

    # -- venue limits and checks -------------------------------------------------------------

    def _within_limit(self, want: frozenset[str]) -> frozenset[str]:
        """``want`` cut to the venue's streams per socket; the codes past it are rejected, naming the limit.
        Codes the venue already has keep their place; new ones are taken in code order."""
        limit = self._venue.max_streams
        if len(want) <= limit:
            return want
        kept = sorted(want & self.active)[:limit]
        new = sorted(want - self.active)
        room = max(0, limit - len(kept))
        for code in new[room:]:
            self._reject(code, f"over the venue's limit of {limit} streams per connection "
                               f"(one connection holds {limit} books)")
        return frozenset(kept) | frozenset(new[:room])

    def _retry_apart(self, groups: tuple[frozenset[str], ...]) -> None:
        """The venue refused a request as a whole: ask again, one group per request."""
        for group in groups:
            self.active.difference_update(group)
            self._groups.append(group)
        self._commit()
        self._schedule(self._cfg.coalesce_window_s)

    def _next_group(self, want: frozenset[str]) -> list[Request]:
        while self._groups:
            group = (self._groups.pop(0) & want) - self.active
            if group:
                return self._venue.plan(frozenset(self.active) | group, frozenset(self.active), self._next_id,
                                        self.epoch)
        return []

    def _list_request(self) -> list[Request]:
        if not self._list_due:
            return []
        self._list_due = False
        request = self._venue.list_request(self._next_id)
        return [request] if request is not None else []

    def _reconcile(self, listed: frozenset[str], request_id: int) -> None:
        """The venue's list of our codes. Valid only if nothing was asked after the list request
        (answers come in order); then it IS ``active``, and the next flush sends the difference."""
        if request_id != self._request_id:
            return  # a later request changed the list since: the LIST after it will tell
        missing, extra = self.active - listed, listed - self.active
        if not missing and not extra:
            self.log.bind(epoch=self.epoch).debug("the venue lists our {} codes", len(listed))
            return
        self.log.bind(epoch=self.epoch).warning(
            "the venue's list differs from ours: missing {}, extra {}; reconciling", sorted(missing), sorted(extra))
        for code in missing:
            self._unlisted[code] = self._unlisted.get(code, 0) + 1
        self.active = set(listed)
        self._commit()
        for code in [c for c in missing if self._unlisted[c] >= 2]:
            self._reject(code, "the venue accepted the subscription but does not keep it (LIST_SUBSCRIPTIONS)")
        self._schedule(self._cfg.coalesce_window_s)

