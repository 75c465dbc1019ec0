"""depthkeeper.actors."""
