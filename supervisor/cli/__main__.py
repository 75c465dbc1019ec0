"""``python -m depthkeeper.supervisor.cli``."""

from __future__ import annotations

import sys

from depthkeeper.supervisor.cli.main import main

sys.exit(main())
