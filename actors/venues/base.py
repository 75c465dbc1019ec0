"""The client side of a venue: everything that differs between exchanges, in one object.

An exchange is data plus hooks (cryptofeed's lesson): the actors never compare dialect
names; they ask the :class:`Venue` the service built from ``[venue] dialect``:

- **wire**: ``decode`` (the reader thread's hot path), the socket URL, the heartbeat frame;
- **subscriptions**: ``plan`` turns "the venue has ``active``, we want ``want``" into the
  requests to send (a ghost is unsubscribed again by planning from an ``active`` that still
  holds it); ``read_ack`` says what an answer means (codes refused, requests settled, a
  refused token);
- **pacing and limits**: the spacing every client frame needs, streams per socket, connection
  attempts per window, the socket's maximum age (a planned reconnect before the venue's cut);
- **REST**: the snapshot URL for a batch of codes and how to parse the reply, its weight
  against the venue's per-minute budget;
- **sync**: ``make_policy`` gives each book the venue's sync policy;
- **defaults**: endpoints and pacing a config may leave out, and venue-specific checks.

A venue object is immutable and shared by every actor and the reader thread. Adding a venue
is one module here (registered in ``venues/__init__.py``), its simulator dialect, and tests.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from email.message import Message
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from depthkeeper.actors.core.wire import Ack, DecodeError, DepthPush, Snapshot

if TYPE_CHECKING:
    from depthkeeper.actors.core.orderbook import OrderBook
    from depthkeeper.actors.settings import BookConfig, SubscriptionConfig, VenueConfig
    from depthkeeper.actors.core.sync import SyncPolicy


@attrs.frozen
class Request:
    """One subscription frame to send, and what it changes on the venue."""

    text: str
    #: for the log line
    what: str
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    #: the id the venue's answer will carry (0: the venue answers without ids)
    request_id: int = 0


@attrs.frozen
class AckVerdict:
    """What one of the venue's answers means to the SubscriptionActor."""

    #: codes the venue refused, with its reason
    rejected: tuple[tuple[str, str], ...] = ()
    #: every request up to this id has been processed (answers come in request order); 0 = none
    settled_through: int = 0
    #: codes whose unsubscribe this answer confirms (venues that name codes in acks)
    unsubscribed: tuple[str, ...] = ()
    #: the venue refused us for good (a bad token): no more reconnects
    fatal: str | None = None
    #: anything else worth a WARNING
    warning: str | None = None
    #: the venue's complete list of our codes on this socket (an answer to ``list_request``)
    listed: frozenset[str] | None = None
    #: the venue refused a request as a whole: send each group again in a request of its own
    #: (how a venue that refuses a whole SUBSCRIBE for one bad code finds the bad one)
    retry_groups: tuple[frozenset[str], ...] = ()


@attrs.frozen
class SnapshotReply:
    """A parsed REST reply: the books, or why there are none."""

    books: tuple[Snapshot | DepthPush, ...] = ()
    error: str | None = None
    #: a permanent refusal (bad token): retry only very slowly
    fatal: bool = False


class Venue(abc.ABC):
    """See the module docstring. Subclasses set the class attributes and the hooks."""

    #: the ``[venue] dialect`` name
    name: ClassVar[str]
    #: codes per REST snapshot request (several codes in one request where the venue allows)
    snapshot_batch: ClassVar[int] = 1
    #: streams one socket may carry (beyond: refused, naming the limit)
    max_streams: ClassVar[int] = 1_000_000
    #: the venue answers our heartbeat; no answer for the silence bound is a dead socket
    heartbeat_acks: ClassVar[bool] = False
    #: the venue can list our subscriptions (``list_request``): reconcile after a burst
    can_list: ClassVar[bool] = False
    #: (attempts, window_s): connection attempts allowed per rolling window (None: no limit)
    connect_limit: ClassVar[tuple[int, float] | None] = None
    #: REST weight we may spend per rolling minute (0: no weight budget, only ``max_per_second``)
    rest_weight_per_min: ClassVar[int] = 0

    def __init__(self, cfg: VenueConfig) -> None:
        self.cfg = cfg

    # -- defaults and checks (used by the config loader) -----------------------------------

    #: endpoints used when the config leaves them empty ("" = the config must give them)
    default_url: ClassVar[str] = ""
    default_snapshot_url: ClassVar[str] = ""
    #: ``[subscription] min_interval_s`` when the config leaves it out
    default_min_interval_s: ClassVar[float] = 0.0
    #: ``[book] max_levels`` when the config leaves it out (0: BookConfig's own default)
    default_max_levels: ClassVar[int] = 0

    @classmethod
    def check_config(cls, heartbeat_interval_s: float, subscription: SubscriptionConfig) -> str | None:
        """A venue-specific problem with the config ("[section] key: why"), or None."""
        return None

    # -- wire ----------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def decode(self) -> Callable[[bytes], Any]:
        """bytes -> DiffEvent | DepthPush | Ack | HeartbeatAck | Ignored | DecodeError; never raises."""

    def socket_url(self, url: str) -> str:
        """The URL to open (with the token where the venue wants it)."""
        token = self.cfg.token
        if not token:
            return url
        return f"{url}{'&' if '?' in url else '?'}token={token}"

    def heartbeat(self, number: int, epoch: int) -> str | None:
        """The client heartbeat frame to send each heartbeat interval (None: the venue needs none)."""
        return None

    def send_interval_s(self, subscription: SubscriptionConfig) -> float:
        """Minimum spacing of EVERY client frame on one socket (0: no pacing beyond requests)."""
        return 0.0

    def max_socket_age_s(self) -> float:
        """Reconnect (planned) once a socket is this old, before the venue cuts it (0: never)."""
        return 0.0

    # -- subscriptions --------------------------------------------------------------------

    @abc.abstractmethod
    def plan(self, want: frozenset[str], active: frozenset[str], next_id: Callable[[], int],
             epoch: int) -> list[Request]:
        """The requests that take the venue from ``active`` to ``want`` (empty when equal)."""

    @abc.abstractmethod
    def read_ack(self, ack: Ack, requests: dict[int, Request]) -> AckVerdict:
        """What an answer means; ``requests`` are ours on this socket, by id."""

    def list_request(self, next_id: Callable[[], int]) -> Request | None:
        """A request for the venue's list of our subscriptions (only when ``can_list``)."""
        return None

    # -- REST snapshots ---------------------------------------------------------------------

    @abc.abstractmethod
    def snapshot_url(self, base_url: str, codes: Sequence[str], trace: str) -> str:
        """The GET URL for a snapshot of ``codes`` (at most ``snapshot_batch``)."""

    @abc.abstractmethod
    def parse_snapshot(self, body: bytes, codes: Sequence[str]) -> SnapshotReply:
        """The books in a 200 reply (a code missing from them is retried by the caller)."""

    def http_error(self, status: int) -> bool:
        """True when an HTTP status is a permanent refusal (retried only very slowly)."""
        return status in (401, 403)

    def snapshot_weight(self, codes: Sequence[str]) -> int:
        """The weight one snapshot request for ``codes`` costs (see ``rest_weight_per_min``)."""
        return 1

    def used_weight(self, headers: Message) -> int | None:
        """The weight the venue says we used this minute, from a reply's headers (None: not said)."""
        return None

    # -- sync -------------------------------------------------------------------------------

    @abc.abstractmethod
    def make_policy(self, book: OrderBook, cfg: BookConfig) -> SyncPolicy:
        """The sync policy for one book."""


def decode_error(error: DecodeError) -> str:
    """A one-line description of a reply we could not use."""
    return f"{error.kind.value}: {error.detail}"
