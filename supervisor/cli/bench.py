"""``depthkeeper bench``: run the benchmark that lives in the repository's ``bench/`` folder.

``bench/`` is not an installed package (it compares us with peers and needs the ``[bench]``
extra), so this finds ``bench/run.py`` next to the installed source tree — an editable install
or a checkout — loads it by path and hands it the arguments.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: the repository root of an editable install / checkout: this file is supervisor/cli/bench.py
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def main(argv: list[str]) -> int:
    """Run ``bench/run.py``'s ``main(argv)``; 2 with a clear message when it is not there."""
    run_py = BENCH_DIR / "run.py"
    if not run_py.is_file():
        print(f"depthkeeper bench: {run_py} not found. The benchmark ships with the source "
              "repository, not with the installed package: run it from a checkout "
              "(pip install -e '.[bench]').", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("depthkeeper_bench_run", run_py)
    if spec is None or spec.loader is None:
        print(f"depthkeeper bench: cannot load {run_py}", file=sys.stderr)
        return 2
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        print(f"depthkeeper bench: {exc}. Install the benchmark extras: pip install -e '.[bench]'",
              file=sys.stderr)
        return 2
    return int(module.main(list(argv)))
