"""BookActor with real pykka actors and fakes: sync, fencing, snapshots, listeners."""

from __future__ import annotations

from typing import Any

import pytest

from depthkeeper.actors.book import BookActor
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.messages import (
    BookStatusChanged,
    BookUpdated,
    DiffBatch,
    FetchDeadline,
    GetBookStats,
    GetView,
    RequestSnapshot,
    Resync,
    SnapshotLost,
    SnapshotReady,
)
from depthkeeper.actors.orderbook import BookStatus
from depthkeeper.actors.readport import ReadPorts
from depthkeeper.actors.routing import Peers
from depthkeeper.actors.wire import DiffEvent, Snapshot
from depthkeeper.supervisor.config import BookConfig
from depthkeeper.supervisor.spec import ChildContext

from tests.support import wait_until

from .fakes import ManualScheduler, RecorderHandle


def d(seq: int, price: float, size: float = 1.0, bid: bool = True) -> DiffEvent:
    return DiffEvent("BTCUSDT", seq, bid, price, size)


@pytest.fixture
def rig() -> Any:
    class Rig:
        pass

    rig = Rig()
    rig.sup = RecorderHandle()
    rig.snap = RecorderHandle()
    rig.peers = Peers()
    rig.peers.snapshot = rig.snap.ref
    rig.ports = ReadPorts()
    rig.hub = ListenerHub(ports=rig.ports)
    rig.events: list[Any] = []
    rig.hub.add(rig.events.append)
    rig.scheduler = ManualScheduler()
    rig.ref = BookActor.start(ChildContext(rig.sup.ref, "book:BTCUSDT", 1), "BTCUSDT", dialect="article",
                              cfg=BookConfig(snapshot_buffer=100), peers=rig.peers, hub=rig.hub,
                              scheduler=rig.scheduler, epoch=1, ports=rig.ports)
    yield rig
    rig.hub.close()


def snapshot_reply(rig: Any, seq: int, index: int = 0) -> None:
    req = rig.snap.all(RequestSnapshot)[index]
    rig.ref.tell(SnapshotReady("BTCUSDT", req.token, Snapshot("BTCUSDT", seq, ((100.0, 1.0),), ((101.0, 1.0),))))


def fire_deadline(rig: Any) -> RequestSnapshot:
    """No diff came: the deadline timer makes the book fetch anyway."""
    rig.ref.ask(GetView(), timeout=2)  # init has run and the timer is registered
    assert rig.scheduler.fire(FetchDeadline) == 1
    return rig.snap.wait_for(RequestSnapshot)


def test_first_diff_triggers_the_snapshot_request_then_bridges_to_live(rig: Any) -> None:
    """A new book waits for the stream, asks for a snapshot, bridges, and is LIVE."""
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.SYNCING
    assert rig.snap.all(RequestSnapshot) == []
    rig.ref.tell(DiffBatch(1, (d(5, 99.0), d(6, 98.0)), 0.0))
    req = rig.snap.wait_for(RequestSnapshot)
    assert req.code == "BTCUSDT" and req.reply_to == rig.ref
    snapshot_reply(rig, 5)
    view = rig.ref.ask(GetView(), timeout=2)
    assert view.status is BookStatus.LIVE and view.seq == 6
    assert view.bids == ((100.0, 1.0), (98.0, 1.0)) and view.asks == ((101.0, 1.0),)


def test_quiet_market_fetches_at_the_deadline(rig: Any) -> None:
    """With no diff at all (a frozen market) the book still gets LIVE from the snapshot."""
    fire_deadline(rig)
    snapshot_reply(rig, 7)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE


def test_gap_requests_a_new_snapshot_with_a_new_token(rig: Any) -> None:
    fire_deadline(rig)
    snapshot_reply(rig, 10)
    rig.ref.tell(DiffBatch(1, (d(11, 99.0), d(14, 98.0)), 0.0))
    second = rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)
    assert second.code == "BTCUSDT"
    stats = rig.ref.ask(GetBookStats(), timeout=2)
    assert stats.gaps == 1 and stats.status is BookStatus.RESYNCING


def test_older_epoch_data_is_ignored_newer_epoch_resyncs(rig: Any) -> None:
    fire_deadline(rig)
    snapshot_reply(rig, 10)
    rig.ref.tell(DiffBatch(0, (d(11, 50.0),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).seq == 10
    rig.ref.tell(DiffBatch(2, (d(11, 50.0),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.RESYNCING
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)  # fetched at once: diff buffered
    rig.ref.tell(Resync(2, "reconnect"))  # the tree's Resync for the same epoch is a no-op now
    assert rig.ref.ask(GetBookStats(), timeout=2).resyncs == 1


def test_reconnect_before_any_data_reuses_the_pending_request(rig: Any) -> None:
    fire_deadline(rig)
    rig.ref.tell(Resync(2, "reconnect"))
    assert rig.ref.ask(GetBookStats(), timeout=2).resyncs == 0
    assert len(rig.snap.all(RequestSnapshot)) == 1


def test_snapshot_lost_rerequests_only_when_waiting(rig: Any) -> None:
    fire_deadline(rig)
    rig.ref.tell(SnapshotLost())
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)
    snapshot_reply(rig, 3, index=1)
    rig.ref.tell(SnapshotLost())
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE
    assert len(rig.snap.all(RequestSnapshot)) == 2


def test_listeners_get_status_changes_and_updates(rig: Any) -> None:
    fire_deadline(rig)
    snapshot_reply(rig, 3)
    rig.ref.tell(DiffBatch(1, (d(4, 99.5),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).seq == 4
    wait_until(lambda: any(isinstance(e, BookUpdated) and e.view.seq == 4 for e in rig.events), 3, "the seq-4 view")
    statuses = [e for e in rig.events if isinstance(e, BookStatusChanged)]
    assert (statuses[0].old, statuses[0].new) == (BookStatus.SYNCING, BookStatus.LIVE)
    assert any(isinstance(e, BookUpdated) and e.view.seq == 4 for e in rig.events)
