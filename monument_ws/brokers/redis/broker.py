"""The Redis broker: the :class:`~monument_ws.brokers.base.Broker` made of this package's parts.

Broadcasts, join/leave frames and control messages are plain pub/sub
publishes, at most once and not stored; everything else is the job of one
part (see the package's docstring for which file holds which).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..base import Broker, History, HistoryPage, Idempotency, Publication
from .connection import Connection
from .history import ChannelHistory, encode_exclude
from .keys import Keys
from .presence import PresenceStore
from .queues import QueueStore
from .registry import ClientRegistry
from .subscriber import Subscriber


class RedisBroker(Broker):
    """Channels, history, presence, peer queues and the client registry in one Redis.

    ``prefix`` namespaces the keys; ``registry_ttl`` is how long a process that
    died stays in the client registry; ``backoff_max`` caps the wait between
    reconnect attempts of the subscription connection, so channels are resubscribed within
    about that long of Redis answering again (an attempt against a Redis that is down costs
    one refused connect); ``max_connections`` bounds the command pool (commands
    beyond it wait); ``clock`` dates the expiry of history, presence members and
    peer-queue items (tests move it).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "monument_ws",
        registry_ttl: float = 60.0,
        backoff_max: float = 0.5,
        max_connections: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        #: this process's id in the client registry, new at every construction
        self.node = secrets.token_hex(6)
        self._keys = keys = Keys(prefix)
        self._connection = connection = Connection(url, max_connections=max_connections)
        # Set while the subscription connection is up: the subscriber sets and clears it.
        self._connected = connected = asyncio.Event()
        self._history = ChannelHistory(connection, keys, clock)
        self._presence = PresenceStore(connection, keys, clock)
        self._queues = QueueStore(connection, keys, clock)
        self._registry = ClientRegistry(
            connection, keys, self.node, ttl=registry_ttl, connected=connected
        )
        self._subscriber = Subscriber(
            connection,
            keys,
            self.node,
            broker=self,
            history=self._history,
            registry=self._registry,
            connected=connected,
            backoff_max=backoff_max,
        )

    async def start(self, *, require: bool = True) -> None:
        """Connect (Unavailable if Redis does not answer), then start reading and refreshing.

        ``require`` False starts even when Redis does not answer: the broker is unhealthy and
        its subscriber keeps trying to connect, as after an outage (a sharded broker starts
        its shards so, so that a process starts while one shard is down)."""
        answered = await self._connection.open(require=require)
        await self._subscriber.start(connect=answered)
        self._registry.start()

    async def stop(self) -> None:
        await self._subscriber.stop()
        await self._registry.stop()
        await self._connection.close()

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    @property
    def reconnects(self) -> int:
        return self._subscriber.reconnects

    async def ping(self) -> None:
        """Ask Redis to answer (Unavailable when it cannot), through the command pool."""
        await self._connection.call(self._connection.redis.ping())

    # --- channels -----------------------------------------------------------

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
        offset, epoch = await self._history.publish(
            channel,
            event,
            data,
            history_size=history_size,
            history_ttl=history_ttl,
            exclude=exclude,
            idempotency=idempotency,
        )
        self._subscriber.published(channel, epoch)
        return offset, epoch

    async def publish_at(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> None:
        epoch = await self._history.publish_at(
            publication, history_size=history_size, history_ttl=history_ttl
        )
        self._subscriber.published(publication.channel, epoch)

    async def subscribe(self, channel: str) -> None:
        await self._subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._subscriber.unsubscribe(channel)

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        history = await self._history.read(channel, since, epoch)
        self._subscriber.read_history(channel, history.epoch)
        return history

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        page = await self._history.page(channel, before=before, after=after, limit=limit)
        self._subscriber.read_history(channel, page.epoch)
        return page

    async def publish_ephemeral(self, channel: str, frame: bytes) -> None:
        await self._connection.publish(self._keys.pubsub(channel), b"e:" + frame)

    async def broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        if exclude is not None:  # a frame starts with "{": the reader tells the two apart
            frame = b"/" + encode_exclude(exclude).encode() + b"\n" + frame
        await self._connection.publish(self._keys.broadcast, frame)

    async def control(self, message: bytes) -> None:
        await self._connection.publish(self._keys.control, message)

    # --- presence -------------------------------------------------------------

    async def presence_set(
        self, channel: str, client_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        await self._presence.set(channel, client_id, info, ttl)

    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        return await self._presence.replace(channel, client_id, expected, new, ttl)

    async def presence_count(self, channel: str) -> int:
        return await self._presence.count(channel)

    async def presence_remove(self, channel: str, client_id: str) -> None:
        await self._presence.remove(channel, client_id)

    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        return await self._presence.members(channel)

    # --- peer queues -------------------------------------------------------------

    async def queue_push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        return await self._queues.push(box, item, size=size, ttl=ttl)

    async def queue_read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        return await self._queues.read(box, after)

    async def queue_remove(self, box: str, seq: int, *, through: bool = False) -> int:
        return await self._queues.remove(box, seq, through=through)

    # --- client registry --------------------------------------------------------

    async def register_client(self, client_id: str, *, write: bool = True) -> None:
        """``write`` False counts the client without a command to Redis (which a sharded
        broker knows does not answer): :meth:`refresh_clients` writes it later."""
        await self._registry.register(client_id, write=write)

    async def unregister_client(self, client_id: str, *, write: bool = True) -> None:
        """``write`` False forgets the client without a command to Redis: the entry expires."""
        await self._registry.unregister(client_id, write=write)

    async def refresh_clients(self) -> None:
        """Write every client held here to the registry, with a fresh expiry (Unavailable when
        Redis does not take it)."""
        await self._connection.call(self._registry.refresh())

    def holds(self, client_id: str) -> bool:
        """Whether this process registered ``client_id`` with this broker."""
        return self._registry.holds(client_id)

    async def send_to_client(self, client_id: str, frame: bytes) -> bool:
        if self._registry.holds(client_id):
            self.listener.deliver_to_client(client_id, frame)
            return True
        return await self._registry.send_elsewhere(client_id, frame)
