"""How fast can ONE Python thread turn the article feed into per-symbol diff batches?

The reader thread (``actors/reader.py``) is the per-frame hot path of depthkeeper: at full load it
holds the GIL ~90 % of the time. This measures, on a max-rate simulator in its own process,
three ways of doing the reader's work (recv -> split frames -> decode -> group by code), with no
actors downstream, so the ceiling of each is visible:

- ``wsclient``: websocket-client ``recv_data()`` per frame + ``codec_article.decode`` (today);
- ``bulk``: the handshake from websocket-client, then large ``sock.recv_into`` reads and our own
  frame splitter (server frames are unmasked) + ``codec_article.decode`` per frame;
- ``bulk+array``: the same, but all text payloads of one read decoded by ONE ``orjson.loads``
  of ``b"[" + b",".join(payloads) + b"]"`` (with a per-frame fallback when that fails), and a
  lean per-diff extraction.

    python bench/reader_ceiling.py [--seconds 3] [--symbols 50]

A prototype to size a change, not the product: it handles only what the simulator sends
(text frames, no fragmentation), and ignores pings (the simulator pings rarely).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import websocket

from common import simulator_process, symbol_codes
from depthkeeper.actors.venues import article as codec_article
from depthkeeper.actors.core.wire import DiffEvent

READ_SIZE = 1 << 18


def _connect(url: str, codes: list[str]) -> websocket.WebSocket:
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
    ws.send(json.dumps({"cmd_id": 22004, "action": "sub", "code": codes}))
    return ws


def run_wsclient(ws: websocket.WebSocket, seconds: float) -> int:
    recv, decode = ws.recv_data, codec_article.decode
    frames = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        groups: dict[str, list[Any]] = {}
        for _ in range(256):
            _, data = recv()
            event = decode(data)
            if type(event) is DiffEvent:
                groups.setdefault(event.code, []).append(event)
        frames += 256
    return frames


def split_frames(buf: bytearray, out: list[bytes]) -> int:
    """Append every complete unmasked frame's payload in ``buf`` to ``out``; return bytes used."""
    pos, end = 0, len(buf)
    while end - pos >= 2:
        length = buf[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if end - pos < 4:
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        elif length == 127:
            if end - pos < 10:
                break
            length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            head = 10
        stop = pos + head + length
        if stop > end:
            break
        if buf[pos] & 0x0F == 1:  # text; control frames would be handled here
            out.append(bytes(buf[pos + head:stop]))
        pos = stop
    return pos


def run_bulk(ws: websocket.WebSocket, seconds: float, array: bool) -> int:
    sock = ws.sock
    buf = bytearray()
    chunk = bytearray(READ_SIZE)
    view = memoryview(chunk)
    decode, loads = codec_article.decode, orjson.loads
    frames = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        n = sock.recv_into(view)
        buf += view[:n]
        payloads: list[bytes] = []
        used = split_frames(buf, payloads)
        del buf[:used]
        groups: dict[str, list[Any]] = {}
        if array:
            try:
                objs = loads(b"[" + b",".join(payloads) + b"]")
            except orjson.JSONDecodeError:
                objs = None
            if objs is not None:
                for o in objs:
                    try:
                        if o["type"] != "orderbook_diff":
                            continue
                        code = o["code"]
                        event = DiffEvent(code, o["seq"], o["side"] == "bid", float(o["price"]), float(o["size"]),
                                          o.get("ts", 0.0))
                    except (KeyError, TypeError, ValueError):
                        continue  # the product would re-decode this one frame for a typed error
                    batch = groups.get(code)
                    if batch is None:
                        groups[code] = [event]
                    else:
                        batch.append(event)
                frames += len(payloads)
                continue
        for data in payloads:
            event = decode(data)
            if type(event) is DiffEvent:
                groups.setdefault(event.code, []).append(event)
        frames += len(payloads)
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args(argv)
    codes = symbol_codes(args.symbols)
    variants = {"wsclient": lambda ws, s: run_wsclient(ws, s), "bulk": lambda ws, s: run_bulk(ws, s, False),
                "bulk+array": lambda ws, s: run_bulk(ws, s, True)}
    for name, fn in variants.items():
        with simulator_process(args.symbols, 0) as sim:
            ws = _connect(sim.url, codes)
            try:
                fn(ws, 0.5)  # warm-up
                t0 = time.perf_counter()
                frames = fn(ws, args.seconds)
                rate = frames / (time.perf_counter() - t0)
            finally:
                ws.close()
        print(f"{name:12s} {rate:>10,.0f} frames/s  ({1e6 / rate:.2f} µs/frame: recv + split + decode + group)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
