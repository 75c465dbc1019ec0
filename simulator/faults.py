"""Armed faults and the bookkeeping of their effects.

A fault is armed by the control API and consumed by the data path: the pump asks
`FaultBoard.route` what to emit for each business message, the REST endpoints ask
`take_rest_faults` what to do to the next snapshot. Stream faults are consumed only by messages
that somebody actually receives (a symbol with at least one subscriber), so ``drop(3,
code="BTCUSDT")`` always produces one visible gap of exactly three seqs on a subscribed stream,
never a silent no-op spent on a symbol nobody watches.

Every applied effect is counted under its `FaultKind` (plus a few detail counters), because
tests assert on "the fault happened" as much as on "the client coped".
"""

from __future__ import annotations

import collections
import enum
from typing import TypeVar

import attrs

from depthkeeper.simulator.blackhole import Blackhole
from depthkeeper.simulator.snapshot_faults import ArmedShapes

T = TypeVar("T")

#: The code in ``unknown_code`` malformed frames: well-formed, but no venue lists it.
UNKNOWN_CODE = "ZZZNOSUCH"
#: Default seq of a `FaultKind.FUTURE_DIFF`: beyond any real seq, and the largest integer a
#: float (and so a JSON parser in another language) still represents exactly.
FUTURE_SEQ = 2**53
#: Detail counters reported (from 0) next to the `FaultKind` ones in ``counters()["faults"]``.
DETAIL_COUNTERS = ("blackhole_frames_discarded", "blackhole_handshakes_held")
#: Prefix of the codes a distinct-code flood invents (``ZZ000001``, ``ZZ000002``, ...).
FLOOD_CODE_PREFIX = "ZZ"


class FaultKind(str, enum.Enum):
    """What the control API can break; the value is the counter name."""

    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    STALL = "stall"
    CLOSE = "close"
    RESTART = "restart"
    MALFORMED = "malformed"
    REST_DELAY = "rest_delay"
    REST_FAIL = "rest_fail"
    STALE_SNAPSHOT = "stale_snapshot"
    # Issue 12 ("A LIVE view is a promise"): the faults a LIVE view must survive.
    SLOW_HANDSHAKE = "slow_handshake"
    BLACKHOLE = "blackhole"
    FUTURE_DIFF = "future_diff"
    FUTURE_SNAPSHOT = "future_snapshot"
    EMPTY_SNAPSHOT = "empty_snapshot"
    SHORT_SNAPSHOT = "short_snapshot"
    CROSSED_SNAPSHOT = "crossed_snapshot"
    REJECT = "reject"
    UNKNOWN_TYPE_FLOOD = "unknown_type_flood"
    DISTINCT_CODE_FLOOD = "distinct_code_flood"
    # Issue 14: pings at once; a binance client's pongs count toward its 5 messages/s, so the venue
    # closes with 1008 "Too many requests" (its own rule, provoked from the venue's side).
    PING_BURST = "ping_burst"


class MalformedKind(str, enum.Enum):
    """Shapes of bad frames: unparsable, incomplete, mistyped, or well-formed for a code nobody has."""

    BAD_JSON = "bad_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_CODE = "unknown_code"


def to_malformed_kind(value: MalformedKind | str) -> MalformedKind:
    try:
        return MalformedKind(value)
    except ValueError:
        choices = ", ".join(kind.value for kind in MalformedKind)
        raise ValueError(f"malformed kind must be one of {choices}, got {value!r}") from None


@attrs.frozen
class RestFaults:
    """What to do to one REST snapshot request (each part consumed independently)."""

    delay_s: float = 0.0
    fail_status: int | None = None
    lag: int = 0


class _Armed:
    """A count armed globally (``code=None``) and per code; per-code takes precedence."""

    def __init__(self) -> None:
        self.any = 0
        self.by_code: collections.Counter[str] = collections.Counter()

    def arm(self, count: int, code: str | None) -> None:
        if code is None:
            self.any += count
        else:
            self.by_code[code] += count

    def take(self, code: str) -> bool:
        if self.by_code.get(code, 0) > 0:
            self.by_code[code] -= 1
            if not self.by_code[code]:
                del self.by_code[code]
            return True
        if self.any > 0:
            self.any -= 1
            return True
        return False

    def __bool__(self) -> bool:
        return self.any > 0 or bool(self.by_code)

    def clear(self) -> None:
        self.any = 0
        self.by_code.clear()


