"""depthkeeper.actors."""

from __future__ import annotations

import sys

from loguru import logger

# A library is silent until its host asks (loguru's convention for libraries): the first depthkeeper
# package imported disables "depthkeeper"; packages imported later (the embedded simulator, ...) leave
# the host's choice alone. A host turns the logs on with ``logger.enable("depthkeeper")``.
if not any(name.startswith("depthkeeper.") and not f"{name}.".startswith(f"{__name__}.")
           for name in list(sys.modules)):
    logger.disable("depthkeeper")
