"""The cluster's pure parts: entry encoding, view deltas, the consumer's follower, fair share."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookView
from depthkeeper.cluster.bus import parse_id, refused
from depthkeeper.cluster.entries import Track, decode_levels, encode_levels
from depthkeeper.cluster.follower import Follower, effective_status
from depthkeeper.cluster.keys import Keys, bucket
from depthkeeper.cluster.leases import plan


def view(seq: int, bids: dict[float, float], asks: dict[float, float], status: BookStatus = BookStatus.LIVE,
         code: str = "BTCUSDT") -> BookView:
    return BookView(code, status, seq, tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())),
                    1_700_000_000.0 + seq / 1000)


def as_fields(entry: tuple, ep: int) -> dict[str, str]:
    """What the publish script writes for one entry (see publish.lua)."""
    t, sq, vs, tu, b, a, st_, why = entry
    fields = {"t": t, "ep": str(ep), "sq": str(sq), "vs": str(vs), "tu": repr(tu), "tp": "1"}
    if b:
        fields["b"] = b
    if a:
        fields["a"] = a
    if t == "X":
        fields["st"], fields["why"] = st_, why
    return fields


def test_levels_round_trip_the_exact_floats() -> None:
    levels = ((64123.5, 0.25), (0.1 + 0.2, 1e-05), (1e21, 3.0))
    assert tuple(decode_levels(encode_levels(levels))) == levels
    assert decode_levels("") == []


def test_bucket_is_stable_and_keys_share_one_hash_tag() -> None:
    # crc32 mod 64: the same on every host and Python (a change would rename every key of a cluster)
    assert (bucket("BTCUSDT"), bucket("ETHUSDT")) == (3, 28)
    keys = Keys("dk")
    log, snap, status = keys.symbol("BTCUSDT")
    tags = {k[k.index("{"): k.index("}") + 1] for k in (log, snap, status)}
    assert tags == {f"{{dk:b{bucket('BTCUSDT'):02d}}}"}
    assert keys.lease(3).startswith("{dk:ctl}") and keys.desired.startswith("{dk:ctl}")


def test_ids_and_verdicts() -> None:
    assert parse_id("1700-3") > parse_id("1700-2") > parse_id("0-0") == parse_id("")
    assert refused("FENCED:3") and refused("LOST:0:0") and not refused("1700-1")


def test_track_sends_a_snapshot_then_deltas_then_status_and_a_fresh_snapshot() -> None:
    track = Track()
    first = track.view(view(10, {100.0: 1.0, 99.0: 2.0}, {101.0: 1.0}), snapshot_every=100)
    assert first is not None and first[0] == "S" and first[1] == 1 and first[2] == 10
    delta = track.view(view(12, {100.0: 1.5}, {101.0: 1.0}), snapshot_every=100)
    assert delta is not None and delta[0] == "D" and delta[1] == 2
    assert sorted(decode_levels(delta[4])) == [(99.0, 0.0), (100.0, 1.5)] and delta[5] == ""
    assert track.view(view(12, {100.0: 1.5}, {101.0: 1.0}), snapshot_every=100) is None  # nothing new
    x = track.status("RESYNCING", "gap")
    assert x is not None and x[0] == "X" and x[6] == "RESYNCING" and x[7] == "gap"
    assert track.status("RESYNCING", "again") is None
    again = track.view(view(20, {100.0: 1.0}, {101.0: 1.0}), snapshot_every=100)
    assert again is not None and again[0] == "S" and again[1] == 4


def test_track_repeats_the_snapshot_every_n_deltas() -> None:
    track = Track()
    kinds = [track.view(view(i, {100.0: float(i)}, {101.0: 1.0}), snapshot_every=3)[0] for i in range(1, 9)]  # type: ignore[index]
    assert kinds == ["S", "D", "D", "D", "S", "D", "D", "D"]


def test_a_non_live_view_becomes_a_status_entry() -> None:
    track = Track()
    entry = track.view(view(5, {}, {}, status=BookStatus.SYNCING), snapshot_every=10)
    assert entry is not None and entry[0] == "X" and entry[6] == "SYNCING"


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=5, max_value=60))
def test_replaying_the_entries_rebuilds_every_published_live_view(seed: int, steps: int) -> None:
    """Any sequence of views (conflated, with resyncs) -> entries -> a follower equals each LIVE view."""
    rng = random.Random(seed)
    track, follower = Track(), Follower("BTCUSDT")
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    seq = 0
    for _ in range(steps):
        for _ in range(rng.randint(1, 5)):  # several venue diffs conflated into one view
            side = bids if rng.random() < 0.5 else asks
            price = float(rng.randint(1, 30)) + (0 if side is asks else -40)
            if price in side and rng.random() < 0.3:
                del side[price]
            else:
                side[price] = rng.randint(1, 9999) / 100
            seq += 1
        status = BookStatus.LIVE if rng.random() < 0.85 else BookStatus.RESYNCING
        entry = track.view(view(seq, bids, asks, status), snapshot_every=7)
        if entry is None:
            continue
        assert follower.apply(f"1-{entry[1]}", as_fields(entry, ep=1)) is None
        if status is BookStatus.LIVE:
            assert follower.state == "LIVE" and follower.vs == seq
            assert follower.bids == bids and follower.asks == asks
        else:
            assert follower.state == "RESYNCING" and follower.bids is None


def entry_fields(t: str, ep: int, sq: int, **extra: str) -> dict[str, str]:
    return {"t": t, "ep": str(ep), "sq": str(sq), "vs": str(sq * 10), "tu": "1.0", "tp": "1", **extra}


def test_follower_rules() -> None:
    f = Follower("X")
    assert f.apply("1-1", entry_fields("X", 3, 1, st="RESYNCING", why="claim")) is None  # epoch start anchors
    assert f.apply("1-2", entry_fields("S", 3, 2, b="1.0:1.0", a="2.0:1.0")) is None
    assert f.apply("1-3", entry_fields("D", 3, 3, b="1.0:0.0,0.5:2.0")) is None
    assert f.bids == {0.5: 2.0} and f.state == "LIVE" and f.vs == 30
    assert f.apply("1-5", entry_fields("D", 3, 5)) == "gap: bus seq 3 -> 5"
    assert f.apply("1-5", entry_fields("D", 3, 3)).startswith("bus seq went back")  # type: ignore[union-attr]
    assert f.apply("1-5", entry_fields("D", 2, 4)).startswith("epoch went back")  # type: ignore[union-attr]
    assert f.apply("1-5", entry_fields("D", 4, 7)) == "epoch 3 -> 4 without a snapshot"
    assert f.apply("1-6", entry_fields("S", 4, 9, b="1.0:1.0")) is None  # a snapshot heals anything later
    assert f.healed == "epoch 3 -> 4 without a snapshot; healed by a snapshot"
    assert f.ep == 4 and f.sq == 9 and f.bids == {1.0: 1.0}
    assert f.apply("1-7", entry_fields("X", 5, 1, st="RESYNCING", why="new owner")) is None
    assert f.healed is None
    assert f.bids is None and effective_status(f, 0.0, 3.0) == ("RESYNCING", "new owner")


def test_follower_bootstrap_skips_deltas_until_an_anchor_and_checks_the_status() -> None:
    f = Follower("X")
    assert f.apply("1-4", entry_fields("D", 2, 4)) is None and not f.anchored
    f.anchor({"ep": "2", "sq": "4", "id": "1-4", "st": "LIVE", "hb": "1"}, "1-4")
    assert f.anchored and f.bids is None and effective_status(f, 0.0, 3.0)[0] == "RESYNCING"
    assert f.apply("1-5", entry_fields("D", 2, 5)) is None and f.bids is None  # no base: still waiting
    assert f.apply("1-6", entry_fields("S", 2, 6, b="1.0:1.0")) is None
    assert effective_status(f, 0.5, 3.0) == ("LIVE", "")
    assert effective_status(f, 3.5, 3.0)[0] == "STALE"  # heartbeat too old: never LIVE
    assert f.regressed({"ep": "2", "sq": "6", "id": "1-6"}) is None
    assert f.regressed({"ep": "2", "sq": "6", "id": "1-2"}) == "stream id went back (Redis restarted?)"
    assert f.regressed({}) is not None  # Redis lost the state
    assert f.behind({"ep": "2", "sq": "9", "id": "1-9"}).startswith("entries up to bus seq 9")  # type: ignore[union-attr]
    assert f.behind({"ep": "2", "sq": "6", "id": "1-6"}) is None


def test_fair_share_plan() -> None:
    active = [0, 1, 2, 3, 4, 5]
    # alone: claim everything free
    assert plan("a", active, {}, ["a"]).claim and len(plan("a", active, {}, ["a"]).claim) == 6
    # three live shards, "a" holds all six: it gives one back per tick while others are below fair share
    owners = dict.fromkeys(active, "a")
    assert plan("a", active, owners, ["a", "b", "c"]).release == (5,)
    # balanced: nothing to do
    owners = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    p = plan("a", active, owners, ["a", "b", "c"])
    assert p.claim == () and p.release == () and p.fair == 2
    # "c" died: its slots are free once the leases expire; survivors claim up to ceil(6/2) = 3
    owners = {0: "a", 1: "a", 2: "b", 3: "b", 4: None, 5: None}
    assert len(plan("a", active, owners, ["a", "b"]).claim) == 1


def test_the_watch_table_shows_status_seq_and_reason() -> None:
    from depthkeeper.cluster.watch import render_plain as render

    live = view(42, {100.0: 1.0}, {101.0: 2.0})
    text = render({"BTCUSDT": live, "ETHUSDT": None}, {"connected": True, "counters": {"rebootstraps": 2},
                                                     "books": {"BTCUSDT": {"ep": 3, "rebootstraps": 1}}}, 1.0)
    row = next(line for line in text.splitlines() if line.startswith("BTCUSDT"))
    assert "LIVE" in row and " 42 " in row and "100.0" in row and "101.0" in row
    assert "rebootstraps 2" in text and any(line.startswith("ETHUSDT") for line in text.splitlines())


def test_follower_counts_what_the_live_view_shows() -> None:
    """diffs: venue seqs covered by entries applied on an unbroken chain (a rate); takeovers: new owner
    epochs after the first; both survive a re-bootstrap (reset)."""
    f = Follower("X")
    f.apply("1-1", entry_fields("X", 3, 1, st="RESYNCING", why="claim"))
    f.apply("1-2", entry_fields("S", 3, 2, b="1.0:1.0", a="2.0:1.0"))  # vs 20: the first book, nothing covered
    f.apply("1-3", entry_fields("D", 3, 3, b="1.0:2.0"))  # vs 30
    f.apply("1-4", entry_fields("D", 3, 4, a="2.0:3.0"))  # vs 40
    assert (f.diffs, f.takeovers) == (20, 0)
    f.apply("1-5", entry_fields("X", 4, 1, st="RESYNCING", why="taken over"))  # a new owner
    f.apply("1-6", entry_fields("S", 4, 2, b="1.0:1.0", a="2.0:1.0"))
    assert (f.diffs, f.takeovers) == (20, 1)  # a new epoch's snapshot covers nothing: its chain starts there
    f.reset()
    f.anchor({"ep": "5", "sq": "7", "st": "LIVE", "id": "1-9"}, "1-9")
    assert (f.diffs, f.takeovers) == (20, 2)
