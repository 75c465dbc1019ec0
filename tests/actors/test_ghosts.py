"""Issue 12 #10 and #11: ghost handling is bounded and never answers our own pending unsubscribe.

A real SubscriptionActor is fed by a real Reader on a real socket pair (the test plays the
venue: acks and data frames); a recorder stands in for the ConnectionActor and collects every
frame the actor asks to send; a manual scheduler fires the coalescing timers when the test says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from depthkeeper.actors import ghosts
from depthkeeper.actors.core.symbols import SymbolRules
from depthkeeper.actors.messages import DesiredChanged, FlushSubscriptions, GetCounters, SendFrame, SocketOpened
from depthkeeper.actors.routing import Peers, RoutingTable
from depthkeeper.actors.settings import VenueConfig
from depthkeeper.actors.subscription import SubscriptionActor
from depthkeeper.actors.venues import alltick as codec_alltick
from depthkeeper.actors.venues import article as codec_article
from depthkeeper.actors.venues import venue_class
from depthkeeper.supervisor.otp.spec import ChildContext
from depthkeeper.supervisor.service.config import SubscriptionConfig
from tests.support import wait_until

from .fakes import ManualScheduler, RecorderHandle
from .wirepair import WirePair


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class Rig:
    def __init__(self, dialect: str, *, min_interval_s: float = 0.0, clock: Clock | None = None) -> None:
        self.conn = RecorderHandle()
        self.book = RecorderHandle()
        self.scheduler = ManualScheduler()
        self.peers = Peers()
        self.peers.connection = self.conn.ref
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.ref = SubscriptionActor.start(
            ChildContext(RecorderHandle().ref, "subscription", 1), venue=venue_class(dialect)(VenueConfig()),
            cfg=SubscriptionConfig(min_interval_s=min_interval_s, coalesce_window_s=0.02, ghost_threshold=3),
            rules=SymbolRules(), peers=self.peers, scheduler=self.scheduler, desired=frozenset({"BTCUSDT"}),
            **kwargs)
        self.peers.subscription = self.ref
        routes = RoutingTable()
        routes.set("BTCUSDT", self.book.ref)
        decode = codec_alltick.decode if dialect == "alltick" else codec_article.decode
        self.wire = WirePair(decode=decode, routes=routes, peers=self.peers, epoch=1)

    def counters(self) -> dict[str, Any]:
        return self.ref.ask(GetCounters(), timeout=5)

    def sent(self) -> list[str]:
        """Every frame the actor asked to send so far (a barrier on the recorder first)."""
        self.ref.ask(GetCounters(), timeout=5)
        self.conn.ref.ask("barrier", timeout=5)
        return [m.what for m in self.conn.all(SendFrame)]

    def frames(self, payloads: list[bytes], *, unwanted: int) -> None:
        """Send venue frames; wait until the actor has seen ``unwanted`` frames without a book in all."""
        self.wire.send(payloads)
        wait_until(lambda: self.counters().counters.unwanted_frames >= unwanted, 10, f"{unwanted} unwanted frames")

    def flush(self) -> None:
        """Fire the actor's pending flush timer (once it has handled what it was told)."""
        self.ref.ask(GetCounters(), timeout=5)
        assert self.scheduler.fire(FlushSubscriptions) >= 1


@pytest.fixture
def rigs() -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(dialect: str, **kwargs: Any) -> Rig:
        made.append(Rig(dialect, **kwargs))
        return made[-1]

    yield make
    for rig in made:
        rig.wire.close()


# -- article frames ---------------------------------------------------------------------------

def diff(code: str, seq: int) -> bytes:
    return orjson.dumps({"type": "orderbook_diff", "code": code, "seq": seq, "side": "bid", "price": "1.5",
                         "size": "1"})


def diffs(code: str, count: int, first: int = 1) -> list[bytes]:
    return [diff(code, seq) for seq in range(first, first + count)]


def ack(action: str, *codes: str) -> bytes:
    return orjson.dumps({"type": "ack", "cmd_id": 22004, "action": action, "code": list(codes), "rejected": [],
                         "ret": 200})


# -- alltick frames ---------------------------------------------------------------------------

def push(code: str, seq: int) -> bytes:
    return orjson.dumps({"cmd_id": 22999, "data": {"code": code, "seq": seq, "tick_time": 1700000000000,
                                                   "bids": [{"price": "1.5", "volume": "1"}], "asks": []}})


def response(seq_id: int, cmd_id: int = 22003) -> bytes:
    return orjson.dumps({"cmd_id": cmd_id, "seq_id": seq_id, "trace": f"t{seq_id}", "ret": 200, "msg": "ok",
                         "data": {}})


# -- #11: unsubscribe right after subscribe ----------------------------------------------------

