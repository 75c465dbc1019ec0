"""The SubscriptionActor on the binance venue: the 1024-stream limit, all-or-nothing refusals split
until the bad code is alone, and LIST_SUBSCRIPTIONS reconciliation.

A real SubscriptionActor; recorders stand in for the ConnectionActor (every frame it is asked to
send) and the tree (every CodeRejected); the venue's answers are real Binance frames decoded by the
venue's own codec; a manual scheduler fires the pacing timers when the test says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from depthkeeper.actors.core.symbols import SymbolRules
from depthkeeper.actors.messages import (
    AckReceived,
    CodeRejected,
    DesiredChanged,
    FlushSubscriptions,
    GetCounters,
    SendFrame,
    SocketOpened,
)
from depthkeeper.actors.routing import Peers, SubscriptionLedger
from depthkeeper.actors.settings import SubscriptionConfig, VenueConfig
from depthkeeper.actors.subscription import SubscriptionActor
from depthkeeper.actors.venues.binance import BinanceVenue, decode
from depthkeeper.supervisor.otp.spec import ChildContext

from .fakes import ManualScheduler, RecorderHandle


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class Rig:
    def __init__(self, desired: frozenset[str]) -> None:
        self.clock = Clock()
        self.conn, self.tree = RecorderHandle(), RecorderHandle()
        self.scheduler = ManualScheduler()
        peers = Peers()
        peers.connection, peers.tree = self.conn.ref, self.tree.ref
        self.peers, self.desired, self.ledger = peers, desired, SubscriptionLedger()
        self.ref = self.start()
        self.ref.tell(SocketOpened(1))

    def start(self, epoch: int = 0) -> Any:
        """A SubscriptionActor (a restarted one on socket ``epoch`` when given) sharing the ledger."""
        ref = SubscriptionActor.start(
            ChildContext(RecorderHandle().ref, "subscription", 1), venue=BinanceVenue(VenueConfig(dialect="binance")),
            cfg=SubscriptionConfig(min_interval_s=0.3, coalesce_window_s=0.02), rules=SymbolRules(), peers=self.peers,
            scheduler=self.scheduler, desired=self.desired, clock=self.clock, epoch=epoch, ledger=self.ledger)
        self.peers.subscription = ref
        return ref

    def requests(self) -> list[dict[str, Any]]:
        """Every request sent so far, decoded (a barrier on the actor first)."""
        self.ref.ask(GetCounters(), timeout=5)
        self.conn.ref.ask("barrier", timeout=5)
        return [orjson.loads(m.text) for m in self.conn.all(SendFrame)]

    def subscribes(self) -> list[list[str]]:
        return [q["params"] for q in self.requests() if q["method"] == "SUBSCRIBE"]

    def refuse(self, request: dict[str, Any]) -> None:
        self.answer(b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":%d}' % request["id"])

    def accept(self, request: dict[str, Any]) -> None:
        self.answer(b'{"result":null,"id":%d}' % request["id"])

    def flush(self) -> None:
        """One pacing interval later, the actor's pending flush fires."""
        self.ref.ask(GetCounters(), timeout=5)
        self.clock.now_s += 0.5
        self.scheduler.fire(FlushSubscriptions)

    def answer(self, raw: bytes) -> None:
        self.ref.tell(AckReceived(1, decode(raw)))

    def rejected(self) -> dict[str, str]:
        self.ref.ask(GetCounters(), timeout=5)
        self.tree.ref.ask("barrier", timeout=5)
        return {m.code: m.reason for m in self.tree.all(CodeRejected)}

    def counters(self) -> Any:
        return self.ref.ask(GetCounters(), timeout=5)


@pytest.fixture
def rig() -> Iterator[Any]:
    made: list[Rig] = []

    def make(*codes: str) -> Rig:
        made.append(Rig(frozenset(codes)))
        return made[-1]

    yield make


def params(requests: list[dict[str, Any]], method: str = "SUBSCRIBE") -> list[str]:
    return [name for r in requests if r["method"] == method for name in r["params"]]


def test_code_1025_is_rejected_naming_the_limit_and_never_sent(rig: Any) -> None:
    codes = [f"C{i:04d}USDT" for i in range(1025)]
    r = rig(*codes)
    for _ in range(8):  # one request per pacing interval: 200 + 200 + 200 + 200 + 200 + 24
        r.flush()
    sent = params(r.requests())
    assert len(sent) == 1024 and "c1024usdt@depth@100ms" not in sent
    assert [len(q["params"]) for q in r.requests() if q["method"] == "SUBSCRIBE"] == [200, 200, 200, 200, 200, 24]
    reason = r.rejected()["C1024USDT"]
    assert "1024 streams per connection" in reason and len(r.rejected()) == 1
    assert r.counters().rejected == {"C1024USDT": reason}


