"""The binance hot path on real frames: decode, and decode + apply, per depthUpdate event.

Reads a recording (../shared/fixtures/binance/btcusdt_20240808.gz: 3,451 real ``depth@100ms``
events, median 16 levels, mean 36) into memory once, then times, over ``--repeat`` passes:

- ``decode``: ``actors/venues/binance.decode`` on every depth frame (the typed msgspec path; ``--general``:
  the orjson path that judges what the typed one leaves);
- ``decode+apply``: the same, then ``RangeSync.on_diffs`` on a book bridged from the recorded
  snapshot (the BookActor's work per event, minus the actor hop).

Reported per event and per level (an event carries many levels). For comparison, the article's
decode of one one-level diff frame is timed the same way (``--article``).

    python bench/binance_decode.py [--fixture PATH] [--repeat 20] [--general] [--article] [--json]

A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from depthkeeper.actors.core.orderbook import OrderBook
from depthkeeper.actors.core.rangesync import RangeSync
from depthkeeper.actors.core.sync import ResyncReason
from depthkeeper.actors.core.wire import RangeDiff, Snapshot
from depthkeeper.actors.venues import article
from depthkeeper.actors.venues.binance import _general, decode, decode_snapshot

DEFAULT_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "binance" / "btcusdt_20240808.gz"


def load(path: Path) -> tuple[bytes, list[bytes]]:
    snapshot, frames = b"", []
    with gzip.open(path, "rb") as lines:
        for line in lines:
            text = line.rstrip(b"\n").partition(b" ")[2]
            if text.startswith(b'{"lastUpdateId"'):
                snapshot = text
            elif b"@depth" in text[:40]:
                frames.append(text)
    return snapshot, frames


def time_decode(frames: list[bytes], decode: Callable[[bytes], Any] = decode) -> float:
    started = time.perf_counter()
    for frame in frames:
        decode(frame)
    return time.perf_counter() - started


def time_apply(snapshot_text: bytes, frames: list[bytes]) -> float:
    snapshot = decode_snapshot(snapshot_text, "BTCUSDT")
    assert isinstance(snapshot, Snapshot)
    policy = RangeSync(OrderBook("BTCUSDT", 1000), 10_000)
    policy.start(ResyncReason.START)
    started = time.perf_counter()
    events = []
    for frame in frames[:4]:
        event = decode(frame)
        assert type(event) is RangeDiff
        events.append(event)
    policy.on_diffs(events)
    policy.on_snapshot(snapshot, policy.request_token)
    for frame in frames[4:]:
        policy.on_diffs((decode(frame),))  # type: ignore[arg-type]
    return time.perf_counter() - started


def time_article(count: int) -> float:
    frame = orjson.dumps({"type": "orderbook_diff", "code": "BTCUSDT", "seq": 1, "side": "bid",
                          "price": "64000.50", "size": "0.2500"})
    started = time.perf_counter()
    for _ in range(count):
        article.decode(frame)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path,
                        default=Path(os.environ.get("DEPTHKEEPER_FIXTURES", DEFAULT_FIXTURE.parent)) / DEFAULT_FIXTURE.name)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--article", action="store_true")
    parser.add_argument("--general", action="store_true",
                        help="also time the general path alone (orjson, float() per value) on the same frames")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.fixture.is_file():
        print(f"no recording at {args.fixture} (set DEPTHKEEPER_FIXTURES or --fixture)", file=sys.stderr)
        return 2
    snapshot, frames = load(args.fixture)
    levels = sum(len(orjson.loads(f)["data"]["b"]) + len(orjson.loads(f)["data"]["a"]) for f in frames)
    decode_s = statistics.median(time_decode(frames) for _ in range(args.repeat))
    apply_s = statistics.median(time_apply(snapshot, frames) for _ in range(args.repeat))
    result: dict[str, Any] = {
        "events": len(frames), "levels": levels,
        "decode_us_per_event": round(decode_s / len(frames) * 1e6, 2),
        "decode_ns_per_level": round(decode_s / levels * 1e9),
        "decode_events_per_s": round(len(frames) / decode_s),
        "decode_apply_us_per_event": round(apply_s / len(frames) * 1e6, 2),
        "decode_apply_events_per_s": round(len(frames) / apply_s),
        "decode_apply_levels_per_s": round(levels / apply_s),
    }
    if args.general:
        general_s = statistics.median(time_decode(frames, _general) for _ in range(args.repeat))
        result["general_decode_us_per_event"] = round(general_s / len(frames) * 1e6, 2)
        result["general_decode_ns_per_level"] = round(general_s / levels * 1e9)
    if args.article:
        count = 200_000
        result["article_decode_us_per_frame"] = round(
            statistics.median(time_article(count) for _ in range(5)) / count * 1e6, 3)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
