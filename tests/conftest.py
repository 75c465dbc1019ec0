"""Suite-wide fixtures: leftover actors are stopped after every test.

Only the test suite may call ``ActorRegistry.stop_all()``; the library never does. The suite is
the host here: it turns depthkeeper's logs on (the library disables them on import), so tests
can capture them and pytest shows them with a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest
from loguru import logger

import depthkeeper.actors  # noqa: F401 - the first import disables the logs; enable after it

logger.enable("depthkeeper")


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
