"""The subscription connection: one pub/sub reader per process, and its way back after an outage.

The reader hands each message to the broker's listener in arrival order: a
publication of an application channel (``{p}:ch:*``) once per offset, in
offset order; a join/leave frame; a broadcast; a frame for a client of this
process; a control message. It listens to the application channels the hub
subscribed to, and always to broadcasts, this process's node channel and control.

**Outages.** When the subscription connection fails the broker turns
unhealthy and the reader reconnects with capped backoff and jitter, logging
every attempt. Once back it closes the command pool's idle connections (they
died with the subscription connection if Redis restarted), resubscribes
everything, rewrites this process's client registrations, then -- before
reading live messages again -- reads each channel's history from the last
offset delivered here and delivers what was missed; only then does it count a
reconnect and turn healthy again (a round that fails midway leaves it unhealthy). Where history cannot fill the gap (the
missed publications were dropped) it calls
:meth:`~monument_ws.brokers.base.Listener.resubscribe_all` for that channel.
Local sockets keep being served throughout.

**A gap in live messages.** A channel's offsets arrive one by one, as Redis numbers them
(or as a store numbered them, :meth:`~monument_ws.brokers.base.Broker.publish_at`). A live
publication more than one above the last offset delivered here means the ones between were
never handed to Redis (a store committed them, then announcing them failed): the reader calls
``resubscribe_all(channel, after=<last delivered>)`` before delivering it, and the listener
fills the gap from the channel's history -- for a persisted channel the store, which has them.

**A restarted Redis** (it lost its data: the channel's epoch in Redis is not the
one delivered here) started each channel again at offset 1, and other processes
may have published to it before this one resubscribed. The reader then reads
the new epoch's history from offset 0: when it holds every publication since the
restart it calls ``resubscribe_all(channel, restarted=<new epoch>)`` and delivers
them all, in order, before any live one -- so a subscriber misses nothing that
was acknowledged after the restart and learns (``recovered: false``) that what
was published during the outage may be lost. When history no longer holds them
all it asks for a plain resubscribe.

**How soon.** Reconnect attempts wait ``random() * min(backoff_max, 0.1 * 2**n)``
seconds; ``backoff_max`` (0.5 s by default) bounds how long after Redis answers
again the channels are resubscribed (plus the resubscribe itself, a few
milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from ...protocol import backoff
from ...protocol.errors import Unavailable
from ..base import Broker, Publication
from .connection import Connection
from .history import ChannelHistory, decode_exclude
from .keys import Keys
from .registry import ClientRegistry

log = logging.getLogger("monument_ws.redis")


class Subscriber:
    """The pub/sub reader of one broker, with what it delivered of each channel."""

    def __init__(
        self,
        connection: Connection,
        keys: Keys,
        node: str,
        *,
        broker: Broker,
        history: ChannelHistory,
        registry: ClientRegistry,
        connected: asyncio.Event,
        backoff_max: float,
    ) -> None:
        self._connection = connection
        self._keys = keys
        self._broker = broker  # whose listener hears what arrives (attach() may change it)
        self._history = history
        self._registry = registry
        self._connected = connected  # set here while the subscription connection is up
        self._backoff_max = backoff_max
        self._always = (keys.broadcast, keys.node(node), keys.control)
        self._broadcast, self._node, self._control = (name.encode() for name in self._always)
        self._channel_prefix = keys.pubsub_prefix.encode()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: set[str] = set()  # application channels subscribed on this process
        self._delivered: dict[str, int] = {}  # newest offset delivered per channel
        self._epochs: dict[str, str] = {}  # the epoch those offsets belong to
        self.reconnects = 0

    async def start(self, *, connect: bool = True) -> None:
        """Subscribe and start reading; ``connect`` False (Redis did not answer the broker's
        start): start reading with the reconnect loop, unhealthy until it succeeds."""
        if connect:
            self._pubsub = self._connection.redis.pubsub()
            await self._pubsub.subscribe(*self._always)
            self._connected.set()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()

    async def subscribe(self, channel: str) -> None:
        # Remembered first: if Redis is unreachable now, the reconnect subscribes it.
        self._channels.add(channel)
        if self._pubsub is None:  # never connected yet: the reconnect subscribes it
            raise Unavailable("the broker has not reached Redis yet")
        await self._connection.call(self._pubsub.subscribe(self._keys.pubsub(channel)))

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._delivered.pop(channel, None)
        self._epochs.pop(channel, None)
        if self._pubsub is None:  # never connected: nothing subscribed in Redis
            return
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(self._keys.pubsub(channel))

    def published(self, channel: str, epoch: str) -> None:
        """This process published to ``channel`` in ``epoch``.

        Kept only for a channel subscribed here, so a process that publishes to
        many channels it does not receive keeps nothing per channel.
        """
        if channel in self._channels:
            # The first seen, as read_history keeps it: the delivered offsets belong to it,
            # and a recovery compares it with Redis's to notice a restart.
            self._epochs.setdefault(channel, epoch)

    def read_history(self, channel: str, epoch: str) -> None:
        """This process read ``channel``'s history in ``epoch``; the epoch its delivered
        offsets belong to stays the one first seen, so a recovery notices a change.
        Kept only for a channel subscribed here, like :meth:`published`."""
        if channel in self._channels:
            self._epochs.setdefault(channel, epoch)

    # --- reading ------------------------------------------------------------------

    async def _read(self) -> None:
        if self._pubsub is None:  # started while Redis did not answer
            await self._reconnect_until_back()
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                log.warning("lost the Redis subscription connection: %s", exc)
                await self._reconnect_until_back()

    def _dispatch(self, source: bytes, payload: bytes) -> None:
        listener = self._broker.listener
        if source.startswith(self._channel_prefix):
            self._on_channel(source[len(self._channel_prefix) :].decode(), payload)
        elif source == self._broadcast:
            if payload.startswith(b"/"):  # "/<hex of the excluded client id>\n<frame>"
                head, _, frame = payload.partition(b"\n")
                listener.deliver_broadcast(frame, decode_exclude(head[1:]))
            else:
                listener.deliver_broadcast(payload)
        elif source == self._node:
            client_id, _, frame = payload.partition(b"\n")
            listener.deliver_to_client(client_id.decode(), frame)
        elif source == self._control:
            listener.deliver_control(payload)

    def _on_channel(self, channel: str, payload: bytes) -> None:
        head, _, frame = payload.partition(b":")
        if head == b"e":
            self._broker.listener.deliver_ephemeral(channel, frame)
            return
        number, _, excluded = head.partition(b"/")  # "<offset>[/<hex of excluded client>]"
        offset = int(number)
        last = self._delivered.get(channel)
        if last is not None:
            if offset <= last:
                return  # already delivered by a recovery
            if offset > last + 1:
                # Offsets after ``last`` were never announced (a store committed them but
                # handing them to Redis failed): the listener fills the gap from history
                # before its subscribers see this one.
                log.warning(
                    "%r skipped from offset %d to %d; filling the gap from history",
                    channel,
                    last,
                    offset,
                )
                self._broker.listener.resubscribe_all(channel, after=last)
        self._delivered[channel] = offset
        self._broker.listener.deliver(Publication(channel, offset, frame, decode_exclude(excluded)))

    # --- outages ------------------------------------------------------------------

    async def _reconnect_until_back(self) -> None:
        attempt = 0
        while True:
            delay = backoff.delay(attempt, 0.1, self._backoff_max)
            attempt += 1
            log.warning("reconnecting to Redis in %.2f s (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)
            try:
                await self._reconnect()
                return
            except (RedisError, OSError, Unavailable) as exc:
                self._connected.clear()  # lost again midway: unhealthy until a round completes
                log.warning("Redis is still unreachable: %s", exc)

    async def _reconnect(self) -> None:
        """Resubscribe everything, then recover each channel before reading live messages."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._connection.drop_idle()
        self._pubsub = self._connection.redis.pubsub()
        channels = sorted(self._channels)
        await self._pubsub.subscribe(*self._always, *map(self._keys.pubsub, channels))
        log.warning("reconnected to Redis; recovering %d channels", len(channels))
        await self._registry.refresh()
        for channel in channels:
            await self._recover(channel)
        # Healthy once every channel is resubscribed and recovered, not before.
        self.reconnects += 1
        self._connected.set()

    async def _recover(self, channel: str) -> None:
        """Deliver what ``channel`` missed since the last offset delivered here; live
        messages that arrive meanwhile wait in the connection and are skipped by offset."""
        last = self._delivered.get(channel, 0)
        known = self._epochs.get(channel)
        history = await self._history.read(channel, last, known)
        if not history.complete and known is not None and history.epoch != known:
            history = await self._history.read(channel, 0, history.epoch)
            if history.complete:
                log.warning(
                    "Redis lost %r (a new epoch): delivering the %d publications since",
                    channel,
                    len(history.publications),
                )
                self._delivered[channel] = 0
                self._epochs[channel] = history.epoch
                self._broker.listener.resubscribe_all(channel, restarted=history.epoch)
                self._deliver(channel, history.publications)
                return
        if not history.complete:
            log.warning(
                "history cannot fill the gap of %r after %d; asking clients to resubscribe",
                channel,
                last,
            )
            self._delivered[channel] = history.offset
            self._epochs[channel] = history.epoch
            self._broker.listener.resubscribe_all(channel)
            return
        self._deliver(channel, history.publications)
        if history.publications:
            log.warning("recovered %d publications of %r", len(history.publications), channel)

    def _deliver(self, channel: str, publications: list[Publication]) -> None:
        for publication in publications:
            self._delivered[channel] = publication.offset
            self._broker.listener.deliver(publication)
