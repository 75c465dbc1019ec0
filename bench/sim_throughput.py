"""How many diffs/s can the simulator push to ONE client connection over loopback?

The client benchmarks need a source faster than the client, so this measures the simulator
alone: rate 0 ("as fast as the reader reads"), N symbols, one websocket-client connection
with ``skip_utf8_validation=True`` subscribed to all of them, counting frames for a few seconds.

By default the simulator runs in a child process (``python -m depthkeeper.simulator``) so the
reader and the server do not share one GIL; ``--in-process`` embeds it instead (what a test
that embeds the simulator gets).

    python bench/sim_throughput.py [--symbols 50] [--seconds 5] [--in-process] [--raw-reader]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import websocket

from depthkeeper.simulator import SimConfig, Simulator


def symbol_codes(count: int) -> list[str]:
    return [f"SYM{i:03d}USDT" for i in range(count)]


@contextmanager
def simulator_url(codes: list[str], in_process: bool) -> Iterator[str]:
    if in_process:
        with Simulator.start(SimConfig(symbols=tuple(codes), rate_per_symbol=0, seed=1)) as sim:
            yield sim.url
        return
    cmd = [sys.executable, "-m", "depthkeeper.simulator", "--rate", "0", "--symbols", ",".join(codes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["url"]
    finally:
        proc.terminate()
        proc.wait(10)


def count_frames(url: str, codes: list[str], seconds: float) -> tuple[int, float]:
    """(frames, elapsed_s) after a 0.5 s warm-up."""
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
    try:
        ws.send(json.dumps({"cmd_id": 22004, "action": "sub", "code": codes}))
        warmup_end = time.perf_counter() + 0.5
        while time.perf_counter() < warmup_end:
            ws.recv()
        frames = 0
        start = time.perf_counter()
        deadline = start + seconds
        recv = ws.recv
        while True:
            recv()
            frames += 1
            if not frames & 1023 and time.perf_counter() >= deadline:
                break
        return frames, time.perf_counter() - start
    finally:
        ws.close()


def count_frames_raw(url: str, codes: list[str], seconds: float) -> tuple[int, float]:
    """The simulator's ceiling: a bare socket that only walks frame headers (no decoding)."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /quote-b-ws-api HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    data = bytearray()
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    del data[: data.index(b"\r\n\r\n") + 4]
    command = json.dumps({"cmd_id": 22004, "action": "sub", "code": codes}).encode()
    mask = os.urandom(4)
    length = len(command)
    header = bytes((0x81, 0xFE)) + length.to_bytes(2, "big") if length >= 126 else bytes((0x81, 0x80 | length))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(command)))
    frames, pos = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while time.perf_counter() < deadline:
            data += sock.recv(1 << 20)
            while len(data) - pos >= 2:
                size, head = data[pos + 1] & 0x7F, 2
                if size == 126:
                    if len(data) - pos < 4:
                        break
                    size, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
                if len(data) - pos < head + size:
                    break
                pos += head + size
                frames += 1
            del data[:pos]
            pos = 0
        return frames, time.perf_counter() - start
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--raw-reader", action="store_true", help="bare-socket reader: the simulator's ceiling")
    args = parser.parse_args(argv)
    codes = symbol_codes(args.symbols)
    with simulator_url(codes, args.in_process) as url:
        if args.raw_reader:
            frames, elapsed_s = count_frames_raw(url, codes, args.seconds)
        else:
            frames, elapsed_s = count_frames(url, codes, args.seconds)
    where = "in-process" if args.in_process else "child process"
    reader = "a bare-socket reader" if args.raw_reader else "one websocket-client connection"
    print(
        f"simulator ({where}, {args.symbols} symbols, rate 0) -> {reader}: "
        f"{frames} frames in {elapsed_s:.2f} s = {frames / elapsed_s:,.0f} frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
