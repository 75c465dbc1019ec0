"""Symbol code validation: reject a malformed code before it is ever sent.

The article's fourth production issue: ``BTC-USDT`` is sent, accepted silently, and no
data ever comes. We check every code against a whitelist (when given) and a pattern, and
say which rule failed.
"""

from __future__ import annotations

import re

import attrs

DEFAULT_PATTERN = r"^[A-Z0-9]{2,30}$"


@attrs.frozen
class SymbolRules:
    """Which codes may be subscribed. ``allowed`` empty = any code matching ``pattern``."""

    pattern: str = DEFAULT_PATTERN
    allowed: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    _compiled: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def problem(self, code: object) -> str | None:
        """None if the code is acceptable, else the rule it breaks (for the WARNING)."""
        if not isinstance(code, str):
            return f"code must be a string, got {type(code).__name__}"
        if not self._compiled.fullmatch(code):
            return f"does not match pattern {self.pattern}"
        if self.allowed and code not in self.allowed:
            return "not in the allowed whitelist"
        return None

    def split(self, codes: object) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """(accepted codes in first-seen order without repeats, ((code, reason), ...) rejected)."""
        accepted: dict[str, None] = {}
        rejected: list[tuple[str, str]] = []
        for code in codes if isinstance(codes, (list, tuple, set, frozenset)) else [codes]:
            reason = self.problem(code)
            if reason is None and isinstance(code, str):
                accepted[code] = None
            else:
                rejected.append((str(code), reason or "not a string"))
        return tuple(accepted), tuple(rejected)
