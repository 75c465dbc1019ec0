"""Latencies: a book's newest samples, oldest first, in a container the garbage collector never walks."""

from __future__ import annotations

import collections
import gc

import pytest

from depthkeeper.actors.core.samples import Latencies, split


def test_latencies_keep_the_newest_batches_in_step_across_growth_and_wraparound() -> None:
    """One sample per batch, three numbers each, in one ring: growth and wraparound keep them in step."""
    lat = Latencies(8, initial=2)
    assert lat.window() == (0, []) and len(lat) == 0 and split(lat.copy()) == ([], [])
    for i in range(1, 30):
        lat.record(i / 1000 if i % 3 else None, i, i / 100)
        kept = list(range(max(1, i - 7), i + 1))
        e2e, hop = split(lat.last(8))
        assert e2e == [k / 1000 for k in kept if k % 3] and hop == [k / 100 for k in kept]
    assert lat.count == 29 and len(lat) == 8
    assert lat.window() == (29, [(i / 1000, i) for i in range(22, 30) if i % 3])
    assert lat.window(since=27)[1] == [(0.028, 28), (0.029, 29)]
    assert lat.window(since=29) == (29, []) and lat.window(since=1 << 62) == (29, [])
    assert sorted(split(lat.copy())[1]) == [i / 100 for i in range(22, 30)]


def test_storage_grows_only_with_use() -> None:
    lat = Latencies(1024, initial=16)
    assert len(lat._buf) == 16 * 3
    for i in range(100):
        lat.record(i / 1e3, 1, 0.0)
    assert len(lat._buf) == 128 * 3 and lat.window()[1] == [(i / 1e3, 1) for i in range(100)]
    for i in range(100, 5000):
        lat.record(i / 1e3, 1, 0.0)
    assert len(lat._buf) == 1024 * 3 and lat.window(since=4997)[1] == [(4.997, 1), (4.998, 1), (4.999, 1)]


def test_is_invisible_to_the_garbage_collector() -> None:
    lat = Latencies(4096)
    for i in range(5000):
        lat.record(i * 0.5, 2, i * 0.25)
    # a collection walks a deque of 4096 floats item by item; an array only to its type
    assert len(gc.get_referents(lat._buf)) <= 1
    assert len(gc.get_referents(collections.deque(split(lat.copy())[0]))) == 4096


def test_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        Latencies(1000)
