"""Suite-wide fixtures: leftover actors are stopped after every test.

Only the test suite may call ``ActorRegistry.stop_all()``; the library never does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
