"""depthkeeper.simulator: a local exchange (WebSocket + REST + control) for tests and demos.

It speaks three venue dialects (the article's, AllTick's, and Binance spot's, whose protocol page
is simulator/binance.py) independently of depthkeeper's client code, keeps a deterministic truth
book per symbol (or serves a recording of real Binance frames, simulator/replay.py), and injects
faults on demand::

    from depthkeeper.simulator import Simulator, SimConfig

    with Simulator.start(SimConfig(symbols=("BTCUSDT",), rate_per_symbol=200)) as sim:
        sim.url, sim.rest_url, sim.control_url
        sim.faults.drop(3, code="BTCUSDT")
        sim.freeze()
        sim.truth("BTCUSDT")

The same faults answer over HTTP under ``/_control/faults/...`` (``GET /_control`` lists them).
`TcpProxy` (stdlib only) blackholes a real TCP path: ``pause()`` holds every byte, closes nothing.
"""

from __future__ import annotations

import sys

from loguru import logger

from depthkeeper.simulator.config import Dialect, SimConfig, TickTimeUnit
from depthkeeper.simulator.errors import (
    HistoryUnavailable,
    SimulatorError,
    SimulatorStopped,
    UnknownCode,
    UnknownConnection,
)
from depthkeeper.simulator.faults import FUTURE_SEQ, UNKNOWN_CODE, FaultKind, MalformedKind
from depthkeeper.simulator.handle import Faults, SimHandle, Simulator
from depthkeeper.simulator.proxy import TcpProxy
from depthkeeper.simulator.registry import CommandRecord, ConnectionInfo

# A library is silent until its host asks (loguru's convention for libraries): the first depthkeeper
# package imported disables "depthkeeper"; packages imported later (the embedded simulator, ...) leave
# the host's choice alone. A host turns the logs on with ``logger.enable("depthkeeper")``.
if not any(name.startswith("depthkeeper.") and not f"{name}.".startswith(f"{__name__}.")
           for name in list(sys.modules)):
    logger.disable("depthkeeper")

__all__ = [
    "FUTURE_SEQ",
    "UNKNOWN_CODE",
    "CommandRecord",
    "ConnectionInfo",
    "Dialect",
    "FaultKind",
    "Faults",
    "HistoryUnavailable",
    "MalformedKind",
    "SimConfig",
    "SimHandle",
    "Simulator",
    "SimulatorError",
    "SimulatorStopped",
    "TcpProxy",
    "TickTimeUnit",
    "UnknownCode",
    "UnknownConnection",
]
