"""Serve a recording of real Binance frames instead of the generated market.

A recording (format: ../shared/fixtures/binance/README.md) is gzip text, one frame per line,
``<local receive time ns> <JSON>``: combined-stream frames ``{"stream": ..., "data": ...}`` and one
bare REST depth snapshot ``{"lastUpdateId", "bids", "asks"}`` belonging to the file's symbol.
Several files can be served at once (``replay_paths``); their frames are merged by time.

- **What is sent.** Every recorded frame of the streams a connection subscribed to, in recorded
  order, byte for byte: the recorded JSON line on combined connections, its ``data`` part on raw
  ones. Depth events go through the stream faults (drop, duplicate, reorder) like generated ones;
  every frame respects stall.
- **When.** The replay of an era starts when the first connection subscribes to a recorded symbol
  (so that subscriber misses nothing), then runs at the recorded pace divided by ``replay_speed``
  (``<= 0``: as fast as the subscribers read). Freeze pauses it. At the end the venue stays at the
  last recorded state; a restart fault rewinds to the beginning (update ids jump back: the
  "venue restart" case) and the next subscriber starts it again.
- **The truth** (``truth``, ``book_at``, ``/api/v3/depth``) is the recorded snapshot advanced by
  the recorded events sent so far, by Binance's own rule (drop ``u <= id``, apply and set ``id = u``).
  Until an event past the snapshot has been sent, ``/api/v3/depth`` answers exactly the recorded
  snapshot. ``book_at(code, seq)`` answers for ``seq`` = the snapshot id or any applied event's ``u``.
  Levels beyond the recorded snapshot are unknown, as they are to any real client.

The files are read from the configured paths at start; nothing is copied anywhere.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
from collections.abc import Iterable
from typing import Any

import attrs
import orjson

from depthkeeper.simulator.binance_wire import decimal_units, parse_stream, step_text, units_text
from depthkeeper.simulator.config import SimConfig
from depthkeeper.simulator.errors import HistoryUnavailable, SimulatorError, UnknownCode
from depthkeeper.simulator.pump import FAST_BATCH_DIFFS, MAX_SLEEP_S, Pump
from depthkeeper.simulator.venue import Venue

#: Records sent per loop iteration at most (keeps freeze, restart and control calls responsive).
MAX_BATCH_RECORDS = 512
#: Poll period while waiting for a first subscriber or a restart.
IDLE_POLL_S = 0.005

Levels = tuple[tuple[str, str], ...]


@attrs.frozen
class Record:
    """One recorded frame of one stream."""

    at_ns: int
    code: str
    kind: str
    combined: bytes
    raw: bytes
    first_id: int = 0
    last_id: int = 0
    bids: Levels = ()
    asks: Levels = ()

    @property
    def is_depth(self) -> bool:
        return self.kind.startswith("depth") and self.first_id > 0


@attrs.frozen
class Snapshot:
    last_update_id: int
    bids: Levels
    asks: Levels


def _levels(rows: Any) -> Levels:
    return tuple((str(price), str(qty)) for price, qty in rows)


def _data_part(line: bytes, frame: dict[str, Any]) -> bytes:
    """The ``data`` value of a combined frame, byte for byte when the frame has the usual layout."""
    marker = line.find(b',"data":')
    if line.startswith(b'{"stream":') and marker > 0 and line.endswith(b"}"):
        return line[marker + len(b',"data":') : -1]
    return orjson.dumps(frame["data"])


def _record(at_ns: int, line: bytes, frame: dict[str, Any], path: str) -> Record:
    stream = parse_stream(frame.get("stream"))
    data = frame.get("data")
    if stream is None or not isinstance(data, dict):
        raise SimulatorError(f"{path}: not a combined-stream frame: {line[:120]!r}")
    raw = _data_part(line, frame)
    if stream.kind.startswith("depth") and "U" in data:
        return Record(at_ns, stream.code, stream.kind, line, raw, int(data["U"]), int(data["u"]),
                      _levels(data.get("b", ())), _levels(data.get("a", ())))
    return Record(at_ns, stream.code, stream.kind, line, raw, last_id=int(data.get("u", 0) or 0))


def read_recording(path: str) -> tuple[list[Record], dict[str, Snapshot]]:
    """Parse one file: its frames, and its inline snapshot keyed by the file's (single) depth symbol."""
    records: list[Record] = []
    snapshots: list[Snapshot] = []
    try:
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                stamp, _, text = line.rstrip(b"\r\n").partition(b" ")
                if not text:
                    continue
                try:
                    frame = orjson.loads(text)
                    at_ns = int(stamp)
                except (orjson.JSONDecodeError, ValueError):
                    raise SimulatorError(f"{path}:{number}: not '<ns> <json>'") from None
                if isinstance(frame, dict) and "lastUpdateId" in frame:
                    snapshots.append(Snapshot(int(frame["lastUpdateId"]), _levels(frame["bids"]), _levels(frame["asks"])))
                elif isinstance(frame, dict):
                    records.append(_record(at_ns, text, frame, f"{path}:{number}"))
    except OSError as exc:
        raise SimulatorError(f"cannot read recording {path}: {exc}") from exc
    depth_codes = {r.code for r in records if r.is_depth}
    if len(snapshots) > 1 or (snapshots and len(depth_codes) != 1):
        raise SimulatorError(f"{path}: an inline snapshot needs exactly one snapshot and one depth symbol")
    return records, ({depth_codes.pop(): snapshots[0]} if snapshots else {})


