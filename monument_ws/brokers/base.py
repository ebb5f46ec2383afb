"""The broker abstract base class: what a process needs from the others.

A broker gives every channel one ordered history: each publication gets an
``offset`` (1, 2, 3 … per channel) within an ``epoch`` (a string that changes
when the history is lost, e.g. a memory broker restart), is appended to the
channel's bounded history and announced to every subscribed process in one
atomic step. Processes receive publications through their :class:`Listener`
(:meth:`Listener.deliver`) only once they have their offset, so every
subscriber on every process sees one order.

Besides channels it stores presence (channel → client → info, with expiry)
and a registry of which process holds which client id, so a frame can be sent
to one client anywhere.

Frames are bytes: a publication's frame is encoded once, by the broker, and
the same bytes are written to every local subscriber.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Final, Protocol


@dataclass(frozen=True, slots=True)
class Publication:
    """One message of a channel, with its place in the channel's history.

    ``exclude`` is the client id the publication is not for (its sender asked to be left
    out): the fan-out and a recovery's replay skip that client's sockets; None reaches all.
    It travels with the publication between processes and is kept with it in history.
    """

    channel: str
    offset: int
    frame: bytes
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What a history read found: publications after the asked offset, and the channel's top."""

    publications: list[Publication]
    offset: int  # the channel's newest offset (0: nothing published yet)
    epoch: str
    complete: bool  # False when the asked position was already dropped from history


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a channel's history window (:meth:`Broker.history_page`).

    ``publications`` are oldest first whichever way the page goes; ``more`` says whether the
    window held further publications beyond the page in its direction (older ones for a page
    ``before`` an offset or of the latest, newer ones up to ``offset`` for a page ``after``
    one) when it was read. Nothing newer than ``offset`` is in the page.
    """

    publications: list[Publication]
    offset: int  # the channel's newest offset when the page was read (0: nothing published)
    epoch: str
    more: bool


def page_of(
    kept: list[Publication], *, before: int | None, after: int | None, limit: int, top: int
) -> tuple[list[Publication], bool]:
    """The page of ``kept`` (a channel's live history, oldest first, nothing above ``top``)
    that :meth:`Broker.history_page` describes, and whether there are more beyond it."""
    if after is not None:
        newer = [p for p in kept if after < p.offset <= top]
        return newer[:limit], len(newer) > limit
    end = top + 1 if before is None else before
    older = [p for p in kept if p.offset < end]
    return older[-limit:] if limit else [], len(older) > limit


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An idempotency key for one publish, and how a broker remembers it.

    A publish carrying ``key`` that a channel already saw within ``window`` seconds is not
    published again: :meth:`Broker.publish` returns the first one's ``(offset, epoch)``. The key
    is recorded in the same atomic step as the publication it names, so a publish whose
    answer was lost (a timeout) and its retry publish once between them. A channel remembers
    at most ``limit`` keys, forgetting the oldest first; a broker that loses its data (a new
    epoch) forgets them too. Keys are per channel: the same key on two channels is two
    publications.
    """

    key: str
    window: float
    limit: int


def history_after(since: int, top: int, epoch: str, kept: list[Publication]) -> History:
    """A read from ``since`` in the current ``epoch``, given the publications after ``since``
    still kept (oldest first): complete when nothing was published since, or the kept ones
    start right after ``since`` (history drops its oldest first, so there is no gap later)."""
    complete = since == top or (bool(kept) and kept[0].offset == since + 1)
    return History(kept, top, epoch, complete)


class Listener(Protocol):
    """Who hears what a broker receives: the process's
    :class:`~monument_ws.channels.hub.Hub`. Called in the event loop, in arrival order."""

    def deliver(self, publication: Publication) -> None:
        """A publication of a channel this process subscribed to, in offset order."""

    def deliver_broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        """A frame for every local socket (broadcast) but those of client id ``exclude``."""

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        """A frame for a client this process registered."""

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        """A channel frame without offset or history (join/leave)."""

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        """History could not supply what ``channel`` missed during an outage: its subscribers
        must resubscribe (and learn ``recovered: false``).

        ``after``: the broker received a publication of ``channel`` whose offset is more than
        one above ``after``, the last one it delivered (a publication numbered elsewhere, by a
        store, that the broker was never handed). It delivers that publication right after
        this call. The listener first tries to fill the gap for its live subscribers itself
        from the channel's history (for a persisted channel, the store) and asks them to
        resubscribe only where that history does not hold the missed publications.

        ``restarted``: the channel's history was lost and started again in this epoch, and
        the broker delivers every publication of it from offset 1 right after this call (they
        are still in history): subscribers take that epoch at offset 0 and stay subscribed,
        so nothing published since the restart is missed; what was published before it, and
        not yet delivered, is lost (``recovered: false``)."""

    def deliver_control(self, message: bytes) -> None:
        """A :meth:`Broker.control` message, heard on every process (e.g. a kick)."""


class Broker(abc.ABC):
    """Publish/subscribe with history, presence storage and a client registry."""

    def __init__(self) -> None:
        #: who hears what this broker receives (:meth:`attach`); until then, nobody
        self.listener: Listener = _NOBODY

    def attach(self, listener: Listener) -> None:
        """Give this broker its listener. A broker serves one hub at a time: one that outlives
        its server (e.g. a restart in the same process) is attached to the next one."""
        self.listener = listener

    async def start(self) -> None:  # noqa: B027 - optional hook: nothing to connect by default
        """Connect; called once before use (the plugin does it at app startup)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Disconnect and release resources."""

    @property
    def healthy(self) -> bool:
        """Whether the broker is connected and can serve right now.

        The readiness endpoint reports it: a broker that lost its connection
        says False until it has reconnected (and resubscribed). An embedded
        broker is always healthy.
        """
        return True

    @property
    def down(self) -> tuple[str, ...]:
        """The parts of the broker that cannot serve right now, by name (a sharded Redis
        broker's shard URLs, passwords hidden); empty when all can. Readiness reports them."""
        return ()

    @property
    def reconnects(self) -> int:
        """Times the broker lost its connection and got it back (metrics and the admin page
        read it); an embedded broker never does."""
        return 0

    # --- channels -------------------------------------------------------

    @abc.abstractmethod
    async def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        *,
        history_size: int,
        history_ttl: float,
        exclude: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[int, str]:
        """Append to ``channel``'s history and announce it; return ``(offset, epoch)``.

        ``history_size`` 0 keeps no history (the offset still counts up). ``exclude``: a
        client id whose sockets must not get it, live or replayed (:attr:`Publication.exclude`).
        ``idempotency``: a key seen on ``channel`` within its window publishes nothing and
        returns the first publication's ``(offset, epoch)`` (:class:`Idempotency`).
        """

    async def publish_at(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> None:
        """Append a publication numbered elsewhere (by a store, :mod:`monument_ws.stores`) to
        the channel's history and announce it, as :meth:`publish` does with its own numbers.

        The caller gives a channel's offsets in increasing order; the broker's offset counter of
        the channel moves up to the given one. A broker that does not support it raises
        NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot announce a stored publication")

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s publications on this process."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (the last local subscriber left)."""

    @abc.abstractmethod
    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        """Publications of ``channel`` with offset > ``since``, oldest first.

        ``complete`` is False when ``epoch`` is not the current epoch or
        publications after ``since`` were already dropped.
        """

    @abc.abstractmethod
    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        """One page of ``channel``'s history window, for browsing (``ws:history``).

        With ``after``: the oldest ``limit`` publications with an offset above it; otherwise
        the newest ``limit`` with an offset below ``before`` (None: the latest ones). The
        caller bounds ``limit``; a broker reads about that many publications (plus expired
        ones it must step over), not the whole window, where its store allows. Expired
        publications are left out; excluded ones are in it with their ``exclude``: the
        caller decides who sees them.
        """

    @abc.abstractmethod
    async def publish_ephemeral(self, channel: str, frame: bytes) -> None:
        """Send ``frame`` to the channel's subscribers everywhere, without offset or history."""

    @abc.abstractmethod
    async def broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        """Send ``frame`` to every socket on every process but those of client id ``exclude``
        (at most once, not recoverable)."""

    @abc.abstractmethod
    async def control(self, message: bytes) -> None:
        """Hand ``message`` to the listener of every process (:meth:`Listener.deliver_control`), this one included.

        For rare server-to-server orders such as kicking a user's sockets
        wherever they are: at most once per process, not stored.
        """

    # --- presence -------------------------------------------------------

    @abc.abstractmethod
    async def presence_set(
        self, channel: str, client_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        """Store (or refresh) a member of ``channel``; it expires after ``ttl`` seconds."""

    @abc.abstractmethod
    async def presence_remove(self, channel: str, client_id: str) -> None:
        """Remove a member of ``channel``."""

    @abc.abstractmethod
    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        """The live members of ``channel``: client id → info."""

    @abc.abstractmethod
    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        """Atomically replace a member's info if it still equals ``expected``.

        ``expected`` None: only if absent; ``new`` None: delete. Returns whether
        it replaced -- so among processes racing on one transition exactly one wins.
        """

    @abc.abstractmethod
    async def presence_count(self, channel: str) -> int:
        """How many members ``channel`` has, in O(1) (expired ones may still count until swept)."""

    # --- peer queues ------------------------------------------------------

    @abc.abstractmethod
    async def queue_push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        """Append ``item`` to ``box`` and return its sequence number.

        Numbers only grow within a box, also after the box expired and was made
        again (they start from the current time in microseconds), so a peer
        that remembers the highest one it saw never mistakes a new item for an
        old one. Beyond ``size`` items the oldest is dropped; an item is
        dropped ``ttl`` seconds after it was pushed.
        """

    @abc.abstractmethod
    async def queue_read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        """The live items of ``box`` numbered above ``after``, oldest first."""

    @abc.abstractmethod
    async def queue_remove(self, box: str, seq: int, *, through: bool = False) -> int:
        """Remove item ``seq`` (``through``: every item up to ``seq``); returns how many
        this call removed, so of processes racing for one item exactly one gets 1."""

    # --- client registry --------------------------------------------------

    @abc.abstractmethod
    async def register_client(self, client_id: str) -> None:
        """This process now holds a socket of ``client_id``."""

    @abc.abstractmethod
    async def unregister_client(self, client_id: str) -> None:
        """This process holds no socket of ``client_id`` any more."""

    @abc.abstractmethod
    async def send_to_client(self, client_id: str, frame: bytes) -> bool:
        """Deliver ``frame`` to ``client_id`` on whichever process holds it; False if none does."""


class _Nobody:
    """The listener of a broker nobody attached to: what it receives is dropped."""

    def deliver(self, publication: Publication) -> None:
        pass

    def deliver_broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        pass

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        pass

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        pass

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        pass

    def deliver_control(self, message: bytes) -> None:
        pass


_NOBODY: Final = _Nobody()