def test_a_refused_burst_is_split_until_the_bad_code_is_rejected_by_name(rig: Any) -> None:
    """SUBSCRIBE is all or nothing: one bad code refuses the burst; halves are asked again until it is alone."""
    r = rig("AAAUSDT", "BADUSDT", "CCCUSDT")
    first = r.requests()[0]
    assert len(first["params"]) == 3
    r.refuse(first)
    r.flush()
    assert r.subscribes()[1:] == [["aaausdt@depth@100ms"]]
    r.accept(r.requests()[-1])
    r.flush()
    assert r.subscribes()[2:] == [["badusdt@depth@100ms", "cccusdt@depth@100ms"]]
    r.refuse(r.requests()[-1])
    r.flush()
    assert r.subscribes()[3:] == [["badusdt@depth@100ms"]]
    r.refuse(r.requests()[-1])
    r.flush()
    assert r.subscribes()[4:] == [["cccusdt@depth@100ms"]]
    r.accept(r.requests()[-1])
    assert r.rejected() == {"BADUSDT": "error 2: Invalid request: invalid stream"}
    r.flush()
    assert r.requests()[-1]["method"] == "LIST_SUBSCRIPTIONS"
    assert set(r.counters().active) == {"AAAUSDT", "CCCUSDT"}


def test_after_a_burst_the_venues_list_is_asked_and_differences_are_fixed(rig: Any) -> None:
    r = rig("BTCUSDT", "ETHUSDT")
    r.flush()
    listing = r.requests()[-1]
    assert listing == {"method": "LIST_SUBSCRIPTIONS", "id": listing["id"]}
    r.answer(b'{"result":["btcusdt@depth@100ms","solusdt@depth@100ms"],"id":%d}' % listing["id"])
    r.flush()
    r.flush()
    fixes = [(q["method"], q.get("params")) for q in r.requests()[2:]]
    assert fixes[:2] == [("UNSUBSCRIBE", ["solusdt@depth@100ms"]), ("SUBSCRIBE", ["ethusdt@depth@100ms"])]
    assert set(r.counters().active) == {"BTCUSDT", "ETHUSDT"}


def test_a_list_answer_overtaken_by_a_later_request_changes_nothing(rig: Any) -> None:
    r = rig("BTCUSDT")
    r.flush()
    listing = r.requests()[-1]
    r.ref.tell(DesiredChanged(frozenset({"BTCUSDT", "ETHUSDT"})))
    r.flush()
    assert r.requests()[-1]["method"] == "SUBSCRIBE"
    r.answer(b'{"result":["btcusdt@depth@100ms"],"id":%d}' % listing["id"])  # ETHUSDT was asked after it
    assert set(r.counters().active) == {"BTCUSDT", "ETHUSDT"}


def test_the_ledger_confirms_a_subscribe_only_once_the_venue_has_answered_it(rig: Any) -> None:
    """Books read the ledger: a stream that sent nothing is a quiet market only once the venue has
    accepted its SUBSCRIBE (before, or after a refusal, nothing streams it yet)."""
    r = rig("AAAUSDT", "BADUSDT")
    first = r.requests()[0]
    assert r.ledger.active == {"AAAUSDT", "BADUSDT"} and not r.ledger.holds(1, "AAAUSDT")
    r.refuse(first)
    r.counters()
    assert r.ledger.active == set() and not r.ledger.holds(1, "AAAUSDT")
    r.flush()
    single = r.requests()[-1]
    assert single["params"] == ["aaausdt@depth@100ms"] and not r.ledger.holds(1, "AAAUSDT")
    r.accept(single)
    r.counters()
    assert r.ledger.holds(1, "AAAUSDT") and not r.ledger.holds(1, "BADUSDT") and not r.ledger.holds(2, "AAAUSDT")


def test_a_restarted_actor_numbers_its_requests_on_and_asks_the_venue_what_it_has(rig: Any) -> None:
    """Request ids restarted at 1 with every SubscriptionActor restart on the same socket, so the answer
    to the dead incarnation's request N could be read as the answer to the new one's request N; and
    answers lost with the dead incarnation left the new one believing in codes the venue refused."""
    r = rig("AAAUSDT", "BBBUSDT")
    first = r.requests()[0]
    r.ref.stop()  # killed with its SUBSCRIBE unanswered
    r.scheduler.close()  # its timers died with it
    r.ref = r.start(epoch=1)
    r.refuse(first)  # the dead incarnation's request: the new one cannot know which codes it named
    r.flush()
    listing = r.requests()[-1]
    assert listing["method"] == "LIST_SUBSCRIPTIONS" and listing["id"] > first["id"]
    r.answer(b'{"result":[],"id":%d}' % listing["id"])
    r.flush()
    again = r.requests()[-1]
    assert again["method"] == "SUBSCRIBE" and again["id"] > listing["id"]
    assert sorted(again["params"]) == ["aaausdt@depth@100ms", "bbbusdt@depth@100ms"]
