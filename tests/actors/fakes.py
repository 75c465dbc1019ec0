"""Fakes for actor tests: a recording actor and a manual scheduler. Never mocks of our classes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka


class Recorder(pykka.ThreadingActor):
    """Records every message it receives; tests wait for one with a deadline."""

    def __init__(self, messages: list[Any], cond: threading.Condition) -> None:
        super().__init__()
        self.messages = messages
        self.cond = cond

    def on_receive(self, message: Any) -> Any:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()
        return None


class RecorderHandle:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.cond = threading.Condition()
        self.ref = Recorder.start(self.messages, self.cond)

    def wait_for(self, predicate: type | Callable[[Any], bool], timeout: float = 3.0) -> Any:
        check = (lambda m: isinstance(m, predicate)) if isinstance(predicate, type) else predicate
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for message in self.messages:
                    if check(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message within {timeout}s; got {self.messages!r}")
                self.cond.wait(left)

    def all(self, kind: type) -> list[Any]:
        with self.cond:
            return [m for m in self.messages if isinstance(m, kind)]


class ManualScheduler:
    """A scheduler whose timers fire only when the test says so."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Any, Any, bool]] = []

    def schedule(self, delay_s: float, ref: Any, message: Any) -> Any:
        entry = (delay_s, ref, message, False)
        self.timers.append(entry)
        return entry

    def schedule_every(self, interval_s: float, ref: Any, message: Any) -> Any:
        entry = (interval_s, ref, message, True)
        self.timers.append(entry)
        return entry

    def cancel(self, handle: Any) -> None:
        if handle in self.timers:
            self.timers.remove(handle)

    def fire(self, kind: type) -> int:
        """Deliver every pending timer message of ``kind`` (one-shots are consumed)."""
        fired = 0
        for entry in list(self.timers):
            _, ref, message, repeating = entry
            if isinstance(message, kind):
                ref.tell(message)
                fired += 1
                if not repeating:
                    self.timers.remove(entry)
        return fired

    def close(self) -> None:
        self.timers.clear()
