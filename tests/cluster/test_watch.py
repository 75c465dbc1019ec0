"""``depthkeeper watch``: the live view of ``run`` over remote books (cluster/watch.py), drawn into an
80x24 virtual terminal against a real redis-server fed by a real SlotPublisher; and the command itself
on a pseudo-terminal, in a pipe and with ``--json``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from rich.console import Console

from depthkeeper.cluster.localredis import LocalRedis
from depthkeeper.cluster.redis_bus import RedisBus
from depthkeeper.cluster.remote import RemoteBooks
from depthkeeper.cluster.watch import RemoteSource, redact_url
from depthkeeper.supervisor.cli.tui import TerminalUI
from tests.cluster.support import ROOT, Feeder
from tests.integration.test_cli_live_view import ALT_SCREEN_OFF, ALT_SCREEN_ON, plain, read_until
from tests.support import wait_until

pytestmark = pytest.mark.integration

CODES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture
def bus(redis_server: LocalRedis) -> Iterator[RedisBus]:
    b = RedisBus(redis_server.url, "wt", snapshot_every=20, socket_timeout_s=1.0)
    b.set_meta({"hb_timeout_ms": 1000, "lease_ttl_ms": 1000})
    b.desire(add=CODES)
    yield b
    b.close()


def rows(lines: list[str]) -> dict[str, list[str]]:
    return {cells[0]: cells for cells in (line.split() for line in lines[5:]) if cells and cells[0].endswith("USDT")}


def test_the_watch_view_shows_remote_books_and_what_happens_to_them(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, CODES, epoch=1)
    feeder.run(views_per_s=300)
    console = Console(width=80, height=24, record=True, force_terminal=True, color_system=None, file=io.StringIO())
    with RemoteBooks(redis_server.url, name="wt", record_latency=True, poll_interval_s=0.1) as books:
        source = RemoteSource(books, [*CODES, "XRPUSDT"], url=redis_server.url)
        with TerminalUI(source, threading.Event(), console=console, keys=None) as ui:
            console.export_text(clear=True)

            def screen() -> list[str]:
                ui.draw()
                lines = console.export_text(clear=True).splitlines()
                assert len(lines) == 24 and max(map(len, lines)) <= 80
                return lines

            def flowing() -> list[str] | None:
                lines = screen()
                books_ = rows(lines)
                live = all(books_.get(c, ["", ""])[1] == "LIVE" and int(books_[c][7]) > 0 for c in CODES)
                return lines if live and int(lines[3].split()[1]) > 0 else None

            lines = wait_until(flowing, 15.0, "three LIVE rows with diffs flowing")
            assert lines[0].startswith(f"depthkeeper  redis://127.0.0.1:{redis_server.port}/0 (cluster wt)")
            assert lines[1].startswith("redis UP  0 shards  epoch 1  last error: none")
            assert lines[2].startswith("rebootstraps 0  takeovers 0  redis resets 0  bus errors 0")
            assert re.search(r"e2e p50 \S+ p99 \S+  4 books: 3 LIVE, 1 SYNCING", lines[3]), lines[3]
            xrp = rows(lines)["XRPUSDT"]
            assert xrp[1] == "SYNC" and "not subscribed" in " ".join(xrp)  # a code nobody publishes: said why

            # another publisher takes the symbols over (a new epoch): they resync, then follow the new owner
            feeder.stop()
            successor = Feeder(bus, CODES, epoch=2, seed=2)
            wait_until(lambda: any("LIVE -> RESYNCING: test feeder" in line for line in screen()), 10.0,
                       "the takeover in the events pane")
            successor.run(views_per_s=300)
            wait_until(lambda: all(rows(screen()).get(c, ["", ""])[1] == "LIVE" for c in CODES), 10.0,
                       "LIVE again under the new owner")
            wait_until(lambda: screen()[1].startswith("redis UP  0 shards  epoch 2"), 5.0, "the new epoch said")
            assert screen()[2].startswith("rebootstraps 0  takeovers 3  ")

            # the publisher goes silent (no heartbeats): not LIVE any more, and the pane says why
            successor.stop()
            wait_until(lambda: any("LIVE -> STALE: publisher heartbeat" in line for line in screen()), 10.0,
                       "STALE for lack of heartbeats")

            # Redis dies: the link goes DOWN with the reason; back empty: counted, and the books resync
            redis_server.kill()
            wait_until(lambda: screen()[1].startswith("redis DOWN: "), 10.0, "redis DOWN in the header")
            assert any("WARN redis lost: " in line for line in screen())
            redis_server.start()
            wait_until(lambda: screen()[1].startswith("redis UP"), 10.0, "redis UP again")
            wait_until(lambda: "redis resets 1" in screen()[2], 10.0, "the lost data counted")
        assert books.fanout.stats() == {}, "the view's listener is gone with the view"


def run_watch(redis_url: str, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "depthkeeper.supervisor.cli", "watch", "--redis", redis_url,
                           "--name", "wt", "--interval", "0.2", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def test_watch_in_a_pipe_prints_plain_tables_or_json(bus: RedisBus, redis_server: LocalRedis) -> None:
    feeder = Feeder(bus, CODES)
    feeder.run(views_per_s=100)
    try:
        table = run_watch(redis_server.url, "--duration", "1.5", *CODES)
        as_json = run_watch(redis_server.url, "--duration", "1.5", "--json", *CODES)
    finally:
        feeder.stop()
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and table.stdout.count("depthkeeper watch  up") >= 3
    assert re.search(r"^BTCUSDT +LIVE ", table.stdout, re.MULTILINE), table.stdout[-1500:]
    assert as_json.returncode == 0, as_json.stderr
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["connected"] is True and {b["status"] for b in last["books"].values()} == {"LIVE"}


def test_watch_on_a_terminal_draws_the_live_view_and_q_quits(bus: RedisBus, redis_server: LocalRedis) -> None:
    import fcntl
    import pty
    import struct
    import termios

    feeder = Feeder(bus, CODES)
    feeder.run(views_per_s=100)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm", NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "watch", "--redis", redis_server.url,
                             "--name", "wt", *CODES], cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    seen = bytearray()
    try:
        assert read_until(master, b"3 books: 3 LIVE", seen, 30.0), seen.decode(errors="replace")[-2000:]
        assert ALT_SCREEN_ON in seen
        os.write(master, b"q")
        assert read_until(master, ALT_SCREEN_OFF, seen, 30.0), "q did not leave the alternate screen"
        assert proc.wait(timeout=30) == 0
    finally:
        feeder.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    frames = [plain(f) for f in seen.decode(errors="replace").split("\x1b[?1049h", 1)[1].split("\x1b[H") if f]
    assert any(f.startswith("depthkeeper  redis://127.0.0.1:") and "redis UP" in f for f in frames)
    assert all(len(line) <= 80 for f in frames for line in f.split("\n"))


def test_a_password_never_reaches_the_screen() -> None:
    assert redact_url("redis://:s3cret@10.0.0.1:6379/0") == "redis://***@10.0.0.1:6379/0"
    assert redact_url("rediss://user:pw@h:1/2") == "rediss://***@h:1/2"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
