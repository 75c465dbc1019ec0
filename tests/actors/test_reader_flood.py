"""Issue 12 #9: bad frames never slow the data path (real Reader on a real socket pair).

A flood of bad frames is counted per kind and logged through a throttle (the first few one by
one, then a summary with counts per kind), and every batch is stamped when its chunk was read,
before decoding, so the time the reader spends on junk shows up as lag (``max_lag_s``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from loguru import logger

from depthkeeper.actors.venues import article as codec_article
from depthkeeper.actors.messages import DiffBatch
from depthkeeper.actors.routing import RoutingTable

from .fakes import RecorderHandle
from .wirepair import WirePair


def diff(code: str, seq: int) -> bytes:
    return orjson.dumps({"type": "orderbook_diff", "code": code, "seq": seq, "side": "bid", "price": "100.5",
                         "size": "1"})


def unknown_type(i: int) -> bytes:
    return orjson.dumps({"type": "trade", "code": "BTCUSDT", "seq": i, "price": "100.5", "size": "1"})


@pytest.fixture
def malformed_lines() -> Iterator[list[str]]:
    """Every line logged for a malformed frame while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING",
                      filter=lambda record: record["extra"].get("event") == "malformed_frame")
    yield lines
    logger.remove(sink)


def test_a_flood_of_bad_frames_is_counted_per_kind_and_logged_with_a_rate_limit(malformed_lines: list[str]) -> None:
    wire = WirePair(decode=codec_article.decode)
    wire.send([unknown_type(i) for i in range(3000)] + [diff("BTCUSDT", 1)[:-9]] * 1000)  # + truncated JSON
    wire.close()
    counters = wire.counters
    assert counters.malformed == 4000
    assert counters.malformed_by_kind == {"unknown_message": 3000, "bad_json": 1000}
    individual = [line for line in malformed_lines if line.startswith("malformed frame dropped")]
    summaries = [line for line in malformed_lines if "not logged one by one" in line]
    assert len(individual) == 5 and len(summaries) == 1, malformed_lines[:10]
    # nothing is lost: the lines logged one by one plus the summary's counts are every bad frame
    seen: dict[str, int] = {}
    for line in individual:
        kind = re.match(r"malformed frame dropped \((\w+)\)", line).group(1)  # type: ignore[union-attr]
        seen[kind] = seen.get(kind, 0) + 1
    for kind, count in re.findall(r"(\w+)=(\d+)", summaries[0].split(":")[-1]):
        seen[kind] = seen.get(kind, 0) + int(count)
    assert seen == {"unknown_message": 3000, "bad_json": 1000}


def test_received_at_is_stamped_when_the_chunk_is_read_before_decoding() -> None:
    """Time spent decoding (junk) before a diff is lag the book must see, not hide."""
    book = RecorderHandle()
    routes = RoutingTable()
    routes.set("BTCUSDT", book.ref)
    decoded_at: dict[bytes, float] = {}

    def decode(raw: bytes) -> Any:
        event = codec_article.decode(raw)
        decoded_at[bytes(raw)] = time.monotonic()
        return event

    wire = WirePair(decode=decode, routes=routes)
    last = diff("BTCUSDT", 7)
    wire.send([unknown_type(i) for i in range(2000)] + [last])
    batch = book.wait_for(DiffBatch)
    wire.close()
    assert batch.diffs[-1].seq == 7
    assert batch.received_at < decoded_at[last], "received_at was stamped after the chunk had been decoded"
