"""The store contract: what a durable channel needs from a database.

**The store numbers persisted channels.** Each persisted channel has one epoch, made when the
store first hears of the channel (a subscribe or a publish) and kept for as long as the store
keeps the channel, and an offset counter the store increments in the same transaction that
writes the publication. A broker that loses its data (a memory broker's restart, a Redis
restarted without persistence) therefore changes nothing a client holds: the ``since`` it
resubscribes with is still the store's.

**Acknowledged means committed.** :meth:`Store.append` returns once the publication's
transaction committed; then ``announce`` (given when the store is built) has already handed
it to the broker, in offset order per channel, even across processes.

**Unavailable, never lost.** While the database cannot be reached, or the write queue is
full, :meth:`Store.append` raises :class:`~monument_ws.protocol.errors.Unavailable`: the
publication was not acknowledged, so it may be retried. (A connection lost during a COMMIT
leaves it unknown whether the commit happened: that too is reported Unavailable, so a retry may
write it twice, each time with its own offset.)
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..brokers.base import History, HistoryPage, Idempotency, Publication

#: Called after each commit with a committed publication (in offset order per channel) and the
#: channel's store epoch: the broker announces it.
Announce = Callable[[Publication, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a persisted channel's publications stay: ``ttl`` seconds (0: no limit by age)
    and ``size`` newest per channel (0: no limit by count)."""

    ttl: float = 0.0
    size: int = 0


class Store(abc.ABC):
    """Durable, numbered publications of the persisted channels."""

    def __init__(self) -> None:
        #: who announces a committed publication (:meth:`attach`); until then, nobody
        self.announce: Announce = _nobody

    def attach(self, announce: Announce) -> None:
        """Give the store the function that hands committed publications to the broker."""
        self.announce = announce

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and bring the schema up to date; Unavailable if the database does not answer."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Fail what still waits to be written (Unavailable), then disconnect."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether the last call to the database succeeded (the readiness endpoint says it)."""

    @abc.abstractmethod
    async def append(
        self,
        channel: str,
        event: str,
        data: Any,
        exclude: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[int, str]:
        """Write one publication and return its ``(offset, epoch)`` once committed and announced.

        With ``idempotency``, a publication of ``channel`` stored with the same key within the
        key's window is not written again: its ``(offset, epoch)`` is returned. The store keeps
        the keys with the publications (retention removes both; ``Idempotency.limit`` does not
        apply), and checks them under the channel's lock, so concurrent retries on several
        processes write once.

        TypeError for data JSON cannot hold (nothing written); Unavailable when it could not be
        committed (see the module's docstring).
        """

    @abc.abstractmethod
    async def history(self, channel: str, since: int, epoch: str | None, limit: int) -> History:
        """Publications of ``channel`` after ``since``, oldest first, as
        :meth:`~monument_ws.brokers.base.Broker.history`; the channel's epoch and offset come from
        the store (a channel never published gets its epoch now). ``complete`` is False too when
        more than ``limit`` were missed."""

    @abc.abstractmethod
    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        """A page of ``channel``'s publications as :meth:`Broker.history_page
        <monument_ws.brokers.base.Broker.history_page>` reads its window, from everything the
        store keeps; the epoch and offset are the store's."""

    @abc.abstractmethod
    async def prune(
        self, retention: Callable[[str], Retention | None], batch: int, now: float | None = None
    ) -> int:
        """Delete publications older than their channel's :class:`Retention` (None: not a
        persisted channel any more, keep everything), ``batch`` rows per statement; returns how
        many it deleted. Ages are measured from ``now`` (seconds since 1970), this process's
        clock when None (tests give a later one instead of waiting)."""


async def _nobody(publication: Publication, epoch: str) -> None:
    """The announcer of a store nobody attached to: committed publications are only stored."""
