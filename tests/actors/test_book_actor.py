"""BookActor with real pykka actors and fakes: sync, fencing, snapshots, listeners."""

from __future__ import annotations

from typing import Any

import pytest

from depthkeeper.actors.book import BookActor
from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.core.promise import SocketState
from depthkeeper.actors.core.sync import ResyncReason
from depthkeeper.actors.core.wire import DiffEvent, Snapshot
from depthkeeper.actors.listeners import ListenerHub
from depthkeeper.actors.messages import (
    BookStatusChanged,
    BookUpdated,
    BridgeDeadline,
    CodeRejected,
    DiffBatch,
    FetchDeadline,
    GetBookStats,
    GetView,
    RequestSnapshot,
    Resync,
    RetrySnapshot,
    SnapshotLost,
    SnapshotReady,
    SocketLost,
)
from depthkeeper.actors.readport import ReadPorts
from depthkeeper.actors.routing import Peers, SubscriptionLedger
from depthkeeper.actors.settings import VenueConfig
from depthkeeper.actors.venues.article import ArticleVenue
from depthkeeper.supervisor.otp.spec import ChildContext
from depthkeeper.supervisor.service.config import BookConfig
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
    rig.socket = SocketState(silence_bound_s=60.0)
    rig.socket.opened(1)
    rig.ref = BookActor.start(ChildContext(rig.sup.ref, "book:BTCUSDT", 1), "BTCUSDT", venue=ArticleVenue(VenueConfig()),
                              cfg=BookConfig(snapshot_buffer=100), peers=rig.peers, hub=rig.hub,
                              scheduler=rig.scheduler, epoch=1, ports=rig.ports, socket=rig.socket)
    yield rig
    rig.hub.close()


def snapshot_reply(rig: Any, seq: int, index: int = 0, bids: Any = ((100.0, 1.0),)) -> None:
    req = rig.snap.all(RequestSnapshot)[index]
    rig.ref.tell(SnapshotReady("BTCUSDT", req.token, Snapshot("BTCUSDT", seq, bids, ((101.0, 1.0),))))


def quiet_live(rig: Any, seq: int, index: int = 0) -> None:
    """A quiet market: the snapshot is held for the stream, then accepted at the bridge deadline."""
    snapshot_reply(rig, seq, index)
    rig.ref.ask(GetView(), timeout=2)  # the reply was handled and the deadline registered
    assert rig.scheduler.fire(BridgeDeadline) == 1
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE


def fire_deadline(rig: Any) -> RequestSnapshot:
    """No diff came: the deadline timer makes the book fetch anyway."""
    rig.ref.ask(GetView(), timeout=2)  # init has run and the timer is registered
    assert rig.scheduler.fire(FetchDeadline) == 1
    return rig.snap.wait_for(RequestSnapshot)


def unconfirmed_book(ledger: SubscriptionLedger) -> tuple[Any, RecorderHandle, ManualScheduler]:
    """A book whose code's SUBSCRIBE went out on socket 1 and was not answered yet."""
    sup, snap = RecorderHandle(), RecorderHandle()
    peers = Peers()
    peers.snapshot = snap.ref
    scheduler, socket = ManualScheduler(), SocketState(silence_bound_s=60.0)
    socket.opened(1)
    ledger.record(1, {"BTCUSDT"}, {"BTCUSDT": 7}, 7)
    ref = BookActor.start(ChildContext(sup.ref, "book:BTCUSDT", 1), "BTCUSDT", venue=ArticleVenue(VenueConfig()),
                          cfg=BookConfig(snapshot_buffer=100), peers=peers, hub=ListenerHub(), scheduler=scheduler,
                          epoch=1, socket=socket, ledger=ledger)
    ref.ask(GetView(), timeout=2)  # init has run and the first-diff deadline is registered
    return ref, snap, scheduler


