"""The venue's side of the benchmark's latency join: one fixed-size record per depth event sent.

Some clients hide the raw event (nautilus_trader decodes with a strict schema that drops the ``"x"``
stamp), so the only way to time them is to join what they applied, ``(symbol, u, apply time)``, with
what the venue sent, ``(symbol, u, send time)``. With ``binance_send_log`` set, the binance dialect
appends one record per rendered depth event::

    struct "<IIQd": symbol index (in SimConfig.symbols order), era, u (final update id), send time (s)

The send time is the ``time.time()`` the event is stamped with (the same value as ``"x"``), taken
once per flush, before the frames are queued: queueing in the venue's outbox counts as latency, as
it does for the stamp. ``era`` separates the id spaces before and after a restart fault.

Written by the event-loop thread into a buffer that goes to the file every `FLUSH_INTERVAL_S` (and
on close), so a reader that waits that long after the venue stopped sending sees every record.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

RECORD = struct.Struct("<IIQd")
#: Buffered records reach the file at least this often.
FLUSH_INTERVAL_S = 0.2


class SendLog:
    """Appends send records; a no-op object is cheaper than a branch per event, so use `open_send_log`."""

    def __init__(self, path: str, codes: tuple[str, ...]) -> None:
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115 - kept open for the venue's life
        self._index = {code: i for i, code in enumerate(codes)}
        self._buffer = bytearray()
        self._flushed_at_s = time.monotonic()

    def add(self, code: str, era: int, last_id: int, sent_s: float) -> None:
        self._buffer += RECORD.pack(self._index[code], era, last_id, sent_s)

    def tick(self) -> None:
        """Write the buffer out when it is due (called after each flush of events)."""
        now_s = time.monotonic()
        if now_s - self._flushed_at_s >= FLUSH_INTERVAL_S:
            self.flush()
            self._flushed_at_s = now_s

    def flush(self) -> None:
        if self._buffer:
            self._file.write(self._buffer)
            self._file.flush()
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self._file.close()


def read_send_log(path: str | Path) -> Iterator[tuple[int, int, int, float]]:
    """Every record of a send log: (symbol index, era, u, send time)."""
    data = Path(path).read_bytes()
    usable = len(data) - len(data) % RECORD.size
    yield from RECORD.iter_unpack(data[:usable])
