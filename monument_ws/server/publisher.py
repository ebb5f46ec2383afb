"""Publish from outside a server -- workers, cron jobs, scripts -- through the shared broker.

::

    from monument_ws.server.publisher import Publisher

    async with Publisher("redis://127.0.0.1:6379/0") as publisher:
        offset = await publisher.publish("news", "article", {"title": "hello"})
        await publisher.send_to(client_id, "dm", "just you")
        await publisher.kick(user="mallory", reason="account suspended")

It has the servers' whole broker-facing API (:class:`~monument_ws.server.api.ServerAPI`):
``publish``, ``publish_to_user``, ``publish_to_session``, ``broadcast``, ``send_to``,
``enqueue``, ``knock`` and ``kick``, with the same guarantees as ``ws.publish(...)`` and friends.

Give it the same ``broker``, ``broker_prefix`` and ``channels`` settings as
the servers, so publications land in the same history with the same limits -- and the same
``store`` and ``store_schema`` when a namespace persists, so its publications are numbered and
kept by the servers' store.
The memory broker lives inside one server process; a publisher elsewhere
cannot reach it, so it is refused.
"""

from __future__ import annotations

from typing import Any

from .. import brokers
from ..brokers.base import Broker
from ..brokers.memory import MemoryBroker
from ..channels.durable import Durable
from ..channels.namespaces import Namespaces
from ..channels.peer_queues import PeerQueues
from ..config import Config
from ..connection.stats import Stats
from .api import ServerAPI


class Publisher(ServerAPI):
    """A broker connection with the server API (:class:`ServerAPI`), serving no sockets."""

    def __init__(self, broker: str | Broker | None = None, **settings: Any) -> None:
        if broker is not None and isinstance(broker, str):
            settings["broker"] = broker
        self.config = Config.load(settings)
        if not isinstance(broker, Broker):
            broker = brokers.from_url(self.config.broker, prefix=self.config.broker_prefix)
        if isinstance(broker, MemoryBroker):
            raise ValueError(
                "memory:// lives inside one server process, so a publisher outside it cannot "
                "reach its subscribers; use the servers' redis:// broker"
            )
        namespaces = Namespaces(self.config.channels)
        super().__init__(
            broker,
            namespaces,
            PeerQueues(broker, self.config.peer_queue_size, self.config.peer_queue_ttl),
            Stats(),
            Durable.of(self.config, broker, namespaces),
            idempotency_window=self.config.idempotency_window,
            idempotency_keys=self.config.idempotency_keys,
        )

    async def __aenter__(self) -> Publisher:
        await self.broker.start()
        if self.durable is not None:
            await self.durable.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.durable is not None:
            await self.durable.stop()
        await self.broker.stop()