class ReplaySymbol:
    """One recorded symbol's book: the snapshot advanced by the recorded events sent so far."""

    def __init__(self, code: str, snapshot: Snapshot) -> None:
        self.code = code
        self.snapshot = snapshot
        self.seq = snapshot.last_update_id
        self.bids: dict[int, str] = {}
        self.asks: dict[int, str] = {}
        #: applied events, oldest first: (u, bids, asks)
        self.history: list[tuple[int, Levels, Levels]] = []
        self.gaps = 0
        self.reset()

    def reset(self) -> None:
        self.seq = self.snapshot.last_update_id
        self.bids, self.asks = _side(self.snapshot.bids), _side(self.snapshot.asks)
        self.history = []

    def apply(self, record: Record) -> bool:
        """Binance's update procedure; False for an event at or before the book's id."""
        if record.last_id <= self.seq:
            return False
        if record.first_id > self.seq + 1:
            self.gaps += 1  # a hole in the recording itself: apply anyway, the truth follows the frames
        _update(self.bids, record.bids)
        _update(self.asks, record.asks)
        self.seq = record.last_id
        self.history.append((record.last_id, record.bids, record.asks))
        return True

    def levels_at(self, seq: int | None) -> tuple[int, dict[int, str], dict[int, str]]:
        if seq is None or seq == self.seq:
            return self.seq, self.bids, self.asks
        if seq != self.snapshot.last_update_id and not any(u == seq for u, _b, _a in self.history):
            raise HistoryUnavailable(
                f"{self.code}: update id {seq} is not the snapshot's id or the last id of a sent event"
            )
        bids, asks = _side(self.snapshot.bids), _side(self.snapshot.asks)
        for last_id, event_bids, event_asks in self.history:
            if last_id > seq:
                break
            _update(bids, event_bids)
            _update(asks, event_asks)
        return seq, bids, asks


def _side(levels: Iterable[tuple[str, str]]) -> dict[int, str]:
    book: dict[int, str] = {}
    _update(book, levels)
    return book


def _update(book: dict[int, str], levels: Iterable[tuple[str, str]]) -> None:
    for price, qty in levels:
        if decimal_units(qty):
            book[decimal_units(price)] = qty
        else:
            book.pop(decimal_units(price), None)


def _rows(book: dict[int, str], limit: int | None, best_high: bool) -> list[list[str]]:
    if limit is None:
        prices: Iterable[int] = sorted(book, reverse=best_high)
    else:
        prices = heapq.nlargest(limit, book) if best_high else heapq.nsmallest(limit, book)
    return [[units_text(price), book[price]] for price in prices]


def _decimals(values: Iterable[str]) -> int:
    return max((len(v.partition(".")[2].rstrip("0")) for v in values), default=2)


class ReplayMarket:
    """The truth of a replay, with the part of `Market`'s surface the controller and REST use."""

    def __init__(self, snapshots: dict[str, Snapshot]) -> None:
        self.codes = tuple(snapshots)
        self.era = 1
        self.symbols = {code: ReplaySymbol(code, snapshot) for code, snapshot in snapshots.items()}

    def regenerate(self) -> None:
        """A restart: a new era, every book back to its recorded snapshot (the replay rewinds)."""
        self.era += 1
        for symbol in self.symbols.values():
            symbol.reset()

    def get(self, code: str) -> ReplaySymbol:
        try:
            return self.symbols[code]
        except KeyError:
            raise UnknownCode(code) from None

    def book(self, code: str, seq: int | None = None) -> dict[str, object]:
        at_seq, bids, asks = self.get(code).levels_at(seq)
        return {"code": code, "seq": at_seq, "bids": _rows(bids, None, True), "asks": _rows(asks, None, False)}

    def lagged_seq(self, code: str, lag: int) -> int:
        """The id ``lag`` applied events ago (the recorded snapshot's id at most that far back)."""
        symbol = self.get(code)
        if lag <= 0 or not symbol.history:
            return symbol.seq
        return symbol.history[-lag - 1][0] if lag < len(symbol.history) else symbol.snapshot.last_update_id

    # -- binance_rest.DepthSource ---------------------------------------------------------------

    def snapshot(self, code: str, limit: int, lag: int) -> tuple[int, list[list[str]], list[list[str]]]:
        seq, bids, asks = self.get(code).levels_at(self.lagged_seq(code, lag) if lag else None)
        return seq, _rows(bids, limit, True), _rows(asks, limit, False)

    def precision(self, code: str) -> tuple[str, str]:
        snapshot = self.get(code).snapshot
        levels = snapshot.bids + snapshot.asks
        return step_text(_decimals(p for p, _q in levels)), step_text(_decimals(q for _p, q in levels))


