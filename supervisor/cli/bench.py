"""``depthkeeper bench``: run the benchmarks that live in the repository's ``bench/`` folder.

- ``depthkeeper bench [...]``: depthkeeper against its peers on the same Binance feed, one run
  (``bench/peers_bench.py``: real libraries in their own virtualenvs, the naive loop, issue 16's targets);
- ``depthkeeper bench --setup [...]``: build those peers' virtualenvs once (``bench/peers_setup.py``);
- ``depthkeeper bench --article [...]``: the older benchmark on the seed article's dialect (``bench/run.py``).

``bench/`` is not an installed package (it compares us with peers and needs the ``[bench]``
extra), so this finds the script next to the installed source tree — an editable install or a
checkout — loads it by path and hands it the remaining arguments.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: the repository root of an editable install / checkout: this file is supervisor/cli/bench.py
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

PROG = "depthkeeper bench"
EPILOG = ("Also: 'depthkeeper bench --setup [--peer NAME] [--list]' builds the peers' virtualenvs (once, cached); "
          "'depthkeeper bench --article [...]' runs the older benchmark on the article dialect (bench/run.py; "
          "--article --help for its options). See bench/README.md for what each figure means.")


def _load(script: str) -> ModuleType | None:
    path = BENCH_DIR / script
    if not path.is_file():
        print(f"{PROG}: {path} not found. The benchmark ships with the source repository, not with the "
              "installed package: run it from a checkout (pip install -e '.[bench]').", file=sys.stderr)
        return None
    spec = importlib.util.spec_from_file_location(f"depthkeeper_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        print(f"{PROG}: cannot load {path}", file=sys.stderr)
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        print(f"{PROG}: {exc}. Install the benchmark extras: pip install -e '.[bench]'", file=sys.stderr)
        return None
    return module


def main(argv: list[str]) -> int:
    """Dispatch to the peers benchmark (default), its setup, or the article benchmark; 2 when the
    script is not there (an installed package without the checkout) or cannot be imported."""
    args = list(argv)
    if "--article" in args:
        args.remove("--article")
        module = _load("run.py")
        return 2 if module is None else int(module.main(args))
    if "--setup" in args:
        args.remove("--setup")
        module = _load("peers_setup.py")
        return 2 if module is None else int(module.main(args))
    module = _load("peers_bench.py")
    return 2 if module is None else int(module.main(args, prog=PROG, epilog=EPILOG))
