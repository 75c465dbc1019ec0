"""``depthkeeper`` command line: run, sim, chaos, export, bench, shard, watch.

The only place that configures logging sinks and the only place that may exit the
process with a status code: 0 done, 1 a check failed (chaos invariants, export found no
rows), 2 a usage, config or start-up problem (one line on stderr, before anything ran),
3 the service gave up (restart intensity exceeded).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from depthkeeper.supervisor.cli.logs import LEVELS

DESCRIPTION = "Live local L2 order books for many symbols over one WebSocket."
EPILOG = ("conf/NAME.toml: from the current directory if there, else the shipped copy. "
          "Exit status: 0 ok, 1 a check failed, 2 a usage, config or start-up problem, 3 the service gave up.")


def version() -> str:
    """The installed distribution's version (``unknown`` in a source tree never installed)."""
    try:
        return metadata.version("depthkeeper")
    except metadata.PackageNotFoundError:
        return "unknown"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Says every default, except the ones that say nothing (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or not action.option_strings:
            return action.help
        return super()._get_help_string(action)


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _log_level(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, default=default, metavar="LEVEL",
                        help=f"{', '.join(LEVELS)} (default: the config file's [log] level)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthkeeper", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"depthkeeper {version()} (Python {platform.python_version()})")
    _log_level(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, logs: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                             formatter_class=HelpFormatter, **kwargs)
        if logs and kwargs.get("add_help", True):
            _log_level(cmd, argparse.SUPPRESS)  # also after the command; the global one otherwise
        return cmd

    run = command("run", "run the service from a config file, with a live view")
    run.add_argument("--config", required=True, metavar="FILE",
                     help="TOML deployment file, e.g. conf/demo.toml (embedded simulator) or conf/alltick.toml")
    run.add_argument("--duration", type=seconds, default=None, metavar="SECONDS",
                     help="stop after this many seconds (> 0; default: until q, Ctrl-C or SIGTERM)")
    run.add_argument("--json", action="store_true", help="print the final stats as JSON on stdout (no live view)")
    run.add_argument("--no-table", action="store_true",
                     help="no live view: just log (also when stdout is not a terminal)")

    command("sim", "run the exchange simulator in the foreground", add_help=False)

    chaos = command("chaos", "seeded kills and venue faults, then check the invariants")
    chaos.add_argument("--config", default="conf/chaos.toml", metavar="FILE",
                       help="deployment with a [chaos] table")
    chaos.add_argument("--duration", type=seconds, default=None, metavar="SECONDS",
                       help="length of the schedule (default: the file's [chaos] duration_s, 60 in the shipped file)")
    chaos.add_argument("--seed", type=int, default=None,
                       help="schedule and market seed; a run replays exactly from it (default: the file's "
                            "[chaos] seed, 7 in the shipped file)")
    chaos.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")

    export = command("export", "export archived snapshots of one symbol (CSV, JSON lines)", logs=False)
    export.add_argument("--archive", required=True, metavar="FILE",
                        help="the SQLite archive ([archive] path of the deployment that wrote it)")
    export.add_argument("--symbol", required=True, help="the symbol to export, e.g. BTCUSDT")
    export.add_argument("--from", dest="start", default=None, metavar="TIME",
                        help="start of the window, inclusive: epoch seconds or ISO-8601, UTC unless it has a "
                             "zone (default: no start)")
    export.add_argument("--to", dest="end", default=None, metavar="TIME",
                        help="end of the window, exclusive (default: no end)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                        help="csv: one column per level; jsonl: levels as [[price, size], ...] arrays")

    command("bench", "benchmark against the peers (from a source checkout)", add_help=False)
    from depthkeeper.cluster.cli import add_parsers

    add_parsers(command)  # shard, watch (the cluster, issue 17)
    return parser


def _resolve_config(args: argparse.Namespace) -> None:
    """``conf/NAME.toml`` from the package when it is not in the working directory."""
    from depthkeeper.supervisor.service.config import resolve_config_path

    path, shipped = resolve_config_path(args.config)
    args.config, args.config_shipped = str(path), shipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "sim":
        from depthkeeper.simulator.cli import main as sim_main
        from depthkeeper.supervisor.cli.logs import setup_logging

        return sim_main(rest, setup_logs=lambda level: setup_logging(args.log_level or level))
    if args.command == "bench":
        from depthkeeper.supervisor.cli.bench import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "run":
        from depthkeeper.supervisor.cli.run import run_command

        _resolve_config(args)
        return run_command(args)
    if args.command == "chaos":
        from depthkeeper.chaos.cli import chaos_command

        _resolve_config(args)
        return chaos_command(args)
    if args.command == "export":
        from depthkeeper.archive.export import export_command

        return export_command(args)
    if args.command in ("shard", "watch"):
        from depthkeeper.cluster import cli as cluster_cli

        return cluster_cli.shard_command(args) if args.command == "shard" else cluster_cli.watch_command(args)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
