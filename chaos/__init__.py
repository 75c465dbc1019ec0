"""depthkeeper.chaos: the chaos tooling (never on a production import path; only the CLI and tests
import it). A seeded monkey that kills actors (normal failure path and zombies) and breaks the venue,
the chaos runner with its invariants (books exact, fresh, honest statuses), and its CLI."""
