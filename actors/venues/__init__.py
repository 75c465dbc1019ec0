"""The venues depthkeeper speaks: one module each, and this registry of them by name."""

from __future__ import annotations

from depthkeeper.actors.venues.alltick import AlltickVenue
from depthkeeper.actors.venues.article import ArticleVenue
from depthkeeper.actors.venues.base import AckVerdict, Request, SnapshotReply, Venue
from depthkeeper.actors.venues.binance import BinanceVenue

#: ``[venue] dialect`` -> the venue class
VENUES: dict[str, type[Venue]] = {venue.name: venue for venue in (ArticleVenue, AlltickVenue, BinanceVenue)}


def venue_class(name: str) -> type[Venue]:
    """The venue registered as ``name``; ValueError naming the known ones otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ValueError(f"unknown venue {name!r} (known: {', '.join(VENUES)})") from None


__all__ = ["VENUES", "AckVerdict", "Request", "SnapshotReply", "Venue", "venue_class"]