class FaultBoard:
    """All armed faults of one venue plus the counts of what they did."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._drop = _Armed()
        self._duplicate = _Armed()
        self._reorder = _Armed()
        #: code -> the message held back by a reorder in progress (sent after the next one).
        self._held: dict[str, object] = {}
        self.stalled_until_s = 0.0
        self._rest_delays: collections.deque[float] = collections.deque()
        self._rest_fails: collections.deque[int] = collections.deque()
        self._rest_lags: collections.deque[int] = collections.deque()
        self.stream_active = False
        #: Hold times of the next WebSocket handshakes (`FaultKind.SLOW_HANDSHAKE`).
        self._slow_handshakes: collections.deque[float] = collections.deque()
        #: Codes whose subscription the venue refuses until lifted (`FaultKind.REJECT`).
        self.rejected: set[str] = set()
        #: Armed reshaping of REST snapshots (future seq, empty, short, crossed).
        self.shapes = ArmedShapes(self.counts)
        #: Connections that get no bytes and are not read (`FaultKind.BLACKHOLE`).
        self.blackhole = Blackhole(self.counts, counter=FaultKind.BLACKHOLE.value)

    # -- arming (control API) -------------------------------------------------------------------

    def _refresh(self) -> None:
        self.stream_active = bool(self._drop or self._duplicate or self._reorder or self._held)

    def arm_drop(self, count: int, code: str | None) -> None:
        self._drop.arm(count, code)
        self._refresh()

    def arm_duplicate(self, code: str | None) -> None:
        self._duplicate.arm(1, code)
        self._refresh()

    def arm_reorder(self, code: str | None) -> None:
        self._reorder.arm(1, code)
        self._refresh()

    def arm_stall(self, now_s: float, seconds: float) -> None:
        """Stall from now for ``seconds``, replacing any stall in progress (0 ends it)."""
        self.stalled_until_s = now_s + seconds
        if seconds > 0:
            self.counts[FaultKind.STALL.value] += 1

    def arm_rest(self, *, delay_s: float = 0.0, fail_status: int | None = None, lag: int = 0, count: int) -> None:
        if delay_s > 0:
            self._rest_delays.extend([delay_s] * count)
        if fail_status is not None:
            self._rest_fails.extend([fail_status] * count)
        if lag > 0:
            self._rest_lags.extend([lag] * count)

    def arm_slow_handshake(self, seconds: float, count: int) -> None:
        self._slow_handshakes.extend([seconds] * count)

    # -- consuming (data path) ------------------------------------------------------------------

    def stalled(self, now_s: float) -> bool:
        return now_s < self.stalled_until_s

    def route(self, code: str, message: T) -> list[T]:
        """The messages to deliver, in order, in place of ``message`` (only call if stream_active)."""
        held = self._held.pop(code, None)
        if held is not None:
            self.counts[FaultKind.REORDER.value] += 1
            self._refresh()
            return [message, held]  # type: ignore[list-item]
        if self._drop.take(code):
            self.counts[FaultKind.DROP.value] += 1
            self._refresh()
            return []
        if self._duplicate.take(code):
            self.counts[FaultKind.DUPLICATE.value] += 1
            self._refresh()
            return [message, message]
        if self._reorder.take(code):
            self._held[code] = message
            self._refresh()
            return []
        return [message]

    def release_held(self) -> list[tuple[str, object]]:
        """Give back messages held by unfinished reorders (on freeze: let clients converge)."""
        released = list(self._held.items())
        self._held.clear()
        self._refresh()
        return released

    def take_rest_faults(self) -> RestFaults:
        delay_s = self._rest_delays.popleft() if self._rest_delays else 0.0
        fail_status = self._rest_fails.popleft() if self._rest_fails else None
        lag = self._rest_lags.popleft() if self._rest_lags and fail_status is None else 0
        if delay_s:
            self.counts[FaultKind.REST_DELAY.value] += 1
        if fail_status is not None:
            self.counts[FaultKind.REST_FAIL.value] += 1
        if lag:
            self.counts[FaultKind.STALE_SNAPSHOT.value] += 1
        return RestFaults(delay_s=delay_s, fail_status=fail_status, lag=lag)

    def take_slow_handshake(self) -> float:
        """Seconds to hold the handshake being answered now (0: none armed)."""
        if not self._slow_handshakes:
            return 0.0
        self.counts[FaultKind.SLOW_HANDSHAKE.value] += 1
        return self._slow_handshakes.popleft()

    def take_rejected(self, codes: list[str]) -> list[str]:
        """Which of ``codes`` (a subscription request's valid codes) the venue refuses; counted."""
        if not self.rejected:
            return []
        refused = [code for code in codes if code in self.rejected]
        self.counts[FaultKind.REJECT.value] += len(refused)
        return refused

    def forget_held(self) -> None:
        """A restart drops messages held by a reorder: they belong to the old era.

        Armed counts stay armed until consumed, on the new era's streams.
        """
        self._held.clear()
        self._refresh()

    def snapshot_counts(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in FaultKind}
        counts.update(dict.fromkeys(DETAIL_COUNTERS, 0))
        counts.update(self.counts)
        return counts
