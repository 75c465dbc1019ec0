"""A pykka host: your own actor embeds the service, is its parent (it receives ``Escalated`` if
the restart intensity is ever exceeded) and one of its listeners (``BookUpdated`` /
``BookStatusChanged``).

    python examples/pykka_host.py [--duration 5] [--provoke-escalation]

``--provoke-escalation`` lowers the restart intensity to 1 and kills the connection actor twice
(through the chaos handle), so the host sees the escalation it would get in real trouble.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import Counter
from typing import Any, cast

import attrs
import pykka

from depthkeeper.supervisor import (
    BookService,
    BookStatusChanged,
    BookUpdated,
    Escalated,
    load_config,
    resolve_config_path,
)


class Host(pykka.ThreadingActor):
    """Stands for a host application's own actor (a strategy, a risk engine, ...)."""

    def __init__(self, cfg: Any, escalated: threading.Event) -> None:
        super().__init__()
        self.cfg = cfg
        self.escalated = escalated
        self.svc: BookService | None = None
        self.updates: Counter[str] = Counter()
        self.best: dict[str, tuple[float | None, float | None]] = {}

    def on_start(self) -> None:
        # parent=our ref: an escalation arrives as a message; the listener: our ref too. Both are
        # told or asked without blocking the service; keep on_receive short.
        self.svc = BookService.start(self.cfg, parent=self.actor_ref)
        self.svc.add_listener(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        match message:
            case BookUpdated(view=view):
                self.updates[view.code] += 1
                self.best[view.code] = (view.best_bid, view.best_ask)
            case BookStatusChanged(code=code, old=old, new=new, detail=detail):
                print(f"status  {code:<8} {old.name} -> {new.name} ({detail})", flush=True)
            case Escalated(supervisor=supervisor, reason=reason, restarts=restarts):
                print(f"escalated by {supervisor} after {restarts} restarts: {reason}", flush=True)
                self.escalated.set()  # a real host would restart the service, or stop itself
            case "report":
                return dict(self.updates), dict(self.best)
            case "service":
                return self.svc
        return None

    def on_stop(self) -> None:
        if self.svc is not None:
            self.svc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/demo.toml", help="deployment file (conf/NAME.toml: the shipped one)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run")
    parser.add_argument("--provoke-escalation", action="store_true",
                        help="restart intensity 1, then kill the connection twice: the host gets Escalated")
    args = parser.parse_args()
    cfg = load_config(resolve_config_path(args.config)[0])
    if args.provoke_escalation:
        cfg = attrs.evolve(cfg, supervisor=attrs.evolve(cfg.supervisor, max_restarts=1, restart_backoff_min_s=0.0))
    escalated = threading.Event()
    host = Host.start(cfg, escalated)
    try:
        svc = cast(BookService, host.ask("service", timeout=10))
        if not svc.wait_live(timeout=10):
            print("not live:", "; ".join(svc.health().problems))
            return 1
        if args.provoke_escalation:
            for _ in range(3):  # the 2nd exit within the period is one more than 1 restart allows
                svc.chaos.kill("connection")
                if escalated.wait(2.0):
                    break
            if not escalated.wait(5.0):
                print("no escalation arrived")
                return 1
        else:
            escalated.wait(args.duration)  # the run: the host's inbox does the work meanwhile
        updates, best = cast(tuple[dict[str, int], dict[str, Any]], host.ask("report", timeout=10))
        for code in sorted(updates):
            bid, ask = best[code]
            print(f"updates {code:<8} {updates[code]:>6}  last bid {bid} ask {ask}")
    finally:
        host.stop()  # its on_stop stops the service
    return 0


if __name__ == "__main__":
    sys.exit(main())
