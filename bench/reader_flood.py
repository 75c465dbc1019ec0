"""How many frames/s does the reader thread get through when the venue floods it with junk?

Issue 12, defect 9: a flood of frames of an unknown type used to cost one WARNING line per frame
on the reader thread. This drives the real ``Reader`` loop (``actors/reader.py``: bulk frame
splitter, codec, grouping, routing) from pre-built WebSocket chunks held in memory, so only the
reader thread's own work is measured (no socket, no simulator, no books downstream):

- ``unknown``: every frame is a well-formed JSON object of a type the dialect does not know;
- ``bad_json``: every frame is truncated JSON;
- ``mixed``: one unknown-type frame, then one diff for a routed code (to a book that drops it);
- ``diff``: only diffs for a routed code (the healthy reference).

Log lines go where the CLI sends them: a loguru sink with the CLI's format and patcher, here on a
temporary file (``--sink file``, the default), or nowhere (``--sink none``, loguru with no sinks).

    python bench/reader_flood.py [--dialect article|alltick|binance] [--kind unknown] [--frames 300000]

(binance: a ``diff`` frame is a combined-stream depthUpdate of 16 levels, the recorded median.)

A benchmark, not a test: the figure depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from typing import Any

import orjson
import pykka
from loguru import logger

from depthkeeper.actors.venues import alltick as codec_alltick
from depthkeeper.actors.venues import article as codec_article
from depthkeeper.actors.venues import binance as codec_binance
from depthkeeper.actors.io.reader import Reader, ReaderCounters
from depthkeeper.actors.routing import Peers, RoutingTable

CHUNK_FRAMES = 2048


def _frame(payload: bytes) -> bytes:
    """One unmasked server text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _binance_levels(base: float, step: float) -> list[list[str]]:
    return [[f"{base + k * step:.8f}", f"{0.001 * (k + 1):.8f}"] for k in range(8)]


def _unknown(dialect: str, i: int) -> bytes:
    if dialect == "binance":
        return orjson.dumps({"stream": "btcusdt@trade", "data": {"e": "depthkeeperUnknown", "E": i, "s": "BTCUSDT"}})
    if dialect == "alltick":
        return orjson.dumps({"cmd_id": 23456, "data": {"code": "BTCUSDT", "seq": i, "note": "not a depth push"}})
    return orjson.dumps({"type": "trade", "code": "BTCUSDT", "seq": i, "price": "64000.5", "size": "0.25"})


def _good(dialect: str, i: int) -> bytes:
    if dialect == "binance":
        return orjson.dumps({"stream": "btcusdt@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1723161255000 + i, "s": "BTCUSDT", "U": 3 * i + 1, "u": 3 * i + 3,
            "b": _binance_levels(61837.64, -0.01), "a": _binance_levels(61837.65, 0.01)}})
    if dialect == "alltick":
        return orjson.dumps({"cmd_id": 22999, "data": {"code": "BTCUSDT", "seq": str(i), "tick_time": "1700000000000",
                                                       "bids": [{"price": "64000.5", "volume": "1"}],
                                                       "asks": [{"price": "64001.0", "volume": "1"}]}})
    return orjson.dumps({"type": "orderbook_diff", "code": "BTCUSDT", "seq": i, "side": "bid",
                         "price": "64000.5", "size": "0.25"})


def build_chunk(dialect: str, kind: str) -> bytes:
    frames = []
    for i in range(CHUNK_FRAMES):
        if kind == "unknown":
            payload = _unknown(dialect, i)
        elif kind == "bad_json":
            payload = _good(dialect, i)[:-7]
        elif kind == "mixed":
            payload = _unknown(dialect, i) if i % 2 == 0 else _good(dialect, i)
        else:
            payload = _good(dialect, i)
        frames.append(_frame(payload))
    return b"".join(frames)


class _Sock:
    """A socket whose recv hands out the same chunk ``chunks`` times, then EOF."""

    def __init__(self, chunk: bytes, chunks: int) -> None:
        self.chunk = chunk
        self.left = chunks

    def recv(self, _size: int) -> bytes:
        if self.left <= 0:
            return b""
        self.left -= 1
        return self.chunk


class _Ws:
    def __init__(self, sock: _Sock) -> None:
        self.sock = sock

    def pong(self, _payload: bytes) -> None:
        pass


class _Drop(pykka.ThreadingActor):
    """A book that drops what it is told (only the reader's side is measured)."""

    def on_receive(self, message: Any) -> None:
        return None


def run_once(dialect: str, kind: str, frames: int) -> tuple[float, ReaderCounters]:
    decode = {"alltick": codec_alltick.decode, "binance": codec_binance.decode}.get(dialect, codec_article.decode)
    chunk = build_chunk(dialect, kind)
    chunks = max(1, frames // CHUNK_FRAMES)
    routes = RoutingTable()
    book = _Drop.start()
    routes.set("BTCUSDT", book)
    counters = ReaderCounters()
    reader = Reader(_Ws(_Sock(chunk, chunks)), 1, decode=decode, routes=routes, peers=Peers(),  # type: ignore[arg-type]
                    counters=counters, inbox_limit=10**9, on_closed=lambda epoch, reason: None)
    try:
        started = time.perf_counter()
        reader._run()  # the thread's body, on this thread: ends at the EOF
        elapsed = time.perf_counter() - started
    finally:
        book.stop()
    return chunks * CHUNK_FRAMES / elapsed, counters


def configure_sink(sink: str) -> str:
    logger.remove()
    if sink == "none":
        return ""
    from depthkeeper.supervisor.cli.logs import FORMAT, _patch

    path = tempfile.NamedTemporaryFile(prefix="reader-flood-", suffix=".log", delete=False).name
    logger.configure(patcher=_patch)
    logger.add(path, level="INFO", format=FORMAT, colorize=False)
    logger.enable("depthkeeper")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=("article", "alltick", "binance"), default="article")
    parser.add_argument("--kind", choices=("unknown", "bad_json", "mixed", "diff"), default="unknown")
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sink", choices=("file", "none"), default="file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    path = configure_sink(args.sink)
    rates = []
    counters = ReaderCounters()
    for _ in range(args.repeat):
        rate, counters = run_once(args.dialect, args.kind, args.frames)
        rates.append(rate)
    log_lines = sum(1 for _ in open(path, encoding="utf-8")) if path else 0
    result = {"dialect": args.dialect, "kind": args.kind, "sink": args.sink, "frames_per_run": args.frames,
              "frames_per_s_median": round(statistics.median(rates)), "frames_per_s_runs": [round(r) for r in rates],
              "malformed": counters.malformed, "malformed_by_kind": dict(counters.malformed_by_kind),
              "log_lines_total": log_lines}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.dialect} {args.kind} (sink {args.sink}): {result['frames_per_s_median']:,} frames/s "
              f"(runs {', '.join(f'{r:,}' for r in result['frames_per_s_runs'])}); "
              f"malformed {counters.malformed} {dict(counters.malformed_by_kind)}; log lines {log_lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
