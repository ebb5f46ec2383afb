"""The command connection pool to one Redis, opened by the broker's start and closed by its stop.

Every command goes through :meth:`Connection.call`, which turns a Redis or
network error into :class:`~monument_ws.protocol.errors.Unavailable`: an outage
reaches the caller as the protocol's ``unavailable``, never as a silent drop.
The pool's connections reconnect by themselves on the next command; the
subscription connection has its own loop (:mod:`.subscriber`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ...protocol.errors import Unavailable


def milliseconds(seconds: float) -> int:
    """``seconds`` as a Redis expiry in whole milliseconds, at least 1: an expiry of 0 would
    delete the key at once (PEXPIRE) or be refused (SET … PX)."""
    return max(int(seconds * 1000), 1)


class Connection:
    """A pool of command connections and the Lua scripts loaded on it."""

    def __init__(self, url: str, *, max_connections: int) -> None:
        self.url = url
        self._max_connections = max_connections
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    async def open(self, *, require: bool = True) -> bool:
        """Make the pool and check that Redis answers: Unavailable when it does not, or with
        ``require`` False keep the pool (its connections are made on first use) and return
        False. True when Redis answered."""
        # A blocking pool: a burst of commands (e.g. hundreds of clients resubscribing after
        # another process drained) waits for a free connection instead of failing at once
        # with "Too many connections", as the default pool does beyond its size.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            if require:
                await client.aclose()
                raise Unavailable(f"cannot reach Redis at {self.url}: {exc}") from None
            self._redis = client
            self._scripts = {}
            return False
        self._redis = client
        self._scripts = {}
        return True

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        """The client; commands on it raise redis-py's errors (wrap them in :meth:`call`)."""
        if self._redis is None:
            raise RuntimeError("RedisBroker.start() was not called")
        return self._redis

    async def drop_idle(self) -> None:
        """Close the pool's idle connections; each opens again on its next use.

        After the subscription connection was lost, the idle ones may be dead too (Redis
        restarted) without the pool noticing until a command fails on one: the subscriber
        drops them before resubscribing, so its recovery does not fail on the first command
        and wait a whole backoff round. Connections in use by other commands are left alone.
        """
        with contextlib.suppress(RedisError, OSError):
            await self.redis.connection_pool.disconnect(inuse_connections=False)

    async def call(self, command: Any) -> Any:
        """Await a redis-py command; an error of Redis or the network becomes Unavailable."""
        try:
            return await command
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the broker is unavailable: {exc}") from None

    async def publish(self, channel: str, payload: bytes) -> None:
        """Publish ``payload`` on pub/sub ``channel`` (at most once, to whoever listens now)."""
        await self.call(self.redis.publish(channel, payload))

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run the Lua script ``source``, atomically. It is called by its SHA; the source
        is sent only when Redis does not know it yet (first use, or after a restart)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return await self.call(script(keys=keys, args=args))
