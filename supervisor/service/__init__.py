"""The service: the BookService facade, the book tree and its restart/resync matrix, config,
stats and metrics. It wires the actors together; hosts use the facade."""

from __future__ import annotations

from depthkeeper.supervisor.service.facade import BookService, BookUnavailable, Health, SubscribeResult

__all__ = ["BookService", "BookUnavailable", "Health", "SubscribeResult"]
