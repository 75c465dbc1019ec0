"""The CLI explains itself (issue 15): --version, --log-level, help and defaults for every option,
validated durations, shipped config files found from anywhere, [chaos] accepted by ``run``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from depthkeeper.chaos.schedule import load_chaos_config
from depthkeeper.simulator.cli import build_parser as sim_parser
from depthkeeper.supervisor.cli.main import _parser, main, version
from depthkeeper.supervisor.cli.run import load
from depthkeeper.supervisor.service.config import resolve_config_path
from depthkeeper.supervisor.service.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("run", "chaos", "export", "shard", "watch")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def says_nothing(default: object) -> bool:
    """A default not worth printing: no value, a flag's False, an empty list (0 is worth it)."""
    return default is None or default is False or default == [] or default == argparse.SUPPRESS


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"depthkeeper {version()} (Python 3.") and version() != "unknown"


def test_top_help_is_plain_text_and_lists_every_command() -> None:
    text = _parser().format_help()
    assert "`" not in text  # no RST backticks
    for name in ("run", "sim", "chaos", "export", "bench", "--version", "--log-level"):
        assert name in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_says_its_default(command: str) -> None:
    parser = subparsers(_parser())[command]
    help_text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings}: no help"
        if not says_nothing(action.default):
            assert f"(default: {action.default})" in help_text, f"{command} {action.option_strings}"
        elif action.default is None:  # no value: the help says what happens without the option
            assert "default:" in action.help or action.required, f"{command} {action.option_strings}"


def test_every_sim_option_has_help_and_its_default() -> None:
    parser = sim_parser()
    help_text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            if not says_nothing(action.default) and "default:" not in action.help:
                assert f"(default: {action.default})" in help_text, action.option_strings


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_run_duration_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", "conf/demo.toml", "--duration", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --duration: must be a number of seconds" in err and repr(value) in err


def test_unknown_arguments_and_levels_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--config", "conf/demo.toml", "--bogus"], ["--log-level", "LOUD", "run", "--config", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err


def test_log_level_before_or_after_the_command() -> None:
    parser = _parser()
    assert parser.parse_args(["--log-level", "debug", "run", "--config", "x"]).log_level == "DEBUG"
    assert parser.parse_args(["run", "--config", "x", "--log-level", "warning"]).log_level == "WARNING"
    assert parser.parse_args(["run", "--config", "x"]).log_level is None  # the file's [log] level
    assert parser.parse_args(["shard", "--config", "x", "--log-level", "debug"]).log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "error", "watch", "--redis", "u", "A"]).log_level == "ERROR"


def test_shipped_configs_are_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("demo", "alltick", "chaos"):
        path, shipped = resolve_config_path(f"conf/{name}.toml")
        assert shipped and path.is_file() and path.name == f"{name}.toml"
    assert resolve_config_path("conf/nope.toml") == (Path("conf/nope.toml"), False)
    assert resolve_config_path("elsewhere/demo.toml") == (Path("elsewhere/demo.toml"), False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "demo.toml").write_text("[simulator]\nenabled = true\n")
    assert resolve_config_path("conf/demo.toml") == (Path("conf/demo.toml"), False)  # yours first
    # `depthkeeper chaos` with its defaults, outside the checkout: the shipped file loads
    cfg, settings = load_chaos_config(resolve_config_path("conf/chaos.toml")[0])
    assert cfg.simulator.enabled and settings.duration_s == 60.0 and settings.seed == 7


def test_run_accepts_the_chaos_deployment_and_validates_its_chaos_table(tmp_path: Path) -> None:
    cfg = load(argparse.Namespace(config=str(ROOT / "conf" / "chaos.toml")))
    assert cfg.chaos["seed"] == 7 and cfg.simulator.enabled
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulator]\nenabled = true\n[chaos]\nbook_kills_per_sec = 1.0\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: \[chaos\] book_kills_per_sec: unknown key"):
        load(argparse.Namespace(config=str(bad)))


def test_a_shipped_file_puts_relative_paths_in_the_working_directory(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path, shipped = resolve_config_path("conf/chaos.toml")
    cfg = load(argparse.Namespace(config=str(path), config_shipped=shipped))
    assert cfg.archive.path == str(tmp_path / "chaos-archive.sqlite")


def test_bench_is_found_in_the_checkout_and_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: depthkeeper bench") and "--feeds" in text  # the peers benchmark
    assert "--article" in text and "--setup" in text


def test_bench_article_runs_the_article_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--article", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: depthkeeper bench") and "(default: 50)" in text and "--skip-books" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_bench_setup_lists_the_peers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--setup", "--list"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("depthkeeper ") and "this interpreter" in text and "ccxt" in text
