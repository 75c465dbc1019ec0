"""The read side of the service: views, statuses, stats and latencies, from the caller's thread.

Every read goes through a book's seqlock read port (actors/readport.py): a copy between two of
the book's messages, never a message, so polling never delays the data path. Only a book that
keeps changing under the copy (or one without a port yet) is asked, and never past the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pykka

from depthkeeper.actors.core.orderbook import BookStatus
from depthkeeper.actors.messages import BookStats, BookView, GetBookStats, GetLatencies, GetView
from depthkeeper.supervisor.service.errors import ServiceError

if TYPE_CHECKING:
    from depthkeeper.actors.readport import BookReadPort
    from depthkeeper.supervisor.service.runtime import Runtime

#: a scan of every book gives up the GIL after this many (a long scan would stall the data path)
YIELD_EVERY_BOOKS = 16


class BookUnavailable(ServiceError):
    """The book is not subscribed, or did not answer within the timeout."""


class Reads:
    """See the module docstring."""

    def __init__(self, rt: Runtime, ask_timeout_s: float, gave_up: Callable[[], str | None]) -> None:
        self._rt = rt
        self._ask_timeout_s = ask_timeout_s
        #: why the service gave up (escalated), or None
        self._gave_up = gave_up

    def book(self, code: str, depth: int | None = None, timeout_s: float | None = None) -> BookView:
        rt = self._rt
        port = rt.ports.get(code)
        if port is not None:
            view = port.read(depth)
            if view is not None:
                return view
        ref = rt.routes.get(code)
        if ref is None:
            raise BookUnavailable(self._why_no_book(code))
        timeout = timeout_s or self._ask_timeout_s
        try:
            view = ref.ask(GetView(depth), timeout=timeout)
        except pykka.Timeout:
            raise BookUnavailable(f"{code} did not answer within {timeout}s") from None
        except pykka.ActorDeadError:
            raise BookUnavailable(self._why_no_book(code, restarting=True)) from None
        assert isinstance(view, BookView)
        return view

    def _why_no_book(self, code: str, restarting: bool = False) -> str:
        gave_up = self._gave_up()
        if gave_up is not None:
            return f"{code}: the service gave up ({gave_up})"
        if code not in self._rt.state.desired:
            return f"{code} is not subscribed"
        return f"{code} is restarting" if restarting else f"{code} is starting; no book yet"

    def wait_live(self, codes: Iterable[str] | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            wanted = tuple(codes) if codes is not None else tuple(self._rt.state.desired)
            if all(self._is_live(code, deadline) for code in wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # polling a condition against a deadline

    def _is_live(self, code: str, deadline: float) -> bool:
        port = self._rt.ports.get(code)
        if port is not None:
            return port.status() is BookStatus.LIVE  # a few attribute reads: no copy, no sort
        try:
            left = max(0.05, deadline - time.monotonic())
            return self.book(code, depth=0, timeout_s=left).status is BookStatus.LIVE
        except BookUnavailable:
            return False

    def book_stats(self) -> dict[str, BookStats]:
        return self._read(lambda port: port.stats(), lambda code: GetBookStats())

    def latency_samples(self, since: Mapping[str, int] | None
                        ) -> tuple[dict[str, int], dict[str, list[tuple[float, int]]]]:
        after = since or {}
        windows = self._read(lambda port: port.latency_window(after.get(port.code, 0)),
                             lambda code: GetLatencies(after.get(code, 0)))
        return {code: w[0] for code, w in windows.items()}, {code: w[1] for code, w in windows.items()}

    def _read(self, read: Callable[[BookReadPort], Any], message: Callable[[str], Any]) -> dict[str, Any]:
        """``read(port)`` for every book; ask those whose port is missing or kept changing."""
        out: dict[str, Any] = {}
        asked: dict[str, pykka.ActorRef[Any]] = {}
        ports = self._rt.ports
        for i, (code, ref) in enumerate(self._rt.routes.table.items()):
            if i % YIELD_EVERY_BOOKS == YIELD_EVERY_BOOKS - 1:
                time.sleep(0)  # let the reader and the books have the GIL: a scan of 1000 books is ~50 ms
            port = ports.get(code)
            value = read(port) if port is not None else None
            if value is None:
                asked[code] = ref
            else:
                out[code] = value
        if asked:
            futures = {code: ref.ask(message(code), block=False) for code, ref in asked.items()}
            deadline = time.monotonic() + self._ask_timeout_s
            for code, future in futures.items():
                try:
                    out[code] = future.get(timeout=max(0.01, deadline - time.monotonic()))
                except (pykka.Timeout, pykka.ActorDeadError):
                    continue
        return out
