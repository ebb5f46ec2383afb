"""Channels spread over several Redis servers: one :class:`RedisBroker` per shard, composed.

``broker="redis://h1:6379/0,redis://h2:6379/0,redis://h3:6379/0"`` builds a
:class:`ShardedRedisBroker`. Each shard is a whole :class:`RedisBroker` with its own command
pool, pub/sub reader, node id and outage recovery (:mod:`.subscriber`), so a shard that
restarts recovers its channels exactly as a single Redis does.

**Routing** (:mod:`.ring`, rendezvous hashing). Everything of a channel -- its pub/sub
channel, offsets and history stream, idempotency keys, presence -- lives on the channel's
shard. A client id's registry entry lives on the client id's shard: :meth:`register_client`
writes it there, and :meth:`send_to_client` looks it up there and publishes on that shard's
node channel of the holding process (every process listens to its node channel on every
shard). A peer queue lives on its box's shard.

**Broadcasts and control messages** (kicks) must reach every process even while a shard is
down, so they are published on every healthy shard (every shard when none looks healthy),
tagged ``#<16 hex id>\\n``; a process hears each copy once per shard and hands the first on,
dropping the others by id (:class:`_Relay`, bounded: the last :data:`SEEN` ids). A publish
succeeds when one shard took it and raises ``Unavailable`` only when none did.

**A shard down.** A request that needs it -- subscribe, publish, history, presence, a peer
queue or a client whose id hashes there -- is refused at once with ``Unavailable`` while its
broker is unhealthy (its subscription connection lost, or back but not yet recovered) or it
does not answer its pings (it hangs: :mod:`.probe`), never acknowledged and lost; the others
go on. A client whose id hashes there is still accepted: its registry entry is not written
while the shard is down, and is written when the shard is back. A command already sent to a
shard that then hangs fails after the 5-second socket timeout (``Unavailable``: not acknowledged; Redis may still run it when it resumes, which an
idempotency key makes safe to retry). :attr:`healthy` stays True while any shard is, and
:attr:`down` names the shards that are not (readiness reports them). A process starts
while a shard is down (:meth:`start`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from ...protocol.errors import Unavailable
from ..base import Broker, History, HistoryPage, Idempotency, Listener, Publication
from .broker import RedisBroker
from .probe import Probe
from .ring import pick, redacted

#: How many broadcast/control ids a process remembers to drop a message's other copies.
SEEN: Final = 4096

_TAG_LENGTH: Final = 18  # "#" + 16 hex digits + "\n"


def tagged(message: bytes) -> tuple[bytes, bytes]:
    """A fresh id for ``message`` and the message with the id in front, to publish."""
    tag = secrets.token_hex(8).encode()
    return tag, b"#" + tag + b"\n" + message


def untagged(payload: bytes) -> tuple[bytes | None, bytes]:
    """The id and message of a :func:`tagged` payload; (None, payload) for an untagged one
    (a process that publishes on one shard only, such as a single-URL publisher)."""
    if len(payload) >= _TAG_LENGTH and payload[:1] == b"#" and payload[17:18] == b"\n":
        tag = payload[1:17]
        try:
            int(tag, 16)
        except ValueError:
            return None, payload
        return tag, payload[_TAG_LENGTH:]
    return None, payload


class _Relay:
    """Every shard's listener: hands on to the sharded broker's listener, dropping the
    copies of a broadcast or control message that another shard already delivered."""

    def __init__(self, owner: Broker) -> None:
        self._owner = owner  # whose listener hears it (attach() may change it)
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def _first(self, tag: bytes | None) -> bool:
        if tag is None:
            return True
        if tag in self._seen:
            return False
        self._seen[tag] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True

    def deliver(self, publication: Publication) -> None:
        self._owner.listener.deliver(publication)

    def deliver_broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        tag, frame = untagged(frame)
        if self._first(tag):
            self._owner.listener.deliver_broadcast(frame, exclude)

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        self._owner.listener.deliver_to_client(client_id, frame)

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        self._owner.listener.deliver_ephemeral(channel, frame)

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        self._owner.listener.resubscribe_all(channel, restarted, after)

    def deliver_control(self, message: bytes) -> None:
        tag, message = untagged(message)
        if self._first(tag):
            self._owner.listener.deliver_control(message)


class ShardedRedisBroker(Broker):
    """Several Redis servers as one broker; ``urls`` are the shards (at least two, distinct);
    ``probe_interval`` and ``probe_timeout`` are how often each shard is pinged and how long
    it may take to answer before it counts as down (:mod:`.probe`); the other arguments are
    every shard's :class:`RedisBroker`'s."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix: str = "monument_ws",
        probe_interval: float = 1.0,
        probe_timeout: float = 3.0,
        **options: Any,
    ) -> None:
        super().__init__()
        self.urls = [url.strip() for url in urls]
        if len(self.urls) < 2 or len(set(self.urls)) != len(self.urls):
            raise ValueError("a sharded broker needs two or more distinct Redis URLs")
        self.shards = [RedisBroker(url, prefix=prefix, **options) for url in self.urls]
        relay: Listener = _Relay(self)
        for shard in self.shards:
            shard.attach(relay)
        self._probe = Probe(self.shards, interval=probe_interval, timeout=probe_timeout)

    def shard_of(self, name: str) -> RedisBroker:
        """The shard that holds ``name`` (a channel, client id or box), healthy or not."""
        return self.shards[pick(self.urls, name)]

    def _up(self, index: int) -> bool:
        """Whether shard ``index`` serves: connected, recovered and answering its pings."""
        return self.shards[index].healthy and self._probe.answers(index)

    def _serving(self, name: str) -> RedisBroker:
        """The shard of ``name``; Unavailable at once while it is down, hangs or recovers."""
        index = pick(self.urls, name)
        shard = self.shards[index]
        if not self._up(index):
            raise Unavailable(f"the broker shard {redacted(shard.url)} is unavailable")
        return shard

    async def start(self) -> None:
        """Connect every shard. A shard that does not answer starts unhealthy and keeps trying
        (its channels are refused until it answers), so a process starts, and serves the
        other shards' channels, while one shard is down; Unavailable when none answers."""
        started: list[RedisBroker] = []
        try:
            for shard in self.shards:
                await shard.start(require=False)
                started.append(shard)
            if not self.healthy:
                urls = ", ".join(redacted(url) for url in self.urls)
                raise Unavailable(f"cannot reach any broker shard ({urls})")
        except BaseException:
            for shard in started:
                await shard.stop()
            raise
        self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()
        for shard in self.shards:
            await shard.stop()

    @property
    def healthy(self) -> bool:
        """True while any shard serves: the others' channels keep working (see :attr:`down`)."""
        return any(self._up(i) for i in range(len(self.shards)))

    @property
    def down(self) -> tuple[str, ...]:
        return tuple(redacted(s.url) for i, s in enumerate(self.shards) if not self._up(i))

    @property
    def reconnects(self) -> int:
        return sum(shard.reconnects for shard in self.shards)

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
        return await self._serving(channel).publish(
            channel,
            event,
            data,
            history_size=history_size,
            history_ttl=history_ttl,
            exclude=exclude,
            idempotency=idempotency,
        )

    async def publish_at(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> None:
        await self._serving(publication.channel).publish_at(
            publication, history_size=history_size, history_ttl=history_ttl
        )

    async def subscribe(self, channel: str) -> None:
        await self._serving(channel).subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.shard_of(channel).unsubscribe(channel)

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        return await self._serving(channel).history(channel, since, epoch)

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        return await self._serving(channel).history_page(
            channel, before=before, after=after, limit=limit
        )

    async def publish_ephemeral(self, channel: str, frame: bytes) -> None:
        await self._serving(channel).publish_ephemeral(channel, frame)

    async def broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        _, payload = tagged(frame)
        await self._everywhere(lambda shard: shard.broadcast(payload, exclude))

    async def control(self, message: bytes) -> None:
        _, payload = tagged(message)
        await self._everywhere(lambda shard: shard.control(payload))

    async def _everywhere(self, send: Any) -> None:
        """``send`` on every healthy shard at once (all of them when none looks healthy);
        Unavailable only when no shard took it."""
        shards = [s for i, s in enumerate(self.shards) if self._up(i)] or self.shards
        results = await asyncio.gather(*(send(shard) for shard in shards), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == len(results):
            for failure in failures:
                if not isinstance(failure, Unavailable):
                    raise failure
            raise Unavailable("no broker shard is available")

    # --- presence -------------------------------------------------------------

    async def presence_set(
        self, channel: str, client_id: str, info: dict[str, Any], ttl: float
    ) -> None:
        await self._serving(channel).presence_set(channel, client_id, info, ttl)

    async def presence_replace(
        self,
        channel: str,
        client_id: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any] | None,
        ttl: float,
    ) -> bool:
        return await self._serving(channel).presence_replace(channel, client_id, expected, new, ttl)

    async def presence_count(self, channel: str) -> int:
        return await self._serving(channel).presence_count(channel)

    async def presence_remove(self, channel: str, client_id: str) -> None:
        await self._serving(channel).presence_remove(channel, client_id)

    async def presence_get(self, channel: str) -> dict[str, dict[str, Any]]:
        return await self._serving(channel).presence_get(channel)

    # --- peer queues -------------------------------------------------------------

    async def queue_push(self, box: str, item: bytes, *, size: int, ttl: float) -> int:
        return await self._serving(box).queue_push(box, item, size=size, ttl=ttl)

    async def queue_read(self, box: str, after: int) -> list[tuple[int, bytes]]:
        return await self._serving(box).queue_read(box, after)

    async def queue_remove(self, box: str, seq: int, *, through: bool = False) -> int:
        return await self._serving(box).queue_remove(box, seq, through=through)

    # --- client registry --------------------------------------------------------

    async def register_client(self, client_id: str) -> None:
        # Not refused while the shard is down, and not written either (on a shard that hangs
        # the write would only wait for the socket timeout, holding up the connect): the
        # shard counts the client and writes it once it is back -- its subscriber after an
        # outage, the probe after a hang (:meth:`RedisBroker.refresh_clients`).
        index = pick(self.urls, client_id)
        await self.shards[index].register_client(client_id, write=self._up(index))

    async def unregister_client(self, client_id: str) -> None:
        # Likewise not written while the shard is down: the entry expires by itself.
        index = pick(self.urls, client_id)
        await self.shards[index].unregister_client(client_id, write=self._up(index))

    async def send_to_client(self, client_id: str, frame: bytes) -> bool:
        if self.shard_of(client_id).holds(client_id):  # here: no Redis needed
            self.listener.deliver_to_client(client_id, frame)
            return True
        return await self._serving(client_id).send_to_client(client_id, frame)
