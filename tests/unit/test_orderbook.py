"""The pure OrderBook: writes, lazy sorted reads, honest level caps, crossing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthkeeper.actors.core.orderbook import BookStatus, OrderBook


def test_set_and_delete_levels() -> None:
    """size > 0 sets a level, size == 0 deletes it, deleting an unknown level is harmless."""
    book = OrderBook("BTCUSDT")
    book.apply(True, 100.0, 1.0)
    book.apply(True, 101.0, 2.0)
    book.apply(False, 102.0, 3.0)
    book.apply(True, 100.0, 0.0)
    book.apply(False, 999.0, 0.0)
    assert book.bids == {101.0: 2.0}
    assert book.asks == {102.0: 3.0}
    assert book.status is BookStatus.SYNCING


def test_sorted_reads_best_first_and_cached_until_write() -> None:
    """Reads are sorted best first and the same object is returned until the next write."""
    book = OrderBook("X")
    for p in (99.0, 101.0, 100.0):
        book.apply(True, p, 1.0)
    for p in (104.0, 102.0, 103.0):
        book.apply(False, p, 1.0)
    bids, asks = book.top()
    assert [p for p, _ in bids] == [101.0, 100.0, 99.0]
    assert [p for p, _ in asks] == [102.0, 103.0, 104.0]
    assert book.sorted_bids() is bids
    book.apply(True, 98.0, 1.0)
    assert book.sorted_bids() is not bids
    assert book.top(depth=2)[0] == ((101.0, 1.0), (100.0, 1.0))


def test_trimming_keeps_best_levels_and_reports_known_complete_depth() -> None:
    """Beyond 2x max_levels a side is trimmed; levels past the horizon are not claimed."""
    book = OrderBook("X", max_levels=3)
    for p in range(1, 8):  # 7 bids > 2 * 3 -> trim to best 3 (7, 6, 5)
        book.apply(True, float(p), 1.0)
    assert sorted(book.bids) == [5.0, 6.0, 7.0]
    assert book.complete_levels()[0] == 3
    book.apply(True, 7.0, 0.0)  # best level removed: only 6 and 5 are known now
    book.apply(True, 2.0, 1.0)  # a level below the horizon may have neighbours we forgot
    bids, _ = book.top()
    assert [p for p, _ in bids] == [6.0, 5.0]
    assert book.complete_levels()[0] == 2


def test_replace_loads_whole_book_and_skips_zero_sizes() -> None:
    """A snapshot replaces both sides and the version."""
    book = OrderBook("X")
    book.apply(True, 1.0, 1.0)
    book.replace([(10.0, 1.0), (9.0, 0.0)], [(11.0, 2.0)], seq=42)
    assert book.bids == {10.0: 1.0} and book.asks == {11.0: 2.0} and book.last_seq == 42
    assert book.complete_levels() == (1, 1)


def test_partial_book_claims_only_pushed_levels() -> None:
    """A top-N source marks a horizon; deeper levels are not claimed complete."""
    book = OrderBook("X")
    book.replace([(10.0, 1.0), (9.0, 1.0)], [(11.0, 1.0)], seq=1)
    book.mark_partial(9.0, 11.0)
    book.apply(True, 8.0, 1.0)
    assert book.complete_levels() == (2, 1)


def test_crossed_detection() -> None:
    """best bid >= best ask is crossed; an empty side is not."""
    book = OrderBook("X")
    book.apply(True, 10.0, 1.0)
    assert not book.is_crossed()
    book.apply(False, 11.0, 1.0)
    assert not book.is_crossed()
    book.apply(False, 10.0, 1.0)
    assert book.is_crossed()
    assert book.best_bid() == 10.0 and book.best_ask() == 10.0


def test_clear_and_repr() -> None:
    book = OrderBook("X")
    book.apply(True, 1.0, 1.0)
    book.clear()
    assert book.top() == ((), ())
    assert "OrderBook X" in repr(book)


def test_invalid_max_levels() -> None:
    with pytest.raises(ValueError, match="max_levels"):
        OrderBook("X", max_levels=0)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.tuples(
    st.lists(st.tuples(st.integers(1, 30), st.sampled_from([0.0, 1.0, 2.0])), max_size=6),
    st.lists(st.tuples(st.integers(31, 60), st.sampled_from([0.0, 1.0, 2.0])), max_size=6)), max_size=30),
    max_levels=st.integers(1, 8), single=st.booleans())
def test_prices_stay_in_order_through_sets_deletes_and_trims(events: list, max_levels: int, single: bool) -> None:
    """Each side's price list equals the sorted keys of its dict after every event, by event or by level,
    through removals of the best, re-adds and trims; best prices and reads follow from it."""
    book = OrderBook("X", max_levels=max_levels)
    for bids, asks in events:
        b = tuple((float(p), s) for p, s in bids)
        a = tuple((float(p), s) for p, s in asks)
        if single:
            for p, s in b:
                book.apply(True, p, s)
            for p, s in a:
                book.apply(False, p, s)
        else:
            book.apply_levels(b, a)
        assert book.bid_prices == sorted(book.bids) and book.ask_prices == sorted(book.asks)
        assert book.best_bid() == (max(book.bids) if book.bids else None)
        assert book.best_ask() == (min(book.asks) if book.asks else None)
        assert book.sorted_bids() == tuple(sorted(book.bids.items(), reverse=True))
        assert book.sorted_asks() == tuple(sorted(book.asks.items()))
        assert book.is_crossed() is (bool(book.bids and book.asks) and max(book.bids) >= min(book.asks))
