"""Two checkouts of depthkeeper, measured alternately on the same simulated feed: is B slower than A?

    python bench/compare.py --a /work/wt/pre-refactor --b . [--rounds 3] [--scenarios 10k,max,scale]

Why this exists: a refactor that promises "no behaviour change" must also show no slowdown, and on a
shared 2-core machine two separate ``depthkeeper bench`` runs minutes apart differ by more than the
change under test. So this script interleaves the two: for each scenario it runs the ``depthkeeper``
peer of checkout A and of checkout B in the order A B B A A B ... (``--rounds N`` = N runs of each;
ABBA cancels a linear drift of the machine's load), every run against a fresh simulator process,
and compares the medians.

- Each side runs its own code: ``<root>/.venv/bin/python <root>/bench/run.py --peer depthkeeper ...``
  (the peer protocol of ``run.py``; a checkout needs ``pip install -e '.[test,bench]'`` in ``.venv``).
- Both sides are fed by ONE simulator implementation (``--sim current``, the default): the one
  ``common.simulator_process`` starts with the interpreter running this script, so the feed is
  identical. ``--sim own`` starts each side's own simulator instead (the fallback for a checkout
  whose peer cannot talk to the current simulator).
- Scenarios, as ``run.py`` does them: 10k diffs/s over 50 symbols, max (the simulator sends as fast
  as the peer reads) over 50 symbols, 1000 symbols at 20k/s (with the extra warm-up of the scale run).
- Ratios are oriented so that >= 1 means "B is not worse": applied/s B/A; latency p50/p99, CPU
  µs/diff and RSS A/B. A ratio < ``--threshold`` (0.95) is flagged; re-run that scenario with more
  rounds before calling it a regression (``--scenarios max --rounds 7``).

Exit status: 0 no flag, 1 a ratio flagged, 3 a run failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import simulator_process, wait_for_idle
from report import OTHER_CPU_LIMIT, contaminated, cpu_us_per_diff
from run import PEER_SLACK_S, SCALE_EXTRA_WARMUP_S, SCALE_SYMBOLS, SYMBOLS

#: a ratio below this (B worse than A by more than 5 %) is flagged
THRESHOLD = 0.95


@dataclass(frozen=True)
class Scenario:
    label: str
    symbols: int
    total_rate_per_s: float  # 0 = as fast as the peer reads
    extra_warmup_s: float = 0.0


SCENARIOS = {
    "10k": Scenario("10k/s x 50 sym", SYMBOLS, 10_000),
    "max": Scenario("max x 50 sym", SYMBOLS, 0),
    "scale": Scenario("20k/s x 1000 sym", SCALE_SYMBOLS, 20_000, SCALE_EXTRA_WARMUP_S),
}


@dataclass(frozen=True)
class Metric:
    name: str
    unit_format: str
    value: Callable[[dict[str, Any]], float]
    higher_is_better: bool


METRICS = (
    Metric("applied/s", "{:,.0f}", lambda r: r["applied_per_s"], True),
    Metric("p50 ms", "{:.3f}", lambda r: r["latency_p50_s"] * 1e3, False),
    Metric("p99 ms", "{:.2f}", lambda r: r["latency_p99_s"] * 1e3, False),
    Metric("CPU µs/diff", "{:.1f}", cpu_us_per_diff, False),
    Metric("RSS MB", "{:.1f}", lambda r: r["rss_bytes"] / 1e6, False),
)


@dataclass(frozen=True)
class Checkout:
    """One side of the comparison: a source tree with its own venv."""

    name: str  # "A" or "B"
    root: Path

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    @property
    def run_py(self) -> Path:
        return self.root / "bench" / "run.py"

    def problem(self) -> str | None:
        for path in (self.python, self.run_py):
            if not path.exists():
                return (f"{self.name}: {path} is missing "
                        "(python3 -m venv .venv && .venv/bin/pip install -e '.[test,bench]')")
        return None

    def describe(self) -> str:
        def git(*args: str) -> str:
            try:
                return subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, timeout=10,
                                      check=False).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                return ""

        head = git("log", "-1", "--format=%h %s") or "unknown"
        dirty = " (+uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
        return f"{self.root} @ {head[:90]}{dirty}"


def order(rounds: int) -> list[str]:
    """A B B A A B ...: each round is one run of each side, the first side alternating."""
    return [side for i in range(rounds) for side in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def _progress(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(side: Checkout, scenario: Scenario, *, sim_python: str, peer: str, warmup_s: float, seconds: float,
            read_calls: int, wait_idle_s: float = 0.0) -> dict[str, Any]:
    """One run of ``side``'s peer against a fresh simulator; its JSON, or ``{"error": ...}``."""
    warmup = warmup_s + scenario.extra_warmup_s
    busy_before = wait_for_idle(wait_idle_s) if wait_idle_s > 0 else None
    try:
        with simulator_process(scenario.symbols, scenario.total_rate_per_s, python=sim_python) as sim:
            cmd = [str(side.python), str(side.run_py), "--peer", peer, "--url", sim.url, "--rest-url", sim.rest_url,
                   "--control-url", sim.control_url, "--symbols", str(scenario.symbols), "--warmup", str(warmup),
                   "--seconds", str(seconds), "--read-calls", str(read_calls), "--sim-pid", str(sim.pid)]
            proc = subprocess.run(cmd, cwd=side.root, capture_output=True, text=True,
                                  timeout=warmup + seconds + PEER_SLACK_S, check=False)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return {"error": f"exit {proc.returncode}: {tail or 'no output'}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["loadavg_1m"] = os.getloadavg()[0]
    result["machine_busy_before_percent"] = busy_before
    return result


def _sim_python(mode: str, side: Checkout) -> str:
    return sys.executable if mode == "current" else str(side.python)


def _measure_least_disturbed(side: Checkout, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    """One run; measured again (up to ``--retry-busy`` times) while other processes took more than
    ``OTHER_CPU_LIMIT`` % of a core in its window, keeping the least disturbed (as run.py does)."""

    def once(wait_idle_s: float) -> dict[str, Any]:
        return measure(side, scenario, sim_python=_sim_python(args.sim, side), peer=args.peer, warmup_s=args.warmup,
                       seconds=args.seconds, read_calls=args.read_calls, wait_idle_s=wait_idle_s)

    result = once(args.wait_idle)
    attempts = 1
    while attempts <= args.retry_busy and "error" not in result and contaminated(result):
        _progress(f"  other processes used {result['other_cpu_percent']:.0f}% of a core: measuring {side.name} again")
        again = once(max(args.wait_idle, 10.0))
        attempts += 1
        if "error" not in again and again["other_cpu_percent"] < result["other_cpu_percent"]:
            result = again
    result["attempts"] = attempts
    return result


def run_scenario(key: str, sides: dict[str, Checkout], args: argparse.Namespace) -> dict[str, Any]:
    scenario = SCENARIOS[key]
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for i, name in enumerate(order(args.rounds), 1):
        _progress(f"{scenario.label}: run {i}/{2 * args.rounds}, {name}")
        r = _measure_least_disturbed(sides[name], scenario, args)
        r["order"] = i
        runs[name].append(r)
        if "error" in r:
            _progress(f"  {name} failed: {r['error'].splitlines()[-1][:200]}")
        else:
            _progress(f"  applied {r['applied_per_s']:,.0f}/s, p99 {r['latency_p99_s'] * 1e3:.2f} ms, "
                      f"CPU {cpu_us_per_diff(r):.1f} µs/diff, other {r['other_cpu_percent']:.0f}%, "
                      f"load {r['loadavg_1m']:.2f}")
    return {"key": key, "label": scenario.label, "runs": runs}


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "error" not in r]


def ratio(metric: Metric, a: float, b: float) -> float | None:
    """Oriented so that >= 1 means B is not worse than A."""
    num, den = (b, a) if metric.higher_is_better else (a, b)
    return num / den if den > 0 else None


def adjusted_means(groups: dict[str, list[tuple[float, float]]]) -> dict[str, float] | None:
    """Each side's mean of y adjusted to the same contention x (``other %``), by a common slope.

    On a shared machine the other engineers' load lands on some runs and not others, and a
    side that happened to get the busier windows looks slower. Fitting ``y = a_side + b * x``
    with one slope ``b`` for both sides (analysis of covariance) and comparing ``a_side + b *
    mean(x)`` removes the part of the difference that the load explains. A diagnostic, not a
    replacement for quiet runs: None with fewer than 2 runs a side or no spread in the load.
    """
    if any(len(pairs) < 2 for pairs in groups.values()):
        return None
    x_mean = {side: statistics.fmean(x for x, _ in pairs) for side, pairs in groups.items()}
    y_mean = {side: statistics.fmean(y for _, y in pairs) for side, pairs in groups.items()}
    sxx = sum((x - x_mean[side]) ** 2 for side, pairs in groups.items() for x, _ in pairs)
    if sxx <= 0:
        return None
    sxy = sum((x - x_mean[side]) * (y - y_mean[side]) for side, pairs in groups.items() for x, y in pairs)
    slope = sxy / sxx
    x_all = statistics.fmean(x for pairs in groups.values() for x, _ in pairs)
    return {side: y_mean[side] - slope * (x_mean[side] - x_all) for side in groups}


def summarize(scenario: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """One row per metric: both medians, the ratio, the load-adjusted ratio, every run's value."""
    ok = {side: _ok(scenario["runs"][side]) for side in ("A", "B")}
    rows = []
    for metric in METRICS:
        a_vals, b_vals = [metric.value(r) for r in ok["A"]], [metric.value(r) for r in ok["B"]]
        a_med = statistics.median(a_vals) if a_vals else None
        b_med = statistics.median(b_vals) if b_vals else None
        rat = ratio(metric, a_med, b_med) if a_med is not None and b_med is not None else None
        adjusted = adjusted_means({side: [(r["other_cpu_percent"], metric.value(r)) for r in runs]
                                   for side, runs in ok.items()})
        quiet = {side: [metric.value(r) for r in runs if not contaminated(r)] for side, runs in ok.items()}
        quiet_ratio = (ratio(metric, statistics.median(quiet["A"]), statistics.median(quiet["B"]))
                       if quiet["A"] and quiet["B"] else None)
        rows.append({"scenario": scenario["label"], "metric": metric.name, "format": metric.unit_format,
                     "a_median": a_med, "b_median": b_med, "ratio": rat,
                     "adjusted_ratio": ratio(metric, adjusted["A"], adjusted["B"]) if adjusted else None,
                     "quiet_ratio": quiet_ratio, "quiet_runs": (len(quiet["A"]), len(quiet["B"])),
                     "flag": rat is None or rat < threshold, "a_values": a_vals, "b_values": b_vals})
    return rows


def _cell(fmt: str, value: float | None) -> str:
    return "n/a" if value is None else fmt.format(value)


def render(result: dict[str, Any]) -> str:
    meta, threshold = result["meta"], result["meta"]["threshold"]
    lines = [
        f"A = {meta['a']}",
        f"B = {meta['b']}",
        (f"peer {meta['peer']}; "
         + (f"runs pooled from {len(meta['pooled_from'])} comparisons: {'; '.join(meta['pooled_from'])}; "
            if meta.get("pooled_from") else
            f"{meta['rounds']} rounds per scenario in the order {' '.join(order(meta['rounds']))}; ")
         + f"window {meta['seconds']} s after {meta['warmup_s']} s warm-up "
         f"(+{SCALE_EXTRA_WARMUP_S} s for 1000 symbols)"),
        f"simulator: {meta['simulator']}",
        (f"load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}; {meta['cpu_count']} CPUs; "
         f"elapsed {meta['elapsed_s']} s"),
        "",
        f"ratio >= 1 means B is not worse (applied/s B/A; latency, CPU and RSS A/B); '<<' marks a ratio < {threshold}",
        ("adj. = the same ratio of the sides' means adjusted to the same load from other processes (one slope "
         "fitted over both sides' runs: see adjusted_means); it tells a slower side from an unluckier one, "
         "but being made of means one outlier can swing it (latency)"),
        (f"quiet = the ratio of the medians over the runs with other % <= {OTHER_CPU_LIMIT:.0f} only "
         "(how many of A's and of B's runs were that quiet)"),
        "",
        "| scenario | metric | A median | B median | ratio | | adj. | quiet (runs) | A runs | B runs |",
        "|---|---|--:|--:|--:|---|--:|--:|---|---|",
    ]
    for row in (row for s in result["scenarios"] for row in summarize(s, threshold)):
        fmt = row["format"]
        cells = [row["scenario"], row["metric"], _cell(fmt, row["a_median"]), _cell(fmt, row["b_median"]),
                 _cell("{:.3f}", row["ratio"]), "<<" if row["flag"] else "", _cell("{:.3f}", row["adjusted_ratio"]),
                 f"{_cell('{:.3f}', row['quiet_ratio'])} ({row['quiet_runs'][0]}/{row['quiet_runs'][1]})",
                 ", ".join(fmt.format(v) for v in row["a_values"]), ", ".join(fmt.format(v) for v in row["b_values"])]
        lines.append(f"| {' | '.join(cells)} |")
    lines += ["", ("Per run (in run order): other % = CPU used by anything but the peer and its simulator "
                   f"(marked * above {OTHER_CPU_LIMIT:.0f} %), gaps/resyncs/warnings inside the window:"), ""]
    for scenario in result["scenarios"]:
        runs = sorted((r["order"], side, r) for side in ("A", "B") for r in scenario["runs"][side])
        cells = []
        for i, side, r in runs:
            if "error" in r:
                cells.append(f"{i}{side} FAILED: {r['error'].splitlines()[-1][:120]}")
            else:
                mark = "*" if contaminated(r) else ""
                tries = f" ({r['attempts']} tries)" if r.get("attempts", 1) > 1 else ""
                cells.append(f"{i}{side} other {r['other_cpu_percent']:.0f}%{mark}{tries} load {r['loadavg_1m']:.2f} "
                             f"g/r/w {r['gaps']}/{r['resyncs']}/{r['warnings_logged']}")
        lines.append(f"- {scenario['label']}: " + "; ".join(cells))
    return "\n".join(lines)


def pool(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Several saved comparisons of the same two checkouts as one: each scenario's runs pooled
    (renumbered in the order given), so repeated sessions on a noisy machine add up."""
    if len(results) == 1:
        return results[0]
    meta = dict(results[0]["meta"])
    for side in ("a", "b"):  # the same trees; their HEADs may differ (e.g. commits of this script)
        meta[side] = " | ".join(dict.fromkeys(r["meta"][side] for r in results))
    meta.update(pooled_from=[f"{name} ({r['meta']['started_at']}, {r['meta']['rounds']} rounds)"
                             for name, r in zip(names, results, strict=True)],
                started_at=min(r["meta"]["started_at"] for r in results),
                loadavg_end=results[-1]["meta"]["loadavg_end"],
                elapsed_s=round(sum(r["meta"]["elapsed_s"] for r in results), 1))
    scenarios: dict[str, dict[str, Any]] = {}
    for result in results:
        for scenario in result["scenarios"]:
            merged = scenarios.setdefault(scenario["key"], {"key": scenario["key"], "label": scenario["label"],
                                                            "runs": {"A": [], "B": []}})
            offset = sum(len(runs) for runs in merged["runs"].values())
            for side in ("A", "B"):
                merged["runs"][side] += [{**r, "order": offset + r["order"]} for r in scenario["runs"][side]]
    ordered = [scenarios[key] for key in SCENARIOS if key in scenarios]
    return {"meta": meta, "scenarios": ordered}


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    return (f"# depthkeeper: checkout B against checkout A ({meta['started_at']})\n\n"
            f"`{meta['command']}`\n\n{render(result)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, help="checkout root of the baseline")
    parser.add_argument("--b", type=Path, help="checkout root of the candidate")
    parser.add_argument("--render", metavar="RESULT_JSON", type=Path, nargs="+",
                        help="only re-print saved comparisons (several: their runs pooled per scenario)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side per scenario (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("--peer", default="depthkeeper", help="run.py peer to compare (default depthkeeper)")
    parser.add_argument("--sim", choices=("current", "own"), default="current",
                        help="current: one simulator (this interpreter's) for both; own: each side's own")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window (as run.py)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each window (as run.py)")
    parser.add_argument("--read-calls", type=int, default=2000)
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each run wait up to S s for the machine to be idle (shared machines)")
    parser.add_argument("--retry-busy", type=int, default=0, metavar="N",
                        help="measure a run again (up to N times) when other processes took more than "
                             f"{OTHER_CPU_LIMIT:.0f}%% of a core in its window; the least disturbed is kept")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--out", type=Path, default=None, help="write the table to this .md (and the runs to .json)")
    return parser


def _simulator_source() -> str:
    try:
        return subprocess.run([sys.executable, "-c", "import depthkeeper.simulator as s; print(s.__file__)"],
                              capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        saved = pool([json.loads(path.read_text()) for path in args.render], [path.name for path in args.render])
        if len(args.render) > 1:
            saved["meta"]["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        print(render(saved))
        if args.out:
            args.out.write_text(markdown(saved))
        return 0
    if args.a is None or args.b is None:
        print("--a and --b are required (or --render RESULT_JSON...)", file=sys.stderr)
        return 2
    keys = args.scenarios.split(",")
    sides = {"A": Checkout("A", args.a.resolve()), "B": Checkout("B", args.b.resolve())}
    problems = [p for p in (s.problem() for s in sides.values()) if p]
    if unknown := [k for k in keys if k not in SCENARIOS]:
        problems.append(f"--scenarios: unknown {unknown}; choose from {','.join(SCENARIOS)}")
    if args.rounds < 1:
        problems.append("--rounds must be >= 1")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    simulator = (f"one for both, {sys.executable} -m depthkeeper.simulator ({_simulator_source()})"
                 if args.sim == "current" else "each side's own")
    meta: dict[str, Any] = {
        "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "a": sides["A"].describe(), "b": sides["B"].describe(), "peer": args.peer, "rounds": args.rounds,
        "warmup_s": args.warmup, "seconds": args.seconds, "read_calls": args.read_calls, "simulator": simulator,
        "threshold": args.threshold, "wait_idle_s": args.wait_idle, "retry_busy": args.retry_busy,
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    started = time.perf_counter()
    scenarios = [run_scenario(key, sides, args) for key in keys]
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = [row for s in scenarios for row in summarize(s, args.threshold)]
    result = {"meta": meta, "scenarios": scenarios, "rows": rows}
    text = render(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(result))
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        _progress(f"saved {args.out} and {args.out.with_suffix('.json')}")
    if any("error" in r for s in scenarios for side in s["runs"].values() for r in side):
        return 3
    return 1 if any(row["flag"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
