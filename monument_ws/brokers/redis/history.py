"""Channel publications and their history: the publish script and history reads.

**One order everywhere.** A Lua script assigns the offset, appends to the
channel's stream and publishes on its pub/sub channel, atomically; the frame is
assembled inside the script from pieces encoded once by the publisher, so
every process writes the same bytes to its sockets without decoding them.

**Excluded client.** A publication whose sender asked to be left out names that client id
(hex-encoded, so no byte of it can be mistaken for a separator): the announcement is
``<offset>/<hex>:<frame>`` instead of ``<offset>:<frame>``, and the stream entry has a field
``n`` holding the same hex, so a replay from history skips that client too.

**Pages** (``ws:history``) read the stream with XREVRANGE (the latest, or before an offset) or
XRANGE (after one) and COUNT, bounded above by the channel's offset read first, so a page costs
about its length; expired entries still in the stream are stepped over.

**Idempotency keys.** A publish with a key first looks the key up in the channel's
idempotency hash (expired keys are dropped first, at most 100 per call); a key still in its
window returns the first publication's offset and epoch without publishing. Otherwise the
key is recorded with the new offset in the same script, so the publication and its key are
one atomic step: a retry can never publish twice, nor find a key whose publication is
missing. The channel keeps at most ``limit`` keys (the oldest forgotten first), and both of
its idempotency keys expire ``window`` after its last keyed publish.

A channel's epoch lives in its meta hash: it is made by the first publish or
read of a channel that has none (never published, its meta expired, or Redis
lost its data), so a client holding an older epoch learns its position is gone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import orjson

from ..base import History, HistoryPage, Idempotency, Publication, history_after, page_of
from .connection import Connection, milliseconds
from .keys import Keys

_PUBLISH = """
local keyed = ARGV[11] ~= ''
if keyed then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[12], 'LIMIT', 0, 100)
  if #expired > 0 then
    redis.call('ZREM', KEYS[4], unpack(expired))
    redis.call('HDEL', KEYS[3], unpack(expired))
  end
  local until_ms = redis.call('ZSCORE', KEYS[4], ARGV[11])
  if until_ms and tonumber(until_ms) > tonumber(ARGV[12]) then
    local seen = redis.call('HGET', KEYS[3], ARGV[11])
    if seen then
      local sep = string.find(seen, ':', 1, true)
      return {tonumber(string.sub(seen, 1, sep - 1)), string.sub(seen, sep + 1), 1}
    end
  end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local frame = '{"event":' .. ARGV[2] .. ',"channel":' .. ARGV[3] .. ',"data":' .. ARGV[4]
  .. ',"offset":' .. offset .. '}'
local size = tonumber(ARGV[5])
if size > 0 then
  if ARGV[10] == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'f', frame, 'x', ARGV[7])
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'f', frame, 'x', ARGV[7],
      'n', ARGV[10])
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
redis.call('PEXPIRE', KEYS[1], ARGV[9])
local head = offset
if ARGV[10] ~= '' then
  head = offset .. '/' .. ARGV[10]
end
redis.call('PUBLISH', ARGV[1], head .. ':' .. frame)
if keyed then
  redis.call('HSET', KEYS[3], ARGV[11], offset .. ':' .. epoch)
  redis.call('ZADD', KEYS[4], tonumber(ARGV[12]) + tonumber(ARGV[13]), ARGV[11])
  local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[14])
  if extra > 0 then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, extra - 1)
    redis.call('ZREM', KEYS[4], unpack(oldest))
    redis.call('HDEL', KEYS[3], unpack(oldest))
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
  redis.call('PEXPIRE', KEYS[4], ARGV[13])
end
return {offset, epoch, 0}
"""

# A publication a store numbered: the offset and frame come from the caller; the counter only
# moves up (a lower offset is announced but not appended: the stream only grows).
_PUBLISH_AT = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local top = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
local offset = tonumber(ARGV[2])
local size = tonumber(ARGV[4])
if offset > top then
  redis.call('HSET', KEYS[1], 'offset', offset)
  if size > 0 then
    if ARGV[9] == '' then
      redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'f', ARGV[3], 'x', ARGV[6])
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'f', ARGV[3], 'x', ARGV[6],
        'n', ARGV[9])
    end
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local head = ARGV[2]
if ARGV[9] ~= '' then
  head = head .. '/' .. ARGV[9]
end
redis.call('PUBLISH', ARGV[1], head .. ':' .. ARGV[3])
return epoch
"""

#: How long a channel's offset counter outlives its last publication.
META_TTL_MS = 7 * 24 * 3600 * 1000


def encode_exclude(client_id: str | None) -> str:
    """An excluded client id as it travels through Redis: hex, or "" for none."""
    return "" if client_id is None else client_id.encode().hex()


def decode_exclude(encoded: bytes) -> str | None:
    """The client id :func:`encode_exclude` encoded (None for "")."""
    return bytes.fromhex(encoded.decode()).decode() if encoded else None


