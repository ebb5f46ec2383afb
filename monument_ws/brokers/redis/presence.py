"""Presence storage: channel → client id → info, each member with its own expiry.

A member is one field of the hash ``{p}:presence:{channel}``, valued
``{"info", "expires"}`` (seconds on the broker's clock). Reads leave out expired
members and delete them, so a member whose process died without removing it
disappears ``ttl`` after its last refresh; the hash itself expires with its
longest-lived member.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .connection import Connection, milliseconds
from .keys import Keys

_REPLACE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
"""


class PresenceStore:
    """The presence half of :class:`~monument_ws.brokers.base.Broker`, kept in Redis hashes."""

    def __init__(self, connection: Connection, keys: Keys, clock: Callable[[], float]) -> None:
        self._connection = connection
        self._keys = keys
        self._clock = clock

    def _member_value(self, info: dict[str, Any], ttl: float) -> bytes:
        return orjson.dumps({"info": info, "expires": self._clock() + ttl})

    async def set(self, channel: str, client_id: str, info: dict[str, Any], ttl: float) -> None:
        key = self._keys.presence(channel)
        redis = self._connection.redis
        await self._connection.call(redis.hset(key, client_id, self._member_value(info, ttl)))
        # GT lengthens the hash's expiry to this member's; GT ignores a hash without an
        # expiry, which NX gives one.
        await self._connection.call(redis.pexpire(key, milliseconds(ttl), gt=True))
        await self._connection.call(redis.pexpire(key, milliseconds(ttl), nx=True))

    async def replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        """See :meth:`Broker.presence_replace`."""
        key = self._keys.presence(channel)
        raw = await self._connection.call(self._connection.redis.hget(key, client_id))
        current = None
        if raw is not None:
            record = orjson.loads(raw)
            current = record["info"] if record["expires"] >= self._clock() else None
        if current != expected:
            return False
        # The script compares the exact bytes read above: another process's change in between fails it.
        value = b"" if new is None else self._member_value(new, ttl)
        done = await self._connection.script(
            _REPLACE, keys=[key], args=[client_id, raw or b"", value, milliseconds(ttl)]
        )
        return bool(done)

    async def count(self, channel: str) -> int:
        """Members of ``channel``, expired ones included until a read deletes them."""
        key = self._keys.presence(channel)
        return int(await self._connection.call(self._connection.redis.hlen(key)))

    async def remove(self, channel: str, client_id: str) -> None:
        await self._connection.call(
            self._connection.redis.hdel(self._keys.presence(channel), client_id)
        )

    async def members(self, channel: str) -> dict[str, dict[str, Any]]:
        """The live members of ``channel``; the expired ones found are deleted."""
        key = self._keys.presence(channel)
        raw = await self._connection.call(self._connection.redis.hgetall(key))
        now = self._clock()
        members: dict[str, dict[str, Any]] = {}
        expired = []
        for client_id, value in raw.items():
            record = orjson.loads(value)
            if record["expires"] < now:
                expired.append(client_id)
            else:
                members[client_id.decode()] = record["info"]
        if expired:
            await self._connection.call(self._connection.redis.hdel(key, *expired))
        return members
