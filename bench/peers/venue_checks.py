"""The venue's control API and the exactness checks of the bench harnesses (standard library only).

A check freezes the venue (``POST /_control/freeze``), waits until every book's id equals the
venue's seq (or stops moving), dumps the peer's top ``depth`` levels and compares them with
``GET /_control/truth``, then unfreezes. ``recorder`` and ``adapter`` are binance_harness.py's
``Recorder`` and ``PeerAdapter`` (duck-typed here: that module imports this one).
"""

from __future__ import annotations

import json
import time
import urllib.request
from decimal import Decimal
from typing import Any

#: how long a freeze waits for every book to reach the venue's seq (a peer may drain a backlog)
SETTLE_TIMEOUT_S = 30.0
#: a book whose id has not moved for this long after a freeze is taken as settled
SETTLE_IDLE_S = 2.0

Level = tuple[Any, Any]
Book = tuple[int, list[Level], list[Level]]  # (u, bids best first, asks best first)


class Control:
    def __init__(self, control_url: str) -> None:
        if not control_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"refusing a non-loopback control URL: {control_url}")
        self.url = control_url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, what: str) -> Any:
        with self._opener.open(f"{self.url}/{what}", timeout=10) as reply:
            return json.loads(reply.read())

    def post(self, what: str) -> Any:
        request = urllib.request.Request(f"{self.url}/{what}", data=b"", method="POST")
        with self._opener.open(request, timeout=10) as reply:
            return json.loads(reply.read())

    def seqs(self) -> dict[str, int]:
        return self.get("state")["seqs"]


def _norm(levels: list[Level], depth: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(str(p)).normalize(), Decimal(str(q)).normalize()) for p, q in levels[:depth]]


def compare_books(books: dict[str, Book], control: Control, codes: list[str], depth: int) -> dict[str, Any]:
    """Each book vs the venue's truth now (the venue is frozen): exact symbols, caught-up symbols."""
    exact, caught_up = 0, 0
    mismatches: list[dict[str, Any]] = []
    seqs = control.seqs()
    for code in codes:
        truth = control.get(f"truth?code={code}")
        u, bids, asks = books.get(code, (0, [], []))
        ok = (_norm(bids, depth) == _norm(truth["bids"], depth) and _norm(asks, depth) == _norm(truth["asks"], depth))
        exact += ok
        caught_up += u == seqs[code]
        if not ok and len(mismatches) < 3:
            mismatches.append({"code": code, "u": u, "venue_seq": seqs[code],
                               "bids": [list(map(str, lv)) for lv in _norm(bids, 3)],
                               "truth_bids": truth["bids"][:3]})
    return {"exact": exact == len(codes), "exact_symbols": exact, "caught_up_symbols": caught_up,
            "symbols": len(codes), "mismatches": mismatches}


def settle(recorder: Any, control: Control, codes: list[str]) -> float:
    """After a freeze: wait until every book id equals the venue's seq, or no book moved for a while."""
    started = time.perf_counter()
    seqs = control.seqs()
    last, moved_at = dict(recorder.last_u), started
    while time.perf_counter() - started < SETTLE_TIMEOUT_S:
        now_u = dict(recorder.last_u)
        if all(now_u.get(code) == seqs[code] for code in codes):
            break
        if now_u != last:
            last, moved_at = now_u, time.perf_counter()
        elif time.perf_counter() - moved_at > SETTLE_IDLE_S:
            break
        time.sleep(0.02)
    return time.perf_counter() - started


def check_exact(adapter: Any, recorder: Any, control: Control, codes: list[str],
                depth: int) -> dict[str, Any]:
    control.post("freeze")
    try:
        waited = settle(recorder, control, codes)
        result = compare_books(adapter.dump_books(depth), control, codes, depth)
        result["settle_s"] = round(waited, 2)
        return result
    finally:
        control.post("unfreeze")
