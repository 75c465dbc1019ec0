"""The README's test command is exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme.split("## Set up", 1)[1].split("\n## ", 1)[0])
    assert len(blocks) == 2, "the README must have exactly two set-up commands"
    run_cmd, test_cmd = blocks
    assert "depthkeeper run --config conf/demo.toml" in run_cmd
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()
