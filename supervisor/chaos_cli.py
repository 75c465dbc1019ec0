"""``depthkeeper chaos``: run a seeded chaos schedule, print the report, exit 1 on any violation.

As a CLI this module may touch process-wide state: it configures the log sinks, keeps
pykka's tracebacks of our deliberate crashes out of them, and installs a
``threading.excepthook`` that keeps the zombies' deliberate thread deaths out of stderr
(every other thread exception still goes to the previous hook).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from typing import Any, TextIO

from loguru import logger

from depthkeeper.supervisor.chaos import ZombieBullet
from depthkeeper.supervisor.chaos_run import ChaosReport, run_chaos
from depthkeeper.supervisor.chaos_schedule import load_chaos_config
from depthkeeper.supervisor.otp.errors import ChaosCrash
from depthkeeper.supervisor.service.errors import ConfigError
from depthkeeper.supervisor.cli.logs import setup_logging


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def render_report(report: ChaosReport) -> str:
    """The readable report: totals, invariants, recovery table, violations."""
    verdict = "PASSED" if report.passed else f"FAILED ({len(report.violations)} violations)"
    lines = [
        f"depthkeeper chaos  seed {report.seed}  {report.duration_s:.1f}s  {verdict}",
        "",
        f"actor kills   {report.actor_kills:5d}   ({_counts(report.kills)})",
        f"missed kills  {sum(report.missed_kills.values()):5d}   ({_counts(report.missed_kills)}: target restarting, "
        f"or never idle for a zombie)",
        f"venue faults  {report.venue_faults:5d}   ({_counts(report.faults)})",
        "",
        f"books exact           {report.books_exact}/{report.books_total}",
        f"ghost subscriptions   {len(report.ghosts)} {list(report.ghosts) or ''}",
        f"missing subscriptions {len(report.missing)} {list(report.missing) or ''}",
        f"server connections    {report.server_connections}",
        f"duplicate / empty cmd {report.duplicate_subscribes} / {report.empty_lists}",
        f"LIVE views checked    {report.views_checked}  (bad: {report.view_violations}, "
        f"oracle cross-checks: {report.oracle_samples})",
        f"leaked threads/actors {len(report.leaked_threads)} / {len(report.leaked_actors)}",
        f"restarts              {_counts(report.restarts)}",
        f"escalations           {report.escalations}",
        *([f"archive rows written / skipped / lost  {report.archive['rows_written']} / "
           f"{report.archive['skipped']} / {report.archive['lost']}"] if report.archive else []),
        "",
        f"{'recovery':<14}{'n':>5}{'p50':>10}{'p99':>10}{'max':>10}{'unrecovered':>12}"
        f"{'isolated n':>12}{'isolated p99':>14}",
    ]
    for fig in report.recovery:
        lines.append(f"{fig.kind:<14}{fig.count:>5}{_ms(fig.p50_s):>10}{_ms(fig.p99_s):>10}{_ms(fig.max_s):>10}"
                     f"{fig.unrecovered:>12}{fig.isolated_count:>12}{_ms(fig.isolated_p99_s):>14}")
    lines.append("(isolated: no other disruption of the same books -- global fault, REST fault, snapshot kill, "
                 "another fault on the book -- overlapped the recovery)")
    if report.slowest:
        lines.append("slowest: " + "; ".join(report.slowest))
    lines.append("")
    if report.violations:
        lines.append("violations:")
        lines.extend(f"  - {text}" for text in report.violations)
    else:
        lines.append("violations: none")
    return "\n".join(lines)


class _NoChaosTracebacks(logging.Filter):
    """pykka logs every crash with a traceback; for the crashes we cause on purpose that is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is ChaosCrash)


def _quiet_zombie_deaths() -> None:
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_type is ZombieBullet:
            logger.bind(actor="chaos").debug("thread {} ended as a zombie (on purpose)", getattr(args.thread, "name", "?"))
            return
        previous(args)

    threading.excepthook = hook


def chaos_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Entry point of ``depthkeeper chaos`` (args: config, duration, seed, json; None = the file's)."""
    try:
        cfg, settings = load_chaos_config(args.config, seed=args.seed, duration_s=args.duration)
    except ConfigError as exc:
        print(f"depthkeeper: {exc}", file=sys.stderr)
        return 2
    setup_logging(getattr(args, "log_level", None) or cfg.log.level, cfg.log.file)
    logging.getLogger("pykka").addFilter(_NoChaosTracebacks())
    _quiet_zombie_deaths()
    report = run_chaos(cfg, settings)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True, default=str), file=out)
    else:
        print(render_report(report), file=out)
    return 0 if report.passed else 1
