"""SimConfig validation and the market model (determinism, never crossing, exact decimals)."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import attrs
import pytest

from depthkeeper.simulator import Dialect, SimConfig, TickTimeUnit
from depthkeeper.simulator.errors import HistoryUnavailable, UnknownCode
from depthkeeper.simulator.market import Market, SymbolMarket, format_price, format_size


def test_defaults_match_the_spec() -> None:
    cfg = SimConfig()
    assert (cfg.host, cfg.port, cfg.dialect, cfg.symbols) == ("127.0.0.1", 0, Dialect.ARTICLE, ("BTCUSDT", "ETHUSDT"))
    assert (cfg.rate_per_symbol, cfg.seed, cfg.levels) == (50.0, 1, 20)
    assert (cfg.alltick_min_interval_s, cfg.alltick_heartbeat_timeout_s) == (1.0, 30.0)
    assert cfg.alltick_string_numbers is True and cfg.tick_time_unit is TickTimeUnit.MILLISECONDS
    assert (cfg.max_symbols_per_connection, cfg.token, cfg.stamp, cfg.record_history, cfg.send_acks) == (
        0, None, False, False, True,
    )
    assert cfg.dialect == "article"  # str enum: plain strings compare equal
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.port = 1  # type: ignore[misc]


def test_symbols_accept_a_list_or_a_comma_string() -> None:
    assert SimConfig(symbols=["SOLUSDT"]).symbols == ("SOLUSDT",)
    assert SimConfig(symbols="A1, B2").symbols == ("A1", "B2")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dialect", "bitfinex"),
        ("symbols", ("BTC-USDT",)),
        ("symbols", ()),
        ("symbols", ("BTCUSDT", "BTCUSDT")),
        ("port", 70000),
        ("port", -1),
        ("levels", 0),
        ("rate_per_symbol", float("nan")),
        ("alltick_min_interval_s", -1.0),
        ("alltick_heartbeat_timeout_s", 0.0),
        ("tick_time_unit", "us"),
        ("max_symbols_per_connection", -1),
        ("token", ""),
        ("stamp", "yes"),
        ("host", ""),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"SimConfig.{field}")):
        SimConfig(**{field: value})


def _diffs(symbol: SymbolMarket, count: int) -> list[tuple[int, bool, int, int]]:
    out: list[tuple[int, bool, int, int]] = []
    while len(out) < count:
        symbol.step(out)
    return out[:count]


def test_per_symbol_sequence_is_deterministic_whatever_the_interleaving() -> None:
    codes = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    one_by_one = Market(codes, seed=7, levels=20, record_history=False)
    expected = {code: _diffs(one_by_one.get(code), 500) for code in codes}
    interleaved = Market(codes, seed=7, levels=20, record_history=False)
    got: dict[str, list[tuple[int, bool, int, int]]] = {code: [] for code in codes}
    rng = random.Random(99)
    while any(len(got[code]) < 500 for code in codes):
        code = rng.choice(codes)
        interleaved.get(code).step(got[code])
    assert {code: got[code][:500] for code in codes} == expected
    other_seed = Market(codes, seed=8, levels=20, record_history=False)
    assert _diffs(other_seed.get("BTCUSDT"), 500) != expected["BTCUSDT"]


def test_book_never_crosses_and_seq_is_plus_one() -> None:
    market = Market(("AAA", "BBB"), seed=3, levels=5, record_history=False)
    for code in ("AAA", "BBB"):
        symbol = market.get(code)
        previous_seq = symbol.seq
        for _ in range(20_000):
            out: list[tuple[int, bool, int, int]] = []
            symbol.step(out)
            assert [d[0] for d in out] == list(range(previous_seq + 1, previous_seq + 1 + len(out)))
            previous_seq = symbol.seq
            if symbol.bids and symbol.asks:
                assert max(symbol.bids) < min(symbol.asks)
            assert len(symbol.bids) <= 5 and len(symbol.asks) <= 5


def test_wire_decimals_are_exact_and_short() -> None:
    for cents in (1, 99, 100, 6412350, 123456789012):
        text = format_price(cents)
        assert Decimal(text) == Decimal(cents) / 100 and re.fullmatch(r"\d+\.\d\d", text)
    assert format_size(2500) == "0.25" and format_size(10_000) == "1" and format_size(1) == "0.0001"
    symbol = Market(("BTCUSDT",), seed=1, levels=20, record_history=False).get("BTCUSDT")
    for _seq, _is_bid, cents, units in _diffs(symbol, 2000):
        for text in (format_price(cents), format_size(units)):
            assert len(text.replace(".", "").lstrip("0")) <= 15
            assert Decimal(repr(float(text))) == Decimal(text)


def test_book_at_undoes_back_to_any_retained_seq() -> None:
    market = Market(("BTCUSDT",), seed=5, levels=10, record_history=True)
    symbol = market.get("BTCUSDT")
    books = {0: market.book("BTCUSDT")}
    for _ in range(300):
        symbol.step([])
        books[symbol.seq] = market.book("BTCUSDT")
    for seq in (0, 1, 57, symbol.seq - 1, symbol.seq):
        assert market.book("BTCUSDT", seq) == books[seq]
    with pytest.raises(HistoryUnavailable):
        market.book("BTCUSDT", symbol.seq + 1)
    with pytest.raises(UnknownCode):
        market.book("NOPE")


def test_bounded_history_refuses_what_it_forgot() -> None:
    market = Market(("BTCUSDT",), seed=5, levels=10, record_history=False)
    symbol = market.get("BTCUSDT")
    while symbol.seq < 5000:
        symbol.step([])
    assert symbol.oldest_seq() > 0
    with pytest.raises(HistoryUnavailable):
        market.book("BTCUSDT", 1)
    assert market.book("BTCUSDT", symbol.oldest_seq())["seq"] == symbol.oldest_seq()


def test_restart_regenerates_with_seq_zero_and_new_era() -> None:
    market = Market(("BTCUSDT",), seed=5, levels=10, record_history=False)
    first = market.book("BTCUSDT")
    market.get("BTCUSDT").step([])
    market.regenerate()
    assert market.era == 2
    assert market.book("BTCUSDT")["seq"] == 0
    assert market.book("BTCUSDT") != first