@attrs.frozen
class Replay:
    """A loaded recording: its frames in order, the kinds of stream it holds, and its truth."""

    records: list[Record]
    kinds: tuple[str, ...]
    market: ReplayMarket


def load_replay(config: SimConfig) -> Replay:
    """Read every configured file; the venue's symbols must be exactly the recorded ones with a snapshot."""
    records: list[Record] = []
    snapshots: dict[str, Snapshot] = {}
    for path in config.replay_paths:
        file_records, file_snapshots = read_recording(path)
        records.extend(file_records)
        snapshots.update(file_snapshots)
    records.sort(key=lambda record: record.at_ns)  # stable: a file's own order is kept
    missing = [code for code in config.symbols if code not in snapshots]
    if missing:
        recorded = ", ".join(sorted(snapshots)) or "none"
        raise SimulatorError(f"replay: no recorded snapshot for {', '.join(missing)} (recorded: {recorded})")
    wanted = set(config.symbols)
    records = [record for record in records if record.code in wanted]
    kinds = tuple(dict.fromkeys(record.kind for record in records))
    return Replay(records, kinds, ReplayMarket({code: snapshots[code] for code in config.symbols}))


class ReplayPump(Pump):
    """Sends a `Replay`'s frames in place of the generated market (freeze/unfreeze as `Pump`)."""

    def __init__(self, venue: Venue, replay: Replay) -> None:
        super().__init__(venue)
        self._replay = replay
        self._codes = set(replay.market.codes)

    async def run(self) -> None:
        venue, market = self._venue, self._replay.market
        while True:
            era = market.era
            while market.era == era and not self._codes.intersection(venue.registry.subscribers):
                await asyncio.sleep(IDLE_POLL_S)
            if market.era != era:
                continue
            if await self._play(era):
                venue.registry.counters["replay_finished"] += 1
                while market.era == era:
                    await asyncio.sleep(IDLE_POLL_S * 10)

    async def _play(self, era: int) -> bool:
        """Send the whole recording once; False if a restart interrupted it."""
        venue, records = self._venue, self._replay.records
        speed = venue.config.replay_speed
        started_s, paused_s, index = venue.now_s(), 0.0, 0
        base_ns = records[0].at_ns if records else 0
        while index < len(records):
            if self._replay.market.era != era:
                return False
            if venue.frozen:
                frozen_at_s = venue.now_s()
                await self.resumed.wait()
                paused_s += venue.now_s() - frozen_at_s
                continue
            if speed > 0:
                elapsed_ns = (venue.now_s() - started_s - paused_s) * speed * 1e9
                end = index
                while end < len(records) and end - index < MAX_BATCH_RECORDS and records[end].at_ns - base_ns <= elapsed_ns:
                    end += 1
                if end == index:
                    wait_s = (records[index].at_ns - base_ns - elapsed_ns) / 1e9 / speed
                    await asyncio.sleep(min(MAX_SLEEP_S, max(0.0, wait_s)))
                    continue
            else:
                await self._wait_for_readers()
                end = min(len(records), index + min(MAX_BATCH_RECORDS, FAST_BATCH_DIFFS))
            self._send(records[index:end])
            index = end
            await asyncio.sleep(0)
        return True

    def _send(self, batch: list[Record]) -> None:
        venue = self._venue
        dialect: Any = venue.dialect
        registry, symbols = venue.registry, self._replay.market.symbols
        stalled = venue.faults.stalled(venue.now_s())
        for record in batch:
            if record.is_depth:
                symbols[record.code].apply(record)
            message = dialect.recorded_message(record)
            subscribers = registry.subscribers.get(record.code)
            if not subscribers or not any(mask & message.bit for mask in subscribers.values()):
                continue
            if stalled:
                registry.counters["pushes_suppressed_stall"] += 1
            elif record.is_depth:
                venue.deliver_routed(record.code, message)
            else:
                dialect.deliver(record.code, message)
            registry.counters["replay_records_sent"] += 1
        venue.flush()
