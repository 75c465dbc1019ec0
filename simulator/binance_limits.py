"""Binance's limits as plain counters: each one can enforce or only count (lenient mode).

Real Binance enforces all of them; a benchmark against peers that do not pace themselves (nautilus
sends 199 SUBSCRIBEs in 46 ms, python-binance opens a socket per symbol) must still run, so with
``binance_enforce_limits = false`` every limit only counts its excess, visibly, in the counters.

- `MessageRate`: 5 incoming messages per connection per rolling second; PING, PONG and JSON frames
  all count (web-socket-streams.md, "WebSocket Limits"). Excess closes with 1008.
- `ConnectionAttempts`: 300 connection attempts per 5 minutes per IP; refused attempts count too.
- `WeightBudget`: REST request weight per IP, 6000 per minute. The window starts at the IP's first
  request and lasts ``window_s`` (Binance aligns it to the clock minute; a window anchored at the
  first request gives tests a deterministic ``Retry-After``). Over the budget: 429 with
  ``Retry-After`` = seconds to the window's end. An IP that sends more than ``ban_after`` requests
  into a 429 within one window is banned: 418 with ``Retry-After`` = seconds to the ban's end.

All of it runs on the event-loop thread; times are monotonic seconds.
"""

from __future__ import annotations

import collections
import enum
import math

import attrs


def depth_weight(limit: int) -> int:
    """Weight of ``GET /api/v3/depth`` by requested limit (rest-api.md, since 2023-10-19)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class MessageRate:
    """Incoming messages of one connection in the last second."""

    __slots__ = ("_limit", "_times", "excess", "received")

    def __init__(self, limit_per_s: int) -> None:
        self._limit = limit_per_s
        self._times: collections.deque[float] = collections.deque()
        self.received = 0
        self.excess = 0

    def hit(self, now_s: float) -> bool:
        """Count one message; False when it is over the limit (``limit_per_s = 0``: never)."""
        self.received += 1
        if not self._limit:
            return True
        times = self._times
        while times and now_s - times[0] >= 1.0:
            times.popleft()
        times.append(now_s)
        if len(times) > self._limit:
            self.excess += 1
            return False
        return True


class ConnectionAttempts:
    """WebSocket handshakes per client IP in a sliding window."""

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._attempts: dict[str, collections.deque[float]] = {}

    def hit(self, ip: str, now_s: float) -> bool:
        """Count one attempt; False when it is over the limit (``limit = 0``: never)."""
        if not self._limit:
            return True
        attempts = self._attempts.setdefault(ip, collections.deque())
        while attempts and now_s - attempts[0] >= self._window_s:
            attempts.popleft()
        attempts.append(now_s)
        return len(attempts) <= self._limit


class Verdict(enum.Enum):
    OK = 200
    RATE_LIMITED = 429
    BANNED = 418


@attrs.frozen
class Charge:
    """The outcome of charging one request: verdict, weight used in the window, seconds to wait."""

    verdict: Verdict
    used: int
    retry_after_s: int = 0


class _IpWindow:
    __slots__ = ("banned_until_s", "rejected", "start_s", "used")

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.used = 0
        self.rejected = 0
        self.banned_until_s = 0.0


class WeightBudget:
    """Request weight per IP per window, with 429 and the 418 ban (see the module docstring)."""

    def __init__(self, limit: int, window_s: float, ban_after: int, ban_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._ban_after = ban_after
        self._ban_s = ban_s
        self._ips: dict[str, _IpWindow] = {}

    def _window(self, ip: str, now_s: float) -> _IpWindow:
        window = self._ips.get(ip)
        if window is None:
            window = self._ips[ip] = _IpWindow(now_s)
        elif now_s - window.start_s >= self.window_s:
            window.start_s, window.used, window.rejected = now_s, 0, 0
        return window

    def used(self, ip: str, now_s: float) -> int:
        return self._window(ip, now_s).used

    def charge(self, ip: str, weight: int, now_s: float) -> Charge:
        """Charge ``weight`` if the budget allows; the verdict is what Binance answers."""
        window = self._window(ip, now_s)
        if window.banned_until_s > now_s:
            window.rejected += 1
            return Charge(Verdict.BANNED, window.used, math.ceil(window.banned_until_s - now_s))
        if not self.limit or window.used + weight <= self.limit:
            window.used += weight
            return Charge(Verdict.OK, window.used)
        window.rejected += 1
        if self._ban_after and window.rejected > self._ban_after:
            window.banned_until_s = now_s + self._ban_s
            return Charge(Verdict.BANNED, window.used, math.ceil(self._ban_s))
        return Charge(Verdict.RATE_LIMITED, window.used, max(1, math.ceil(window.start_s + self.window_s - now_s)))

    def add(self, ip: str, weight: int, now_s: float) -> int:
        """Lenient mode: a request served despite a non-OK verdict still uses its weight."""
        window = self._window(ip, now_s)
        window.used += weight
        return window.used
