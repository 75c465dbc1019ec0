"""depthkeeper.simulator."""
