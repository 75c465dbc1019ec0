"""Fixtures: a BookService with its embedded simulator on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from depthkeeper.supervisor.service.facade import BookService
from tests.support import build_config


@pytest.fixture
def service() -> Iterator[Callable[..., BookService]]:
    from tests.support import service_factory

    yield from service_factory(build_config)