def test_no_snapshot_is_fetched_for_a_stream_the_venue_has_not_confirmed_until_its_first_diff() -> None:
    """1000 Binance symbols subscribed in five paced SUBSCRIBEs: books of the later requests fetched
    at the first-diff deadline, before the venue streamed their code, so 592 of 1000 snapshots
    predated their stream and were fetched again (the REST weight spent, a minute's wait). While
    the venue has not confirmed the code, the deadline is prolonged instead; a diff or the
    confirmation ends the wait."""
    ledger = SubscriptionLedger()
    ref, snap, scheduler = unconfirmed_book(ledger)
    try:
        for _ in range(3):  # each deadline re-arms itself while unconfirmed
            assert scheduler.fire(FetchDeadline) == 1
            ref.ask(GetView(), timeout=2)
            assert snap.all(RequestSnapshot) == []
        ledger.record(1, {"BTCUSDT"}, {}, 7)  # answered: a silence from now on is a quiet market
        assert scheduler.fire(FetchDeadline) == 1
        snap.wait_for(RequestSnapshot)
        assert scheduler.fire(FetchDeadline) == 0
    finally:
        ref.stop()
    ref, snap, scheduler = unconfirmed_book(SubscriptionLedger())
    try:
        assert scheduler.fire(FetchDeadline) == 1
        ref.tell(DiffBatch(1, (d(5, 99.0),), 0.0))  # the stream began: fetch now, confirmed or not
        snap.wait_for(RequestSnapshot)
    finally:
        ref.stop()


def test_the_wait_for_an_unconfirmed_stream_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import depthkeeper.actors.booksync as booksync

    monkeypatch.setattr(booksync, "UNCONFIRMED_WAIT_MAX_S", 0.0)
    ref, snap, scheduler = unconfirmed_book(SubscriptionLedger())
    try:
        assert scheduler.fire(FetchDeadline) == 1
        snap.wait_for(RequestSnapshot)  # fetched: bridge_deadline then judges the silence (below)
    finally:
        ref.stop()


