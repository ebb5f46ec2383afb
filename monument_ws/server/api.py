"""The broker-facing server API: publish to channels, users and sessions, push to clients, queue
for them, knock, kick -- on every process, through the broker.

Both :class:`~monument_ws.server.plugin.MonumentWS` (inside a server, ``ws.publish(...)``) and
:class:`~monument_ws.server.publisher.Publisher` (outside any server, a worker or cron job) are a
:class:`ServerAPI`, so the two behave alike: the same channel-name checks, the same history
limits from the ``channels`` namespaces, the same delivery guarantees. None of it needs a socket
on this process.
"""

from __future__ import annotations

import time
from typing import Any

from .. import protocol
from ..brokers.base import Broker, Idempotency
from ..channels.durable import Durable
from ..channels.history import DEFAULT_LIMIT, HistoryPages, check_page
from ..channels.kick import Kick
from ..channels.namespaces import Namespaces
from ..channels.peer_queues import PeerQueues
from ..connection.auth import channel_of_session, channel_of_user
from ..connection.stats import Stats
from ..protocol.errors import MonumentWSError


class ServerAPI:
    """Sends through one broker, to whichever process holds the recipients."""

    def __init__(
        self,
        broker: Broker,
        namespaces: Namespaces,
        queues: PeerQueues,
        stats: Stats,
        durable: Durable | None = None,
        *,
        idempotency_window: float = 300.0,
        idempotency_keys: int = 10_000,
    ) -> None:
        self.broker = broker
        #: the store of channels whose namespace persists them (None: no ``store`` set)
        self.durable = durable
        #: pages of channels' history (``ws:history``, :meth:`history`): a persisted channel's
        #: from the store, every other one's from the broker's window
        self.history_pages = HistoryPages(broker, durable.source if durable is not None else None)
        #: how long and how many idempotency keys a channel remembers (the config keys)
        self.idempotency_window = idempotency_window
        self.idempotency_keys = idempotency_keys
        #: the ``channels`` setting: each channel's history limits, presence and policies
        self.namespaces = namespaces
        #: the peer queues of every client (see :mod:`monument_ws.channels.peer_queues`)
        self.queues = queues
        #: counters; each publish records its latency, or its failure
        self.stats = stats

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any = None,
        *,
        exclude: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Publish to ``channel`` on every process; returns the publication's offset.

        Subscribers get ``{"event", "channel", "data", "offset"}``, kept in the
        channel's history as its namespace says. ``exclude`` is a **client id**: every
        socket of that client, on any process, is left out -- live and when it recovers
        from history (a socket is one connection; a client id outlives reconnects, so
        that is what recovery can recognise).

        ``idempotency_key`` (1 to 64 characters, e.g. a UUID the caller made for this
        message): a publish to ``channel`` with a key it already saw within
        ``idempotency_window`` seconds publishes nothing and returns the first one's offset,
        on whichever process either ran. So a caller that got no answer (a timeout: the
        publication may or may not have been made) retries with the same key and publishes
        once. The broker records the key in the same atomic step as the publication.

        **What the returned offset means.** The broker has taken the publication: it has its
        offset, is in the channel's history (as long as the namespace keeps it and the broker
        keeps its data) and was handed to every process subscribed at that moment. It does not
        mean any subscriber has received it. On a channel whose namespace persists it, it
        also means the store committed it (see :mod:`monument_ws.channels.durable`); the store
        then keeps the idempotency keys, with the publications. An error (``Unavailable``, a
        timeout) means nothing is known: it may have been published; retry with the key.

        Raises ValueError for a bad channel name, TypeError for data JSON cannot hold, an
        ``exclude`` that is not a non-empty string or a bad ``idempotency_key``, and
        :class:`~monument_ws.protocol.errors.Unavailable` when the broker cannot take it (never
        dropped silently).
        """
        offset, _ = await self.publish_position(
            channel, event, data, exclude=exclude, idempotency_key=idempotency_key
        )
        return offset

    async def publish_position(
        self,
        channel: str,
        event: str,
        data: Any = None,
        *,
        exclude: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, str]:
        """:meth:`publish`, returning the publication's ``(offset, epoch)``: where it is in the
        channel's history (for a repeated idempotency key, the first publication's)."""
        problem = protocol.check_channel(channel)
        if problem is not None:
            raise ValueError(problem)
        _check_exclude(exclude)
        idempotency = None
        if idempotency_key is not None:
            problem = protocol.check_idempotency_key(idempotency_key)
            if problem is not None:
                raise TypeError(problem)
            idempotency = Idempotency(
                idempotency_key, self.idempotency_window, self.idempotency_keys
            )
        options = self.namespaces.options(channel)
        started = time.perf_counter()
        try:
            if self.durable is not None and options.persist:
                position = await self.durable.publish(channel, event, data, exclude, idempotency)
            else:
                position = await self.broker.publish(
                    channel,
                    event,
                    data,
                    history_size=options.history_size,
                    history_ttl=options.history_ttl,
                    exclude=exclude,
                    idempotency=idempotency,
                )
        except MonumentWSError:
            self.stats.publish_errors += 1
            raise
        self.stats.publish_latency.observe(time.perf_counter() - started)
        return position

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = DEFAULT_LIMIT,
        epoch: str | None = None,
    ) -> dict[str, Any]:
        """One page of ``channel``'s history window, as a ``ws:history`` reply has it:
        ``{"channel", "epoch", "offset", "publications": [{"event", "data", "offset"}, …],
        "more"}``, publications oldest first.

        The latest ``limit`` (1 to 100) publications, those ``before`` an offset, or those
        ``after`` one; ``more`` says whether the window holds more that way. Follow it with
        ``before=publications[0]["offset"]`` or ``after=publications[-1]["offset"]`` and the
        ``epoch`` of the first page (see :mod:`monument_ws.channels.history`). The server sees
        publications that leave a client out too. ValueError for a bad channel name or page
        argument; :class:`~monument_ws.protocol.errors.Unavailable` when the broker cannot
        answer.
        """
        problem = protocol.check_channel(channel) or check_page(before, after, limit, epoch)
        if problem is not None:
            raise ValueError(problem)
        return await self.history_pages.page(
            channel, before=before, after=after, limit=limit, epoch=epoch
        )

    async def publish_to_user(
        self, user: str, event: str, data: Any = None, *, exclude: str | None = None
    ) -> int:
        """Publish to every socket of ``user`` on every process (recoverable like any channel);
        ``exclude``: a client id left out, e.g. the tab that made the change."""
        return await self.publish(channel_of_user(user), event, data, exclude=exclude)

    async def publish_to_session(
        self, session: str, event: str, data: Any = None, *, exclude: str | None = None
    ) -> int:
        """Publish to every socket of a session (its channel is named from a hash of the id);
        ``exclude``: a client id left out."""
        return await self.publish(channel_of_session(session), event, data, exclude=exclude)

    async def broadcast(self, event: str, data: Any = None, *, exclude: str | None = None) -> None:
        """Push to every socket on every process but those of client id ``exclude``: at most
        once, not recoverable."""
        _check_exclude(exclude)
        await self.broker.broadcast(protocol.push(event, data), exclude)

    async def send_to(self, client_id: str, event: str, data: Any = None) -> bool:
        """Push to every socket of ``client_id``, on whichever process holds it.

        At most once, not recoverable; False when no process holds the client.
        """
        return await self.broker.send_to_client(client_id, protocol.push(event, data))

    async def enqueue(self, client_id: str, data: Any = None) -> int:
        """Queue ``data`` for ``client_id`` on whichever process holds it, or for when it
        comes back (kept ``peer_queue_ttl`` seconds); the client takes it with ``consume()``.
        Returns its seq. See :mod:`monument_ws.channels.peer_queues`."""
        return await self.queues.enqueue(client_id, data)

    async def knock(self, channel: str) -> None:
        """Ask every member of ``channel`` to heartbeat now (smartersockets' knock).

        Subscribers get ``{"event": "ws:knock", "channel": ...}`` and answer with
        ``ws:heartbeat`` naming the channel (the Python client does it by itself).
        At most once, not stored.
        """
        await self.broker.publish_ephemeral(
            channel, protocol.push("ws:knock", {"channel": channel}, channel=channel)
        )

    async def kick(
        self,
        *,
        client_id: str | None = None,
        user: str | None = None,
        session: str | None = None,
        channel: str | None = None,
        all: bool = False,  # the caller's word, kick(all=True), though it shadows the builtin
        reason: str = "kicked",
    ) -> None:
        """Close sockets on every process with 4409: those of one client id, user or session,
        every subscriber of ``channel`` (super-scaled-sockets' bootAll), or, with ``all=True``,
        every socket (serverless-sockets' kickAll).

        The client receives ``reason`` (cut to 123 bytes) in the close frame and
        does not reconnect. Exactly one target (ValueError otherwise, or for a
        bad channel name). Sent through the broker: at most once, not stored
        (see :mod:`monument_ws.channels.kick`).
        """
        order = Kick.of(
            client_id=client_id,
            user=user,
            session=session,
            channel=channel,
            all=all,
            reason=reason,
        )
        await self.broker.control(order.encode())


def _check_exclude(exclude: object) -> None:
    """TypeError unless ``exclude`` is None or a client id (a non-empty string)."""
    if exclude is not None and (not isinstance(exclude, str) or not exclude):
        raise TypeError(f"exclude must be a client id (a non-empty string), got {exclude!r}")
