"""Symbol validation: malformed codes are rejected with the rule they break."""

from __future__ import annotations

from depthkeeper.actors.core.symbols import SymbolRules


def test_pattern_rejects_malformed_code_with_reason() -> None:
    rules = SymbolRules()
    assert rules.problem("BTCUSDT") is None
    assert "pattern" in (rules.problem("BTC-USDT") or "")
    assert "pattern" in (rules.problem("btcusdt") or "")
    assert "string" in (rules.problem(5) or "")


def test_whitelist_and_split_dedupes_in_order() -> None:
    rules = SymbolRules(allowed={"BTCUSDT", "ETHUSDT"})
    accepted, rejected = rules.split(["ETHUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "BTC-USDT"])
    assert accepted == ("ETHUSDT", "BTCUSDT")
    assert rejected == (("SOLUSDT", "not in the allowed whitelist"),
                        ("BTC-USDT", "does not match pattern ^[A-Z0-9]{2,30}$"))
    assert rules.split("BTCUSDT") == (("BTCUSDT",), ())
