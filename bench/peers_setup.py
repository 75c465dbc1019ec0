"""Create (or verify) one virtualenv per benchmark peer, outside the repository.

    python bench/peers_setup.py                 # every peer
    python bench/peers_setup.py --peer ccxt     # one (repeatable)
    python bench/peers_setup.py --list          # what would be installed where
    python bench/peers_setup.py --force         # recreate even when present

Each peer gets ``~/.cache/depthkeeper-bench/<peer>-<version>-py<X.Y>`` built from the pyenv
interpreter it needs (peers_catalog.py says which and why), with its pinned version from PyPI and
nothing of depthkeeper in it: the harnesses only need the standard library besides the peer. The
step is idempotent: a venv whose marker file names the same requirements and whose import check
passes is left alone (a few hundred ms per peer), anything else is rebuilt from scratch.

Prints one summary line per peer (status, seconds, size) and, with ``--json``, a JSON list on
stdout. Exit 1 when any requested peer could not be installed (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from peers_catalog import CACHE_DIR, MARKER, PEERS, PeerSpec

#: pip may take this long for one peer (nautilus is ~1 GB of wheels)
INSTALL_TIMEOUT_S = 900.0
CHECK_TIMEOUT_S = 120.0


def dir_size_bytes(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def import_check(spec: PeerSpec) -> str | None:
    """None when the venv's python imports what the harness needs at the pinned version, else why not."""
    if not spec.venv_python.exists():
        return "no interpreter in the venv"
    code = (f"{spec.check}\nfrom importlib.metadata import version\n"
            f"v = version({spec.dist!r})\nassert v == {spec.version!r}, v\nprint(v)")
    try:
        proc = subprocess.run([str(spec.venv_python), "-c", code], capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"import check timed out after {CHECK_TIMEOUT_S:.0f}s"
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["import check failed"])[-1]
    return None


def _read_marker(spec: PeerSpec) -> dict[str, Any] | None:
    try:
        return json.loads((spec.venv_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def ready(spec: PeerSpec) -> bool:
    """The venv exists, was made for exactly these requirements, and imports the peer."""
    if spec.in_repo_env:
        return import_check(spec) is None
    marker = _read_marker(spec)
    return (marker is not None and marker.get("requirements") == list(spec.requirements)
            and import_check(spec) is None)


def _run(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def install(spec: PeerSpec) -> dict[str, Any]:
    """Build the venv from scratch; return the summary (``error`` set when it failed)."""
    out: dict[str, Any] = {"peer": spec.name, "version": spec.version, "python": spec.python,
                           "venv": str(spec.venv_dir)}
    if not spec.base_python.exists():
        out["error"] = f"interpreter {spec.base_python} not found (pyenv install {spec.python})"
        return out
    started = time.perf_counter()
    shutil.rmtree(spec.venv_dir, ignore_errors=True)
    spec.venv_dir.parent.mkdir(parents=True, exist_ok=True)
    made = _run([str(spec.base_python), "-m", "venv", str(spec.venv_dir)], 120.0)
    if made.returncode != 0:
        out["error"] = f"venv failed: {made.stderr.strip()[-500:]}"
        return out
    pip = [str(spec.venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        done = _run([*pip, *spec.requirements], INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        out["error"] = f"pip install timed out after {INSTALL_TIMEOUT_S:.0f}s"
        return out
    if done.returncode != 0:
        out["error"] = f"pip install failed: {done.stderr.strip()[-1500:]}"
        return out
    problem = import_check(spec)
    if problem is not None:
        out["error"] = f"installed, but the import check failed: {problem}"
        return out
    freeze = _run([str(spec.venv_python), "-m", "pip", "freeze", "--disable-pip-version-check"], 120.0)
    out["install_s"] = round(time.perf_counter() - started, 1)
    out["size_bytes"] = dir_size_bytes(spec.venv_dir)
    out["freeze"] = freeze.stdout.split()
    marker = {**out, "requirements": list(spec.requirements), "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (spec.venv_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return out


def ensure(spec: PeerSpec, force: bool = False) -> dict[str, Any]:
    """Install unless already present and working; the summary says which."""
    started = time.perf_counter()
    if spec.in_repo_env:
        problem = import_check(spec)
        return {"peer": spec.name, "version": spec.version, "python": spec.python, "venv": "(this interpreter)",
                "status": "failed" if problem else "cached", **({"error": problem} if problem else {})}
    if not force and ready(spec):
        marker = _read_marker(spec) or {}
        return {"peer": spec.name, "version": spec.version, "python": spec.python, "venv": str(spec.venv_dir),
                "status": "cached", "check_s": round(time.perf_counter() - started, 1),
                "install_s": marker.get("install_s"), "size_bytes": marker.get("size_bytes")}
    result = install(spec)
    result["status"] = "failed" if "error" in result else "installed"
    return result


def _line(result: dict[str, Any]) -> str:
    size = result.get("size_bytes")
    size_text = f"{size / 1e6:,.0f} MB" if size else "-"
    secs = result.get("install_s")
    what = f"{result['status']:<9} install {secs if secs is not None else '-'} s, {size_text}"
    if "error" in result:
        what += f"\n    {result['error']}"
    return f"{result['peer']:<16} {result['version']:<8} py{result['python']:<7} {what}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers_setup", description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="append", choices=sorted(PEERS), help="only this peer (repeatable)")
    parser.add_argument("--force", action="store_true", help="rebuild even when present and working")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--json", action="store_true", help="a JSON list of the summaries on stdout")
    args = parser.parse_args(argv)
    names = args.peer or list(PEERS)
    if args.list:
        for name in names:
            spec = PEERS[name]
            where = f"{spec.venv_python} (this interpreter)" if spec.in_repo_env else spec.venv_dir
            print(f"{name:<16} {' '.join(spec.requirements):<75} py{spec.python}  {where}")
        return 0
    print(f"peer virtualenvs under {CACHE_DIR}", file=sys.stderr)
    results = []
    for name in names:
        result = ensure(PEERS[name], force=args.force)
        print(_line(result), file=sys.stderr, flush=True)
        result.pop("freeze", None) if not args.json else None
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
