"""depthkeeper.supervisor: the OTP layer, the BookService facade, config and CLI.

Public API::

    from depthkeeper.supervisor import BookService, load_config
"""

from __future__ import annotations

from typing import Any

from depthkeeper.supervisor.config import AppConfig, load_config
from depthkeeper.supervisor.errors import ConfigError, DepthkeeperError, ServiceError

__all__ = ["AppConfig", "BookService", "ConfigError", "DepthkeeperError", "ServiceError", "load_config"]


def __getattr__(name: str) -> Any:
    # BookService pulls in the actors and pykka; import it on first use only.
    if name == "BookService":
        from depthkeeper.supervisor.service import BookService

        return BookService
    raise AttributeError(name)
