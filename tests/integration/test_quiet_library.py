"""A library is silent until its host asks (issue 15): the README's embedding example, run as a
program of its own, prints nothing on stderr; with the README's enable block it logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def readme_blocks() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Embedding\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.+?)\n```", section, re.S)


def run_program(source: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", source], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_readme_example_prints_nothing_on_stderr() -> None:
    example = readme_blocks()[0]
    assert "BookService.start(cfg" in example and "svc.chaos.kill" in example
    proc = run_program(example)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("LIVE ")  # it did run: the view's status first
    assert proc.stderr == ""


def test_with_the_readme_enable_block_it_logs_and_later_imports_keep_it_on() -> None:
    enable = readme_blocks()[1]
    assert 'logger.enable("depthkeeper")' in enable
    # INFO, to see the start-up lines; the simulator's package is first imported *after* the enable
    # (by BookService.start): it must not switch the logs off again.
    proc = run_program(enable.replace('level="WARNING"', 'level="INFO"') + "\n" + readme_blocks()[0])
    assert proc.returncode == 0, proc.stderr
    assert "simulator listening" in proc.stderr and "started: dialect article" in proc.stderr
    assert "crashed (injected)" in proc.stderr  # the README's chaos kill, at INFO


def test_importing_any_package_first_disables_and_enable_sticks() -> None:
    source = """
import depthkeeper.archive
from loguru import logger
logger.remove(); logger.add(lambda m: print("LOG", m.record["name"], m.record["message"]), level="INFO")
from depthkeeper.simulator import Simulator, SimConfig
Simulator.start(SimConfig()).stop()
print("enable")
logger.enable("depthkeeper")
import depthkeeper.supervisor.service.facade, depthkeeper.actors.book
Simulator.start(SimConfig()).stop()
"""
    proc = run_program(source)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split("enable\n")
    assert before == ""
    assert after.startswith("LOG depthkeeper.simulator.server simulator listening")
