"""Publish from outside a server -- workers, cron jobs, scripts -- through the shared broker.

::

    from monument_ws.server.publisher import Publisher

    async with Publisher("redis://127.0.0.1:6379/0") as publisher:
        offset = await publisher.publish("news", "article", {"title": "hello"})
        await publisher.send_to(client_id, "dm", "just you")
        await publisher.kick(user="mallory", reason="account suspended")

Give it the same ``broker``, ``broker_prefix`` and ``channels`` settings as
the servers, so publications land in the same history with the same limits.
The memory broker lives inside one server process; a publisher elsewhere
cannot reach it, so it is refused.
"""

from __future__ import annotations

from typing import Any

from .. import brokers, protocol
from ..brokers.base import Broker
from ..brokers.memory import MemoryBroker
from ..channels.kick import Kick
from ..channels.namespaces import Namespaces
from ..channels.peer_queues import PeerQueues
from ..config import Config


class Publisher:
    """A broker connection that publishes, broadcasts and sends to clients, serving no sockets."""

    def __init__(self, broker: str | Broker | None = None, **settings: Any) -> None:
        if broker is not None and isinstance(broker, str):
            settings["broker"] = broker
        self.config = Config.load(settings)
        if isinstance(broker, Broker):
            self.broker = broker
        else:
            self.broker = brokers.from_url(self.config.broker, prefix=self.config.broker_prefix)
        if isinstance(self.broker, MemoryBroker):
            raise ValueError(
                "memory:// lives inside one server process, so a publisher outside it cannot "
                "reach its subscribers; use the servers' redis:// broker"
            )
        self.namespaces = Namespaces(self.config.channels)
        self.queues = PeerQueues(
            self.broker, self.config.peer_queue_size, self.config.peer_queue_ttl
        )

    async def __aenter__(self) -> Publisher:
        await self.broker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()

    async def publish(self, channel: str, event: str, data: Any = None) -> int:
        """Publish to ``channel`` (history as its namespace says); returns the offset."""
        problem = protocol.check_channel(channel)
        if problem is not None:
            raise ValueError(problem)
        options = self.namespaces.options(channel)
        offset, _ = await self.broker.publish(
            channel, event, data, history_size=options.history_size, history_ttl=options.history_ttl
        )
        return offset

    async def broadcast(self, event: str, data: Any = None) -> None:
        await self.broker.broadcast(protocol.push(event, data))

    async def send_to(self, client_id: str, event: str, data: Any = None) -> bool:
        return await self.broker.send_to_client(client_id, protocol.push(event, data))

    async def enqueue(self, client_id: str, data: Any = None) -> int:
        """Queue ``data`` for ``client_id`` (see :mod:`monument_ws.channels.peer_queues`); returns its seq."""
        return await self.queues.enqueue(client_id, data)

    async def kick(
        self,
        *,
        client_id: str | None = None,
        user: str | None = None,
        session: str | None = None,
        reason: str = "kicked",
    ) -> None:
        """Close every socket of one client id, user or session, on every server, with 4409."""
        await self.broker.control(
            Kick.of(client_id=client_id, user=user, session=session, reason=reason).encode()
        )
