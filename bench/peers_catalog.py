"""The peers depthkeeper is benchmarked against on the Binance feed: what to install, where, how.

Pure data plus the paths derived from it, shared by the setup step (``peers_setup.py``) and the
runner (``peers_bench.py``). Versions are the ones the research notes proved to run keyless
against a local venue (../shared/notes/binance-and-peers.md, sections 3 and 5):

- cryptofeed 3.0.1 needs Python >= 3.13 (2.5+ needs 3.12); 2.4.1 is what users on 3.11 get and
  differs in gap handling (one gap wipes every book of the feed), so it is a row of its own;
- nautilus_trader 1.231.0 needs Python >= 3.12 to run without API keys (1.221.0, the newest
  for 3.11, demands keys and a signed ``/sapi`` call);
- the others run on the image's default 3.11.

None of these is a dependency of depthkeeper: each lives in its own virtualenv in a cache directory
outside the repository, created by ``python bench/peers_setup.py``. The rows marked ``in_repo_env``
(depthkeeper itself and the naive loop, which needs only websocket-client and orjson, both
dependencies of depthkeeper) run with the repository's interpreter; their version is what it has.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path

#: Where the peer virtualenvs live (outside the repo; ``DEPTHKEEPER_BENCH_CACHE`` overrides it).
CACHE_DIR = Path(os.environ.get("DEPTHKEEPER_BENCH_CACHE", Path.home() / ".cache" / "depthkeeper-bench"))
#: pyenv's interpreters on this image (``DEPTHKEEPER_BENCH_PYENV`` overrides the root).
PYENV_ROOT = Path(os.environ.get("DEPTHKEEPER_BENCH_PYENV", Path.home() / ".pyenv" / "versions"))
#: Marker written into a venv once its install and import check passed.
MARKER = "depthkeeper-bench-peer.json"


@dataclass(frozen=True)
class PeerSpec:
    """One peer: its PyPI requirements, interpreter, import check and harness module."""

    name: str
    #: the distribution whose version is the peer's version
    dist: str
    version: str
    python: str
    requirements: tuple[str, ...]
    #: Python statements that must run in the venv (imports the harness needs)
    check: str
    #: bench/peers/<harness>.py, run with the venv's python
    harness: str
    #: extra arguments to the harness (variants of one harness)
    harness_args: tuple[str, ...] = ()
    #: SUBSCRIBEs go out unpaced: the simulator must run in lenient mode (reported in the table)
    needs_lenient: bool = False
    #: a realistic upper bound of symbols (pacing or one socket per symbol makes more pointless)
    max_symbols: int = 1000
    note: str = ""
    #: run with the repository's own interpreter (depthkeeper's row), no cached venv
    in_repo_env: bool = False
    #: it reads a flood into an unbounded queue (no TCP backpressure): "max" is then probed with the
    #: feeder paced at these events/s (descending); the first it keeps up with is its sustained max
    sweep_max: tuple[int, ...] = ()
    #: it fetches REST snapshots; one that never does (the naive loop) would hold the feeder in its
    #: paced warm-up forever (it floods once every symbol was snapshotted): the feeder floods at once
    snapshots: bool = True

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    @property
    def venv_dir(self) -> Path:
        return CACHE_DIR / f"{self.name}-{self.version}-py{self.python_minor}"

    @property
    def venv_python(self) -> Path:
        return Path(sys.executable) if self.in_repo_env else self.venv_dir / "bin" / "python"

    @property
    def base_python(self) -> Path:
        return PYENV_ROOT / self.python / "bin" / "python3"


def installed(dist: str) -> str:
    """The version this interpreter has (the in-repo rows), "unknown" when it has none."""
    try:
        return _dist_version(dist)
    except PackageNotFoundError:
        return "unknown"


_PY = ".".join(map(str, sys.version_info[:3]))

PEERS: dict[str, PeerSpec] = {spec.name: spec for spec in (
    PeerSpec(
        name="depthkeeper", dist="depthkeeper", version=installed("depthkeeper"), python=_PY,
        requirements=(), check="from depthkeeper.supervisor.service.facade import BookService",
        harness="depthkeeper_peer", in_repo_env=True,
        note="this repository: BookService, per-update hook = add_listener(inline=True, depth=10); venue limits kept",
    ),
    PeerSpec(
        name="cryptofeed", dist="cryptofeed", version="3.0.1", python="3.13.0",
        requirements=("cryptofeed==3.0.1",),
        check="import cryptofeed; from cryptofeed import FeedHandler; from cryptofeed.exchanges import Binance",
        harness="cryptofeed_peer",
        note="AGPL-3.0 (run, not vendored); streams in the URL, no SUBSCRIBE",
    ),
    PeerSpec(
        name="cryptofeed-2.4", dist="cryptofeed", version="2.4.1", python="3.11.7",
        requirements=("cryptofeed==2.4.1",),
        check="import cryptofeed; from cryptofeed import FeedHandler; from cryptofeed.exchanges import Binance",
        harness="cryptofeed_peer",
        note="the newest on Python 3.11; a gap resets every book of the feed",
    ),
    PeerSpec(
        name="ccxt", dist="ccxt", version="4.5.90", python="3.11.7",
        requirements=("ccxt==4.5.90",),
        check="import ccxt.pro",
        harness="ccxt_peer",
        needs_lenient=True,
        note="tuned to one socket (streamLimits.spot=1), enableRateLimit=False: SUBSCRIBEs unpaced",
    ),
    PeerSpec(
        name="nautilus_trader", dist="nautilus_trader", version="1.231.0", python="3.13.0",
        requirements=("nautilus_trader==1.231.0",),
        check=("from nautilus_trader.adapters.binance import BINANCE, BinanceDataClientConfig, "
               "BinanceLiveDataClientFactory; from nautilus_trader.live.node import TradingNode"),
        harness="nautilus_peer",
        needs_lenient=True,
        sweep_max=(16_000, 8_000, 4_000, 2_000),
        note="Python adapter (JSON); unpaced SUBSCRIBE burst; no live gap check",
    ),
    PeerSpec(
        name="unicorn", dist="unicorn-binance-local-depth-cache", version="2.14.0", python="3.11.7",
        requirements=("unicorn-binance-local-depth-cache==2.14.0", "unicorn-binance-websocket-api==2.16.1"),
        check="from unicorn_binance_local_depth_cache import BinanceLocalDepthCacheManager",
        harness="unicorn_peer",
        max_symbols=40,
        note="40 symbols: it waits while the venue reports > 2200 REST weight/min (50 snapshots = 2500)",
    ),
    PeerSpec(
        name="python-binance", dist="python-binance", version="1.0.37", python="3.11.7",
        requirements=("python-binance==1.0.37",),
        check="from binance import AsyncClient, BinanceSocketManager; from binance.ws.depthcache import DepthCacheManager",
        harness="python_binance_peer",
        max_symbols=50,
        note="one socket per symbol, snapshot before the socket (a 'naive library' row)",
    ),
    PeerSpec(
        name="naive", dist="websocket-client", version=installed("websocket-client"), python=_PY,
        requirements=(), check="import websocket", harness="naive_peer", in_repo_env=True, snapshots=False,
        note="the seed article's loop (stdlib json): throughput bar, NOT correct (no snapshot, a gap is accepted)",
    ),
    PeerSpec(
        name="naive+orjson", dist="websocket-client", version=installed("websocket-client"), python=_PY,
        requirements=(), check="import websocket, orjson", harness="naive_peer", harness_args=("--variant", "orjson"),
        in_repo_env=True, snapshots=False,
        note="the article's loop with orjson + skip_utf8_validation: throughput bar, NOT correct",
    ),
)}
