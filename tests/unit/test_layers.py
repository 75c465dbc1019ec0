"""The package layout is the architecture: the directions its layers may import in are checked here.

- the OTP layer (``depthkeeper.supervisor.otp``) imports nothing of depthkeeper outside itself;
- the pure core (``depthkeeper.actors.core``) imports only the core;
- the actors import only the actors and the OTP layer (never the service, its config, the CLI);
- the archive imports only the actors, the OTP layer and itself;
- the simulator imports nothing of the rest (it implements the protocols on its own);
- the cluster is built on the service; nothing of the single process imports it (but the CLI's
  ``shard``/``watch`` hook);
- nothing but the CLI imports the chaos tooling (tests aside);
- no relative imports anywhere (one spelling of every module).

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: top-level folder -> the package it installs as
PACKAGES = {"actors": "depthkeeper.actors", "supervisor": "depthkeeper.supervisor",
            "simulator": "depthkeeper.simulator", "archive": "depthkeeper.archive", "chaos": "depthkeeper.chaos",
            "cluster": "depthkeeper.cluster"}

#: (importing package, the only depthkeeper packages it may import)
RULES = [
    ("depthkeeper.supervisor.otp", ("depthkeeper.supervisor.otp",)),
    ("depthkeeper.actors.core", ("depthkeeper.actors.core",)),
    ("depthkeeper.actors", ("depthkeeper.actors", "depthkeeper.supervisor.otp")),
    ("depthkeeper.archive", ("depthkeeper.archive", "depthkeeper.actors", "depthkeeper.supervisor.otp")),
    ("depthkeeper.simulator", ("depthkeeper.simulator",)),
    # the cluster is built on the service (its public API and types), never the other way round
    ("depthkeeper.cluster", ("depthkeeper.cluster", "depthkeeper.actors", "depthkeeper.supervisor")),
]
#: nothing of the single process may import the cluster (but the CLI's shard/watch hook)
CLUSTER = "depthkeeper.cluster"
CLUSTER_USERS = (CLUSTER, "depthkeeper.supervisor.cli")
#: the chaos tooling, and the only packages allowed to import it
CHAOS = "depthkeeper.chaos"
CHAOS_USERS = (CHAOS, "depthkeeper.supervisor.cli")


def modules() -> Iterator[tuple[str, Path]]:
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def imports(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, imported module, relative level) for every import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations() -> list[str]:
    found = []
    for name, path in modules():
        for line, imported, level in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if level:
                found.append(f"{where}: relative import (spell it depthkeeper.…)")
                continue
            if not within(imported, "depthkeeper"):
                continue
            if within(imported, CHAOS) and not any(within(name, user) for user in CHAOS_USERS):
                found.append(f"{where}: {name} imports the chaos tooling ({imported})")
            if within(imported, CLUSTER) and not any(within(name, user) for user in CLUSTER_USERS):
                found.append(f"{where}: {name} imports the cluster ({imported})")
            for package, allowed in RULES:
                if within(name, package):
                    if not any(within(imported, ok) for ok in allowed):
                        found.append(f"{where}: {name} may import only {', '.join(allowed)}; imports {imported}")
                    break
    return found


def test_every_layer_imports_only_what_it_may() -> None:
    assert violations() == []


@pytest.mark.parametrize(("name", "source", "expected"), [
    ("depthkeeper.supervisor.otp.spec", "from depthkeeper.actors.core.wire import Levels", "may import only"),
    ("depthkeeper.actors.book", "from depthkeeper.supervisor.service.config import BookConfig", "may import only"),
    ("depthkeeper.simulator.pump", "import depthkeeper.actors", "may import only"),
    ("depthkeeper.supervisor.service.facade", "from depthkeeper.chaos.monkey import ChaosMonkey", "chaos tooling"),
    ("depthkeeper.actors.reader", "from .frames import FrameReader", "relative import"),
])
def test_the_checker_catches_each_kind_of_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                                     source: str, expected: str) -> None:
    """The contract test can fail: a planted bad import in a scratch tree is reported."""
    folder = name.split(".")[1]
    package = PACKAGES[folder]
    rel = name[len(package) + 1:].replace(".", "/") + ".py"
    planted = tmp_path / folder / rel
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations()
    assert len(found) == 1 and expected in found[0], found
