"""depthkeeper.supervisor: the supervision layer, the service built on it, and the CLI.

- ``otp/``     the generic OTP layer (supervisor, child specs, restart window, backoff, the
               ``SupervisedActor`` base, the dispatcher, the timer service): knows nothing of books;
- ``service/`` the BookService facade, the book tree, config, stats and metrics;
- ``cli/``     the ``depthkeeper`` command.

Public API::

    from depthkeeper.supervisor import BookService, load_config
    # what listeners and a host's parent receive, and what views carry
    from depthkeeper.supervisor import BookUpdated, BookStatusChanged, BookView, BookStatus, Escalated

The names are imported on first use, so importing the OTP layer never drags the service in.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from loguru import logger

# A library is silent until its host asks (loguru's convention for libraries): the first depthkeeper
# package imported disables "depthkeeper"; packages imported later (the embedded simulator, ...) leave
# the host's choice alone. A host turns the logs on with ``logger.enable("depthkeeper")``.
if not any(name.startswith("depthkeeper.") and not f"{name}.".startswith(f"{__name__}.")
           for name in list(sys.modules)):
    logger.disable("depthkeeper")

_PUBLIC = {
    "AppConfig": "depthkeeper.supervisor.service.config",
    "load_config": "depthkeeper.supervisor.service.config",
    "BookService": "depthkeeper.supervisor.service.facade",
    "BookUnavailable": "depthkeeper.supervisor.service.facade",
    "ConfigError": "depthkeeper.supervisor.service.errors",
    "DepthkeeperError": "depthkeeper.supervisor.service.errors",
    "ServiceError": "depthkeeper.supervisor.service.errors",
    "BookStatus": "depthkeeper.actors.core.orderbook",
    "BookStatusChanged": "depthkeeper.actors.messages",
    "BookUpdated": "depthkeeper.actors.messages",
    "BookView": "depthkeeper.actors.messages",
    "Escalated": "depthkeeper.supervisor.otp.messages",
    "resolve_config_path": "depthkeeper.supervisor.service.config",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
