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
from collections.abc import Sequence
from typing import Any, TextIO

from loguru import logger

from depthkeeper.chaos.monkey import ZombieBullet
from depthkeeper.chaos.run import ChaosReport, run_chaos
from depthkeeper.chaos.schedule import load_chaos_config
from depthkeeper.supervisor.cli.logs import setup_logging
from depthkeeper.supervisor.otp.errors import ChaosCrash
from depthkeeper.supervisor.service.errors import ConfigError


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _table(rows: Sequence[tuple[str, ...]], right: tuple[bool, ...]) -> list[str]:
    """Rows as aligned columns: each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip()
            for row in rows]


def _labelled(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in pairs)
    return [f"{label:<{width}}  {value}".rstrip() for label, value in pairs]


def _fresh(f: dict[str, float]) -> tuple[str, str]:
    return (f"freshness (L {f['bound_s']:.2f}s)",
            f"{int(f['checked'])} LIVE reads ({int(f['polled'])} polled views), {int(f['compared'])} compared with "
            f"the venue at t-L: stale {int(f['stale'])}, LIVE while refused {int(f['rejected_live'])}; "
            f"blackholes past the silence bound {int(f.get('blackholes_past_bound', 0))}")


def render_report(report: ChaosReport) -> str:
    """The readable report: totals, invariants, recovery table, violations (columns aligned)."""
    verdict = "PASSED" if report.passed else f"FAILED ({len(report.violations)} violations)"
    lines = [f"depthkeeper chaos  seed {report.seed}  {report.duration_s:.1f}s  {verdict}", ""]
    lines += _table([
        ("actor kills", str(report.actor_kills), f"({_counts(report.kills)})"),
        ("missed kills", str(sum(report.missed_kills.values())),
         f"({_counts(report.missed_kills)}: target restarting, or never idle for a zombie)"),
        ("venue faults", str(report.venue_faults), f"({_counts(report.faults)})"),
    ], (False, True, False))
    lines.append("")
    pairs = [
        ("books exact", f"{report.books_exact}/{report.books_total}"),
        ("ghost subscriptions", f"{len(report.ghosts)} {list(report.ghosts) or ''}"),
        ("missing subscriptions", f"{len(report.missing)} {list(report.missing) or ''}"),
        ("server connections", str(report.server_connections)),
        ("duplicate / empty cmd", f"{report.duplicate_subscribes} / {report.empty_lists}"),
        ("LIVE views checked", f"{report.views_checked}  (bad: {report.view_violations}, "
                               f"oracle cross-checks: {report.oracle_samples})"),
        *([_fresh(report.freshness)] if report.freshness else []),
        *([("1008 closes (5 msg/s)", f"{report.rate_closes['total']} (provoked by ping bursts: "
                                     f"{report.rate_closes['provoked']})")] if report.rate_closes else []),
        ("leaked threads/actors", f"{len(report.leaked_threads)} / {len(report.leaked_actors)}"),
        ("restarts", _counts(report.restarts)),
        ("escalations", str(report.escalations)),
    ]
    if report.archive:
        pairs.append(("archive rows", f"written {report.archive['rows_written']} / skipped "
                                      f"{report.archive['skipped']} / lost {report.archive['lost']}"))
    lines += _labelled(pairs)
    lines.append("")
    rows = [("recovery", "n", "p50", "p99", "max", "unrecovered", "isolated n", "isolated p99")]
    rows += [(fig.kind, str(fig.count), _ms(fig.p50_s), _ms(fig.p99_s), _ms(fig.max_s), str(fig.unrecovered),
              str(fig.isolated_count), _ms(fig.isolated_p99_s)) for fig in report.recovery]
    lines += _table(rows, (False, *[True] * 7))
    lines.append("(isolated: no other disruption of the same books -- global fault, REST fault, snapshot kill,")
    lines.append(" another fault on the book -- overlapped the recovery)")
    if report.slowest:
        lines.append("slowest:")
        lines.extend(f"  {text}" for text in report.slowest)
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
            name = getattr(args.thread, "name", "?")
            logger.bind(actor="chaos").debug("thread {} ended as a zombie (on purpose)", name)
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