def test_a_silent_stream_is_quiet_only_once_the_venue_confirmed_the_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos (binance, seed 1): the book of a code whose SUBSCRIBE the venue had not answered yet
    (held back while a refused request was split) went LIVE from its snapshot alone at the bridge
    deadline. The ledger tells the book what the venue has confirmed on the socket. (The fetch
    itself is deferred while unconfirmed, up to ``UNCONFIRMED_WAIT_MAX_S``: set to 0 here.)"""
    import depthkeeper.actors.booksync as booksync

    monkeypatch.setattr(booksync, "UNCONFIRMED_WAIT_MAX_S", 0.0)
    sup, snap = RecorderHandle(), RecorderHandle()
    peers = Peers()
    peers.snapshot = snap.ref
    scheduler, socket, ledger = ManualScheduler(), SocketState(silence_bound_s=60.0), SubscriptionLedger()
    socket.opened(1)
    ledger.record(1, {"BTCUSDT"}, {"BTCUSDT": 7}, 7)  # sent on socket 1, not answered yet
    ref = BookActor.start(ChildContext(sup.ref, "book:BTCUSDT", 1), "BTCUSDT", venue=ArticleVenue(VenueConfig()),
                          cfg=BookConfig(snapshot_buffer=100), peers=peers, hub=ListenerHub(), scheduler=scheduler,
                          epoch=1, socket=socket, ledger=ledger)
    try:
        ref.ask(GetView(), timeout=2)
        assert scheduler.fire(FetchDeadline) == 1
        first = snap.wait_for(RequestSnapshot)
        ref.tell(SnapshotReady("BTCUSDT", first.token, Snapshot("BTCUSDT", 7, ((100.0, 1.0),), ((101.0, 1.0),))))
        ref.ask(GetView(), timeout=2)
        assert scheduler.fire(BridgeDeadline) == 1
        view = ref.ask(GetView(), timeout=2)
        assert view.status is BookStatus.SYNCING and "confirm" in view.reason
        ledger.record(1, {"BTCUSDT"}, {}, 7)  # the venue answered: from now on silence is a quiet market
        assert scheduler.fire(BridgeDeadline) == 1  # held since before that: fetched again
        assert ref.ask(GetView(), timeout=2).status is BookStatus.SYNCING
        assert scheduler.fire(RetrySnapshot) == 1  # after the backoff, at once (it was due)
        second = snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token > first.token)
        ref.tell(SnapshotReady("BTCUSDT", second.token, Snapshot("BTCUSDT", 9, ((100.0, 2.0),), ((101.0, 1.0),))))
        ref.ask(GetView(), timeout=2)
        assert scheduler.fire(BridgeDeadline) == 1
        view = ref.ask(GetView(), timeout=2)
        assert view.status is BookStatus.LIVE and view.seq == 9
    finally:
        ref.stop()


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
    view = rig.ref.ask(GetView(), timeout=2)
    assert view.status is BookStatus.SYNCING and "waiting for the stream" in view.reason
    assert rig.scheduler.fire(BridgeDeadline) == 1
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE


def test_gap_requests_a_new_snapshot_with_a_new_token(rig: Any) -> None:
    fire_deadline(rig)
    quiet_live(rig, 10)
    rig.ref.tell(DiffBatch(1, (d(11, 99.0), d(14, 98.0)), 0.0))
    second = rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)
    assert second.code == "BTCUSDT"
    stats = rig.ref.ask(GetBookStats(), timeout=2)
    assert stats.gaps == 1 and stats.status is BookStatus.RESYNCING


def test_older_epoch_data_is_ignored_newer_epoch_resyncs(rig: Any) -> None:
    fire_deadline(rig)
    quiet_live(rig, 10)
    rig.ref.tell(DiffBatch(0, (d(11, 50.0),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).seq == 10
    rig.socket.opened(2)
    rig.ref.tell(DiffBatch(2, (d(11, 50.0),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.RESYNCING
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)  # fetched at once: diff buffered
    rig.ref.tell(Resync(2, ResyncReason.RECONNECT))  # the tree's Resync for the same epoch is a no-op now
    assert rig.ref.ask(GetBookStats(), timeout=2).resyncs == 1


def test_a_new_socket_before_the_first_sync_restarts_it_as_a_first_sync(rig: Any) -> None:
    """The request of the old socket cannot bridge the new one: a new sync, still SYNCING, not a resync."""
    fire_deadline(rig)
    rig.socket.opened(2)
    rig.ref.tell(Resync(2, ResyncReason.RECONNECT))
    stats = rig.ref.ask(GetBookStats(), timeout=2)
    assert stats.resyncs == 0 and stats.status is BookStatus.SYNCING and stats.epoch == 2
    rig.ref.tell(DiffBatch(2, (d(3, 99.0),), 0.0))
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)


def test_snapshot_lost_rerequests_only_when_waiting(rig: Any) -> None:
    fire_deadline(rig)
    rig.ref.tell(SnapshotLost())
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)
    quiet_live(rig, 3, index=1)
    rig.ref.tell(SnapshotLost())
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE
    assert len(rig.snap.all(RequestSnapshot)) == 2


def test_listeners_get_status_changes_and_updates(rig: Any) -> None:
    fire_deadline(rig)
    quiet_live(rig, 3)
    rig.ref.tell(DiffBatch(1, (d(4, 99.5),), 0.0))
    assert rig.ref.ask(GetView(), timeout=2).seq == 4
    wait_until(lambda: any(isinstance(e, BookUpdated) and e.view.seq == 4 for e in rig.events), 3, "the seq-4 view")
    statuses = [e for e in rig.events if isinstance(e, BookStatusChanged)]
    assert (statuses[0].old, statuses[0].new) == (BookStatus.SYNCING, BookStatus.LIVE)
    assert any(isinstance(e, BookUpdated) and e.view.seq == 4 for e in rig.events)


def test_socket_lost_leaves_live_at_once_and_fetches_nothing_until_a_new_socket(rig: Any) -> None:
    """Defect 1: a LIVE book on a dead socket reads DISCONNECTED (with the reason), even before its
    actor hears of it; it fetches nothing until the new socket, then resyncs through a snapshot."""
    fire_deadline(rig)
    quiet_live(rig, 10)
    rig.socket.closed(1, "closed by peer")
    view = rig.ref.ask(GetView(), timeout=2)  # the actor has not been told yet: the read path says so
    assert view.status is BookStatus.DISCONNECTED and "closed by peer" in view.reason
    rig.ref.tell(SocketLost(1, "closed by peer"))
    rig.ref.tell(DiffBatch(1, (d(11, 99.0),), 0.0))  # a late frame of the dead socket
    stats = rig.ref.ask(GetBookStats(), timeout=2)
    assert stats.status is BookStatus.DISCONNECTED and stats.old_epoch_batches == 1 and stats.seq == 10
    wait_until(lambda: any(isinstance(e, BookStatusChanged) and e.new is BookStatus.DISCONNECTED
                           for e in rig.events), 3, "the DISCONNECTED event")
    assert len(rig.snap.all(RequestSnapshot)) == 1
    rig.socket.opened(2)
    rig.ref.tell(Resync(2, ResyncReason.RECONNECT))
    rig.ref.tell(DiffBatch(2, (d(14, 99.0),), 0.0))
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token > 1)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.RESYNCING
    snapshot_reply(rig, 13, index=1)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE


def test_no_snapshot_is_requested_while_the_socket_is_down(rig: Any) -> None:
    rig.socket.closed(1, "refused")
    rig.ref.tell(SocketLost(1, "refused"))
    rig.ref.ask(GetView(), timeout=2)
    rig.scheduler.fire(FetchDeadline)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.DISCONNECTED
    assert rig.snap.all(RequestSnapshot) == []


def test_rejected_code_is_never_live_and_a_resubscribe_retries(rig: Any) -> None:
    """Defect 6: a rejected code shows REJECTED with the venue's message; no snapshot makes it LIVE."""
    fire_deadline(rig)
    req = rig.snap.wait_for(RequestSnapshot)
    rig.ref.tell(CodeRejected("BTCUSDT", "ret 604 code unauthorized"))
    rig.ref.tell(SnapshotReady("BTCUSDT", req.token, Snapshot("BTCUSDT", 5, ((100.0, 1.0),), ((101.0, 1.0),))))
    rig.socket.opened(2)
    rig.ref.tell(Resync(2, ResyncReason.RECONNECT))
    rig.ref.tell(DiffBatch(2, (d(6, 99.0),), 0.0))
    view = rig.ref.ask(GetView(), timeout=2)
    assert view.status is BookStatus.REJECTED and "604" in view.reason and view.bids == ()
    assert len(rig.snap.all(RequestSnapshot)) == 1
    rig.ref.tell(Resync(2, ResyncReason.RESUBSCRIBED))
    rig.ref.tell(DiffBatch(2, (d(7, 99.0),), 0.0))
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token > req.token)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.SYNCING


def test_an_unusable_snapshot_is_retried_after_a_backoff(rig: Any) -> None:
    """Defect 8: a crossed (or empty) snapshot is not refetched at once but after the book's backoff."""
    rig.ref.tell(DiffBatch(1, (d(5, 99.0),), 0.0))
    rig.snap.wait_for(RequestSnapshot)
    snapshot_reply(rig, 5, bids=((200.0, 1.0),))  # crossed
    view = rig.ref.ask(GetView(), timeout=2)
    assert view.status is BookStatus.SYNCING and "crossed" in view.reason
    assert len(rig.snap.all(RequestSnapshot)) == 1
    assert rig.scheduler.fire(RetrySnapshot) == 1
    rig.snap.wait_for(lambda m: isinstance(m, RequestSnapshot) and m.token == 2)
    snapshot_reply(rig, 5, index=1)
    assert rig.ref.ask(GetView(), timeout=2).status is BookStatus.LIVE
