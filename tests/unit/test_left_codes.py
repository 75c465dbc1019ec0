"""Ghost verdicts (actors/ghosts.py): pure, driven by an explicit clock."""

from __future__ import annotations

from depthkeeper.actors.ghosts import UNSUB_ACK_TIMEOUT_S, UNSUB_GRACE_S, Frames, LeftCodes


def test_a_code_never_subscribed_here_is_unknown_and_never_reaped() -> None:
    left = LeftCodes()
    assert left.classify("ZZZ", 100, 0.0, 0.0, 3) is Frames.UNKNOWN
    assert len(left) == 0


def test_frames_before_the_unsubscribe_is_acknowledged_are_in_flight_then_a_ghost_reaped_once() -> None:
    left = LeftCodes()
    left.left(["BTC"], request=7, now=0.0)
    left.answered(settled_through=6, unsubscribed=())  # an older request answered: ours is still pending
    assert left.classify("BTC", 5, 1.0, 0.0, 3) is Frames.IN_FLIGHT  # acks exist: wait (< 10 s timeout)
    left.answered(settled_through=7, unsubscribed=())
    assert left.classify("BTC", 2, 1.0, 0.0, 3) is Frames.GHOST
    assert left.classify("BTC", 1, 1.0, 0.0, 3) is Frames.REAP
    assert left.classify("BTC", 9, 1.0, 0.0, 3) is Frames.REAPED  # at most once per socket


def test_without_acks_a_grace_period_plus_pacing_stands_in_for_the_ack() -> None:
    left = LeftCodes()
    left.left(["ETH"], request=0, now=0.0)
    assert left.classify("ETH", 5, UNSUB_GRACE_S + 1.9, pacing_s=1.0, threshold=3) is Frames.IN_FLIGHT
    assert left.classify("ETH", 5, UNSUB_GRACE_S + 2.0, pacing_s=1.0, threshold=3) is Frames.REAP


def test_a_missing_ack_is_not_waited_for_forever_and_named_acks_settle() -> None:
    left = LeftCodes()
    left.left(["SOL", "XRP"], request=0, now=0.0)
    left.answered(settled_through=0, unsubscribed=["SOL"])  # the article venue names the codes
    assert left.classify("SOL", 3, 0.1, 0.0, 3) is Frames.REAP
    assert left.classify("XRP", 3, UNSUB_ACK_TIMEOUT_S - 0.1, 0.0, 3) is Frames.IN_FLIGHT
    assert left.classify("XRP", 3, UNSUB_ACK_TIMEOUT_S, 0.0, 3) is Frames.REAP


def test_the_state_is_bounded_and_cleared_per_socket() -> None:
    left = LeftCodes(limit=4)
    left.left([f"C{i}" for i in range(10)], request=0, now=0.0)
    assert len(left) == 4
    assert left.classify("C0", 1, 50.0, 0.0, 1) is Frames.UNKNOWN  # forgotten first
    left.answered(3, ())
    left.clear()
    assert len(left) == 0 and left.acks_seen == 0 and left.acked_request == 0
