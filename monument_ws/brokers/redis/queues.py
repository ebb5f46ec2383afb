"""Peer queue storage: each box a sorted set of items, scored by sequence number.

An item is stored as ``<seq>:<expires ms>:<item>`` in ``{p}:queue:{box}``;
``{p}:queueseq:{box}`` keeps the box's last number. Numbers come from Redis's
own clock in microseconds (or the last number + 1, if larger), so they only
grow, also after a box expired and was made again.
"""

from __future__ import annotations

from collections.abc import Callable

from .connection import Connection, milliseconds
from .keys import Keys

_PUSH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = string.format('%d', math.max(last + 1, now))
redis.call('SET', KEYS[2], seq, 'PX', ARGV[4])
redis.call('ZADD', KEYS[1], seq, seq .. ':' .. ARGV[3] .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return seq
"""


class QueueStore:
    """The peer-queue half of :class:`~monument_ws.brokers.base.Broker`, kept in Redis."""

    def __init__(self, connection: Connection, keys: Keys, clock: Callable[[], float]) -> None:
        self._connection = connection
        self._keys = keys
        self._clock = clock

    async def push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        """See :meth:`Broker.queue_push`."""
        ttl_ms = milliseconds(ttl)
        seq = await self._connection.script(
            _PUSH,
            keys=[self._keys.queue(box), self._keys.queue_seq(box)],
            args=[item, size, int(self._clock() * 1000) + ttl_ms, ttl_ms],
        )
        return int(seq)

    async def read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        members = await self._connection.call(
            self._connection.redis.zrangebyscore(self._keys.queue(box), f"({after}", "+inf")
        )
        now_ms = self._clock() * 1000
        found = []
        for member in members:
            seq, expires, item = member.split(b":", 2)
            if int(expires) >= now_ms:
                found.append((int(seq), item))
        return found

    async def remove(self, box: str, seq: int, *, through: bool = False) -> int:
        low = "-inf" if through else seq
        removed = await self._connection.call(
            self._connection.redis.zremrangebyscore(self._keys.queue(box), low, seq)
        )
        return int(removed)
