"""The book structure alone: our OrderBook vs ``order_book`` (C, cryptofeed's) vs a
``sortedcontainers.SortedDict`` book.

One seeded stream of level updates, realistic for an L2 diff feed: a mid doing a ±1 tick walk,
~50 live levels per side within 60 ticks of it, 30% of updates delete an existing level, the
rest set a size (new or existing level). Every structure gets the same stream and the same
"apply" semantics (size 0 deletes, deleting a missing level is a no-op).

Figures (each the best of ``repeats`` runs, to shed scheduler noise):
- ``apply_ns``: ns per level update, writes only;
- ``read_after_write_us``: one update then a top-10 read of both sides (the update's cost
  subtracted): what a strategy pays reading a book that just changed;
- ``read_cached_us``: top-10 read again with no write in between;
- ``mixed_k10_ns`` / ``mixed_k100_ns``: ns per update of a stream with a top-10 read every 10
  (or 100) updates — the whole cost of keeping and reading a book.

    python bench/books.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

Update = tuple[bool, float, float]

TICK = 0.5
SPAN_TICKS = 60
DELETE_SHARE = 0.3
TOP_N = 10


def make_stream(count: int, seed: int = 7) -> list[Update]:
    """``count`` (is_bid, price, size) updates; see the module docstring."""
    rng = random.Random(seed)
    mid = 20_000
    live: dict[bool, dict[int, float]] = {True: {}, False: {}}
    for k in range(1, 51):
        live[True][mid - k] = 1.0
        live[False][mid + k] = 1.0
    out: list[Update] = []
    for _ in range(count):
        if rng.random() < 0.02:
            mid += 1 if rng.random() < 0.5 else -1
        is_bid = rng.random() < 0.5
        side = live[is_bid]
        if side and rng.random() < DELETE_SHARE:
            ticks = rng.choice(list(side))
            del side[ticks]
            out.append((is_bid, ticks * TICK, 0.0))
            continue
        offset = 1 + int(rng.random() ** 1.5 * SPAN_TICKS)
        ticks = mid - offset if is_bid else mid + offset
        size = round(rng.uniform(0.001, 5.0), 4)
        side[ticks] = size
        out.append((is_bid, ticks * TICK, size))
    return out


# -- the three structures, each behind (apply, top) --------------------------------------------

def ours() -> tuple[Callable[[bool, float, float], None], Callable[[], Any]]:
    from depthkeeper.actors.core.orderbook import OrderBook

    book = OrderBook("BENCH", max_levels=50)
    top = book.top
    return book.apply, lambda: top(TOP_N)


def c_order_book() -> tuple[Callable[[bool, float, float], None], Callable[[], Any]]:
    from order_book import OrderBook as COrderBook

    book = COrderBook()
    bids, asks = book.bids, book.asks

    def apply(is_bid: bool, price: float, size: float) -> None:
        side = bids if is_bid else asks
        if size > 0.0:
            side[price] = size
        else:
            try:
                del side[price]
            except KeyError:
                pass

    def top() -> Any:
        b_index, a_index = bids.index, asks.index
        return ([b_index(i) for i in range(min(TOP_N, len(bids)))],
                [a_index(i) for i in range(min(TOP_N, len(asks)))])

    return apply, top


def sorted_dict_book() -> tuple[Callable[[bool, float, float], None], Callable[[], Any]]:
    from sortedcontainers import SortedDict

    bids: Any = SortedDict()  # ascending: best bid is the last item
    asks: Any = SortedDict()

    def apply(is_bid: bool, price: float, size: float) -> None:
        side = bids if is_bid else asks
        if size > 0.0:
            side[price] = size
        else:
            side.pop(price, None)

    def top() -> Any:
        return bids.items()[-TOP_N:][::-1], asks.items()[:TOP_N]

    return apply, top


STRUCTURES: dict[str, Callable[[], tuple[Callable[[bool, float, float], None], Callable[[], Any]]]] = {
    "depthkeeper OrderBook (dict + lazy sort)": ours,
    "order-book (C, cryptofeed)": c_order_book,
    "sortedcontainers SortedDict": sorted_dict_book,
}


# -- timing ----------------------------------------------------------------------------------

def _time_apply(factory: Any, stream: list[Update]) -> float:
    apply, _ = factory()
    t0 = time.perf_counter()
    for is_bid, price, size in stream:
        apply(is_bid, price, size)
    return (time.perf_counter() - t0) / len(stream)


def _time_mixed(factory: Any, stream: list[Update], every: int) -> float:
    apply, top = factory()
    t0 = time.perf_counter()
    for i, (is_bid, price, size) in enumerate(stream):
        apply(is_bid, price, size)
        if i % every == 0:
            top()
    return (time.perf_counter() - t0) / len(stream)


def _time_cached_read(factory: Any, stream: list[Update], reads: int) -> float:
    apply, top = factory()
    for is_bid, price, size in stream[:2000]:
        apply(is_bid, price, size)
    t0 = time.perf_counter()
    for _ in range(reads):
        top()
    return (time.perf_counter() - t0) / reads


def measure(factory: Any, stream: list[Update], repeats: int) -> dict[str, float]:
    apply_s = min(_time_apply(factory, stream) for _ in range(repeats))
    every1_s = min(_time_mixed(factory, stream, 1) for _ in range(repeats))
    k10_s = min(_time_mixed(factory, stream, 10) for _ in range(repeats))
    k100_s = min(_time_mixed(factory, stream, 100) for _ in range(repeats))
    cached_s = min(_time_cached_read(factory, stream, 20_000) for _ in range(repeats))
    return {
        "apply_ns": apply_s * 1e9,
        "read_after_write_us": max(0.0, every1_s - apply_s) * 1e6,
        "read_cached_us": cached_s * 1e6,
        "mixed_k10_ns": k10_s * 1e9,
        "mixed_k100_ns": k100_s * 1e9,
    }


def check_agreement(stream: list[Update]) -> None:
    """All three must end with the same top of book, or the timings compare different work."""
    tops = []
    for factory in STRUCTURES.values():
        apply, top = factory()
        for is_bid, price, size in stream:
            apply(is_bid, price, size)
        bids, asks = top()
        tops.append((tuple(map(tuple, bids)), tuple(map(tuple, asks))))
    if any(t != tops[0] for t in tops[1:]):
        raise AssertionError(f"the book structures disagree: {tops}")


def run(quick: bool = False) -> dict[str, Any]:
    count = 50_000 if quick else 200_000
    repeats = 2 if quick else 3
    stream = make_stream(count)
    check_agreement(stream[:20_000])
    results = {name: measure(factory, stream, repeats) for name, factory in STRUCTURES.items()}
    base = results["depthkeeper OrderBook (dict + lazy sort)"]
    for figures in results.values():
        figures["apply_vs_ours"] = figures["apply_ns"] / base["apply_ns"]
        figures["mixed_k10_vs_ours"] = figures["mixed_k10_ns"] / base["mixed_k10_ns"]
    deletes = sum(1 for _, _, size in stream if size == 0.0)
    return {"updates": count, "delete_share": deletes / count, "top_n": TOP_N, "repeats": repeats,
            "structures": results}


def render(result: dict[str, Any]) -> str:
    head = (f"Book structure alone: {result['updates']:,} updates, {result['delete_share']:.0%} deletes, "
            f"~50 levels/side, top-{result['top_n']} reads (best of {result['repeats']})")
    cols = ("structure", "apply ns", "read after write µs", "read cached µs", "read/10 upd ns/upd",
            "read/100 upd ns/upd", "apply ×ours", "read/10 ×ours")
    rows = [cols]
    for name, f in result["structures"].items():
        rows.append((name, f"{f['apply_ns']:.0f}", f"{f['read_after_write_us']:.2f}", f"{f['read_cached_us']:.2f}",
                     f"{f['mixed_k10_ns']:.0f}", f"{f['mixed_k100_ns']:.0f}", f"{f['apply_vs_ours']:.2f}",
                     f"{f['mixed_k10_vs_ours']:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head]
    for j, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
