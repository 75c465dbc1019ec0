"""``depthkeeper run`` on a real (pseudo-)terminal of 80x24: the live view takes the alternate screen,
shows LIVE books and no log lines, and ``q`` quits with exit 0 and the terminal given back."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"


def plain(frame: str) -> str:
    """What a frame shows: no escape sequences, no carriage returns."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame).replace("\r", "")


def read_until(fd: int, needle: bytes, seen: bytearray, timeout_s: float) -> bool:
    """Append what the terminal shows to ``seen`` until ``needle`` is in it (False at the deadline or EOF)."""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed its side
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


def test_run_on_a_terminal_draws_the_live_view_and_q_quits() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    env = dict(os.environ, TERM="xterm", NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([sys.executable, "-m", "depthkeeper.supervisor.cli", "run", "--config", "conf/demo.toml"],
                            cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    seen = bytearray()
    try:
        assert read_until(master, b"4 books: 4 LIVE", seen, 30.0), seen.decode(errors="replace")[-2000:]
        assert ALT_SCREEN_ON in seen
        assert read_until(master, b"q or Ctrl-C to quit", seen, 10.0)
        os.write(master, b"q")
        assert read_until(master, ALT_SCREEN_OFF, seen, 30.0), "q did not leave the alternate screen"
        assert proc.wait(timeout=30) == 0
        after = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    text = seen.decode(errors="replace")
    screen = text.split("\x1b[?1049h", 1)[1].split("\x1b[?1049l", 1)[0]
    frames = [plain(frame) for frame in screen.split("\x1b[H") if frame]
    assert frames and all(len(line) <= 80 for frame in frames for line in frame.split("\n")), "a line too wide"
    assert all(len(frame.split("\n")) <= 24 for frame in frames), "a frame taller than the terminal"
    assert any("BTCUSDT LIVE" in frame and frame.startswith("depthkeeper  ws://127.0.0.1:") for frame in frames)
    assert " INFO " not in text and "Traceback" not in text, "log lines under the table"
    assert after[3] == before[3], "the terminal's local modes (echo, canonical) were not restored"
