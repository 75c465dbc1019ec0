"""depthkeeper.supervisor."""
