"""``depthkeeper`` command line: run, sim, chaos, bench, export, shard, watch.

The only place that configures logging sinks and the only place that may exit the
process with a status code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthkeeper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the service from a config file (with a live table)")
    run.add_argument("--config", required=True, help="TOML deployment file, e.g. conf/demo.toml")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    run.add_argument("--json", action="store_true", help="print final stats as JSON")
    run.add_argument("--no-table", action="store_true", help="do not draw the live table")
    sub.add_parser("sim", help="run the exchange simulator (see depthkeeper sim --help)", add_help=False)
    chaos = sub.add_parser("chaos", help="run a chaos schedule against the simulator and check invariants")
    chaos.add_argument("--config", default="conf/chaos.toml")
    chaos.add_argument("--duration", type=float, default=60.0)
    chaos.add_argument("--seed", type=int, default=7)
    chaos.add_argument("--json", action="store_true")
    sub.add_parser("bench", help="benchmark against the peers (see bench/run.py)", add_help=False)
    export = sub.add_parser("export", help="export archived book snapshots for backtests")
    export.add_argument("--archive", required=True)
    export.add_argument("--symbol", required=True)
    export.add_argument("--from", dest="start", default=None)
    export.add_argument("--to", dest="end", default=None)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    from depthkeeper.cluster.cli import add_parsers

    add_parsers(sub)  # shard, watch (the cluster, issue 17)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sim"]:
        from depthkeeper.simulator.cli import main as sim_main

        return sim_main(args_list[1:])
    if args_list[:1] == ["bench"]:
        from depthkeeper.supervisor.cli.bench import main as bench_main

        return bench_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "run":
        from depthkeeper.supervisor.cli.run import run_command

        return run_command(args)
    if args.command == "chaos":
        from depthkeeper.chaos.cli import chaos_command

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