class ChannelHistory:
    """Publishes to channels (offset, history, announcement) and reads their history back."""

    def __init__(self, connection: Connection, keys: Keys, clock: Callable[[], float]) -> None:
        self._connection = connection
        self._keys = keys
        self._clock = clock

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
        """See :meth:`Broker.publish`; Unavailable while Redis is unreachable."""
        data_json = orjson.dumps(data)  # TypeError before anything is sent
        ttl_ms = milliseconds(history_ttl)
        now_ms = int(self._clock() * 1000)
        offset, epoch, _ = await self._connection.script(
            _PUBLISH,
            keys=[
                self._keys.meta(channel),
                self._keys.stream(channel),
                self._keys.idempotency(channel),
                self._keys.idempotency_expiry(channel),
            ],
            args=[
                self._keys.pubsub(channel),
                orjson.dumps(event),
                orjson.dumps(channel),
                data_json,
                history_size,
                secrets.token_hex(4),
                now_ms + ttl_ms,
                ttl_ms,
                max(META_TTL_MS, ttl_ms),
                encode_exclude(exclude),
                "" if idempotency is None else idempotency.key,
                now_ms,
                0 if idempotency is None else milliseconds(idempotency.window),
                0 if idempotency is None else idempotency.limit,
            ],
        )
        return int(offset), epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def publish_at(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> str:
        """See :meth:`Broker.publish_at`; returns the channel's Redis epoch."""
        ttl_ms = milliseconds(history_ttl)
        epoch = await self._connection.script(
            _PUBLISH_AT,
            keys=[self._keys.meta(publication.channel), self._keys.stream(publication.channel)],
            args=[
                self._keys.pubsub(publication.channel),
                publication.offset,
                publication.frame,
                history_size,
                secrets.token_hex(4),
                int(self._clock() * 1000) + ttl_ms,
                ttl_ms,
                max(META_TTL_MS, ttl_ms),
                encode_exclude(publication.exclude),
            ],
        )
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def read(self, channel: str, since: int, epoch: str | None) -> History:
        """See :meth:`Broker.history`."""
        current, top = await self._position(channel)
        if epoch != current or since > top:
            return History([], top, current, complete=False)
        kept = [] if since == top else await self._kept_after(channel, since, top)
        return history_after(since, top, current, kept)

    async def page(
        self, channel: str, *, before: int | None, after: int | None, limit: int
    ) -> HistoryPage:
        """See :meth:`Broker.history_page`: XRANGE (``after``) or XREVRANGE (``before``, the
        latest) with COUNT, so a page reads about ``limit`` entries, not the whole window."""
        epoch, top = await self._position(channel)
        if after is not None:
            first, last, forward = f"({after}-0", f"{top}-0", True
            empty = after >= top
        else:
            end = top + 1 if before is None else min(before, top + 1)
            first, last, forward = f"({end}-0", "-", False
            empty = end <= 1
        if empty or limit == 0:
            return HistoryPage([], top, epoch, more=False)
        found = await self._live_entries(channel, first, last, forward, limit + 1)
        if not forward:
            found.reverse()
        publications, more = page_of(found, before=before, after=after, limit=limit, top=top)
        return HistoryPage(publications, top, epoch, more)

    async def _live_entries(
        self, channel: str, first: str, last: str, forward: bool, wanted: int
    ) -> list[Publication]:
        """Up to ``wanted`` unexpired publications from ``first`` (an exclusive bound) towards
        ``last``, in reading order. Expired entries wait in the stream until it is trimmed or
        expires, so batches are read until ``wanted`` are found or the range ends (at most the
        window's length in all)."""
        redis, stream = self._connection.redis, self._keys.stream(channel)
        now_ms = self._clock() * 1000
        found: list[Publication] = []
        while len(found) < wanted:
            if forward:
                batch = redis.xrange(stream, min=first, max=last, count=wanted)
            else:
                batch = redis.xrevrange(stream, max=first, min=last, count=wanted)
            entries = await self._connection.call(batch)
            for entry_id, fields in entries:
                if int(fields[b"x"]) >= now_ms and len(found) < wanted:
                    found.append(self._publication(channel, entry_id, fields))
            if len(entries) < wanted:
                break
            first = f"({entries[-1][0].decode()}"
        return found

    @staticmethod
    def _publication(channel: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Publication:
        offset = int(entry_id.split(b"-")[0])
        return Publication(channel, offset, fields[b"f"], decode_exclude(fields.get(b"n", b"")))

    async def _position(self, channel: str) -> tuple[str, int]:
        """The channel's epoch and newest offset, starting an epoch if it has none."""
        meta = self._keys.meta(channel)
        epoch, offset = await self._connection.call(
            self._connection.redis.hmget(meta, "epoch", "offset")
        )
        top = int(offset) if offset else 0
        if epoch:
            return epoch.decode(), top
        epoch = secrets.token_hex(4)
        if not await self._connection.call(self._connection.redis.hsetnx(meta, "epoch", epoch)):
            return await self._position(channel)  # another process started one first
        await self._connection.call(self._connection.redis.pexpire(meta, META_TTL_MS))
        return epoch, top

    async def _kept_after(self, channel: str, since: int, top: int) -> list[Publication]:
        """The unexpired publications with an offset in (``since``, ``top``], oldest first."""
        entries = await self._connection.call(
            self._connection.redis.xrange(self._keys.stream(channel), min=f"({since}-0")
        )
        now_ms = self._clock() * 1000
        kept = []
        for entry_id, fields in entries:
            offset = int(entry_id.split(b"-")[0])
            if offset > top:
                break  # published after the position was read: it is delivered live
            if int(fields[b"x"]) >= now_ms:
                kept.append(self._publication(channel, entry_id, fields))
        return kept
