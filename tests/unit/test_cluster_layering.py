"""The cluster sits on top of the service: it reaches the service's types through compat.py only,
and nothing below it imports it (the single process never needs Redis)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_compat_touches_the_service_packages() -> None:
    for path in (ROOT / "cluster").glob("*.py"):
        below = {m for m in imports(path) if m.startswith(("depthkeeper.actors", "depthkeeper.supervisor"))}
        if path.name != "compat.py":
            assert not below, f"{path.name} imports {below}: go through cluster/compat.py"


def test_nothing_below_imports_the_cluster() -> None:
    for package in ("actors", "supervisor", "simulator"):
        for path in (ROOT / package).glob("*.py"):
            uses = {m for m in imports(path) if m.startswith("depthkeeper.cluster") or m == "redis"}
            allowed = {"depthkeeper.cluster.cli", "depthkeeper.cluster"} if path.name == "cli.py" and \
                package == "supervisor" else set()
            assert uses <= allowed, f"{package}/{path.name} imports {uses - allowed}"
