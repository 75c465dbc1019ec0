"""Ring: the last N numbers, oldest first, in a container the garbage collector never walks."""

from __future__ import annotations

import gc

import pytest

from depthkeeper.actors.core.samples import Ring


def test_keeps_the_newest_values_in_order_across_growth_and_wraparound() -> None:
    ring = Ring(8, initial=2)
    assert ring.last() == [] and len(ring) == 0 and ring.sorted() == []
    for i in range(5):
        ring.append(float(i))
    assert ring.last() == [0.0, 1.0, 2.0, 3.0, 4.0] and ring.last(2) == [3.0, 4.0]
    for i in range(5, 21):
        ring.append(float(i))
    assert ring.count == 21 and len(ring) == 8
    assert ring.last() == [float(i) for i in range(13, 21)]
    assert ring.last(3) == [18.0, 19.0, 20.0] and ring.last(100) == ring.last() and ring.last(0) == []
    assert ring.sorted() == sorted(ring.last())


def test_storage_grows_only_with_use() -> None:
    ring = Ring(1024, initial=16)
    assert len(ring._buf) == 16
    for i in range(100):
        ring.append(float(i))
    assert len(ring._buf) == 128 and ring.last() == [float(i) for i in range(100)]
    for i in range(100, 5000):
        ring.append(float(i))
    assert len(ring._buf) == 1024 and ring.last(3) == [4997.0, 4998.0, 4999.0]


def test_integer_rings() -> None:
    ring = Ring(4, "I", initial=1)
    for n in (3, 1, 2):
        ring.append(n)
    assert ring.last() == [3, 1, 2] and ring.sorted() == [1, 2, 3]


def test_is_invisible_to_the_garbage_collector() -> None:
    ring = Ring(4096)
    for i in range(5000):
        ring.append(i * 0.5)
    # a collection walks a deque of 4096 floats item by item; an array only to its type
    assert len(gc.get_referents(ring._buf)) <= 1
    assert len(gc.get_referents(__import__("collections").deque(ring.last()))) == 4096


def test_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        Ring(1000)


def test_latencies_keep_the_newest_batches_in_step_across_growth_and_wraparound() -> None:
    """``Latencies.record`` writes its rings itself once they are full: the same values, in step."""
    from depthkeeper.actors.core.samples import Latencies

    lat = Latencies(8)
    for i in range(1, 30):
        lat.record(i / 1000 if i % 3 else None, i, i / 100)
    with_e2e = [i for i in range(1, 30) if i % 3]
    assert lat.e2e.count == lat.sizes.count == len(with_e2e) and lat.hop.count == 29
    assert lat.window() == (len(with_e2e), [(i / 1000, i) for i in with_e2e[-8:]])
    assert lat.window(since=len(with_e2e) - 2)[1] == [(i / 1000, i) for i in with_e2e[-2:]]
    assert lat.hop.last() == [i / 100 for i in range(22, 30)]
