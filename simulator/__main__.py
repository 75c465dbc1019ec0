"""``python -m depthkeeper.simulator ...``: same as ``depthkeeper sim ...``."""

from __future__ import annotations

import sys

from depthkeeper.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
