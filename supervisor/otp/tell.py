"""``tell``: the one way our code tells a ref that may be gone (restarting, stopped, unsubscribed)."""

from __future__ import annotations

from typing import Any

import pykka


def tell(ref: pykka.ActorRef[Any] | None, message: Any) -> bool:
    """Tell ``message`` to ``ref``; False when there is no ref or its actor is dead (never raises
    for that: a dead receiver is an expected race in a supervised tree)."""
    if ref is None:
        return False
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