def test_frames_of_our_own_pending_unsubscribe_are_not_ghosts(rigs: Callable[..., Rig]) -> None:
    """Subscribe XRP, unsubscribe it at once: its trailing frames (before our unsub is sent, and
    before the venue acked it) never trigger a second unsubscribe."""
    rig = rigs("article")
    rig.ref.tell(SocketOpened(1))
    rig.conn.wait_for(SendFrame)
    rig.frames([ack("sub", "BTCUSDT")], unwanted=0)
    rig.ref.tell(DesiredChanged(frozenset({"BTCUSDT", "XRPUSDT"})))
    rig.flush()
    rig.frames([ack("sub", "XRPUSDT"), *diffs("XRPUSDT", 2)], unwanted=2)  # XRP's book is not routed yet
    rig.ref.tell(DesiredChanged(frozenset({"BTCUSDT"})))  # ... and unsubscribed right away
    rig.frames(diffs("XRPUSDT", 5, first=3), unwanted=7)  # our unsub is still waiting to be sent
    rig.flush()
    rig.frames(diffs("XRPUSDT", 5, first=8), unwanted=12)  # sent, not yet processed by the venue
    rig.frames([ack("unsub", "XRPUSDT")], unwanted=12)
    assert rig.sent() == ["sub ['BTCUSDT']", "sub ['XRPUSDT']", "unsub ['XRPUSDT']"]
    assert rig.counters().counters.ghost_unsubscribes == 0


def test_a_late_unsubscribe_waits_for_its_ack_then_a_real_ghost_is_reaped_once(rigs: Callable[..., Rig]) -> None:
    """alltick, paced at 1 s: the unsub goes out late and its ack comes 5 s later; frames until the
    ack are in flight. Frames after the ack are a ghost: one more 22002, once per socket."""
    clock = Clock()
    rig = rigs("alltick", min_interval_s=1.0, clock=clock)
    seen = 0

    def xrp_pushes(count: int) -> None:
        """One push per write (the reader keeps only the newest push per code in a chunk)."""
        nonlocal seen
        for _ in range(count):
            seen += 1
            rig.frames([push("XRPUSDT", seen)], unwanted=seen)

    rig.ref.tell(SocketOpened(1))
    rig.conn.wait_for(SendFrame)  # 22002 [BTC], seq_id 1
    rig.frames([response(1)], unwanted=0)
    clock.now_s += 2.0
    rig.ref.tell(DesiredChanged(frozenset({"BTCUSDT", "XRPUSDT"})))
    rig.flush()  # 22002 [BTC, XRP], seq_id 2
    rig.frames([response(2)], unwanted=0)
    xrp_pushes(2)  # XRP's book is not routed yet
    clock.now_s += 0.1
    rig.ref.tell(DesiredChanged(frozenset({"BTCUSDT"})))
    rig.flush()  # too soon after the last request: re-scheduled
    xrp_pushes(5)
    clock.now_s += 1.0
    rig.flush()  # 22002 [BTC], seq_id 3
    clock.now_s += 5.0  # the pacer (heartbeats queued ahead) and the venue take their time
    xrp_pushes(5)
    assert rig.counters().counters.ghost_unsubscribes == 0 and len(rig.sent()) == 3
    rig.wire.send([response(3)])
    wait_until(lambda: rig.counters().counters.acks == 3, 5, "the ack of our unsubscribe")
    assert rig.counters().counters.in_flight_frames == 5
    xrp_pushes(3)  # after the ack: the venue did not drop it
    assert rig.counters().counters.ghost_unsubscribes == 1
    clock.now_s += 1.0
    rig.flush()  # the reap is one 22002 with the wanted list
    xrp_pushes(10)  # still coming: never unsubscribed twice on this socket
    clock.now_s += 30.0
    xrp_pushes(10)
    assert rig.counters().counters.ghost_unsubscribes == 1
    assert rig.sent() == ["22002 (1 codes)", "22002 (2 codes)", "22002 (1 codes)", "22002 (1 codes)"]


# -- #10: a flood of distinct unknown codes ----------------------------------------------------

def test_a_flood_of_codes_we_never_subscribed_is_counted_never_unsubscribed(rigs: Callable[..., Rig]) -> None:
    rig = rigs("article")
    rig.ref.tell(SocketOpened(1))
    rig.conn.wait_for(SendFrame)
    flood = [frame for i in range(5000) for frame in diffs(f"ZZ{i:05d}USDT", 3)]
    rig.frames(flood, unwanted=len(flood))
    assert rig.sent() == ["sub ['BTCUSDT']"]  # not one unsubscribe per made-up code
    counters = rig.counters()
    assert counters.counters.ghost_unsubscribes == 0
    assert counters.counters.unknown_code_frames == len(flood) and counters.left_codes == 0  # no per-code state


def test_ghost_state_is_bounded_and_cleared_per_socket(rigs: Callable[..., Rig]) -> None:
    rig = rigs("article")
    rig.ref.tell(SocketOpened(1))
    many = frozenset(f"C{i:05d}" for i in range(ghosts.LEFT_CODES_LIMIT + 500))
    rig.ref.tell(DesiredChanged(many | {"BTCUSDT"}))
    rig.flush()
    rig.ref.tell(DesiredChanged(frozenset({"BTCUSDT"})))
    rig.flush()
    wait_until(lambda: rig.counters().counters.codes_unsubscribed == len(many), 5, "all left")
    assert rig.counters().left_codes == ghosts.LEFT_CODES_LIMIT
    rig.ref.tell(SocketOpened(2))
    assert rig.counters().left_codes == 0
