"""The client registry: which processes hold a socket of each client id, and sending to one.

``{p}:client:{client_id}`` is the set of node ids (one random id per broker
start) holding that client. It expires ``ttl`` seconds after its last refresh,
so a process that died without unregistering drops out by itself: every
process refreshes its own entries every ``ttl / 3`` while the subscription
connection is up, and all of them at once after an outage (the
:mod:`.subscriber` calls :meth:`ClientRegistry.refresh`) or a hang (a sharded
broker's :mod:`.probe` does, when the shard answers again). A client registered
while Redis is unreachable is counted here and written by that refresh; so is
one registered with ``write=False`` (a sharded broker's shard that hangs: the
write would only wait for the socket timeout).

A frame for a client held by another process is published on that process's
``{p}:node:{node}`` channel as ``<client id>\\n<frame>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from ...protocol.errors import Unavailable
from ..local_clients import LocalClients
from .connection import Connection
from .keys import Keys

log = logging.getLogger("monument_ws.redis")


class ClientRegistry:
    """This process's entries of the shared registry, and lookups in it."""

    def __init__(
        self,
        connection: Connection,
        keys: Keys,
        node: str,
        *,
        ttl: float,
        connected: asyncio.Event,
    ) -> None:
        self._connection = connection
        self._keys = keys
        self._node = node
        self._ttl = ttl
        self._connected = connected  # set while the subscription connection is up
        self._held = LocalClients()
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_periodically())

    async def stop(self) -> None:
        """Stop refreshing and take this process out of the registry (best effort: entries
        left behind by an outage expire)."""
        if self._refresher is None:
            return
        self._refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._refresher
        with contextlib.suppress(RedisError, OSError):
            for client_id in self._held:
                await self._connection.redis.srem(self._keys.client(client_id), self._node)

    def holds(self, client_id: str) -> bool:
        """Whether this process holds a socket of ``client_id``."""
        return client_id in self._held

    async def register(self, client_id: str, *, write: bool = True) -> None:
        """Hold ``client_id``; ``write`` False only counts it (the next refresh writes it)."""
        if self._held.add(client_id) and write:
            key = self._keys.client(client_id)
            with contextlib.suppress(Unavailable):  # refreshed when Redis is back
                await self._connection.call(self._connection.redis.sadd(key, self._node))
                await self._connection.call(self._connection.redis.expire(key, int(self._ttl)))

    async def unregister(self, client_id: str, *, write: bool = True) -> None:
        """Stop holding ``client_id``; ``write`` False leaves its entry to expire."""
        if self._held.remove(client_id) and write:
            key = self._keys.client(client_id)
            with contextlib.suppress(Unavailable):  # the entry expires by itself
                await self._connection.call(self._connection.redis.srem(key, self._node))

    async def send_elsewhere(self, client_id: str, frame: bytes) -> bool:
        """Publish ``frame`` to every process holding ``client_id``; False if none does."""
        nodes = await self._connection.call(
            self._connection.redis.smembers(self._keys.client(client_id))
        )
        if not nodes:
            return False
        payload = client_id.encode() + b"\n" + frame
        for node in nodes:
            await self._connection.publish(self._keys.node(node.decode()), payload)
        return True

    async def refresh(self) -> None:
        """Write every client held here, with a fresh expiry; raises redis-py's errors."""
        async with self._connection.redis.pipeline(transaction=False) as pipe:
            for client_id in self._held:
                key = self._keys.client(client_id)
                pipe.sadd(key, self._node)
                pipe.expire(key, int(self._ttl))
            await pipe.execute()

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            if not self._connected.is_set():
                continue  # the subscriber refreshes everything once it is back
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                log.warning("refreshing the client registry failed: %s", exc)
