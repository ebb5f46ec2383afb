"""The sockets of this process: by client id, and by channel, with encode-once fan-out.

Delivery guarantees (docs/protocol.md):

* A channel publication reaches each local subscriber **at most once live**,
  as the same encoded bytes (encoded once by the broker, however many
  subscribers there are), in the channel's offset order.
* A subscriber that resubscribes with ``since`` gets what it missed from
  history (**at least once** within the history window; duplicates are
  recognisable by ``offset``) before its subscribe reply, and ``recovered``
  says whether the gap was filled.
* Broadcast and send-to-client are at most once and not recoverable.
* A slow subscriber never slows the others: writes go to each socket's
  bounded send buffer; one that overflows is closed with 4008 (it can recover
  from history after reconnecting).

Recovery sequence, so a publication landing during a resubscribe is
delivered exactly once: the socket is added to the channel live but with a
buffer; history since its offset is read and sent; the subscribe reply is
sent; then buffered publications newer than the last one sent are flushed and
the buffer removed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine, Iterator
from typing import Any

from .. import protocol
from ..brokers.base import Broker, Publication
from ..connection.middleware import Middleware
from ..connection.socket import Socket
from ..connection.stats import OUT_PUBLICATION
from ..protocol.errors import Unavailable
from ..protocol.frames import CloseCode
from .kick import Kick
from .peer_queues import NUDGE, PeerQueues

log = logging.getLogger("monument_ws")


class Hub:
    """Registry of live local sockets and their channel subscriptions."""

    def __init__(
        self, broker: Broker, queues: PeerQueues, middleware: Middleware | None = None
    ) -> None:
        self.broker = broker
        self.middleware = middleware
        self._by_client: dict[str, set[Socket]] = {}
        self._count = 0
        # channel -> socket -> None when live, or a buffer while it recovers
        self._channels: dict[str, dict[Socket, list[Publication] | None]] = {}
        self._subscriptions: dict[Socket, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Sockets gathering this loop turn's publications (see deliver); None between turns.
        self._gathering: list[Socket] | None = None
        #: the peer queues, whose nudges arrive as frames for a client
        self.queues = queues
        broker.attach(self)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Socket]:
        for sockets in list(self._by_client.values()):
            yield from list(sockets)

    # --- sockets ----------------------------------------------------------

    async def add(self, socket: Socket) -> None:
        sockets = self._by_client.setdefault(socket.client_id, set())
        sockets.add(socket)
        self._count += 1
        if len(sockets) == 1:
            await self.broker.register_client(socket.client_id)

    async def remove(self, socket: Socket) -> list[str]:
        """Forget ``socket`` and its subscriptions; returns the channels it left."""
        left = sorted(self._subscriptions.get(socket, ()))
        for channel in left:
            await self.unsubscribe(socket, channel)
        sockets = self._by_client.get(socket.client_id)
        if sockets is None or socket not in sockets:
            return left
        sockets.discard(socket)
        self._count -= 1
        if not sockets:
            del self._by_client[socket.client_id]
            await self.broker.unregister_client(socket.client_id)
        return left

    def of_client(self, client_id: str) -> list[Socket]:
        """The live sockets of ``client_id`` on this process (usually zero or one)."""
        return list(self._by_client.get(client_id, ()))

    async def drain(
        self, period: float, batch: int, grace: float, reason: str = "server shutting down"
    ) -> int:
        """Close every socket with 1001, ``batch`` at a time, spread evenly over ``period`` s.

        Phoenix's drainer, sized to the period: ``ceil(n / batch)`` batches, one
        every ``period / batches`` seconds, so the clients' reconnects reach the
        other processes at an even rate instead of all in the same second (a
        few sockets, one batch: closed at once). The pauses are relative, so a
        busy process stretches the drain but never bunches it up. Each socket
        of a batch first stops taking requests and lets its running ones
        answer (up to ``grace`` seconds, :meth:`Socket.finish`), then closes.
        Returns how many sockets it closed, once every close has finished.
        """
        sockets = list(self)
        if not sockets:
            return 0
        batches = math.ceil(len(sockets) / batch)
        interval = period / batches
        log.info("draining %d sockets in %d batches over %.3g s", len(sockets), batches, period)
        closing: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        for index in range(batches):
            if index:
                await asyncio.sleep(interval)
            for socket in sockets[index * batch : (index + 1) * batch]:
                if not socket.closed:
                    closing.append(loop.create_task(self._drain_one(socket, grace, reason)))
        await asyncio.gather(*closing, return_exceptions=True)
        return len(closing)

    @staticmethod
    async def _drain_one(socket: Socket, grace: float, reason: str) -> None:
        await socket.finish(grace)
        await socket.close(CloseCode.GOING_AWAY, reason)

    def targets(self, kick: Kick) -> list[Socket]:
        """The local sockets ``kick`` names: by client id, or the subscribers of the
        user's or session's reserved channel (every socket of it joins that channel)."""
        channel = kick.channel
        if channel is None:
            return self.of_client(kick.target)
        return list(self._channels.get(channel, ()))

    def deliver_control(self, message: bytes) -> None:
        """A control message from the broker: a kick closes the local sockets it names."""
        kick = Kick.decode(message)
        if kick is None:
            log.warning("ignored a control message that is not a kick: %r", message[:100])
            return
        for socket in self.targets(kick):
            self._spawn(socket.close(CloseCode.KICKED, kick.reason))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _shared(self, frame: bytes) -> tuple[bytes, bytes] | None:
        """A frame for many sockets: through the outgoing middleware once (``socket=None``),
        then framed once; None when a hook dropped it."""
        middleware = self.middleware
        if middleware is not None and middleware.outgoing_hooks:
            hooked = middleware.run_outgoing(frame, None)
            if hooked is None:
                return None
            frame = hooked
        return frame, protocol.text_frame(frame)

    # --- channels ---------------------------------------------------------

    def channels(self) -> dict[str, int]:
        """Channels with local subscribers, and how many."""
        return {channel: len(subs) for channel, subs in self._channels.items()}

    def subscribed(self, socket: Socket, channel: str) -> bool:
        return channel in self._subscriptions.get(socket, ())

    def subscriptions(self, socket: Socket) -> set[str]:
        return set(self._subscriptions.get(socket, ()))

    async def subscribe(
        self, socket: Socket, channel: str, since: tuple[int, str] | None = None
    ) -> tuple[dict[str, Any], int]:
        """Subscribe ``socket``; with ``since=(offset, epoch)`` push what it missed first.

        Returns the subscribe reply ``{"channel", "offset", "epoch", "recovered"}``
        and the offset to pass to :meth:`go_live` once the reply is queued. Until
        then, live publications for ``socket`` are buffered.
        """
        subs = self._channels.get(channel)
        if subs is None:
            subs = self._channels[channel] = {}
            await self.broker.subscribe(channel)
        buffer: list[Publication] = []
        subs[socket] = buffer
        self._subscriptions.setdefault(socket, set()).add(channel)
        try:
            offset_asked, epoch_asked = since if since is not None else (0, None)
            history = await self.broker.history(channel, offset_asked, epoch_asked)
            recovered = since is not None and history.complete
            last = history.offset
            if recovered:
                last = offset_asked
                for publication in history.publications:
                    shared = self._shared(publication.frame)
                    if shared is not None:
                        socket.send_raw_nowait(*shared, OUT_PUBLICATION)
                    last = publication.offset
            reply = {
                "channel": channel,
                "offset": history.offset,
                "epoch": history.epoch,
                "recovered": recovered,
            }
            return reply, last
        except BaseException:
            await self.unsubscribe(socket, channel)
            raise

    def go_live(self, socket: Socket, channel: str, after: int) -> None:
        """End ``socket``'s recovery on ``channel``: flush buffered publications newer than ``after``."""
        subs = self._channels.get(channel)
        if subs is None or socket not in subs:
            return
        buffer = subs[socket]
        subs[socket] = None
        for publication in buffer or ():
            if publication.offset > after:
                shared = self._shared(publication.frame)
                if shared is not None:
                    socket.send_raw_nowait(*shared, OUT_PUBLICATION)

    async def unsubscribe(self, socket: Socket, channel: str) -> bool:
        """Remove ``socket`` from ``channel``; the last local subscriber unsubscribes the broker."""
        channels = self._subscriptions.get(socket)
        if channels is None or channel not in channels:
            return False
        channels.discard(channel)
        if not channels:
            del self._subscriptions[socket]
        subs = self._channels.get(channel)
        if subs is not None:
            subs.pop(socket, None)
            if not subs:
                del self._channels[channel]
                await self.broker.unsubscribe(channel)
        return True

    def deliver(self, publication: Publication) -> None:
        """Write one publication to every local subscriber of its channel (same bytes to each)."""
        subs = self._channels.get(publication.channel)
        if subs is None:
            return
        shared = self._shared(publication.frame)
        if shared is None:
            return
        frame, wire = shared
        # The first publication of this loop turn is written at once; later ones in the same
        # turn are gathered per socket and written in one go when the turn ends (_flush).
        gathering = self._gathering
        first = gathering is None
        if gathering is None:
            gathering = self._gathering = []
            asyncio.get_running_loop().call_soon(self._flush)
        for socket, buffer in subs.items():
            if buffer is None:
                if not first and socket.sender.gather():
                    gathering.append(socket)
                socket.send_raw_nowait(frame, wire, OUT_PUBLICATION)
            else:
                buffer.append(publication)

    def _flush(self) -> None:
        """End of a loop turn with publications: write what each socket gathered."""
        gathering, self._gathering = self._gathering, None
        for socket in gathering or ():
            socket.flush()

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        sockets = list(self._channels.get(channel, ()))
        shared = self._shared(frame) if sockets else None
        if shared is not None:
            for socket in sockets:
                socket.send_raw_nowait(*shared)

    def deliver_broadcast(self, frame: bytes) -> None:
        shared = self._shared(frame)
        if shared is not None:
            for socket in list(self):
                socket.send_raw_nowait(*shared)

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        if frame == NUDGE:
            for socket in self.of_client(client_id):
                self._spawn(self._deliver_queued(self.queues, socket))
            return
        for socket in self.of_client(client_id):
            socket.send_raw_nowait(frame)

    @staticmethod
    async def _deliver_queued(queues: PeerQueues, socket: Socket) -> None:
        try:
            await queues.deliver(socket)
        except Unavailable as exc:
            # the message stays in the box: the client gets it after its next reconnect
            log.warning("delivering queued messages to %s failed: %s", socket.client_id, exc)

    def resubscribe_all(self, channel: str) -> None:
        """Ask every local subscriber of ``channel`` to resubscribe (history could not fill a gap)."""
        frame = protocol.push("ws:resubscribe", {"channel": channel})
        for socket in list(self._channels.get(channel, ())):
            socket.send_raw_nowait(frame)
