"""The Redis broker: any number of processes and machines share channels, history, presence.

The only module that imports redis (``pip install 'monument-ws[redis]'``).

Layout, under a key prefix (``prefix`` setting) so several apps share one Redis:

* ``{p}:meta:{channel}`` -- hash ``epoch``, ``offset``;
* ``{p}:stream:{channel}`` -- a Redis Stream, entry id ``<offset>-0``, field
  ``f`` the encoded frame, ``x`` when it leaves history (ms since the epoch);
* pub/sub ``{p}:ch:{channel}`` -- one Redis channel per application channel,
  so a process only receives the channels its sockets subscribed to;
  payload ``<offset>:<frame>`` (or ``e:<frame>`` for join/leave);
* pub/sub ``{p}:broadcast``, ``{p}:node:{node}`` (frames for one client) and
  ``{p}:control:all`` (server-to-server orders such as kicks);
* ``{p}:client:{client_id}`` -- set of node ids holding that client (expires);
* ``{p}:presence:{channel}`` -- hash client id → info with its expiry;
* ``{p}:queue:{box}`` -- a peer queue: sorted set scored by sequence number,
  member ``<seq>:<expires ms>:<item>``; ``{p}:queueseq:{box}`` its last number.

**One order everywhere.** A Lua script assigns the offset, appends to the
stream and publishes, atomically; the frame is assembled inside the script
from pieces encoded once by the publisher, so every process writes the same
bytes to its sockets without decoding them.

**Outages.** A publish while Redis is unreachable raises
:class:`~monument_ws.protocol.errors.Unavailable` (never dropped silently). The reader
reconnects with capped backoff and jitter, resubscribes, then, before reading
live messages again, reads each channel's history from the last offset this
process delivered and delivers what was missed; where history cannot fill the
gap it calls :meth:`Listener.resubscribe_all` (the hub pushes ``ws:resubscribe``). Every step
is logged. Local sockets keep being served throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..protocol import backoff
from ..protocol.errors import Unavailable
from .base import Broker, History, Publication

log = logging.getLogger("monument_ws.redis")

_PUBLISH = """
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
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'f', frame, 'x', ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('PUBLISH', ARGV[1], offset .. ':' .. frame)
return {offset, epoch}
"""

_PRESENCE_REPLACE = """
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

