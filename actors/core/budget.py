"""Rolling-window budgets for a venue's limits: connection attempts and REST request weight.

Binance counts 300 connection attempts per 5 minutes per IP and 6000 REST weight per minute
per IP (a depth snapshot costs 5..250 by its limit). A client that only backs off after the
venue refuses it gets banned (HTTP 418, minutes to days), so we count what we spend and wait
*before* we would exceed. Both budgets are rolling windows: at any instant, what was spent in
the last ``window_s`` seconds. That is at least as strict as the venue's clock-aligned minute.

Pure: the caller passes the clock (monotonic seconds). One owner each (the ConnectionActor,
the SnapshotActor): no locks.
"""

from __future__ import annotations

from collections import deque


class RollingBudget:
    """At most ``limit`` units spent in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"a budget needs limit >= 1 and window_s > 0, got {limit}, {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, now_s: float) -> None:
        spent = self._spent
        while spent and now_s - spent[0][0] >= self.window_s:
            self._total -= spent.popleft()[1]

    def used(self, now_s: float) -> int:
        """Units spent in the window ending now."""
        self._expire(now_s)
        return self._total

    def wait_s(self, units: int, now_s: float) -> float:
        """Seconds until ``units`` fit (0.0: now). More than the whole limit fits once the window is empty."""
        self._expire(now_s)
        excess = self._total + units - self.limit
        if excess <= 0 or not self._spent:
            return 0.0
        freed = 0
        for at_s, spent in self._spent:
            freed += spent
            if freed >= excess:
                return max(0.0, at_s + self.window_s - now_s)
        return max(0.0, self._spent[-1][0] + self.window_s - now_s)

    def spend(self, units: int, now_s: float) -> None:
        self._expire(now_s)
        self._spent.append((now_s, units))
        self._total += units

    def observe(self, used: int, now_s: float) -> None:
        """The venue says ``used`` units are spent (e.g. ``X-MBX-USED-WEIGHT-1M``): someone else on the
        same IP, or our count is behind. Adopt the larger figure (the difference is spent now)."""
        self._expire(now_s)
        if used > self._total:
            self.spend(used - self._total, now_s)
