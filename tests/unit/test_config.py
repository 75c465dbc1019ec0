"""Config loading: the shipped files load; every class of mistake is one clear ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthkeeper.supervisor.service.config import AppConfig, load_config
from depthkeeper.supervisor.service.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


SIM = '[simulator]\nenabled = true\n'


def test_demo_config_loads() -> None:
    cfg = load_config(ROOT / "conf" / "demo.toml", environ={})
    assert isinstance(cfg, AppConfig) and cfg.simulator.enabled and cfg.venue.dialect == "article"
    assert cfg.book.max_levels == 50 and cfg.heartbeat.interval_s == 10.0 and cfg.subscription.min_interval_s == 0.0


def test_alltick_config_needs_token_and_never_shows_it() -> None:
    with pytest.raises(ConfigError, match=r"alltick\.toml: \[venue\] token_env: environment variable ALLTICK_TOKEN"):
        load_config(ROOT / "conf" / "alltick.toml", environ={})
    cfg = load_config(ROOT / "conf" / "alltick.toml", environ={"ALLTICK_TOKEN": "s3cret-token"})
    assert cfg.venue.token == "s3cret-token"
    assert "s3cret" not in repr(cfg) and cfg.subscription.min_interval_s == 1.0


def test_defaults_by_dialect(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[venue]\ndialect = "alltick"\n[simulator]\nenabled = true\ndialect = "alltick"\n'), {})
    assert cfg.subscription.min_interval_s == 1.0
    assert cfg.calibration.interval_s == 1800.0 and cfg.heartbeat.silent_intervals == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SIM + "[book]\nmax_levels = 0\n", r"\[book\] max_levels: out of range"),
        (SIM + "[book]\nmax_levels = 'ten'\n", r"\[book\] max_levels: must be int"),
        (SIM + "[book]\nmax_level = 5\n", r"\[book\] max_level: unknown key"),
        (SIM + "[book]\nthreads = -1\n", r"\[book\] threads: out of range"),
        (SIM + "[books]\n", r"\[books\]: unknown section"),
        (SIM + "[venue]\ndialect = 'kraken'\n", r"\[venue\] dialect: must be one of article, alltick, binance"),
        (SIM + "[symbols]\ninitial = ['BTC-USDT']\n", r"\[symbols\] initial: 'BTC-USDT' does not match"),
        (SIM + "[symbols]\ninitial = 'BTCUSDT'\n", r"\[symbols\] initial: must be a list of strings"),
        (SIM + "[symbols]\ninitial = ['BTCUSDT']\nallowed = ['ETHUSDT']\n", r"initial: 'BTCUSDT' is not in"),
        (SIM + "[symbols]\npattern = '['\n", r"\[symbols\] pattern: not a valid regular expression"),
        (SIM + "[reconnect]\nbackoff_min_s = 5.0\nbackoff_max_s = 1.0\n", r"backoff_min_s: must not exceed"),
        (SIM + "[simulator]\n", "not valid TOML"),
        ("[venue]\ndialect = 'article'\n", r"\[venue\] url: required"),
        ("[venue]\nurl = 'http://x'\nsnapshot_url = 'http://x'\n", r"\[venue\] url: must start with ws://"),
        ("[venue]\nurl = 'ws://x?token=abc'\nsnapshot_url = 'http://x'\n", r"url: contains a token"),
        ("[venue]\nurl = 'ws://x'\nsnapshot_url = 'ftp://x'\n", r"snapshot_url: must start with http"),
        (SIM + "[heartbeat]\ninterval_s = true\n", r"\[heartbeat\] interval_s: must be float"),
        (SIM + "[venue]\ndialect = 'alltick'\n", r"\[simulator\] dialect: must equal"),
        (SIM + "[log]\nlevel = 'LOUD'\n", r"\[log\] level: must be one of"),
        ("venue = 3\n", r"\[venue\]: must be a table"),
    ],
)
def test_each_mistake_names_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


def test_missing_file_and_int_for_float(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load_config(tmp_path / "nope.toml", environ={})
    cfg = load_config(write(tmp_path, SIM + "[heartbeat]\ninterval_s = 2\n"), {})
    assert cfg.heartbeat.interval_s == 2.0 and isinstance(cfg.heartbeat.interval_s, float)


def test_chaos_section_is_carried_for_the_chaos_tooling(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "conf" / "chaos.toml", environ={})
    assert cfg.chaos["book_kills_per_s"] == 3.5 and cfg.chaos["limits"]["gap_max"] == 5
    assert load_config(ROOT / "conf" / "demo.toml", environ={}).chaos == {}
    with pytest.raises(ConfigError, match=r"x\.toml: \[chaos\]: must be a table"):
        load_config(write(tmp_path, "chaos = 3\n" + SIM), {})


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "x.toml"
    path.write_text(SIM + '[archive]\npath = "../data/books.sqlite"\n[log]\nfile = "logs/x.log"\n')
    cfg = load_config(path, {})
    assert cfg.archive.path == str(tmp_path / "data" / "books.sqlite")
    assert cfg.log.file == str(tmp_path / "sub" / "logs" / "x.log")
    cfg = load_config(path, {}, base_dir=tmp_path / "elsewhere")
    assert cfg.archive.path == str(tmp_path / "data" / "books.sqlite")  # resolved: .. of elsewhere
    assert cfg.log.file == str(tmp_path / "elsewhere" / "logs" / "x.log")
    path.write_text(SIM + f'[archive]\npath = "{tmp_path}/abs.sqlite"\n')
    assert load_config(path, {}).archive.path == f"{tmp_path}/abs.sqlite" and load_config(path, {}).log.file == ""