_QUEUE_PUSH = """
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

#: How long a channel's offset counter outlives its last publication.
META_TTL_MS = 7 * 24 * 3600 * 1000


class RedisBroker(Broker):
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "monument_ws",
        registry_ttl: float = 60.0,
        backoff_max: float = 5.0,
        max_connections: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.node = secrets.token_hex(6)
        self.registry_ttl = registry_ttl
        self.backoff_max = backoff_max
        self.max_connections = max_connections
        self._clock = clock
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._channels: set[str] = set()  # application channels subscribed on this node
        self._delivered: dict[str, int] = {}  # newest offset delivered per channel
        self._epochs: dict[str, str] = {}
        self._clients: dict[str, int] = {}
        self._connected = asyncio.Event()
        self._script: Any = None
        self._replace: Any = None
        self._queue_push: Any = None

    # --- keys -------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def _pubsub_channel(self, channel: str) -> str:
        return self._key("ch", channel)

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        # A blocking pool: a burst of commands (e.g. hundreds of clients resubscribing after
        # another process drained) waits for a free connection instead of failing at once
        # with "Too many connections", as the default pool does beyond its size.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._script = self._redis.register_script(_PUBLISH)
        self._replace = self._redis.register_script(_PRESENCE_REPLACE)
        self._queue_push = self._redis.register_script(_QUEUE_PUSH)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise Unavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(
            self._key("broadcast", "all"), self._key("node", self.node), self._key("control", "all")
        )
        self._connected.set()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_registry())

    async def stop(self) -> None:
        for task in (self._reader, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                for client_id in list(self._clients):
                    await self._redis.srem(self._key("client", client_id), self.node)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.aclose()
            await self._redis.aclose()

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisBroker.start() was not called")
        return self._redis

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the broker is unavailable: {exc}") from None

    # --- channels -----------------------------------------------------------

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        *,
        history_size: int,
        history_ttl: float,
    ) -> tuple[int, str]:
        data_json = orjson.dumps(data)  # TypeError before anything is sent
        ttl_ms = max(int(history_ttl * 1000), 1)
        offset, epoch = await self._call(
            self._script(
                keys=[self._key("meta", channel), self._key("stream", channel)],
                args=[
                    self._pubsub_channel(channel),
                    orjson.dumps(event),
                    orjson.dumps(channel),
                    data_json,
                    history_size,
                    secrets.token_hex(4),
                    int(self._clock() * 1000) + ttl_ms,
                    ttl_ms,
                    max(META_TTL_MS, ttl_ms),
                ],
            )
        )
        epoch_text = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        self._epochs[channel] = epoch_text
        return int(offset), epoch_text

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._call(self._pubsub.subscribe(self._pubsub_channel(channel)))

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._delivered.pop(channel, None)
        self._epochs.pop(channel, None)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(self._pubsub_channel(channel))

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        meta = await self._call(self.redis.hmget(self._key("meta", channel), "epoch", "offset"))
        current = meta[0].decode() if meta[0] else None
        top = int(meta[1]) if meta[1] else 0
        if current is None:
            # Nothing published yet (or the meta expired): start an epoch so clients can resume.
            current = secrets.token_hex(4)
            created = await self._call(
                self.redis.hsetnx(self._key("meta", channel), "epoch", current)
            )
            if not created:
                return await self.history(channel, since, epoch)
            await self._call(self.redis.pexpire(self._key("meta", channel), META_TTL_MS))
        self._epochs.setdefault(channel, current)
        if epoch != current or since > top:
            return History([], top, current, complete=False)
        if since == top:
            return History([], top, current, complete=True)
        entries = await self._call(
            self.redis.xrange(self._key("stream", channel), min=f"({since}-0")
        )
        now_ms = self._clock() * 1000
        found = []
        for entry_id, fields in entries:
            offset = int(entry_id.split(b"-")[0])
            if offset > top:
                break  # published after the meta read: it is delivered live
            if int(fields[b"x"]) >= now_ms:
                found.append(Publication(channel, offset, fields[b"f"]))
        complete = bool(found) and found[0].offset == since + 1
        return History(found, top, current, complete)

    async def publish_ephemeral(self, channel: str, frame: bytes) -> None:
        await self._call(self.redis.publish(self._pubsub_channel(channel), b"e:" + frame))

    async def broadcast(self, frame: bytes) -> None:
        await self._call(self.redis.publish(self._key("broadcast", "all"), frame))

    async def control(self, message: bytes) -> None:
        await self._call(self.redis.publish(self._key("control", "all"), message))

    # --- presence -------------------------------------------------------------

    def _member_value(self, info: dict[str, Any], ttl: float) -> bytes:
        return orjson.dumps({"info": info, "expires": self._clock() + ttl})

    async def presence_set(
        self, channel: str, client_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        key = self._key("presence", channel)
        await self._call(self.redis.hset(key, client_id, self._member_value(info, ttl)))
        await self._call(self.redis.pexpire(key, max(int(ttl * 1000), 1), gt=True))
        await self._call(self.redis.pexpire(key, max(int(ttl * 1000), 1), nx=True))

    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        key = self._key("presence", channel)
        raw = await self._call(self.redis.hget(key, client_id))
        current = None
        if raw is not None:
            record = orjson.loads(raw)
            current = record["info"] if record["expires"] >= self._clock() else None
        if current != expected:
            return False
        # The script compares the exact bytes read above: another process's change in between fails it.
        value = b"" if new is None else self._member_value(new, ttl)
        done = await self._call(
            self._replace(keys=[key], args=[client_id, raw or b"", value, max(int(ttl * 1000), 1)])
        )
        return bool(done)

    async def presence_count(self, channel: str) -> int:
        return int(await self._call(self.redis.hlen(self._key("presence", channel))))

    async def presence_remove(self, channel: str, client_id: str) -> None:
        await self._call(self.redis.hdel(self._key("presence", channel), client_id))

    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        key = self._key("presence", channel)
        raw = await self._call(self.redis.hgetall(key))
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
            await self._call(self.redis.hdel(key, *expired))
        return members

    # --- peer queues -------------------------------------------------------------

    async def queue_push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        ttl_ms = max(int(ttl * 1000), 1)
        seq = await self._call(
            self._queue_push(
                keys=[self._key("queue", box), self._key("queueseq", box)],
                args=[item, size, int(self._clock() * 1000) + ttl_ms, ttl_ms],
            )
        )
        return int(seq)

    async def queue_read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        members = await self._call(
            self.redis.zrangebyscore(self._key("queue", box), f"({after}", "+inf")
        )
        now_ms = self._clock() * 1000
        found = []
        for member in members:
            seq, expires, item = member.split(b":", 2)
            if int(expires) >= now_ms:
                found.append((int(seq), item))
        return found

    async def queue_remove(self, box: str, seq: int, *, through: bool = False) -> int:
        low = "-inf" if through else seq
        return int(await self._call(self.redis.zremrangebyscore(self._key("queue", box), low, seq)))

    # --- client registry --------------------------------------------------------

    async def register_client(self, client_id: str) -> None:
        self._clients[client_id] = self._clients.get(client_id, 0) + 1
        if self._clients[client_id] == 1:
            key = self._key("client", client_id)
            with contextlib.suppress(Unavailable):  # refreshed when Redis is back
                await self._call(self.redis.sadd(key, self.node))
                await self._call(self.redis.expire(key, int(self.registry_ttl)))

    async def unregister_client(self, client_id: str) -> None:
        count = self._clients.get(client_id, 0) - 1
        if count > 0:
            self._clients[client_id] = count
            return
        self._clients.pop(client_id, None)
        with contextlib.suppress(Unavailable):
            await self._call(self.redis.srem(self._key("client", client_id), self.node))

    async def send_to_client(self, client_id: str, frame: bytes) -> bool:
        if client_id in self._clients:
            self.listener.deliver_to_client(client_id, frame)
            return True
        nodes = await self._call(self.redis.smembers(self._key("client", client_id)))
        if not nodes:
            return False
        payload = client_id.encode() + b"\n" + frame
        for node in nodes:
            await self._call(self.redis.publish(self._key("node", node.decode()), payload))
        return True

    async def _refresh_registry(self) -> None:
        while True:
            await asyncio.sleep(self.registry_ttl / 3)
            if not self._connected.is_set():
                continue
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for client_id in list(self._clients):
                        key = self._key("client", client_id)
                        pipe.sadd(key, self.node)
                        pipe.expire(key, int(self.registry_ttl))
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("refreshing the client registry failed: %s", exc)

    # --- reading ------------------------------------------------------------------

    async def _read(self) -> None:
        broadcast = self._key("broadcast", "all").encode()
        node = self._key("node", self.node).encode()
        control = self._key("control", "all").encode()
        prefix = f"{self.prefix}:ch:".encode()
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message["type"] != "message":
                        continue
                    source: bytes = message["channel"]
                    payload: bytes = message["data"]
                    if source.startswith(prefix):
                        self._on_channel(source[len(prefix) :].decode(), payload)
                    elif source == broadcast:
                        self.listener.deliver_broadcast(payload)
                    elif source == node:
                        client_id, _, frame = payload.partition(b"\n")
                        self.listener.deliver_to_client(client_id.decode(), frame)
                    elif source == control:
                        self.listener.deliver_control(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                log.warning("lost the Redis subscription connection: %s", exc)
                await self._reconnect_until_back()

    async def _reconnect_until_back(self) -> None:
        attempt = 0
        while True:
            delay = backoff.delay(attempt, 0.1, self.backoff_max)
            attempt += 1
            log.warning("reconnecting to Redis in %.2f s (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)
            try:
                await self._reconnect()
                return
            except (RedisError, OSError, Unavailable) as exc:
                log.warning("Redis is still unreachable: %s", exc)

    def _on_channel(self, channel: str, payload: bytes) -> None:
        head, _, frame = payload.partition(b":")
        if head == b"e":
            self.listener.deliver_ephemeral(channel, frame)
            return
        offset = int(head)
        if offset <= self._delivered.get(channel, 0):
            return  # already delivered by a recovery
        self._delivered[channel] = offset
        self.listener.deliver(Publication(channel, offset, frame))

    async def _reconnect(self) -> None:
        """Resubscribe everything, then recover each channel before reading live messages."""
        try:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = self.redis.pubsub()
            channels = [self._pubsub_channel(c) for c in sorted(self._channels)]
            await self._pubsub.subscribe(
                self._key("broadcast", "all"),
                self._key("node", self.node),
                self._key("control", "all"),
                *channels,
            )
        except (RedisError, OSError):
            raise
        self.reconnects += 1
        self._connected.set()
        log.warning("reconnected to Redis; recovering %d channels", len(self._channels))
        for client_id in list(self._clients):
            await self.redis.sadd(self._key("client", client_id), self.node)
            await self.redis.expire(self._key("client", client_id), int(self.registry_ttl))
        for channel in sorted(self._channels):
            last = self._delivered.get(channel, 0)
            epoch = self._epochs.get(channel)
            history = await self.history(channel, last, epoch)
            if not history.complete:
                log.warning(
                    "history cannot fill the gap of %r after %d; asking clients to resubscribe",
                    channel,
                    last,
                )
                self._delivered[channel] = history.offset
                self._epochs[channel] = history.epoch
                self.listener.resubscribe_all(channel)
                continue
            for publication in history.publications:
                self._delivered[channel] = publication.offset
                self.listener.deliver(publication)
            if history.publications:
                log.warning("recovered %d publications of %r", len(history.publications), channel)
